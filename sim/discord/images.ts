/**
 * Image bytes as Discord's media pipeline sees them: the format and pixel size read from the file
 * header (PNG, JPEG, GIF, WebP), image data URIs (`avatar` fields), and avatar hashes. Discord
 * measures attachments and link images itself (the `width`/`height` a bot reads); so does the
 * simulator, from the same bytes, instead of trusting what the uploader claims.
 */
import { createHash } from 'node:crypto';

export interface ImageInfo {
  contentType: 'image/png' | 'image/jpeg' | 'image/gif' | 'image/webp';
  width: number;
  height: number;
}

/** Reads the format and dimensions from the header; undefined when the bytes are no known image. */
export function sniffImage(data: Buffer): ImageInfo | undefined {
  if (data.length >= 24 && data.readUInt32BE(0) === 0x89504e47 && data.readUInt32BE(4) === 0x0d0a1a0a && data.toString('latin1', 12, 16) === 'IHDR') {
    return { contentType: 'image/png', width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
  }
  if (data.length >= 10 && (data.toString('latin1', 0, 6) === 'GIF87a' || data.toString('latin1', 0, 6) === 'GIF89a')) {
    return { contentType: 'image/gif', width: data.readUInt16LE(6), height: data.readUInt16LE(8) };
  }
  if (data.length >= 30 && data.toString('latin1', 0, 4) === 'RIFF' && data.toString('latin1', 8, 12) === 'WEBP') {
    return webpSize(data);
  }
  if (data.length >= 4 && data[0] === 0xff && data[1] === 0xd8) return jpegSize(data);
  return undefined;
}

function webpSize(data: Buffer): ImageInfo | undefined {
  const chunk = data.toString('latin1', 12, 16);
  if (chunk === 'VP8X') {
    // 24-bit little-endian "canvas width/height minus one".
    return { contentType: 'image/webp', width: 1 + data.readUIntLE(24, 3), height: 1 + data.readUIntLE(27, 3) };
  }
  if (chunk === 'VP8L' && data[20] === 0x2f) {
    const bits = data.readUInt32LE(21);
    return { contentType: 'image/webp', width: 1 + (bits & 0x3fff), height: 1 + ((bits >>> 14) & 0x3fff) };
  }
  if (chunk === 'VP8 ' && data.length >= 30 && data[23] === 0x9d && data[24] === 0x01 && data[25] === 0x2a) {
    return { contentType: 'image/webp', width: data.readUInt16LE(26) & 0x3fff, height: data.readUInt16LE(28) & 0x3fff };
  }
  return undefined;
}

function jpegSize(data: Buffer): ImageInfo | undefined {
  let i = 2;
  while (i + 9 < data.length) {
    if (data[i] !== 0xff) return undefined;
    const marker = data[i + 1] as number;
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    const len = data.readUInt16BE(i + 2);
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { contentType: 'image/jpeg', height: data.readUInt16BE(i + 5), width: data.readUInt16BE(i + 7) };
    }
    i += 2 + len;
  }
  return undefined;
}

/** `data:image/png;base64,...` → bytes (Discord's "image data" for avatars). */
export function parseImageDataUri(value: string): Buffer | undefined {
  const m = /^data:([\w.+-]+\/[\w.+-]+)?(;[\w-]+=[\w-]+)*;base64,([A-Za-z0-9+/=\s]*)$/.exec(value);
  if (!m) return undefined;
  const bytes = Buffer.from(m[3] as string, 'base64');
  return bytes.length > 0 ? bytes : undefined;
}

/** An avatar hash like Discord's: 32 hex digits, `a_` prefix for animated (GIF) images. */
export function avatarHash(data: Buffer): string {
  const hex = createHash('md5').update(data).digest('hex');
  return sniffImage(data)?.contentType === 'image/gif' ? `a_${hex}` : hex;
}

/** Content type for a file name when the bytes do not say (what Discord's upload pipeline guesses). */
export function contentTypeFromName(filename: string): string | undefined {
  const ext = /\.([a-z0-9]+)$/i.exec(filename)?.[1]?.toLowerCase();
  const types: Record<string, string> = {
    png: 'image/png',
    jpg: 'image/jpeg',
    jpeg: 'image/jpeg',
    gif: 'image/gif',
    webp: 'image/webp',
    txt: 'text/plain; charset=utf-8',
    json: 'application/json; charset=utf-8',
    wav: 'audio/x-wav',
    mp3: 'audio/mpeg',
    ogg: 'audio/ogg',
    pdf: 'application/pdf',
  };
  return ext ? types[ext] : undefined;
}
