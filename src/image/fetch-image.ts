/**
 * Downloads a picture from an http(s) URL without trusting the other side about anything:
 *
 * - size: a `Content-Length` above the cap is refused before the body is read, and the cap is
 *   enforced again on the bytes as they arrive, so a missing or lying length cannot make us buffer
 *   more than `maxBytes` (the stream is cancelled at the first chunk that would exceed it);
 * - time: one deadline covers connecting, headers and the whole body, so a server that trickles
 *   bytes cannot hold a request open;
 * - type: decided from the bytes (sniff.ts), never from the URL or `Content-Type`;
 * - redirects: followed by hand (at most `maxRedirects`), each hop checked by `allowUrl`, only
 *   http(s); no credentials or cookies are ever sent.
 *
 * Knows nothing of Discord: the caller passes the URL and, if it wants, which hosts are allowed.
 */
import { readCapped as readCappedBody } from '../net/read-capped.js';
import { ImageError, readImageInfo, type ImageInfo } from './sniff.js';

export type FetchImageErrorReason =
  | 'bad-url'
  | 'forbidden-url'
  | 'http-status'
  | 'too-large'
  | 'timeout'
  | 'aborted'
  | 'network'
  | 'not-an-image'
  | 'truncated'
  | 'corrupt';

export class FetchImageError extends Error {
  override name = 'FetchImageError';
  constructor(
    readonly reason: FetchImageErrorReason,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface FetchImageOptions {
  /** Largest body accepted, in bytes (default 8 MiB). */
  maxBytes?: number;
  /** Deadline for the whole download, body included (default 15 s). */
  timeoutMs?: number;
  /** Cancels the download (reason `aborted`). */
  signal?: AbortSignal;
  /** Redirects followed (default 3). */
  maxRedirects?: number;
  /** Checked for the URL and every redirect target; default: any http(s) URL. */
  allowUrl?: (url: URL) => boolean;
}

export interface FetchedImage {
  bytes: Buffer;
  /** Type (from the bytes) and header dimensions. */
  info: ImageInfo;
  /** What the server claimed, for logs only. */
  declaredType: string | undefined;
  /** Redirects followed. */
  redirects: number;
}

export const FETCH_IMAGE_DEFAULTS = { maxBytes: 8 * 1024 * 1024, timeoutMs: 15_000, maxRedirects: 3 } as const;

/** Downloads and sniffs an image; throws {@link FetchImageError}. */
export async function fetchImage(url: string | URL, opts: FetchImageOptions = {}): Promise<FetchedImage> {
  const maxBytes = opts.maxBytes ?? FETCH_IMAGE_DEFAULTS.maxBytes;
  const maxRedirects = opts.maxRedirects ?? FETCH_IMAGE_DEFAULTS.maxRedirects;
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? FETCH_IMAGE_DEFAULTS.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const failure = (err: unknown): FetchImageError => {
    if (err instanceof FetchImageError) return err;
    if (opts.signal?.aborted) return new FetchImageError('aborted', 'The download was cancelled', undefined, { cause: err });
    if (timeout.aborted) return new FetchImageError('timeout', `The download did not finish within ${opts.timeoutMs ?? FETCH_IMAGE_DEFAULTS.timeoutMs} ms`, undefined, { cause: err });
    return new FetchImageError('network', `The download failed (${err instanceof Error ? err.message : String(err)})`, undefined, { cause: err });
  };

  let target = checkedUrl(url, opts.allowUrl);
  let redirects = 0;
  let res: Response;
  try {
    for (;;) {
      res = await fetch(target, { redirect: 'manual', signal, headers: { Accept: 'image/*' }, credentials: 'omit' });
      if (res.status < 300 || res.status >= 400 || res.status === 304) break;
      res.body?.cancel().catch(() => undefined);
      const location = res.headers.get('location');
      if (!location) throw new FetchImageError('http-status', `HTTP ${res.status} without a Location`, res.status);
      if (++redirects > maxRedirects) throw new FetchImageError('http-status', `More than ${maxRedirects} redirects`, res.status);
      target = checkedUrl(new URL(location, target), opts.allowUrl);
    }
  } catch (err) {
    throw failure(err);
  }

  if (!res.ok) {
    res.body?.cancel().catch(() => undefined);
    throw new FetchImageError('http-status', `HTTP ${res.status}`, res.status);
  }
  // A declared Content-Length over the cap is refused by readCapped before reading.
  let bytes: Buffer;
  try {
    bytes = await readCapped(res, maxBytes);
  } catch (err) {
    throw failure(err);
  }

  let info: ImageInfo;
  try {
    info = readImageInfo(bytes);
  } catch (err) {
    if (err instanceof ImageError && (err.reason === 'not-an-image' || err.reason === 'truncated' || err.reason === 'corrupt')) {
      throw new FetchImageError(err.reason, err.message, undefined, { cause: err });
    }
    throw failure(err);
  }
  return { bytes, info, declaredType: res.headers.get('content-type') ?? undefined, redirects };
}

/** The body, refusing (and cancelling the stream) as soon as it would exceed `maxBytes`. */
async function readCapped(res: Response, maxBytes: number): Promise<Buffer> {
  const bytes = await readCappedBody(res, maxBytes, () => new FetchImageError('too-large', `The image is larger than ${maxBytes} bytes`));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkedUrl(url: string | URL, allow: ((u: URL) => boolean) | undefined): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FetchImageError('bad-url', 'Not a valid URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new FetchImageError('bad-url', `Only http(s) URLs are fetched (got ${u.protocol})`);
  if (u.username || u.password) throw new FetchImageError('bad-url', 'URLs with credentials are not fetched');
  if (allow && !allow(u)) throw new FetchImageError('forbidden-url', `Fetching from ${u.host} is not allowed`);
  return u;
}
