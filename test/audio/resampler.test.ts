/**
 * The polyphase resampler: passband flatness, image/alias rejection, exact length, time
 * alignment and bit-exact output whatever the chunking.
 */
import { describe, expect, it } from 'vitest';
import { Resampler } from '../../src/audio/resampler.js';
import { measureResampler } from '../../src/audio/quality.js';
import { concatInt16 } from '../../src/audio/pcm.js';
import { channel, interleave, noise, prng, speechLike, tones } from './signals.js';

const PAIRS: Array<[number, number]> = [
  [16000, 48000],
  [22050, 48000],
  [24000, 48000],
  [44100, 48000],
  [48000, 16000],
  [22050, 24000],
];

function oneShot(r: Resampler, x: Int16Array): Int16Array {
  return concatInt16([r.process(x), r.flush()]);
}

function chunked(r: Resampler, x: Int16Array, seed: number, maxChunkFrames: number): Int16Array {
  const rnd = prng(seed);
  const parts: Int16Array[] = [];
  let at = 0;
  while (at < x.length) {
    // Chunk sizes from 0 (empty) to maxChunkFrames frames, whole frames only.
    const frames = Math.floor(rnd() * (maxChunkFrames + 1));
    const next = Math.min(x.length, at + frames * r.channels);
    parts.push(r.process(x.subarray(at, next)));
    at = next;
  }
  parts.push(r.flush());
  return concatInt16(parts);
}

const KERNELS = ['wasm', 'js'] as const;

describe.each(KERNELS)('Resampler quality, %s kernel (tones, Kaiser-windowed spectra)', (kernel) => {
  for (const [inRate, outRate] of PAIRS) {
    it(`${inRate} → ${outRate}: passband within 0.1 dB up to 0.9 × lower Nyquist, rejection ≥ 100 dB`, () => {
      const q = measureResampler(inRate, outRate, { kernel });
      expect(new Resampler(inRate, outRate, { kernel }).kernel).toBe(kernel);
      expect(q.passbandTonesHz.length).toBeGreaterThanOrEqual(8);
      expect(Math.max(...q.passbandTonesHz)).toBeCloseTo(0.9 * (Math.min(inRate, outRate) / 2), 0);
      expect(q.passbandDeviationDb).toBeLessThanOrEqual(0.1);
      expect(q.worstSpurDb).toBeLessThanOrEqual(-100);
      if (outRate < inRate) {
        // Tones above the output Nyquist (8.1 kHz … 22.8 kHz for 48 → 16 kHz) leave nothing behind.
        expect(Math.min(...q.stopbandTonesHz)).toBeLessThan(8200);
        expect(q.worstAliasDb).toBeLessThanOrEqual(-100);
      }
      expect(q.rejectionDb).toBeGreaterThanOrEqual(100);
    });
  }

  it('the measurement can fail: a deliberately short filter (60 dB design) is caught', () => {
    const q = measureResampler(22050, 48000, { attenuationDb: 60, kernel });
    expect(q.rejectionDb).toBeLessThan(75);
    expect(q.rejectionDb).toBeGreaterThan(50);
  });
});

describe.each(KERNELS)('Resampler chunking invariance, %s kernel', (kernel) => {
  for (const [inRate, outRate] of PAIRS) {
    it(`${inRate} → ${outRate}: exact length and bit-identical output for random chunkings (mono and stereo)`, () => {
      const frames = Math.round(inRate * 0.37) + 3; // not a multiple of anything convenient
      const mono = speechLike(inRate, frames, 3);
      const reference = oneShot(new Resampler(inRate, outRate, { kernel }), mono);
      expect(reference.length).toBe(Math.ceil((frames * outRate) / inRate));
      // Chunks from 0 to 9000 frames: tiny, typical (20 ms) and larger than the internal 4096-frame block.
      for (const [seed, maxChunk] of [[1, 7], [2, 160], [3, 1000], [4, 9000]] as const) {
        const out = chunked(new Resampler(inRate, outRate, { kernel }), mono, seed, maxChunk);
        expect(Buffer.from(out.buffer).equals(Buffer.from(reference.buffer))).toBe(true);
      }
      // Stereo: each channel exactly as the mono resampler treats it, however chunked.
      const right = noise(frames, 5000, 8);
      const stereo = interleave(mono, right);
      const out = chunked(new Resampler(inRate, outRate, { channels: 2, kernel }), stereo, 9, 333);
      expect(out.length).toBe(reference.length * 2);
      expect(Buffer.from(channel(out, 2, 0).buffer).equals(Buffer.from(reference.buffer))).toBe(true);
      const rightRef = oneShot(new Resampler(inRate, outRate, { kernel }), right);
      expect(Buffer.from(channel(out, 2, 1).buffer).equals(Buffer.from(rightRef.buffer))).toBe(true);
    });
  }
});

describe('Resampler streaming behaviour', () => {
  it('the WebAssembly SIMD kernel is used by default and agrees with the JavaScript one within 1 LSB', () => {
    expect(new Resampler(22050, 48000).kernel).toBe('wasm');
    const x = speechLike(22050, 20000, 12);
    const a = oneShot(new Resampler(22050, 48000), x);
    const b = oneShot(new Resampler(22050, 48000, { kernel: 'js' }), x);
    expect(a.length).toBe(b.length);
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    expect(maxDiff).toBeLessThanOrEqual(1);
  });

  it('keeps memory bounded: a 30 s chunk goes through the fixed 4096-frame buffers', () => {
    const x = noise(24000 * 30, 8000, 2);
    const r = new Resampler(24000, 48000);
    const out = concatInt16([r.process(x), r.flush()]);
    expect(out.length).toBe(48000 * 30);
  });

  it('is time-aligned: an impulse at input sample k peaks at output sample k·out/in', () => {
    const x = new Int16Array(300);
    x[100] = 20000;
    const up = oneShot(new Resampler(16000, 48000), x);
    expect(up.indexOf(Math.max(...up))).toBe(300);
    const down = oneShot(new Resampler(48000, 16000), new Int16Array(900).fill(0).map((_, i) => (i === 300 ? 30000 : 0)));
    expect(down.indexOf(Math.max(...down))).toBe(100);
  });

  it('passes DC and a full-scale tone without overflow (clipped, never wrapped)', () => {
    const dc = new Int16Array(2000).fill(12345);
    const out = oneShot(new Resampler(22050, 48000), dc);
    const mid = out.subarray(200, out.length - 200);
    expect(mid.every((s) => s === 12345)).toBe(true);
    // A full-scale tone near the band edge overshoots ±32767 after filtering (Gibbs): the Int16
    // output must be the float result clipped, never wrapped around.
    const loud = tones(24000, 4800, [{ hz: 10000, amp: 32767 }]);
    const y = oneShot(new Resampler(24000, 48000), loud);
    const rf = new Resampler(24000, 48000);
    const a = rf.processFloat(loud);
    const b = rf.flushFloat();
    const f = new Float64Array(a.length + b.length);
    f.set(a);
    f.set(b, a.length);
    expect(f.length).toBe(y.length);
    let clipped = 0;
    for (let i = 0; i < y.length; i++) {
      const expected = Math.max(-32768, Math.min(32767, Math.round(f[i]!))) | 0;
      if (expected !== Math.round(f[i]!)) clipped++;
      expect(y[i]).toBe(expected);
    }
    expect(clipped).toBeGreaterThan(0);
  });

  it('accepts Float32 input on the [-1, 1] scale with the same result as Int16', () => {
    const x = speechLike(24000, 5000);
    const f = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) f[i] = x[i]! / 32768;
    const a = oneShot(new Resampler(24000, 48000), x);
    const r = new Resampler(24000, 48000);
    const b = concatInt16([r.process(f), r.flush()]);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });

  it('passes audio through unchanged when the rates are equal, and resets after flush()', () => {
    const x = speechLike(48000, 1234);
    const r = new Resampler(48000, 48000);
    expect(Array.from(chunked(r, x, 5, 100))).toEqual(Array.from(x));
    const r2 = new Resampler(16000, 48000);
    const first = oneShot(r2, x);
    const second = oneShot(r2, x); // reused after flush: a fresh stream
    expect(Array.from(second)).toEqual(Array.from(first));
  });

  it('rejects bad arguments', () => {
    expect(() => new Resampler(0, 48000)).toThrow(RangeError);
    expect(() => new Resampler(16000, 48000, { channels: 3 })).toThrow(RangeError);
    expect(() => new Resampler(16000, 48000, { channels: 2 }).process(new Int16Array(3))).toThrow(RangeError);
  });
});
