/**
 * What an image really is, from its bytes alone (never from a URL, a file name or a Content-Type
 * header, which anyone can set), and how big it claims to be, from its header alone (no decoding).
 *
 * Only the four formats Discord members post and vision models take are recognised: PNG, JPEG,
 * WebP, GIF. Anything else (SVG, TIFF, HEIF, HTML that says image/png…) is "not an image" here, so
 * no other decoder of the image library is ever reached with untrusted bytes.
 *
 * Reading the dimensions from the header first lets a caller refuse a decompression bomb (a tiny
 * file declaring 50 000 × 50 000 pixels) before anything allocates a pixel buffer.
 */

export type ImageType = 'image/png' | 'image/jpeg' | 'image/webp' | 'image/gif';

export const IMAGE_TYPES: readonly ImageType[] = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'];

export interface ImageInfo {
  type: ImageType;
  /** Pixels as stored (before any EXIF rotation). */
  width: number;
  height: number;
}

export type ImageErrorReason =
  /** The bytes are not PNG, JPEG, WebP or GIF. */
  | 'not-an-image'
  /** The header ends before the dimensions. */
  | 'truncated'
  /** The header is inconsistent (no frame header, zero size…) or the decoder failed. */
  | 'corrupt'
  /** More pixels than the caller allows (decompression bomb guard). */
  | 'too-many-pixels'
  /** Cannot be brought under the caller's byte limit. */
  | 'too-large'
  /** The image library could not be loaded on this machine. */
  | 'unavailable';

export class ImageError extends Error {
  override name = 'ImageError';
  constructor(
    readonly reason: ImageErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The format of `bytes` from its magic number, or undefined. */
export function sniffImageType(bytes: Uint8Array): ImageType | undefined {
  const b = bytes;
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) {
    return 'image/png';
  }
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 6 && ascii(b, 0, 4) === 'GIF8' && (b[4] === 0x37 || b[4] === 0x39) && b[5] === 0x61) return 'image/gif';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return 'image/webp';
  return undefined;
}

/**
 * Type and stored dimensions from the header. Throws {@link ImageError} (`not-an-image`,
 * `truncated`, `corrupt`); never decodes pixels.
 */
export function readImageInfo(bytes: Uint8Array): ImageInfo {
  const type = sniffImageType(bytes);
  if (!type) throw new ImageError('not-an-image', 'Not a PNG, JPEG, WebP or GIF image');
  const size = dimensions(type, bytes);
  if (size.width <= 0 || size.height <= 0) throw new ImageError('corrupt', `The ${short(type)} header declares an empty image`);
  return { type, ...size };
}

function dimensions(type: ImageType, b: Uint8Array): { width: number; height: number } {
  switch (type) {
    case 'image/png':
      // Signature (8), then the first chunk must be IHDR: length (4), "IHDR", width, height (BE).
      need(b, 24, type);
      if (ascii(b, 12, 4) !== 'IHDR') throw new ImageError('corrupt', 'PNG without an IHDR chunk first');
      return { width: u32be(b, 16), height: u32be(b, 20) };
    case 'image/gif':
      // "GIF89a", then the logical screen width and height (LE16).
      need(b, 10, type);
      return { width: u16le(b, 6), height: u16le(b, 8) };
    case 'image/webp':
      return webpDimensions(b);
    case 'image/jpeg':
      return jpegDimensions(b);
  }
}

function webpDimensions(b: Uint8Array): { width: number; height: number } {
  need(b, 16, 'image/webp');
  const chunk = ascii(b, 12, 4);
  if (chunk === 'VP8X') {
    // Extended: flags (1), reserved (3), canvas width-1 and height-1 as 24-bit LE.
    need(b, 30, 'image/webp');
    return { width: u24le(b, 24) + 1, height: u24le(b, 27) + 1 };
  }
  if (chunk === 'VP8 ') {
    // Lossy: frame tag (3), start code 9d 01 2a, then 14-bit width and height (LE, 2 scale bits).
    need(b, 30, 'image/webp');
    if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) throw new ImageError('corrupt', 'WebP VP8 frame without its start code');
    return { width: u16le(b, 26) & 0x3fff, height: u16le(b, 28) & 0x3fff };
  }
  if (chunk === 'VP8L') {
    // Lossless: signature 0x2f, then width-1 (14 bits) and height-1 (14 bits), LE bit order.
    need(b, 25, 'image/webp');
    if (b[20] !== 0x2f) throw new ImageError('corrupt', 'WebP VP8L without its signature');
    const bits = (b[21]! | (b[22]! << 8) | (b[23]! << 16) | (b[24]! << 24)) >>> 0;
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  throw new ImageError('corrupt', `WebP with an unknown first chunk "${chunk.replace(/[^\x20-\x7e]/g, '?')}"`);
}

/** JPEG: walk the marker segments to the first start-of-frame (SOFn) and read its size. */
function jpegDimensions(b: Uint8Array): { width: number; height: number } {
  let i = 2;
  for (;;) {
    // Markers are 0xFF followed by a code; any number of 0xFF fill bytes may precede the code.
    while (i < b.length && b[i] !== 0xff) i++; // tolerate garbage between segments, as decoders do
    while (i < b.length && b[i] === 0xff) i++;
    if (i >= b.length) throw new ImageError('truncated', 'JPEG ends before its frame header');
    const marker = b[i]!;
    i++;
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length
    if (marker === 0xd9 || marker === 0xda) throw new ImageError('corrupt', 'JPEG without a frame header before its image data');
    if (i + 2 > b.length) throw new ImageError('truncated', 'JPEG ends inside a segment header');
    const length = (b[i]! << 8) | b[i + 1]!;
    if (length < 2) throw new ImageError('corrupt', 'JPEG segment with an impossible length');
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) {
      // length (2), precision (1), height (2), width (2)
      if (i + 7 > b.length) throw new ImageError('truncated', 'JPEG ends inside its frame header');
      return { height: (b[i + 3]! << 8) | b[i + 4]!, width: (b[i + 5]! << 8) | b[i + 6]! };
    }
    i += length;
  }
}

function need(b: Uint8Array, n: number, type: ImageType): void {
  if (b.length < n) throw new ImageError('truncated', `The ${short(type)} header is cut short (${b.length} of ${n} bytes)`);
}

function short(type: ImageType): string {
  return type.slice('image/'.length).toUpperCase();
}

function ascii(b: Uint8Array, at: number, n: number): string {
  let s = '';
  for (let k = at; k < at + n && k < b.length; k++) s += String.fromCharCode(b[k]!);
  return s;
}

function u16le(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}
function u24le(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);
}
function u32be(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}
