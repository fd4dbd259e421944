/**
 * The e2e harness itself: the production entry point starts as a child process against both
 * simulators, logs in to the simulated Discord (IDENTIFY + READY seen by the simulator), and is
 * killed cleanly; a bad configuration exits 1 with one line.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startE2E, type E2EEnv } from '../harness/env.js';

let env: E2EEnv | undefined;

afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('e2e harness', () => {
  it('runs the production bot against the simulators and stops it', async () => {
    env = await startE2E({ discord: { voice: false } });
    const bot = await env.spawnBot({ logLevel: 'info' });
    await env.discord.waitForBotReady(30_000);
    // Any structured log line (pino JSON when stdout is not a terminal).
    await bot.waitForLogMsg(/./, (j) => typeof j.level === 'string');
    expect(env.discord.identifies).toHaveLength(1);
    expect(env.discord.requests.some((r) => r.route === '/gateway/bot' && r.status === 200)).toBe(true);
    expect(bot.exit).toBeUndefined();
    const exit = await bot.kill('SIGTERM');
    expect(exit.code !== null || exit.signal !== null).toBe(true);
  }, 60_000);

  it('a malformed configuration exits 1 with a one-line error', async () => {
    env = await startE2E({ discord: { voice: false } });
    const bot = await env.spawnBot({ env: { DISCORD_TOKEN: 'not a token' } });
    const exit = await bot.exited;
    expect(exit.code).toBe(1);
    await bot.waitForLog(/DISCORD_TOKEN/);
    expect(bot.lines.filter((l) => l.stream === 'stderr' && l.line.trim() !== '')).toHaveLength(1);
    expect(env.discord.identifies).toHaveLength(0);
  }, 60_000);
});
