/**
 * Progressive TTS download: start encoding a WAV clip as soon as its header and first samples
 * are in, instead of after the whole file.
 *
 * Voxta's TTS URLs are deferred jobs (protocol §4b): the GET starts the synthesis. A server that
 * writes the WAV body while it synthesises lets the first sentence start playing after the first
 * few kilobytes rather than after the whole clip. This matters only when the body arrives slowly;
 * against a server that answers with the whole file at once it costs nothing extra.
 *
 * The true clip duration is needed up front (speechPlaybackStart is sent when the clip starts
 * playing, and Voxta cuts an interrupted reply's text by elapsed ÷ duration). It is known from
 * the `data` chunk's size; a streamed WAV without a size (0 or 0xFFFFFFFF) is therefore read to
 * the end first, like any other body. Samples are converted by the project's `parseWav` (every
 * format it knows), one network chunk at a time: header bytes + whole sample frames.
 */
import { parseWav, WavError } from '../audio/wav.js';
import { OPUS_FRAME_MS, SpeechEncoder } from '../audio/speech-encoder.js';
import type { VoxtaEndpoint } from '../voxta/endpoint.js';
import { BODY_CAPS } from '../voxta/http-body.js';
import type { PacketSource } from './speech-queue.js';

/** A clip whose samples may still be arriving. */
export interface ProgressiveClip {
  sampleRate: number;
  channels: number;
  /** True duration from the WAV header (or from all samples when the size was unknown). */
  durationSec: number;
  /** Samples so far (interleaved 16-bit). */
  readonly chunks: Int16Array[];
  /** All samples are in (or the download failed part-way: then `error` is set). */
  complete: boolean;
  error?: Error;
  /** Calls `cb` once, the next time samples arrive or the clip completes. */
  onProgress(cb: () => void): void;
}

export class TtsHttpError extends Error {
  override readonly name = 'TtsHttpError';
  constructor(readonly status: number) {
    super(`TTS request answered HTTP ${status}`);
  }
}

export interface OpenSpeechOptions {
  /** Per attempt, until the header is in (default 20 s: synthesis happens during the request). */
  timeoutMs?: number;
  /** Samples wanted before the clip is handed over (default 60 ms), unless it completes first. */
  prebufferMs?: number;
  /** The body failed after the clip was handed over (it ends early). */
  onLateError?(err: Error): void;
}

const RIFF_HEADER = 12;

/** GETs a TTS clip and resolves once it can start playing (see module comment). 502 is retried once. */
export async function openSpeech(endpoint: VoxtaEndpoint, url: string, signal: AbortSignal, opts: OpenSpeechOptions = {}): Promise<ProgressiveClip> {
  try {
    return await openOnce(endpoint, url, signal, opts);
  } catch (err) {
    if (!(err instanceof TtsHttpError) || err.status !== 502 || signal.aborted) throw err;
    await new Promise((r) => setTimeout(r, 250));
    return await openOnce(endpoint, url, signal, opts);
  }
}

/** Largest TTS clip read (64 MiB: over five minutes of 48 kHz stereo); the same cap as `fetchSpeech`. */
const MAX_CLIP_BYTES = BODY_CAPS.audio;
/** A WAV header (with its metadata chunks) is a few hundred bytes; past this it is not one. */
const MAX_HEADER_BYTES = 64 * 1024;

async function openOnce(endpoint: VoxtaEndpoint, url: string, signal: AbortSignal, opts: OpenSpeechOptions): Promise<ProgressiveClip> {
  const target = endpoint.resolve(url);
  const headers: Record<string, string> = { Accept: 'audio/x-wav, audio/wav;q=0.9, */*;q=0.1' };
  if (endpoint.isSameOrigin(target)) Object.assign(headers, endpoint.authHeaders());
  // The deadline covers the synthesis (until the header is in), not a long body streamed after it.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`TTS header not received within ${opts.timeoutMs ?? 20_000} ms`)), opts.timeoutMs ?? 20_000);
  let res: Response;
  try {
    res = await fetch(target, { headers, signal: AbortSignal.any([signal, deadline.signal]), redirect: 'follow' });
  } catch (err) {
    clearTimeout(timer);
    throw err;
  }
  if (!res.ok || !res.body) {
    clearTimeout(timer);
    res.body?.cancel().catch(() => undefined);
    throw new TtsHttpError(res.status);
  }
  const reader = res.body.getReader();
  const progress = new Set<() => void>();
  let head: Uint8Array = new Uint8Array(0);
  let header: { bytes: Uint8Array; frameBytes: number; sampleRate: number; channels: number; dataSize: number | undefined } | undefined;
  let pending: Uint8Array = new Uint8Array(0);
  const clip: ProgressiveClip = {
    sampleRate: 0,
    channels: 0,
    durationSec: 0,
    chunks: [],
    complete: false,
    onProgress: (cb) => progress.add(cb),
  };
  const notify = (): void => {
    const cbs = [...progress];
    progress.clear();
    for (const cb of cbs) cb();
  };
  const prebufferMs = opts.prebufferMs ?? 60;
  let samplesIn = 0;

  /** Converts whole frames of `pending` to samples with the header in front (parseWav does every format). */
  const convert = (final: boolean): void => {
    if (!header) return;
    const whole = pending.length - (pending.length % header.frameBytes);
    if (whole === 0 && !final) return;
    const body = pending.subarray(0, whole);
    pending = pending.slice(whole);
    if (body.length === 0) return;
    const joined = new Uint8Array(header.bytes.length + body.length);
    joined.set(header.bytes);
    joined.set(body, header.bytes.length);
    const samples = parseWav(joined).samples;
    clip.chunks.push(samples);
    samplesIn += samples.length;
  };

  return await new Promise<ProgressiveClip>((resolve, reject) => {
    let settled = false;
    const handOver = (): void => {
      if (settled) return;
      settled = true;
      resolve(clip);
    };
    const fail = (err: Error): void => {
      if (!settled) {
        settled = true;
        reject(err);
        return;
      }
      clip.error = err;
      clip.complete = true;
      opts.onLateError?.(err);
      notify();
    };
    let received = 0;
    const pump = async (): Promise<void> => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        // Bounded like every body read from the network: a clip, not an endless stream.
        received += value.byteLength;
        if (received > MAX_CLIP_BYTES) {
          await reader.cancel().catch(() => undefined);
          throw new WavError(`TTS clip larger than ${MAX_CLIP_BYTES / (1024 * 1024)} MiB; the rest is not played`);
        }
        if (!header) {
          head = concat(head, value);
          if (head.length > MAX_HEADER_BYTES) {
            await reader.cancel().catch(() => undefined);
            throw new WavError(`no WAV sample data within the first ${MAX_HEADER_BYTES / 1024} KiB`);
          }
          const parsed = parseHeader(head);
          if (!parsed) continue;
          header = parsed;
          clearTimeout(timer);
          clip.sampleRate = parsed.sampleRate;
          clip.channels = parsed.channels;
          pending = head.slice(parsed.bytes.length);
          if (parsed.dataSize !== undefined) clip.durationSec = parsed.dataSize / parsed.frameBytes / parsed.sampleRate;
        } else {
          pending = concat(pending, value);
        }
        // Without a known size the duration is only known at the end: keep reading silently.
        if (header.dataSize === undefined) continue;
        convert(false);
        notify();
        if (samplesIn / header.channels >= (header.sampleRate * prebufferMs) / 1000) handOver();
      }
      if (!header) {
        // Too short or not a WAV: let parseWav say why (it throws WavError with a reason).
        parseWav(head);
        throw new WavError('WAV header could not be read');
      }
      convert(true);
      if (header.dataSize === undefined || clip.durationSec === 0) clip.durationSec = samplesIn / header.channels / header.sampleRate;
      clip.complete = true;
      notify();
      handOver();
    };
    pump()
      .catch((err: unknown) => fail(err instanceof Error ? err : new Error(String(err))))
      .finally(() => clearTimeout(timer));
  });
}

/** The RIFF header up to the start of the sample data, once all of it is in. */
function parseHeader(bytes: Uint8Array): { bytes: Uint8Array; frameBytes: number; sampleRate: number; channels: number; dataSize: number | undefined } | undefined {
  if (bytes.length < RIFF_HEADER + 8) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = String.fromCharCode(bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!);
  const wave = String.fromCharCode(bytes[8]!, bytes[9]!, bytes[10]!, bytes[11]!);
  if ((magic !== 'RIFF' && magic !== 'RF64') || wave !== 'WAVE') throw new WavError(`not a RIFF/WAVE file (starts with "${magic.replace(/[^\x20-\x7e]/g, '?')}")`);
  let at = RIFF_HEADER;
  while (at + 8 <= bytes.length) {
    const id = String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);
    const size = view.getUint32(at + 4, true);
    if (id === 'data') {
      const headerBytes = bytes.slice(0, at + 8);
      // parseWav on the header alone (no samples yet) gives the format, or says why it is unusable.
      const fmt = parseWav(headerBytes);
      const frameBytes = Math.max(1, (fmt.bitsPerSample / 8) * fmt.channels);
      const known = size !== 0 && size !== 0xffffffff && magic === 'RIFF';
      return { bytes: headerBytes, frameBytes, sampleRate: fmt.sampleRate, channels: fmt.channels, dataSize: known ? size - (size % frameBytes) : undefined };
    }
    if (at + 8 + size > bytes.length) return undefined; // this chunk is not complete yet
    at += 8 + size + (size & 1);
  }
  return undefined;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Opus packets for a clip that may still be arriving: `undefined` means "not yet" (the player
 * sends a silence frame meanwhile), `wait()` calls back when more samples are in.
 */
export function progressivePackets(clip: ProgressiveClip): PacketSource {
  let encoder: SpeechEncoder | undefined;
  let chunkIndex = 0;
  let offset = 0;
  let flushed = false;
  let closed = false;
  const ready: Buffer[] = [];
  const ch = clip.channels === 2 ? 2 : 1;
  const step = Math.max(1, Math.round((clip.sampleRate * OPUS_FRAME_MS) / 1000)) * ch;
  return {
    next(): Buffer | null | undefined {
      if (closed) return null;
      while (ready.length === 0) {
        const chunk = clip.chunks[chunkIndex];
        if (chunk && offset < chunk.length) {
          encoder ??= new SpeechEncoder({ inputRate: clip.sampleRate, inputChannels: ch });
          const end = Math.min(chunk.length, offset + step);
          ready.push(...encoder.push(chunk.subarray(offset, end)));
          offset = end;
          if (offset >= chunk.length) {
            // Done with this network chunk: let it go.
            clip.chunks[chunkIndex] = EMPTY;
            chunkIndex++;
            offset = 0;
          }
          continue;
        }
        if (!clip.complete) return undefined;
        if (flushed || !encoder) return null;
        flushed = true;
        ready.push(...encoder.end());
      }
      return ready.shift() ?? null;
    },
    wait(cb: () => void): void {
      clip.onProgress(cb);
    },
    close(): void {
      if (closed) return;
      closed = true;
      ready.length = 0;
      encoder?.destroy();
    },
  };
}

const EMPTY = new Int16Array(0);
