import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { ImageError, readImageInfo, sniffImageType } from '../../src/image/index.js';
import { gif, jpeg, png, pngHeader, webpAlpha, webpLossless, webpLossy } from './fixtures.js';

function reason(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ImageError) return err.reason;
    throw err;
  }
  return undefined;
}

describe('sniffImageType / readImageInfo', () => {
  it('reads the type and size of every format from bytes made by an independent encoder', async () => {
    const cases: Array<[string, Buffer, string]> = [
      ['png', await png(321, 123), 'image/png'],
      ['jpeg', await jpeg(320, 241), 'image/jpeg'],
      ['webp lossy (VP8)', await webpLossy(302, 157), 'image/webp'],
      ['webp lossless (VP8L)', await webpLossless(303, 151), 'image/webp'],
      ['webp extended (VP8X)', await webpAlpha(305, 149), 'image/webp'],
      ['gif', await gif(77, 55), 'image/gif'],
    ];
    for (const [name, bytes, type] of cases) {
      const meta = await sharp(bytes).metadata();
      expect(sniffImageType(bytes), name).toBe(type);
      expect(readImageInfo(bytes), name).toEqual({ type, width: meta.width, height: meta.height });
    }
  });

  it('finds a JPEG frame header behind large metadata segments', async () => {
    const big = await sharp({ create: { width: 99, height: 77, channels: 3, background: 'white' } })
      .withMetadata({ exif: { IFD0: { ImageDescription: 'x'.repeat(20_000) } } })
      .jpeg()
      .toBuffer();
    expect(big.length).toBeGreaterThan(20_000);
    expect(readImageInfo(big)).toEqual({ type: 'image/jpeg', width: 99, height: 77 });
  });

  it('never trusts anything but the magic number', () => {
    expect(sniffImageType(Buffer.from('<!doctype html><title>image.png</title>'))).toBeUndefined();
    expect(sniffImageType(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'))).toBeUndefined();
    expect(sniffImageType(Buffer.from('II*\u0000 tiff'))).toBeUndefined();
    expect(sniffImageType(Buffer.from('RIFF\u0000\u0000\u0000\u0000WAVEfmt '))).toBeUndefined();
    expect(sniffImageType(new Uint8Array(0))).toBeUndefined();
    expect(reason(() => readImageInfo(Buffer.from('GIF')))).toBe('not-an-image');
  });

  it('reports truncated and corrupt headers instead of guessing', async () => {
    const p = await png(10, 10);
    expect(reason(() => readImageInfo(p.subarray(0, 20)))).toBe('truncated');
    const j = await jpeg(10, 10);
    expect(reason(() => readImageInfo(j.subarray(0, 8)))).toBe('truncated');
    // A JPEG whose image data starts before any frame header.
    expect(reason(() => readImageInfo(Buffer.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 2, 3, 4, 5, 6])))).toBe('corrupt');
    const noIhdr = Buffer.from(pngHeader(5, 5));
    noIhdr.write('IDAT', 12, 'ascii');
    expect(reason(() => readImageInfo(noIhdr))).toBe('corrupt');
    expect(reason(() => readImageInfo(pngHeader(0, 10)))).toBe('corrupt');
    const w = await webpLossy(20, 20);
    const badChunk = Buffer.from(w);
    badChunk.write('ABCD', 12, 'ascii');
    expect(reason(() => readImageInfo(badChunk))).toBe('corrupt');
  });

  it('reads a declared size without decoding (a 60000 × 60000 header is 33 bytes)', () => {
    expect(readImageInfo(pngHeader(60_000, 60_000))).toEqual({ type: 'image/png', width: 60_000, height: 60_000 });
  });
});
