/**
 * TTS audio URLs (protocol §4b): what a `replyChunk.audioUrl` means and how to download it.
 *
 * - `""` (or anything that is neither a path nor http): no audio; acknowledge with duration 0.
 * - `silence:<ms>` (newer servers with TTS off for a chunk): no audio either; acknowledged at once
 *   with duration 0 and nothing played, as the official Minecraft companion does (it acks a chunk
 *   it cannot fetch with 0). Playing `<ms>` of silence only kept the guild waiting.
 * - `/api/tts/gens/<id>` or `http(s)://…`: a deferred job, synthesised when fetched: fetch NOW.
 */
import { logger } from '../log.js';
import type { VoxtaEndpoint } from './endpoint.js';
import { VoxtaHttpError } from './errors.js';
import { BODY_CAPS } from './http-body.js';
import { VoxtaRest, type FetchedBytes } from './rest.js';

export type AudioUrlKind = { kind: 'none' } | { kind: 'silence'; ms: number } | { kind: 'fetch'; url: string };

export function classifyAudioUrl(url: string | null | undefined): AudioUrlKind {
  const u = (url ?? '').trim();
  if (u === '') return { kind: 'none' };
  const silence = /^silence:(\d+(?:\.\d+)?)$/i.exec(u);
  if (silence) return { kind: 'silence', ms: Number(silence[1]) };
  if ((u.startsWith('/') && !u.startsWith('//')) || /^https?:\/\//i.test(u)) return { kind: 'fetch', url: u };
  logger().debug({ scheme: u.split(':')[0]?.slice(0, 16) }, 'voxta: audio URL is neither a path nor http; treated as no audio');
  return { kind: 'none' };
}

/** Seconds of playback to report for a URL that is not fetched: 0 (`silence:<ms>` included, see above). */
export function unfetchedDurationSec(_kind: AudioUrlKind): number {
  return 0;
}

export interface FetchSpeechOptions {
  signal?: AbortSignal;
  /** Per attempt (default 20 s: synthesis happens during the request). */
  timeoutMs?: number;
  /** Pause before the one retry after a 502 (default 250 ms). */
  retryDelayMs?: number;
}

/**
 * Downloads one TTS clip with auth. A 502 (synthesis hiccup behind a proxy) is retried once; 404
 * (expired or unknown job) and everything else surfaces as the typed errors of {@link VoxtaRest}.
 */
export async function fetchSpeech(endpointOrRest: VoxtaEndpoint | VoxtaRest, url: string, opts: FetchSpeechOptions = {}): Promise<FetchedBytes> {
  const rest = endpointOrRest instanceof VoxtaRest ? endpointOrRest : new VoxtaRest(endpointOrRest);
  const fetchOpts = { signal: opts.signal, timeoutMs: opts.timeoutMs ?? 20_000, accept: 'audio/x-wav, audio/wav;q=0.9, */*;q=0.1', maxBytes: BODY_CAPS.audio };
  try {
    return await rest.fetchBytes(url, fetchOpts);
  } catch (err) {
    if (!(err instanceof VoxtaHttpError) || err.status !== 502) throw err;
    logger().debug({ path: err.path }, 'voxta: TTS answered 502, retrying once');
    await sleep(opts.retryDelayMs ?? 250, opts.signal);
    return await rest.fetchBytes(url, fetchOpts);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
