/**
 * Test helpers: a real @microsoft/signalr client and a real `ws` audio client against the
 * simulator, plus a small independent WAV header parser.
 */
import { HttpTransportType, HubConnectionBuilder, LogLevel, type HubConnection } from '@microsoft/signalr';
import WebSocket from 'ws';
import type { VoxtaSim } from '../../sim/voxta/index.js';

export type Msg = Record<string, unknown> & { $type: string };

export interface HubClient {
  conn: HubConnection;
  /** Every ReceiveMessage payload, in order. */
  messages: Msg[];
  /** Index to pass as `after` to only see messages from now on. */
  mark(): number;
  next(type: string, opts?: { after?: number; match?: (m: Msg) => boolean; timeoutMs?: number }): Promise<Msg>;
  all(type: string, after?: number): Msg[];
  send(payload: Msg): Promise<void>;
  invoke(payload: Msg): Promise<unknown>;
  close(): Promise<void>;
}

export interface ConnectOptions {
  skipNegotiation?: boolean;
  token?: string;
  headers?: Record<string, string>;
  reconnect?: boolean;
}

export async function connectHub(sim: VoxtaSim, opts: ConnectOptions = {}): Promise<HubClient> {
  let builder = new HubConnectionBuilder()
    .withUrl(`${sim.url}/hub`, {
      transport: HttpTransportType.WebSockets,
      skipNegotiation: opts.skipNegotiation ?? false,
      ...(opts.token !== undefined ? { accessTokenFactory: () => opts.token! } : {}),
      ...(opts.headers ? { headers: opts.headers } : {}),
    })
    .configureLogging(LogLevel.None);
  if (opts.reconnect) builder = builder.withAutomaticReconnect([0, 50, 100, 200]);
  const conn = builder.build();
  const messages: Msg[] = [];
  const waiters = new Set<() => void>();
  conn.on('ReceiveMessage', (payload: Msg) => {
    messages.push(payload);
    for (const w of [...waiters]) w();
  });
  await conn.start();
  const find = (type: string, after: number, match?: (m: Msg) => boolean): Msg | undefined =>
    messages.slice(after).find((m) => m?.$type === type && (!match || match(m)));
  return {
    conn,
    messages,
    mark: () => messages.length,
    all: (type, after = 0) => messages.slice(after).filter((m) => m?.$type === type),
    next(type, o = {}) {
      const after = o.after ?? 0;
      const timeoutMs = o.timeoutMs ?? 3000;
      const found = find(type, after, o.match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = find(type, after, o.match);
          if (m) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const seen = messages.slice(after).map((m) => m?.$type).join(', ');
          reject(new Error(`timed out after ${timeoutMs} ms waiting for "${type}"; saw: ${seen}`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    send: (payload) => conn.send('SendMessage', payload),
    invoke: (payload) => conn.invoke('SendMessage', payload),
    close: () => conn.stop(),
  };
}

export const VOICE_CAPS = {
  audioInput: 'WebSocketStream',
  audioOutput: 'Url',
  acceptedAudioContentTypes: ['audio/x-wav', 'audio/wav'],
};
export const TEXT_CAPS = { audioInput: 'None', audioOutput: 'Url', acceptedAudioContentTypes: ['audio/x-wav'] };

/** Connects and authenticates; resolves once `welcome` arrived. */
export async function connectAuthenticated(sim: VoxtaSim, opts: ConnectOptions & { capabilities?: object } = {}): Promise<HubClient> {
  const c = await connectHub(sim, opts);
  await c.send({
    $type: 'authenticate',
    client: 'Voxta.Test',
    clientVersion: '0.0.1',
    scope: ['role:app'],
    capabilities: opts.capabilities ?? TEXT_CAPS,
  });
  await c.next('welcome');
  return c;
}

/** Starts a chat and resolves with its `chatStarted` payload. */
export async function startChat(c: HubClient, characterId: string, extra: Record<string, unknown> = {}): Promise<Msg> {
  const after = c.mark();
  await c.send({ $type: 'startChat', characterId, ...extra });
  return c.next('chatStarted', { after });
}

/** Reads a whole reply (replyStart … replyEnd) for the next reply after `after`. */
export async function readReply(c: HubClient, after: number, timeoutMs = 3000): Promise<{ messageId: string; chunks: Msg[]; end: Msg }> {
  const start = await c.next('replyStart', { after, timeoutMs });
  const messageId = start.messageId as string;
  const end = await c.next('replyEnd', { after, match: (m) => m.messageId === messageId, timeoutMs });
  const chunks = c.all('replyChunk', after).filter((m) => m.messageId === messageId);
  return { messageId, chunks, end };
}

export interface ParsedWav {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  dataBytes: number;
  durationMs: number;
}

/** Independent WAV header parser (does not reuse the simulator's code). */
export function parseWavHeader(b: Buffer): ParsedWav {
  if (b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') throw new Error('not a WAV');
  let off = 12;
  let fmt: { channels: number; sampleRate: number; bits: number } | undefined;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4);
    const size = b.readUInt32LE(off + 4);
    if (id === 'fmt ') fmt = { channels: b.readUInt16LE(off + 10), sampleRate: b.readUInt32LE(off + 12), bits: b.readUInt16LE(off + 22) };
    if (id === 'data') {
      if (!fmt) throw new Error('data before fmt');
      const frames = size / (fmt.channels * (fmt.bits / 8));
      return { sampleRate: fmt.sampleRate, channels: fmt.channels, bitsPerSample: fmt.bits, dataBytes: size, durationMs: (frames / fmt.sampleRate) * 1000 };
    }
    off += 8 + size + (size & 1);
  }
  throw new Error('no data chunk');
}

/** Opens the audio socket and sends the spec header; resolves once open. */
export async function openAudio(
  sim: VoxtaSim,
  sessionId: string,
  opts: { headers?: Record<string, string>; spec?: object; query?: string } = {},
): Promise<WebSocket> {
  const url = `${sim.url.replace(/^http/, 'ws')}/ws/audio/input/stream?sessionId=${sessionId}${opts.query ?? ''}`;
  const ws = new WebSocket(url, opts.headers ? { headers: opts.headers } : undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(JSON.stringify(opts.spec ?? { contentType: 'audio/wav', sampleRate: 16000, channels: 1, bitsPerSample: 16, bufferMilliseconds: 30 }));
  return ws;
}

/** Resolves with the close code and reason of a socket. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** One 30 ms frame (960 bytes) of a 440 Hz tone at `amplitude`, or of silence. */
export function frame(amplitude: number, index = 0): Buffer {
  const b = Buffer.alloc(960);
  for (let i = 0; i < 480; i++) {
    b.writeInt16LE(Math.round(amplitude * Math.sin((2 * Math.PI * 440 * (index * 480 + i)) / 16000)), i * 2);
  }
  return b;
}

/**
 * Sends `leadFrames` zero frames, `voicedFrames` loud frames, then `silentFrames` zero frames, as
 * fast as the socket takes them. The lead silence (default 5 frames, 150 ms) is what a streaming
 * client sends before anyone speaks; without it the recogniser hears the utterance begin
 * mid-word (cut at the start, see recognizer.ts).
 */
export function sendUtterance(ws: WebSocket, voicedFrames: number, silentFrames: number, leadFrames = 5): void {
  for (let i = 0; i < leadFrames; i++) ws.send(frame(0));
  for (let i = 0; i < voicedFrames; i++) ws.send(frame(8000, i));
  for (let i = 0; i < silentFrames; i++) ws.send(frame(0));
}

export function authHeader(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}

/** The sessionId and chatId of a chatStarted payload (checked, not cast). */
export function idsOf(m: Msg): { sessionId: string; chatId: string } {
  const { sessionId, chatId } = m;
  if (typeof sessionId !== 'string' || typeof chatId !== 'string') throw new Error(`no ids in ${JSON.stringify(m)}`);
  return { sessionId, chatId };
}
