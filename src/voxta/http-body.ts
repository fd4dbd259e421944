/**
 * The size caps of every body the bot reads from Voxta, and the Voxta error for one over its cap
 * (the capped read itself is src/net/read-capped.ts).
 */
import { readCapped } from '../net/read-capped.js';
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
  return readCapped(res, limit, () => new BodyTooLargeError(what, limit));
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${Math.round(n / (1024 * 1024))} MiB` : `${Math.round(n / 1024)} KiB`;
}
