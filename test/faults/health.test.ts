/**
 * The health endpoint of the production bot, end to end: `/healthz` alive, `/readyz` 200 only
 * when Discord is ready and Voxta reachable (per-guild states in the body, 503 while Voxta is
 * down), `/metrics` in the Prometheus text format with the documented families.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { startE2E, type E2EEnv } from '../harness/env.js';
import { answer, bootText, freePort, httpGet, metricValue } from './helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

/** Families README/issue 7 document: sessions, voice guilds, turns, turn latency, decode errors, reconnects, playback completes. */
const FAMILIES: Record<string, 'gauge' | 'counter' | 'histogram'> = {
  voxta_discord_sessions: 'gauge',
  voxta_discord_voice_guilds: 'gauge',
  voxta_discord_turns_total: 'counter',
  voxta_discord_turn_latency_seconds: 'histogram',
  voxta_discord_voice_decode_errors: 'gauge',
  voxta_discord_voxta_reconnects_total: 'counter',
  voxta_discord_playback_completes: 'gauge',
};

/** Checks the text exposition format 0.0.4 line by line; returns family → type. */
function parseExposition(text: string): Map<string, string> {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/;
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.trimEnd().split('\n')) {
    if (line.startsWith('# HELP ')) {
      helps.add(line.split(' ')[2]!);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(type);
      expect(types.has(name!), `duplicate TYPE for ${name}`).toBe(false);
      types.set(name!, type!);
      continue;
    }
    expect(line, `not a valid sample line: ${line}`).toMatch(sample);
    const name = sample.exec(line)![1]!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    expect(types.has(family), `sample ${name} before its # TYPE`).toBe(true);
  }
  for (const name of types.keys()) expect(helps.has(name), `# HELP for ${name}`).toBe(true);
  return types;
}

describe('health endpoint of the production bot', () => {
  it('serves /healthz, /readyz with per-guild states (503 while Voxta is down) and Prometheus /metrics', async () => {
    const port = await freePort();
    const { env: e, bot } = await bootText((x) => (env = x), { botEnv: { HEALTH_PORT: String(port), HEALTH_HOST: '127.0.0.1' } });
    const voxta = e.voxta!;

    const alive = await httpGet(port, '/healthz');
    expect(alive).toMatchObject({ status: 200, body: 'ok\n' });
    const idle = await httpGet(port, '/readyz');
    expect(idle.status).toBe(200);
    expect(idle.contentType).toMatch(/^application\/json/);
    expect(JSON.parse(idle.body)).toMatchObject({ ready: true, discord: 'ready', voxta: 'reachable', guilds: [] });
    expect((await httpGet(port, '/nope')).status).toBe(404);

    await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    e.alice.say(e.text.id, 'hello');
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.includes('You said: hello'), 10_000);
    const ready = JSON.parse((await httpGet(port, '/readyz')).body) as { guilds: unknown[] };
    expect(ready.guilds).toEqual([expect.objectContaining({ guildId: e.guild.id, state: 'active', voxta: 'ready' })]);

    const metrics = await httpGet(port, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const types = parseExposition(metrics.body);
    for (const [family, type] of Object.entries(FAMILIES)) expect(types.get(family), family).toBe(type);
    expect(metricValue(metrics.body, 'voxta_discord_sessions{state="active"}')).toBe(1);
    expect(metricValue(metrics.body, 'voxta_discord_turns_total{source="text"}')).toBe(1);
    expect(metricValue(metrics.body, 'voxta_discord_turn_latency_seconds_count')).toBe(1);
    expect(metricValue(metrics.body, 'voxta_discord_turn_latency_seconds_bucket{le="+Inf"}')).toBe(1);
    expect(metricValue(metrics.body, 'voxta_discord_voice_guilds')).toBe(0);
    expect(metricValue(metrics.body, 'voxta_discord_voxta_reconnects_total')).toBe(0);
    // Histogram buckets are cumulative.
    const buckets = metrics.body.split('\n').filter((l) => l.startsWith('voxta_discord_turn_latency_seconds_bucket')).map((l) => Number(l.split(' ')[1]));
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));

    // Voxta goes down: the bot tells the channel, and from then on readiness is 503, naming
    // Voxta and the guild's state (the live sessions know at once; no stale probe).
    await voxta.stop();
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.startsWith('I lost the connection to Voxta'), 10_000);
    const down = await httpGet(port, '/readyz');
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body)).toMatchObject({
      ready: false,
      discord: 'ready',
      voxta: 'unreachable',
      guilds: [expect.objectContaining({ guildId: e.guild.id, state: expect.stringMatching(/reconnecting|active/), voxta: 'reconnecting' })],
    });
    expect((await httpGet(port, '/healthz')).status).toBe(200); // alive all along

    await voxta.start();
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.startsWith('Reconnected to Voxta'), 20_000);
    const up = await httpGet(port, '/readyz');
    expect(up.status).toBe(200);
    expect(JSON.parse(up.body)).toMatchObject({ ready: true, voxta: 'reachable', guilds: [expect.objectContaining({ state: 'active', voxta: 'ready' })] });
    const after = (await httpGet(port, '/metrics')).body;
    expect(metricValue(after, 'voxta_discord_voxta_reconnects_total')).toBe(1);
    expect(bot.exit).toBeUndefined();
  }, 60_000);

  it('answers 503 "discord: not ready" until the Discord gateway is ready, then 200', async () => {
    // The bot's REST calls go through a small proxy that holds `GET /gateway/bot` for 1.5 s, so
    // the bot is up (health endpoint listening) but not yet on the gateway for that long.
    const e = await startE2E({ discord: { voice: false } });
    env = e;
    const upstream = new URL(e.discord.restUrl);
    const proxy = http.createServer((req, res) => {
      const forward = () => {
        const fwd = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        });
        fwd.on('error', () => res.writeHead(502).end());
        req.pipe(fwd);
      };
      if (req.url?.endsWith('/gateway/bot')) setTimeout(forward, 1500);
      else forward();
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const port = await freePort();
      const restUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}${upstream.pathname}`;
      const bot = await e.spawnBot({ env: { DISCORD_API_URL: restUrl, HEALTH_PORT: String(port), HEALTH_HOST: '127.0.0.1' } });
      await bot.waitForLogMsg(/^health endpoint listening/, () => true, 15_000);
      const early = await httpGet(port, '/readyz');
      expect(early.status).toBe(503);
      expect(JSON.parse(early.body)).toMatchObject({ ready: false, discord: 'not ready', voxta: 'reachable' });
      expect((await httpGet(port, '/healthz')).status).toBe(200); // alive, just not ready
      await bot.waitForLog(/logged in to Discord/, 15_000);
      const ready = await httpGet(port, '/readyz');
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.body)).toMatchObject({ ready: true, discord: 'ready' });
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  }, 30_000);
});
