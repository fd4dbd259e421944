/**
 * Reading an HTTP response body with a size cap enforced while it streams in: a declared
 * `Content-Length` over the cap is refused before reading, and a body that grows past the cap
 * (no length, or a lying one) is cut off and refused as soon as it does. Nothing from the network
 * is buffered whole before its size is known to be acceptable.
 */
import { VoxtaServerError } from './errors.js';

/** Default caps (bytes) for what the bot reads from Voxta. */
export const BODY_CAPS = {
  /** JSON lists (characters, chats, scenarios). */
  json: 8 * 1024 * 1024,
  /** Images (avatars, thumbnails). */
  image: 8 * 1024 * 1024,
  /** One TTS clip (a sentence; 64 MiB is over 5 minutes of 48 kHz stereo WAV). */
  audio: 64 * 1024 * 1024,
} as const;

export class BodyTooLargeError extends VoxtaServerError {
  constructor(
    readonly what: string,
    readonly limit: number,
  ) {
    super(`${what} is larger than the ${formatBytes(limit)} the bot accepts`);
    this.name = 'BodyTooLargeError';
  }
}

/** Reads `res`'s body, at most `limit` bytes; throws {@link BodyTooLargeError} beyond. */
export async function readBounded(res: Response, limit: number, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw new BodyTooLargeError(what, limit);
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => undefined);
        throw new BodyTooLargeError(what, limit);
      }
      parts.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${Math.round(n / (1024 * 1024))} MiB` : `${Math.round(n / 1024)} KiB`;
}
