import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { ImageError, prepareImage, readImageInfo } from '../../src/image/index.js';
import { animatedGif, jpeg, meanColor, noise, png, pngHeader, solid, webpLossy } from './fixtures.js';

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ImageError) return err.reason;
    throw err;
  }
  return 'no error';
}

describe('prepareImage', () => {
  it('passes a JPEG or PNG that already fits through untouched (same bytes, no re-encode)', async () => {
    for (const bytes of [await jpeg(800, 600), await png(300, 200)]) {
      const out = await prepareImage(bytes);
      expect(out.reencoded).toBe(false);
      expect(out.bytes.equals(bytes)).toBe(true);
      expect({ w: out.width, h: out.height }).toEqual({ w: readImageInfo(bytes).width, h: readImageInfo(bytes).height });
    }
  });

  it('shrinks a large photo to maxDimension and under maxBytes, as a JPEG', async () => {
    const photo = await noise(2400, 1600).png({ compressionLevel: 1 }).toBuffer();
    expect(photo.length).toBeGreaterThan(2_000_000);
    const out = await prepareImage(photo, { maxDimension: 1024, maxBytes: 300_000 });
    expect(out.reencoded).toBe(true);
    expect(out.type).toBe('image/jpeg');
    expect(out.bytes.length).toBeLessThanOrEqual(300_000);
    const meta = await sharp(out.bytes).metadata();
    expect(meta.format).toBe('jpeg');
    expect([meta.width, meta.height]).toEqual([1024, 683]);
    expect([out.width, out.height]).toEqual([1024, 683]);
    expect(out.source).toEqual({ type: 'image/png', width: 2400, height: 1600 });
  });

  it('keeps transparency as PNG and never enlarges', async () => {
    const icon = await solid(40, 30, { r: 0, g: 128, b: 0 }, 0.5).webp().toBuffer();
    const out = await prepareImage(icon);
    expect(out.type).toBe('image/png');
    const meta = await sharp(out.bytes).metadata();
    expect([meta.format, meta.width, meta.height, meta.hasAlpha]).toEqual(['png', 40, 30, true]);
  });

  it('turns WebP (not passed through by default) into JPEG', async () => {
    const out = await prepareImage(await webpLossy(200, 100));
    expect(out.type).toBe('image/jpeg');
    expect((await sharp(out.bytes).metadata()).format).toBe('jpeg');
  });

  it("decodes an animated GIF's first frame only, as PNG", async () => {
    const anim = await animatedGif(48, 32);
    expect((await sharp(anim).metadata()).pages).toBe(2);
    const out = await prepareImage(anim);
    expect(out.type).toBe('image/png');
    const meta = await sharp(out.bytes).metadata();
    expect([meta.width, meta.height, meta.pages ?? 1]).toEqual([48, 32, 1]);
    const c = await meanColor(out.bytes);
    expect(c.r).toBeGreaterThan(200); // the red first frame, not the blue second one
    expect(c.b).toBeLessThan(50);
  });

  it('applies EXIF orientation when it re-encodes', async () => {
    const rotated = await sharp(await noise(300, 100).png().toBuffer()).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const out = await prepareImage(rotated, { maxDimension: 200 });
    expect([out.width, out.height]).toEqual([67, 200]);
  });

  it('refuses a decompression bomb from its header, before decoding', async () => {
    expect(await reasonOf(prepareImage(pngHeader(60_000, 60_000)))).toBe('too-many-pixels');
    expect(await reasonOf(prepareImage(await png(100, 100), { maxInputPixels: 5_000 }))).toBe('too-many-pixels');
  });

  it('refuses non-images, truncated and corrupt files with a typed reason', async () => {
    expect(await reasonOf(prepareImage(Buffer.from('<html>not an image</html>')))).toBe('not-an-image');
    const j = await noise(400, 300).jpeg().toBuffer();
    expect(await reasonOf(prepareImage(j.subarray(0, Math.floor(j.length / 2)), { maxDimension: 100 }))).toBe('corrupt');
    // Small enough to pass through untouched, but cut off: refused, not forwarded.
    const cut = await noise(200, 200).png().toBuffer();
    expect(await reasonOf(prepareImage(cut.subarray(0, cut.length - 200)))).toBe('corrupt');
    const bad = Buffer.concat([pngHeader(10, 10), Buffer.from('garbage garbage garbage')]);
    expect(await reasonOf(prepareImage(bad))).toBe('corrupt');
  });

  it('gives up with too-large when even the smallest encode does not fit', async () => {
    expect(await reasonOf(prepareImage(await noise(300, 300).png().toBuffer(), { maxBytes: 300 }))).toBe('too-large');
  });
});
