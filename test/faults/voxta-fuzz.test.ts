/**
 * Fault: 10 000 fuzzed Voxta payloads (wrong types, missing fields, huge strings, unknown
 * `$type`, deep nesting, non-object arguments, odd SignalR records) delivered over SignalR to a
 * real `VoxtaChatSession` in the middle of a real chat with the Voxta simulator. A small
 * WebSocket tap sits between the two: it forwards the real conversation both ways and injects the
 * fuzz toward the client (the simulator has no raw-send API). Afterwards: no crash, the
 * connection and chat survived (no reconnect), every malformed payload was dropped and counted,
 * every well-formed one delivered, and the session still answers a `send`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { ARIA_ID, startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import { VoxtaChatSession, VoxtaEndpoint } from '../../src/voxta/index.js';
import type { E2EEnv } from '../harness/env.js';
import { answer, bootText, botPosts, prng, sends } from './helpers.js';

const RS = '\x1e';

/** A pass-through for the hub WebSocket (and plain HTTP) that can inject records toward the client. */
class HubTap {
  private readonly clients = new Set<WebSocket>();
  private constructor(
    private readonly server: http.Server,
    readonly url: string,
  ) {}

  static async start(upstream: string): Promise<HubTap> {
    const up = new URL(upstream);
    const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 * 1024 });
    const server = http.createServer((req, res) => {
      const fwd = http.request({ host: up.hostname, port: up.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      fwd.on('error', () => res.writeHead(502).end());
      req.pipe(fwd);
    });
    const tap = new HubTap(server, '');
    server.on('upgrade', (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (client) => {
        const upstreamWs = new WebSocket(`ws://${up.host}${req.url ?? '/'}`);
        const pending: string[] = [];
        tap.clients.add(client);
        upstreamWs.on('open', () => {
          for (const p of pending.splice(0)) upstreamWs.send(p);
        });
        upstreamWs.on('message', (data, isBinary) => client.send(isBinary ? data : data.toString(), { binary: isBinary }));
        client.on('message', (data, isBinary) => {
          const msg = data.toString();
          if (isBinary) return;
          if (upstreamWs.readyState === WebSocket.OPEN) upstreamWs.send(msg);
          else pending.push(msg);
        });
        const closeBoth = () => {
          tap.clients.delete(client);
          client.terminate();
          upstreamWs.terminate();
        };
        client.on('close', closeBoth);
        upstreamWs.on('close', closeBoth);
        client.on('error', closeBoth);
        upstreamWs.on('error', closeBoth);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    (tap as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return tap;
  }

  get connections(): number {
    return this.clients.size;
  }

  /** Sends raw SignalR records (already JSON) to every client, batched into frames. */
  async inject(records: string[], perFrame = 50): Promise<void> {
    for (let i = 0; i < records.length; i += perFrame) {
      const frame = records.slice(i, i + perFrame).map((r) => r + RS).join('');
      for (const c of this.clients) c.send(frame);
      // Let the client drain between frames, as a real server's writes would.
      if (i % (perFrame * 20) === 0) await new Promise((r) => setImmediate(r));
    }
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

// ---- the fuzz ------------------------------------------------------------------------------

type Kind = 's' | 'n' | 'b' | 'a' | 'o';
interface Shape {
  req?: Record<string, Kind>;
  opt?: Record<string, Kind>;
  /** Required fields for which null is valid (so a null there is not "broken"). */
  nullable?: string[];
}
/** Server message shapes (protocol notes §3), as a fuzz dictionary. */
const SHAPES: Record<string, Shape> = {
  chatClosed: { req: { sessionId: 's' }, opt: { chatId: 's' } },
  chatSessionError: { req: { sessionId: 's', message: 's' }, opt: { code: 's', retry: 'b' } },
  replyGenerating: { req: { sessionId: 's', messageId: 's' }, opt: { senderId: 's', isNarration: 'b' } },
  replyStart: { req: { sessionId: 's', messageId: 's' }, opt: { senderId: 's' } },
  replyChunk: { req: { sessionId: 's', messageId: 's', text: 's' }, opt: { startIndex: 'n', endIndex: 'n', audioUrl: 's', isNarration: 'b' } },
  replyEnd: { req: { sessionId: 's', messageId: 's' }, opt: { senderId: 's' } },
  replyCancelled: { req: { sessionId: 's', messageId: 's' } },
  // text null is Voxta's echo of a deleted message (parsed as a deletion, not dropped).
  update: { req: { sessionId: 's', messageId: 's', text: 's' }, opt: { role: 's', senderId: 's' }, nullable: ['text'] },
  interruptSpeech: { req: { sessionId: 's' }, opt: { messageId: 's' } },
  recordingRequest: { req: { sessionId: 's', enabled: 'b' } },
  recordingStatus: { req: { sessionId: 's', enabled: 'b' } },
  chatFlow: { req: { sessionId: 's', state: 's' } },
  chatPaused: { req: { sessionId: 's', paused: 'b' } },
  chatStarting: { req: { sessionId: 's' }, opt: { chatId: 's' } },
  chatStarted: { req: { sessionId: 's', chatId: 's' }, opt: { characters: 'a', services: 'o', messages: 'a' } },
  speechPlaybackStart: { req: { sessionId: 's', messageId: 's' }, opt: { duration: 'n' } },
};
const SESSION_TYPES = Object.keys(SHAPES);

interface Fuzz {
  records: string[];
  /** ReceiveMessage payloads the client must drop as malformed/unknown. */
  malformed: number;
  /** Well-formed ReceiveMessage payloads (for other sessions, or harmless session-less ones). */
  wellFormed: number;
}

function makeFuzz(n: number, seed: number, realSessionId: string): Fuzz {
  const rnd = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  const word = (len: number) => Array.from({ length: len }, () => String.fromCharCode(int(0x20, 0x7e))).join('');
  const huge = (len: number) => 'ü𝄞x'.repeat(Math.ceil(len / 4)).slice(0, len);
  const uuid = () => `${word(8)}-fuzz-${int(0, 1e9)}`.replace(/["\\]/g, '_');
  const valueOf = (k: Kind): unknown =>
    k === 's' ? word(int(0, 30)) : k === 'n' ? int(-5, 5000) : k === 'b' ? rnd() < 0.5 : k === 'a' ? [] : {};
  /** A JSON value of another type than `k` (never null: a null optional counts as absent). */
  const wrongFor = (k: Kind): unknown => {
    const pool: Array<[Kind, unknown]> = [
      ['n', 42],
      ['n', -1.5],
      ['n', 1e308],
      ['s', 'not what you expected'],
      ['s', ''],
      ['b', true],
      ['b', false],
      ['a', []],
      ['a', [1, 'two', { three: 3 }]],
      ['o', {}],
      ['o', { nested: { deeper: [null] } }],
    ];
    return pick(pool.filter(([kind]) => kind !== k))[1];
  };
  const valid = (type: string, sessionId: string): Record<string, unknown> => {
    const shape = SHAPES[type]!;
    const o: Record<string, unknown> = { $type: type };
    for (const [f, k] of Object.entries(shape.req ?? {})) o[f] = f === 'sessionId' ? sessionId : valueOf(k);
    for (const [f, k] of Object.entries(shape.opt ?? {})) if (rnd() < 0.5) o[f] = valueOf(k);
    return o;
  };
  /** A payload for our own session with one field broken (so it can never close or disturb the chat). */
  const broken = (): Record<string, unknown> => {
    const type = pick(SESSION_TYPES);
    const o = valid(type, realSessionId);
    const shape = SHAPES[type]!;
    const fields = [...Object.entries(shape.req ?? {}).map(([f, k]) => [f, k, true] as const), ...Object.entries(shape.opt ?? {}).map(([f, k]) => [f, k, false] as const)];
    const [field, kind, required] = pick(fields);
    if (required && rnd() < 0.4) delete o[field];
    else if (required && rnd() < 0.2 && !shape.nullable?.includes(field)) o[field] = null;
    else o[field] = wrongFor(kind);
    return o;
  };
  const deep = (depth: number): string => {
    let open = '';
    let close = '';
    for (let i = 0; i < depth; i++) {
      if (i % 2) {
        open += '{"a":';
        close = '}' + close;
      } else {
        open += '[';
        close = ']' + close;
      }
    }
    return `${open}0${close}`;
  };
  const invocation = (args: string) => `{"type":1,"target":"ReceiveMessage","arguments":${args}}`;

  const records: string[] = [];
  let malformed = 0;
  let wellFormed = 0;
  for (let i = 0; i < n; i++) {
    const r = rnd();
    if (r < 0.3) {
      records.push(invocation(JSON.stringify([broken()])));
      malformed++;
    } else if (r < 0.4) {
      // Unknown $type (sometimes long), aimed at our session.
      const type = rnd() < 0.05 ? huge(int(1000, 100_000)) : `future${word(int(1, 20))}`;
      records.push(invocation(JSON.stringify([{ $type: type, sessionId: realSessionId, messageId: uuid(), text: 'x' }])));
      malformed++;
    } else if (r < 0.47) {
      // $type missing or not a string.
      const o: Record<string, unknown> = { sessionId: realSessionId, messageId: uuid(), text: 'x' };
      const variant = int(0, 4);
      if (variant > 0) o.$type = [42, null, ['replyChunk'], { name: 'replyChunk' }][variant - 1];
      records.push(invocation(JSON.stringify([o])));
      malformed++;
    } else if (r < 0.55) {
      // Arguments that are not an object: strings, numbers, null, arrays, nothing at all.
      records.push(invocation(pick(['["not an object"]', '[42]', '[null]', '[true]', '[[1,2,3]]', '[]', '[[]]', '["{\\"$type\\":\\"replyEnd\\"}"]'])));
      malformed++;
    } else if (r < 0.62) {
      // Huge strings: mostly well-formed messages for another session, some broken ones for ours.
      const size = rnd() < 0.1 ? int(200_000, 1_000_000) : int(5_000, 50_000);
      if (rnd() < 0.5) {
        const o = valid('replyChunk', uuid());
        o.text = huge(size);
        o.senderId = huge(int(100, 5000));
        records.push(invocation(JSON.stringify([o])));
        wellFormed++;
      } else {
        const o = valid('replyChunk', realSessionId);
        o.text = huge(size);
        delete o.messageId;
        records.push(invocation(JSON.stringify([o])));
        malformed++;
      }
    } else if (r < 0.68) {
      // Deep nesting: in an extra field of a well-formed message, or instead of a required field.
      const depth = rnd() < 0.1 ? int(5_000, 50_000) : int(10, 1000);
      if (rnd() < 0.5) {
        const o = JSON.stringify(valid(pick(SESSION_TYPES), uuid()));
        records.push(invocation(`[${o.slice(0, -1)},"extra":${deep(depth)}}]`));
        wellFormed++;
      } else {
        records.push(invocation(`[{"$type":"replyChunk","sessionId":${JSON.stringify(realSessionId)},"messageId":"m","text":${deep(depth)}}]`));
        malformed++;
      }
    } else if (r < 0.86) {
      // Well-formed, for sessions that are not ours.
      records.push(invocation(JSON.stringify([valid(pick(SESSION_TYPES), uuid())])));
      wellFormed++;
    } else if (r < 0.9) {
      // Well-formed, session-less and harmless for a text chat.
      records.push(invocation(JSON.stringify([rnd() < 0.5 ? { $type: 'speechRecognitionPartial', text: word(20) } : { $type: 'speechRecognitionEnd', text: null }])));
      wellFormed++;
    } else if (r < 0.93) {
      // Extra arguments after a well-formed payload (the first is used).
      records.push(invocation(JSON.stringify([valid(pick(SESSION_TYPES), uuid()), 'extra', 42])));
      wellFormed++;
    } else {
      // SignalR records the client must ignore: unknown targets (any arguments), pings,
      // completions/stream items for invocations it never made, unknown record types.
      records.push(
        pick([
          `{"type":1,"target":"${word(int(1, 20)).replace(/["\\]/g, '_')}","arguments":[{"$type":"replyChunk"}]}`,
          '{"type":1,"target":"receivemessagez","arguments":[]}',
          '{"type":6}',
          `{"type":3,"invocationId":"${int(1000, 9999)}","result":${deep(20)}}`,
          `{"type":3,"invocationId":"${int(1000, 9999)}","error":"boom"}`,
          `{"type":2,"invocationId":"${int(1000, 9999)}","item":"x"}`,
          `{"type":${int(10, 99)},"whatever":true}`,
        ]),
      );
    }
  }
  return { records, malformed, wellFormed };
}

let sim: VoxtaSim | undefined;
let tap: HubTap | undefined;
let session: VoxtaChatSession | undefined;
let env: E2EEnv | undefined;
afterEach(async () => {
  await session?.close().catch(() => {});
  await tap?.close();
  await sim?.close();
  await env?.close();
  session = undefined;
  tap = undefined;
  sim = undefined;
  env = undefined;
});

describe('fault: fuzzed Voxta payloads', () => {
  it('survives 10 000 fuzzed payloads in a live chat, drops exactly the malformed ones, and still answers a send', async () => {
    sim = await startVoxtaSim({ chunkDelayMs: 5 });
    tap = await HubTap.start(sim.url);
    session = new VoxtaChatSession({
      endpoint: new VoxtaEndpoint({ url: tap.url }),
      audioInput: 'None',
      skipNegotiation: true,
      log: pino({ level: 'silent' }),
    });
    await session.connect();
    await session.startChat({ characterId: ARIA_ID });
    const sessionId = session.sessionId!;
    expect(tap.connections).toBe(1);

    let messages = 0;
    const errors: unknown[] = [];
    session.on('message', () => messages++);
    session.on('failed', (err) => errors.push(err));
    const onUncaught = (err: unknown) => errors.push(err);
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
    try {
      const dropped0 = session.stats.droppedMessages;
      const fuzz = makeFuzz(10_000, 0xf00d, sessionId);
      expect(fuzz.records).toHaveLength(10_000);
      expect(fuzz.malformed).toBeGreaterThan(5000);
      expect(fuzz.wellFormed).toBeGreaterThan(2500);
      await tap.inject(fuzz.records);
      // Every ReceiveMessage payload is accounted for: dropped as malformed, or delivered.
      await sim.waitFor(
        () => session!.stats.droppedMessages - dropped0 + messages >= fuzz.malformed + fuzz.wellFormed,
        20_000,
        'the client to process the fuzz',
      );
      expect(session.stats.droppedMessages - dropped0).toBe(fuzz.malformed);
      expect(messages).toBe(fuzz.wellFormed);

      // Nothing broke: same connection, same chat, no reconnect, no error anywhere.
      expect(errors).toEqual([]);
      expect(session.state).toBe('ready');
      expect(session.sessionId).toBe(sessionId);
      expect(session.stats.reconnects).toBe(0);
      expect(session.stats.listenerErrors).toBe(0);
      expect(tap.connections).toBe(1);

      // And it still talks: a send is delivered once and answered.
      const reply = new Promise<string>((resolve) => {
        const texts: string[] = [];
        session!.on('replyChunk', (m) => {
          if (m.sessionId === sessionId) texts.push(m.text);
        });
        session!.on('replyEnd', (m) => {
          if (m.sessionId === sessionId) resolve(texts.join(' '));
        });
      });
      session.send('still there after the storm?');
      const text = await Promise.race([reply, new Promise<string>((_, reject) => setTimeout(() => reject(new Error('no reply after the fuzz')), 10_000))]);
      expect(text).toContain('You said: still there after the storm?');
      expect(sim.received.filter((m) => m.payload.$type === 'send' && m.payload.text === 'still there after the storm?')).toHaveLength(1);
    } finally {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
    }
  }, 60_000);

  it('the production bot talks on with a Voxta that mixes malformed payloads, unknown types and odd targets into every reply', async () => {
    const { env: e, bot } = await bootText((x) => (env = x), {
      e2e: { voxta: { faults: { malformedPayloads: true, unknownTypes: true }, reply: (text) => [`Answer to ${text}.`, 'Second sentence.'] } },
    });
    await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    for (const text of ['one', 'two', 'three']) {
      e.alice.say(e.text.id, text);
      await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content === `Answer to ${text}. Second sentence.`, 10_000);
    }
    // The bad payloads really were sent, three times over…
    expect(e.voxta!.sent.filter((m) => (m.payload as { $type?: string }).$type === 'futureThing')).toHaveLength(3);
    // …and cost nothing: each message delivered once, each answer posted once, nothing else said.
    expect(sends(e)).toEqual(['one', 'two', 'three']);
    const posts = botPosts(e).map((m) => m.content);
    expect(posts).toEqual(['Answer to one. Second sentence.', 'Answer to two. Second sentence.', 'Answer to three. Second sentence.']);
    expect(bot.exit).toBeUndefined();
  }, 30_000);
});
