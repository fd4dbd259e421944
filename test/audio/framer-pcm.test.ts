import { describe, expect, it } from 'vitest';
import { PcmFramer, frameBytesFor, VOXTA_FRAME_BYTES } from '../../src/audio/framer.js';
import {
  applyGain,
  bytesToInt16,
  concatInt16,
  dbfs,
  downmix,
  float32ToInt16,
  int16ToBuffer,
  int16ToFloat32,
  monoToStereo,
  rms,
  stereoToMono,
} from '../../src/audio/pcm.js';
import { prng } from './signals.js';

describe('PcmFramer', () => {
  it('cuts arbitrary chunks into exact 960-byte frames, preserving every byte in order', () => {
    const rnd = prng(3);
    const total = 960 * 37 + 123;
    const input = new Uint8Array(total);
    for (let i = 0; i < total; i++) input[i] = i & 0xff;
    const framer = new PcmFramer(VOXTA_FRAME_BYTES);
    const frames: Buffer[] = [];
    let at = 0;
    while (at < total) {
      const n = Math.min(total - at, Math.floor(rnd() * 2500));
      frames.push(...framer.push(input.subarray(at, at + n)));
      at += n;
    }
    expect(frames.length).toBe(37);
    expect(frames.every((f) => f.length === 960)).toBe(true);
    expect(framer.pendingBytes).toBe(123);
    const last = framer.flush(true)!;
    expect(last.length).toBe(960);
    expect(Array.from(last.subarray(0, 123))).toEqual(Array.from(input.subarray(960 * 37)));
    expect(last.subarray(123).every((b) => b === 0)).toBe(true);
    expect(Buffer.concat(frames).equals(Buffer.from(input.subarray(0, 960 * 37)))).toBe(true);
    expect(framer.flush()).toBeUndefined();
  });

  it('returns frames that do not alias its internal buffer or the input', () => {
    const framer = new PcmFramer(4);
    const src = Uint8Array.of(1, 2, 3);
    expect(framer.push(src)).toEqual([]);
    const [f] = framer.push(Uint8Array.of(4, 5));
    src[0] = 99;
    const [g] = framer.push(Uint8Array.of(6, 7, 8, 9));
    expect(Array.from(f!)).toEqual([1, 2, 3, 4]);
    expect(Array.from(g!)).toEqual([5, 6, 7, 8]);
    expect(Array.from(framer.flush(false)!)).toEqual([9]);
  });

  it('accepts Int16Array chunks and flushes an unpadded tail on request', () => {
    const framer = new PcmFramer(frameBytesFor(48000, 2, 20));
    expect(framer.frameBytes).toBe(3840);
    expect(framer.push(new Int16Array(1920 + 10)).length).toBe(1);
    expect(framer.flush(false)!.length).toBe(20);
  });

  it('bounds its queue and counts what it drops', () => {
    const framer = new PcmFramer(2, { maxQueuedFrames: 3 });
    framer.pushQueued(Uint8Array.of(1, 1, 2, 2, 3, 3, 4, 4, 5, 5));
    expect(framer.queuedFrames).toBe(3);
    expect(framer.droppedFrames).toBe(2);
    expect(Array.from(framer.shift()!)).toEqual([3, 3]);
    framer.clear();
    expect(framer.queuedFrames).toBe(0);
  });

  it('rejects impossible sizes', () => {
    expect(() => new PcmFramer(0)).toThrow(RangeError);
    expect(() => frameBytesFor(22050, 1, 30)).toThrow(RangeError);
  });
});

describe('pcm helpers', () => {
  it('down-mixes and up-mixes', () => {
    expect(Array.from(stereoToMono(Int16Array.of(100, 300, -32768, -32768, 32767, 32767)))).toEqual([200, -32768, 32767]);
    expect(Array.from(monoToStereo(Int16Array.of(1, -2)))).toEqual([1, 1, -2, -2]);
    expect(Array.from(downmix(Int16Array.of(3, 6, 9, -1, -2, -4), 3))).toEqual([6, -3]);
    expect(Array.from(downmix(Int16Array.of(2, 4), 2))).toEqual([3]);
  });

  it('converts Int16 ↔ Float32 with clipping', () => {
    expect(Array.from(int16ToFloat32(Int16Array.of(-32768, 16384)))).toEqual([-1, 0.5]);
    expect(Array.from(float32ToInt16(Float32Array.of(-1.5, -1, 0.25, 1, 2)))).toEqual([-32768, -32768, 8192, 32767, 32767]);
  });

  it('measures RMS and dBFS', () => {
    expect(rms(new Int16Array(0))).toBe(0);
    expect(rms(Int16Array.of(3, -3, 3, -3))).toBe(3);
    expect(dbfs(new Int16Array(10))).toBe(-Infinity);
    expect(dbfs(Int16Array.of(16384, -16384))).toBeCloseTo(-6.02, 2);
  });

  it('views bytes as Int16 without copying when aligned, and copies when not', () => {
    const buf = Buffer.from(Int16Array.of(1, -1, 300).buffer);
    const aligned = bytesToInt16(buf);
    expect(aligned.buffer).toBe(buf.buffer);
    expect(Array.from(aligned)).toEqual([1, -1, 300]);
    const odd = Buffer.alloc(7);
    buf.copy(odd, 1);
    const view = bytesToInt16(odd.subarray(1));
    expect(Array.from(view)).toEqual([1, -1, 300]);
    const pcm = Int16Array.of(5, 6);
    const b = int16ToBuffer(pcm);
    expect(b.buffer).toBe(pcm.buffer);
    expect(b.readInt16LE(2)).toBe(6);
  });

  it('concatenates and applies gain with clipping', () => {
    expect(Array.from(concatInt16([Int16Array.of(1), new Int16Array(0), Int16Array.of(2, 3)]))).toEqual([1, 2, 3]);
    expect(Array.from(applyGain(Int16Array.of(100, 20000, -20000), 2))).toEqual([200, 32767, -32768]);
  });
});
