/**
 * Helpers for the Voxta client tests: a simulator with short delays, a session with short
 * back-offs, event waiting with a timeout, and a small stand-in for the voice pipeline that
 * downloads each chunk's audio and reports playback through the session's PlaybackContract.
 */
import { once } from 'node:events';
import { pino, type Logger } from 'pino';
import { startVoxtaSim, type VoxtaSim, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import { createLogger } from '../../src/log.js';
import { VoxtaChatSession, type VoxtaChatSessionOptions } from '../../src/voxta/chat-session.js';
import { VoxtaEndpoint } from '../../src/voxta/endpoint.js';
import { VoxtaError } from '../../src/voxta/errors.js';
import type { ReplyChunkMessage } from '../../src/voxta/messages.js';
import { classifyAudioUrl, fetchSpeech, unfetchedDurationSec } from '../../src/voxta/tts.js';

// Quiet unless asked for (LOG_LEVEL=debug npx vitest run test/voxta).
createLogger({ level: process.env.LOG_LEVEL ?? 'silent', pretty: false });

export function simOptions(extra: VoxtaSimOptions = {}): VoxtaSimOptions {
  return { chunkDelayMs: 5, pingIntervalMs: 1000, capacityDelayMs: 50, clientTimeoutMs: 5000, ...extra };
}

export async function newSim(extra: VoxtaSimOptions = {}): Promise<VoxtaSim> {
  return startVoxtaSim(simOptions(extra));
}

export function newSession(sim: VoxtaSim, extra: Partial<VoxtaChatSessionOptions> & { apiKey?: string } = {}): VoxtaChatSession {
  const { apiKey, ...rest } = extra;
  return new VoxtaChatSession({
    endpoint: new VoxtaEndpoint({ url: sim.url, apiKey }),
    reconnect: { initialDelayMs: 30, maxDelayMs: 200, giveUpAfterMs: 8000, jitter: 0 },
    timeouts: { connectMs: 3000, welcomeMs: 3000, chatStartMs: 4000, stopMs: 3000, requestMs: 3000 },
    serverTimeoutMs: 5000,
    keepAliveMs: 1000,
    ...rest,
  });
}

/** Resolves with the first arguments of `event`, or rejects after `ms`. */
export async function waitEvent<T extends unknown[]>(emitter: NodeJS.EventEmitter, event: string, ms = 5000): Promise<T> {
  return (await once(emitter, event, { signal: AbortSignal.timeout(ms) })) as T;
}

/** Resolves when `pred` is true for an emitted event's first argument. */
export function waitFor<T>(emitter: NodeJS.EventEmitter, event: string, pred: (arg: T) => boolean, ms = 5000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out waiting for ${event}`));
    }, ms);
    function on(arg: T): void {
      if (!pred(arg)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(arg);
    }
    emitter.on(event, on);
  });
}

/** Duration in seconds of a PCM WAV, read from its header (independent of src/audio). */
export function wavDurationSec(bytes: Uint8Array): number {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') throw new Error('not a WAV');
  let off = 12;
  let byteRate = 0;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4);
    const size = b.readUInt32LE(off + 4);
    if (id === 'fmt ') byteRate = b.readUInt32LE(off + 16);
    if (id === 'data') return Math.min(size, b.length - off - 8) / byteRate;
    off += 8 + size + (size % 2);
  }
  throw new Error('no data chunk');
}

export interface PipelineRecord {
  fetched: Array<{ messageId: string; durationSec: number }>;
  errors: Array<{ messageId: string; error: unknown }>;
}

/**
 * Stand-in for the voice pipeline (manual acknowledgement): on every chunk it downloads the
 * audio (in order), reports `chunkStarted` with the WAV's real duration (0 for no audio or a
 * failed download), and reports `drained` once the reply has ended and every chunk is done.
 * "Playing" takes no time here; `hold` keeps chosen replies "playing" (never drained).
 */
export function attachPipeline(session: VoxtaChatSession, opts: { hold?: (messageId: string) => boolean } = {}): PipelineRecord {
  session.playback.setAutoAcknowledge(false);
  const rec: PipelineRecord = { fetched: [], errors: [] };
  const work = new Map<string, Promise<void>>();
  session.on('replyChunk', (c: ReplyChunkMessage) => {
    const prev = work.get(c.messageId) ?? Promise.resolve();
    const next = prev.then(async () => {
      const kind = classifyAudioUrl(c.audioUrl);
      let duration = unfetchedDurationSec(kind);
      if (kind.kind === 'fetch') {
        try {
          const { bytes } = await fetchSpeech(session.endpoint, kind.url, { retryDelayMs: 20 });
          duration = wavDurationSec(bytes);
          rec.fetched.push({ messageId: c.messageId, durationSec: duration });
        } catch (error) {
          if (!(error instanceof VoxtaError)) throw error;
          rec.errors.push({ messageId: c.messageId, error });
          duration = 0;
        }
      }
      session.playback.chunkStarted(c.messageId, c, duration);
    });
    work.set(c.messageId, next);
  });
  session.on('replyEnd', (e) => {
    const pending = work.get(e.messageId) ?? Promise.resolve();
    void pending.then(() => {
      if (!opts.hold?.(e.messageId)) session.playback.drained(e.messageId);
    });
  });
  return rec;
}

/** A pino logger that keeps every line in memory (to check that no secret is logged). */
export function memoryLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino({ level: 'trace' }, { write: (l: string) => void lines.push(l) });
  return { log, lines };
}
