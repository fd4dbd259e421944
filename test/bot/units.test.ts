/** Pure pieces of the bot core: message splitting, reply streaming, admission, permissions, metrics, catalog caching. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/bot/admission.js';
import { CachedList, chatLabel, relativeTime } from '../../src/bot/catalog.js';
import { startHealthServer } from '../../src/bot/health.js';
import { MetricsRegistry, RecentSamples } from '../../src/bot/metrics.js';
import { mayControlSession, refusalText } from '../../src/bot/permissions.js';
import { ReplyRenderer } from '../../src/bot/reply-renderer.js';
import { findSplitPoint, splitMessage } from '../../src/bot/split-message.js';
import { createLogger } from '../../src/log.js';
import { RecordingChannel } from './fixtures.js';

const log = createLogger({ level: 'silent', pretty: false });

describe('splitMessage', () => {
  it('keeps short text whole', () => {
    expect(splitMessage('Hello there.')).toEqual(['Hello there.']);
  });

  it('prefers paragraph, then sentence, then word boundaries, and loses nothing', () => {
    const para = 'a'.repeat(1500) + '\n\n' + 'b'.repeat(1000);
    expect(splitMessage(para)).toEqual(['a'.repeat(1500), 'b'.repeat(1000)]);
    const sentences = Array.from({ length: 100 }, (_, i) => `Sentence ${i} is here.`).join(' ');
    const parts = splitMessage(sentences, 200);
    for (const p of parts) {
      expect(p.length).toBeLessThanOrEqual(200);
      expect(p.endsWith('.')).toBe(true);
    }
    expect(parts.join(' ')).toBe(sentences);
    const words = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');
    const wparts = splitMessage(words, 100);
    expect(wparts.join(' ')).toBe(words);
    for (const p of wparts) expect(p.length).toBeLessThanOrEqual(100);
  });

  it('hard-cuts one enormous word without splitting an emoji', () => {
    const text = 'x'.repeat(99) + '😀' + 'y'.repeat(50);
    const parts = splitMessage(text, 100);
    expect(parts[0]).toBe('x'.repeat(99));
    expect(parts.join('')).toBe(text);
    expect(findSplitPoint('z'.repeat(300), 100)).toBe(100);
  });
});

describe('ReplyRenderer', () => {
  it('posts the first chunk at once, then edits one message as chunks arrive', async () => {
    const ch = new RecordingChannel('1', 'general');
    const r = new ReplyRenderer(ch, { log, editIntervalMs: 30 });
    r.append('Hello.');
    await new Promise((res) => setTimeout(res, 5));
    expect(ch.texts()).toEqual(['Hello.']);
    r.append('How are you?');
    r.append('Fine.');
    const ids = await r.finish();
    expect(ch.texts()).toEqual(['Hello. How are you? Fine.']);
    expect(ids).toEqual([ch.posted[0]!.id]);
    // Throttled: the two later chunks were written in one edit.
    expect(ch.posted[0]!.edits).toBe(1);
  });

  it('continues in a new message past the limit, closing the first at a sentence end', async () => {
    const ch = new RecordingChannel('1', 'general');
    const r = new ReplyRenderer(ch, { log, editIntervalMs: 1, limit: 50 });
    const chunks = ['One two three four five.', 'Six seven eight nine ten.', 'Eleven twelve thirteen.', 'Fourteen.'];
    for (const c of chunks) {
      r.append(c);
      await new Promise((res) => setTimeout(res, 3));
    }
    const ids = await r.finish();
    expect(ids).toHaveLength(2);
    expect(ch.texts()).toEqual(['One two three four five. Six seven eight nine ten.', 'Eleven twelve thirteen. Fourteen.']);
  });

  it('rewrites a shown reply when Voxta shortens it, keeping the same messages', async () => {
    const ch = new RecordingChannel('1', 'general');
    const r = new ReplyRenderer(ch, { log, editIntervalMs: 1, limit: 50 });
    r.append('One two three four five.');
    r.append('Six seven eight nine ten.');
    r.append('Eleven twelve thirteen.');
    await r.finish();
    expect(ch.posted).toHaveLength(2);
    const edits = ch.posted.map((p) => p.edits);
    await r.rewrite('One two three four five.  Six seven eight nine ten. Eleven twelve thirteen.');
    expect(ch.posted.map((p) => p.edits)).toEqual(edits); // the same text, spaced differently: untouched
    await r.rewrite('One two three four five. Six…');
    expect(ch.texts()).toEqual(['One two three four five. Six…', '*(not said: the reply was cut short)*']);
    expect(ch.posted.map((p) => p.edits)).toEqual(edits.map((e) => e + 1));
  });

  it('marks a reply that was cut off, within the message limit, and keeps the mark when Voxta rewrites it', async () => {
    const ch = new RecordingChannel('1', 'general');
    const r = new ReplyRenderer(ch, { log, editIntervalMs: 1, limit: 50 });
    r.append('One two three four five.');
    r.append('Six seven eight nine ten.'); // exactly 50 characters with the first
    await r.finish({ interrupted: true });
    expect(ch.texts()).toEqual(['One two three four five. Six seven eight nine ten.', '*(interrupted)*']);
    expect(ch.texts().every((t) => t.length <= 50)).toBe(true);
    await r.rewrite('One two three four five.');
    expect(ch.texts()).toEqual(['One two three four five. *(interrupted)*', '*(not said: the reply was cut short)*']);
    // A reply that ended normally carries no mark; an interruption after the end changes nothing.
    const ch2 = new RecordingChannel('2', 'general');
    const whole = new ReplyRenderer(ch2, { log, editIntervalMs: 1 });
    whole.append('All said.');
    await whole.finish();
    await whole.finish({ interrupted: true });
    expect(ch2.texts()).toEqual(['All said.']);
  });

  it('keeps going when Discord refuses a post', async () => {
    let fail = true;
    const ch = new RecordingChannel('1', 'general');
    const flaky = { id: ch.id, name: ch.name, sendTyping: () => ch.sendTyping(), send: (m: string) => (fail ? ((fail = false), Promise.reject(new Error('500'))) : ch.send(m)) };
    const r = new ReplyRenderer(flaky, { log, editIntervalMs: 1 });
    r.append('Lost first try.');
    await new Promise((res) => setTimeout(res, 5));
    r.append('Then fine.');
    await r.finish();
    expect(ch.texts()).toEqual(['Lost first try. Then fine.']);
  });
});

describe('Admission', () => {
  it('caps chats and voice guilds, counts a guild once, and frees on release', () => {
    const a = new Admission(2, 1);
    expect(a.tryAcquireChat('g1')).toBe(true);
    expect(a.tryAcquireChat('g1')).toBe(true);
    expect(a.tryAcquireChat('g2')).toBe(true);
    expect(a.tryAcquireChat('g3')).toBe(false);
    expect(a.tryAcquireVoice('g1')).toBe(true);
    expect(a.tryAcquireVoice('g2')).toBe(false);
    a.releaseChat('g1');
    expect(a.voiceCount).toBe(0);
    expect(a.tryAcquireChat('g3')).toBe(true);
    expect(a.tryAcquireVoice('g2')).toBe(true);
  });
});

describe('permissions', () => {
  it('allows Manage Server or an allowlisted role, nothing else', () => {
    expect(mayControlSession({ canManageGuild: true, roleIds: [] }, [])).toBe(true);
    expect(mayControlSession({ canManageGuild: false, roleIds: ['r1'] }, [])).toBe(false);
    expect(mayControlSession({ canManageGuild: false, roleIds: ['r1'] }, ['r1'])).toBe(true);
    expect(refusalText(['r1'])).toMatch(/admin roles/);
  });
});

describe('metrics', () => {
  it('renders counters, gauges and histograms in Prometheus text format', () => {
    const reg = new MetricsRegistry();
    const c = reg.counter('x_total', 'Things.');
    c.inc({ kind: 'a' });
    c.inc({ kind: 'a' });
    reg.gauge('g', 'Gauge.', () => [{ labels: { state: 'active' }, value: 3 }]);
    const h = reg.histogram('lat_seconds', 'Latency.', [0.5, 1]);
    h.observe(0.2);
    h.observe(0.7);
    h.observe(5);
    const text = reg.render();
    expect(text).toContain('# TYPE x_total counter\nx_total{kind="a"} 2');
    expect(text).toContain('g{state="active"} 3');
    expect(text).toContain('lat_seconds_bucket{le="0.5"} 1\nlat_seconds_bucket{le="1"} 2\nlat_seconds_bucket{le="+Inf"} 3\nlat_seconds_sum 5.9\nlat_seconds_count 3');
    expect(() => reg.counter('x_total', 'again')).toThrow();
  });

  it('gives percentiles of recent samples', () => {
    const s = new RecentSamples(5);
    for (const v of [100, 200, 300, 400, 500, 600]) s.add(v);
    expect(s.count).toBe(5);
    expect(s.percentile(50)).toBe(400);
    expect(s.percentile(95)).toBe(600);
  });
});

describe('catalog cache', () => {
  it('serves fresh, then stale while refreshing, and nothing rather than waiting past the deadline', async () => {
    let now = 0;
    let calls = 0;
    let gate: (() => void) | undefined;
    const list = new CachedList(
      async () => {
        calls++;
        if (calls === 3) await new Promise<void>((r) => (gate = r));
        return [`v${calls}`];
      },
      1000,
      log,
      'test',
      () => now,
    );
    expect(await list.within(100)).toEqual(['v1']);
    expect(await list.within(100)).toEqual(['v1']);
    expect(calls).toBe(1);
    now = 5000; // stale: answered at once, refreshed behind
    expect(await list.within(100)).toEqual(['v1']);
    await new Promise((r) => setTimeout(r, 1));
    expect(await list.within(100)).toEqual(['v2']);
    now = 10_000;
    const slow = new CachedList(() => new Promise<string[]>(() => undefined), 1000, log, 'slow');
    expect(await slow.within(20)).toBeUndefined();
    void list.within(10);
    gate?.();
  });

  it('labels chats readably', () => {
    const now = Date.UTC(2026, 0, 10);
    expect(chatLabel({ id: 'c', title: '', characterIds: [], lastSessionTimestamp: now - 3 * 86_400_000 }, 'Aria', now)).toBe('Aria — last used 3 days ago');
    expect(chatLabel({ id: 'c', title: 'Quest', characterIds: [], lastSessionTimestamp: 0, createdTimestamp: now - 7_200_000, messageCount: 42 }, 'Aria', now)).toBe(
      'Quest — created 2 hours ago, 42 messages',
    );
    expect(relativeTime(30_000)).toBe('just now');
  });
});

describe('health server', () => {
  async function get(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
    return new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
        })
        .on('error', reject);
    });
  }

  it('is off on port 0, and serves /healthz, /readyz and /metrics otherwise', async () => {
    expect(await startHealthServer({ port: 0, host: '127.0.0.1', log, sources: undefined as never })).toBeUndefined();
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    let discord = false;
    const server = (await startHealthServer({
      port,
      host: '127.0.0.1',
      log,
      sources: {
        discordReady: () => discord,
        voxtaReachable: async () => true,
        messageContentAvailable: () => true,
        guilds: () => [{ guildId: 'g1', state: 'active', voxta: 'ready', voice: false }],
        metrics: () => 'm 1\n',
      },
    }))!;
    try {
      expect(await get(port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
      const notReady = await get(port, '/readyz');
      expect(notReady.status).toBe(503);
      expect(JSON.parse(notReady.body)).toMatchObject({ ready: false, discord: 'not ready', voxta: 'reachable' });
      discord = true;
      const ready = await get(port, '/readyz');
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.body).guilds).toEqual([{ guildId: 'g1', state: 'active', voxta: 'ready', voice: false }]);
      expect(await get(port, '/metrics')).toMatchObject({ status: 200, body: 'm 1\n', type: 'text/plain; version=0.0.4; charset=utf-8' });
      expect((await get(port, '/nope')).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
