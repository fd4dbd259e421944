/**
 * Test pictures, made by sharp (libvips) so that src/image's own header parser is checked against
 * an independent encoder, plus hand-built headers for the cases an encoder will not produce.
 */
import sharp from 'sharp';

export type Rgb = { r: number; g: number; b: number };

export function solid(width: number, height: number, color: Rgb, alpha?: number) {
  return sharp({ create: { width, height, channels: alpha === undefined ? 3 : 4, background: alpha === undefined ? color : { ...color, alpha } } });
}

/** Noise compresses badly: a realistic stand-in for a photo when sizes matter. */
export function noise(width: number, height: number) {
  return sharp({ create: { width, height, channels: 3, background: 'black', noise: { type: 'gaussian', mean: 128, sigma: 60 } } });
}

export const png = (w: number, h: number, c: Rgb = { r: 200, g: 30, b: 30 }) => solid(w, h, c).png().toBuffer();
export const jpeg = (w: number, h: number, c: Rgb = { r: 30, g: 200, b: 30 }) => solid(w, h, c).jpeg().toBuffer();
export const webpLossy = (w: number, h: number) => solid(w, h, { r: 30, g: 30, b: 200 }).webp({ lossless: false }).toBuffer();
export const webpLossless = (w: number, h: number) => solid(w, h, { r: 30, g: 30, b: 200 }).webp({ lossless: true }).toBuffer();
/** Alpha forces the extended (VP8X) WebP layout. */
export const webpAlpha = (w: number, h: number) => solid(w, h, { r: 30, g: 30, b: 200 }, 0.5).webp().toBuffer();
export const gif = (w: number, h: number) => solid(w, h, { r: 250, g: 250, b: 0 }).gif().toBuffer();

/** A two-frame animated GIF: red first, blue second. */
export async function animatedGif(w: number, h: number): Promise<Buffer> {
  const red = await solid(w, h, { r: 255, g: 0, b: 0 }).png().toBuffer();
  const blue = await solid(w, h, { r: 0, g: 0, b: 255 }).png().toBuffer();
  return sharp([red, blue], { join: { animated: true } }).gif({ delay: [100, 100] }).toBuffer();
}

/** A PNG signature + IHDR declaring any size, with no image data (a decompression bomb's header). */
export function pngHeader(width: number, height: number): Buffer {
  const b = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b, 0);
  b.writeUInt32BE(13, 8);
  b.write('IHDR', 12, 'ascii');
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  b[24] = 8; // bit depth
  b[25] = 2; // truecolour
  return b;
}

/** Mean colour of a decoded image (independent check of what a picture shows). */
export async function meanColor(bytes: Buffer): Promise<Rgb> {
  const { channels } = await sharp(bytes).stats();
  return { r: Math.round(channels[0]!.mean), g: Math.round(channels[1]!.mean), b: Math.round(channels[2]!.mean) };
}
