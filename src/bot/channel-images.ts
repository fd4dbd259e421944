/**
 * The pictures members post in a guild's bound channel, ready for Voxta's vision.
 *
 * Voxta sees pictures the way its official client shows them (docs/voxta-vision.md): it asks for
 * an image (`visionCaptureRequest`, after the bot sends `/capture Screen`, or on its own) and the
 * client uploads one. Here the answer is the channel's latest picture: each one is downloaded as
 * soon as it is posted (bounded: size cap while streaming, one deadline, type sniffed from the
 * bytes, only from Discord's CDN, never written to disk) and prepared for Voxta (downscaled and
 * re-encoded to JPEG/PNG when needed). A capture request that comes while the latest picture is
 * still downloading waits for it; one with no recent picture is cancelled at once by the responder.
 */
import { fetchImage, FetchImageError, prepareImage } from '../image/index.js';
import { errorInfo, type Logger } from '../log.js';
import type { VisionImage } from '../voxta/vision.js';

/** A picture attached to (or embedded in) a Discord message, before it is downloaded. */
export interface ImageRef {
  url: string;
  name?: string;
  /** What Discord says it is (not trusted: the bytes decide). */
  contentType?: string;
  /** What Discord says its size is (a larger one is not even fetched). */
  size?: number;
}

/** A posted picture stays "the latest" this long (a capture after that gets nothing). */
export const IMAGE_FRESH_MS = 10 * 60_000;
/** Largest picture downloaded from Discord. */
export const IMAGE_DOWNLOAD_MAX_BYTES = 16 * 1024 * 1024;

interface Entry {
  /** The prepared picture, once ready (undefined while downloading, or when it failed). */
  image: Promise<VisionImage | undefined>;
  at: number;
}

export interface ChannelImagesDeps {
  log: () => Logger;
  /** Which URLs may be fetched (Discord's CDN hosts). */
  allowUrl: (url: URL) => boolean;
  /** Download deadline (default 15 s). */
  timeoutMs?: number;
  now?: () => number;
}

export class ChannelImages {
  private latestEntry: Entry | undefined;
  private readonly abort = new AbortController();

  constructor(private readonly deps: ChannelImagesDeps) {}

  /** The message's pictures: the last usable one becomes the channel's latest (its download starts now). */
  add(refs: readonly ImageRef[], author: string): boolean {
    const ref = [...refs].reverse().find((r) => r.size === undefined || r.size <= IMAGE_DOWNLOAD_MAX_BYTES);
    if (!ref) return false;
    const image = this.download(ref, author);
    this.latestEntry = { image, at: this.now() };
    return true;
  }

  /** The latest picture, if it is recent (waits while it is still downloading; `signal` bounds the wait). */
  async latest(signal: AbortSignal): Promise<VisionImage | undefined> {
    const entry = this.latestEntry;
    if (!entry || this.now() - entry.at > IMAGE_FRESH_MS) return undefined;
    return await new Promise<VisionImage | undefined>((resolve) => {
      const onAbort = (): void => resolve(undefined);
      signal.addEventListener('abort', onAbort, { once: true });
      entry.image.then(
        (img) => {
          signal.removeEventListener('abort', onAbort);
          resolve(img);
        },
        () => resolve(undefined),
      );
    });
  }

  /**
   * Forgets the pictures (the chat stopped): a later capture gets nothing from before. A download
   * still in flight finishes (bounded by its deadline) and is dropped; `close` aborts them.
   */
  clear(): void {
    this.latestEntry = undefined;
  }

  /** Stops everything for good. */
  close(): void {
    this.clear();
    this.abort.abort(new Error('the session is gone'));
  }

  private async download(ref: ImageRef, author: string): Promise<VisionImage | undefined> {
    try {
      const fetched = await fetchImage(ref.url, {
        maxBytes: IMAGE_DOWNLOAD_MAX_BYTES,
        timeoutMs: this.deps.timeoutMs ?? 15_000,
        signal: this.abort.signal,
        allowUrl: this.deps.allowUrl,
      });
      const prepared = await prepareImage(fetched.bytes);
      this.deps.log().debug({ from: fetched.info, to: { type: prepared.type, width: prepared.width, height: prepared.height, bytes: prepared.bytes.length } }, 'guild session: picture ready for Voxta');
      const label = `posted by ${author}`;
      return { bytes: prepared.bytes, contentType: prepared.type, fileName: ref.name ? baseName(ref.name, prepared.type) : undefined, label };
    } catch (err) {
      const reason = err instanceof FetchImageError ? err.reason : undefined;
      // Not a picture after all (a file named .png), too large, or Discord's CDN failing: the
      // character just does not see it; nobody waits on it.
      this.deps.log().info({ reason, err: errorInfo(err) }, 'guild session: a posted picture could not be used');
      return undefined;
    }
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }
}

/** The file name with the extension of what is really sent. */
function baseName(name: string, type: 'image/jpeg' | 'image/png'): string {
  const stem = name.replace(/\.[^.]*$/, '').slice(0, 60) || 'image';
  return `${stem}.${type === 'image/png' ? 'png' : 'jpg'}`;
}

/**
 * The origins pictures may come from: Discord's CDN and media proxy over https, and the configured
 * CDN (`DISCORD_CDN_URL`, which the offline simulator points at itself) with its own scheme.
 */
export function discordCdnAllow(cdnUrl: string): (url: URL) => boolean {
  const origins = new Set(['https://cdn.discordapp.com', 'https://media.discordapp.net']);
  try {
    origins.add(new URL(cdnUrl).origin);
  } catch {
    // a bad CDN URL is refused by the config loader already
  }
  return (url) => origins.has(url.origin);
}
