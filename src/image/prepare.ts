/**
 * Bringing an untrusted picture to what Voxta and vision models accept: a JPEG or PNG of bounded
 * size and dimensions. In memory only (buffers in, buffers out; never a file).
 *
 * Why `sharp` (libvips): it decodes all four formats members post (including WebP and a GIF's first
 * frame), resizes with good filters and encodes with mozjpeg, from prebuilt binaries that npm
 * installs from the registry alone on Linux x64 and arm64 (glibc ≥ 2.28; the image's bookworm has
 * 2.36) with no install script (docs/voxta-vision.md and src/image/README.md have the evidence).
 * It is loaded lazily: a machine where the native part cannot load still runs the bot, and only
 * image preparation reports `unavailable`.
 *
 * Order of operations, each bounded:
 * 1. sniff the real type and read the header dimensions (sniff.ts) → refuse non-images and images
 *    with more than `maxInputPixels` pixels before anything is decoded;
 * 2. pass the bytes through untouched when they already fit (accepted type, ≤ `maxDimension`,
 *    ≤ `maxBytes`) and decode completely: no generation loss for the common case of a phone JPEG or
 *    a screenshot PNG;
 * 3. otherwise decode the first frame only, apply EXIF orientation, fit inside `maxDimension`, and
 *    encode PNG (sources with transparency, GIFs) or JPEG, lowering quality then size until the
 *    result fits; at most {@link MAX_ATTEMPTS} encodes.
 */
import type { Sharp, SharpOptions } from 'sharp';
import { ImageError, readImageInfo, type ImageInfo, type ImageType } from './sniff.js';

export type OutputImageType = 'image/jpeg' | 'image/png';

export interface PrepareImageOptions {
  /** Largest encoded result in bytes (default 4 MiB). */
  maxBytes?: number;
  /** Longest side of the result in pixels (default 1536). Smaller images are never enlarged. */
  maxDimension?: number;
  /** Refuse sources with more pixels than this, before decoding (default 40 megapixels). */
  maxInputPixels?: number;
  /** Types that may pass through unchanged (default JPEG and PNG). GIF is always re-encoded. */
  passThrough?: readonly ImageType[];
  /** Starting JPEG quality (default 85, as the official client's `toJPEG(85)`). */
  jpegQuality?: number;
}

export interface PreparedImage {
  bytes: Buffer;
  type: OutputImageType;
  width: number;
  height: number;
  /** What came in. */
  source: ImageInfo;
  /** False when the input bytes are returned as they were. */
  reencoded: boolean;
}

export const PREPARE_DEFAULTS = {
  maxBytes: 4 * 1024 * 1024,
  maxDimension: 1536,
  maxInputPixels: 40_000_000,
  passThrough: ['image/jpeg', 'image/png'] as readonly ImageType[],
  jpegQuality: 85,
} as const;

/** Encodes tried before giving up (quality steps, then size steps). */
const MAX_ATTEMPTS = 8;
const MIN_QUALITY = 55;
const MIN_DIMENSION = 64;

type SharpFactory = (input: Buffer, options: SharpOptions) => Sharp;
let sharpLoader: Promise<SharpFactory> | undefined;

/** The image library, loaded on first use (see the header for why lazily). */
async function loadSharp(): Promise<SharpFactory> {
  sharpLoader ??= import('sharp').then((m) => {
    const lib = m.default;
    // libvips keeps recently used decoded images in a cache (up to 50 MB by default). Each picture
    // here is processed once, so the cache only costs memory in a long-running bot.
    lib.cache(false);
    return lib as unknown as SharpFactory;
  });
  try {
    return await sharpLoader;
  } catch (err) {
    sharpLoader = undefined;
    throw new ImageError('unavailable', 'The image library (sharp) could not be loaded on this machine', { cause: err });
  }
}

/**
 * A JPEG or PNG within the limits, from any PNG, JPEG, WebP or GIF. Throws {@link ImageError}:
 * `not-an-image`, `truncated`, `corrupt`, `too-many-pixels`, `too-large`, `unavailable`.
 */
export async function prepareImage(input: Uint8Array, opts: PrepareImageOptions = {}): Promise<PreparedImage> {
  const maxBytes = opts.maxBytes ?? PREPARE_DEFAULTS.maxBytes;
  const maxDimension = Math.max(MIN_DIMENSION, Math.floor(opts.maxDimension ?? PREPARE_DEFAULTS.maxDimension));
  const maxInputPixels = opts.maxInputPixels ?? PREPARE_DEFAULTS.maxInputPixels;
  const passThrough = opts.passThrough ?? PREPARE_DEFAULTS.passThrough;
  const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);

  const source = readImageInfo(bytes);
  if (source.width * source.height > maxInputPixels) {
    throw new ImageError('too-many-pixels', `The image is ${source.width}×${source.height}: more than ${maxInputPixels} pixels`);
  }
  const sharp = await loadSharp();
  const decodeOptions: SharpOptions = {
    // First frame only (animated GIF/WebP); the pixel limit again, enforced by the decoder itself.
    pages: 1,
    limitInputPixels: maxInputPixels,
    // A cut-off file is refused rather than half-decoded into a grey picture; harmless warnings
    // (extra bytes after the end, odd metadata) are tolerated as every image viewer does.
    failOn: 'truncated',
  };

  let hasAlpha: boolean;
  try {
    const meta = await sharp(bytes, decodeOptions).metadata();
    hasAlpha = meta.hasAlpha === true;
  } catch (err) {
    throw decodeError(err);
  }

  const fits = bytes.length <= maxBytes && Math.max(source.width, source.height) <= maxDimension;
  if (fits && source.type !== 'image/gif' && passThrough.includes(source.type)) {
    // The header alone says nothing of the rest: a cut-off download has a perfect header. Decode it
    // all once (to a thumbnail, so memory stays small; JPEG even decodes at reduced scale) to be sure
    // Voxta receives a whole picture.
    try {
      await sharp(bytes, decodeOptions).resize({ width: 32, height: 32, fit: 'inside' }).raw().toBuffer();
    } catch (err) {
      throw decodeError(err);
    }
    return { bytes, type: source.type as OutputImageType, width: source.width, height: source.height, source, reencoded: false };
  }

  // PNG keeps transparency and GIF's flat colours sharp; photos become JPEG.
  let png = hasAlpha || source.type === 'image/gif' || source.type === 'image/png';
  let quality = Math.min(100, Math.max(MIN_QUALITY, opts.jpegQuality ?? PREPARE_DEFAULTS.jpegQuality));
  let dimension = Math.min(maxDimension, Math.max(source.width, source.height));
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    let pipeline = sharp(bytes, decodeOptions)
      .rotate() // EXIF orientation, so the model sees the picture the right way up
      .resize({ width: dimension, height: dimension, fit: 'inside', withoutEnlargement: true });
    pipeline = png ? pipeline.png({ compressionLevel: 9 }) : pipeline.flatten({ background: '#ffffff' }).jpeg({ quality, mozjpeg: true });
    let out: { data: Buffer; info: { width: number; height: number } };
    try {
      out = await pipeline.toBuffer({ resolveWithObject: true });
    } catch (err) {
      throw decodeError(err);
    }
    if (out.data.length <= maxBytes) {
      return { bytes: out.data, type: png ? 'image/png' : 'image/jpeg', width: out.info.width, height: out.info.height, source, reencoded: true };
    }
    // Too big: a PNG becomes a JPEG first (a photo saved as PNG), then quality drops, then size.
    if (png) png = false;
    else if (quality > MIN_QUALITY) quality = Math.max(MIN_QUALITY, quality - 15);
    else if (dimension > MIN_DIMENSION) dimension = Math.max(MIN_DIMENSION, Math.round(dimension * 0.7));
    else break;
  }
  throw new ImageError('too-large', `The image cannot be brought under ${maxBytes} bytes`);
}

function decodeError(err: unknown): ImageError {
  if (err instanceof ImageError) return err;
  const text = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(text)) return new ImageError('too-many-pixels', 'The image has more pixels than allowed', { cause: err });
  return new ImageError('corrupt', `The image could not be decoded (${text.split('\n')[0]?.slice(0, 120) ?? 'unknown error'})`, { cause: err });
}
