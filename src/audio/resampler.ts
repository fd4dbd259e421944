/**
 * Streaming polyphase windowed-sinc resampler (rational L/M, Kaiser window).
 *
 * Each output sample n sits at input time t = n·M/L (so output and input are time-aligned: no
 * delay to compensate) and is the dot product of `taps` input samples around t with the
 * coefficient row of phase p = n·M mod L. Rows are precomputed once per (rates, options) and shared
 * by every stream. Because each output sample is always computed from the same input samples, in
 * the same order, with the same coefficients, the output is bit-identical however the input is
 * chunked, and after `flush()` its length is exactly ceil(N·L/M).
 *
 * Filter design (lower Nyquist = min(in, out) / 2, passband edge = `passband` × lower Nyquist):
 * - upsampling: stopband starts at (2 − passband) × input Nyquist, where the first image of a
 *   passband tone lands, so images of everything in the passband are rejected by `attenuationDb`;
 * - downsampling: stopband starts at the output Nyquist, so nothing above it aliases back at all;
 * - taps from Kaiser's formula N = (A − 7.95) / (2.285·Δω), rounded up to a multiple of 8 (the
 *   SIMD kernel takes 8 per step); β = 0.1102·(A − 8.7). Each row is normalised to unity DC gain.
 * Defaults (passband 0.9, A = 110 dB) give ≥ 100 dB image/alias rejection with a passband ripple of
 * a few micro-dB; 72 taps per phase for upsampling, 432 for 48 → 16 kHz.
 *
 * The dot products run in a WebAssembly SIMD kernel (./fir-simd.ts, f32x4, ~4× faster) when the
 * runtime has one, else in a JavaScript loop (f64 accumulation); `kernel` forces either. Input is
 * processed in blocks of at most 4096 frames, so memory per stream is fixed whatever the chunk.
 */
import { loadFirKernel, type FirKernel } from './fir-simd.js';

export interface ResamplerOptions {
  /** Interleaved channels in and out (1 or 2). Default 1. */
  channels?: number;
  /** Passband edge as a fraction of the lower Nyquist frequency. Default 0.9. */
  passband?: number;
  /** Stopband attenuation the filter is designed for, dB. Default 110. */
  attenuationDb?: number;
  /** 'auto' (default): WebAssembly SIMD when available, else JavaScript. */
  kernel?: 'auto' | 'wasm' | 'js';
}

interface FilterTable {
  L: number;
  M: number;
  taps: number;
  /** L rows of `taps` coefficients; row p applies to x[i − taps/2 + 1 + j], j = 0..taps−1. */
  coeffs: Float32Array;
}

const tableCache = new Map<string, FilterTable>();

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Zeroth-order modified Bessel function of the first kind (power series). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 200; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function designTable(inRate: number, outRate: number, passband: number, attenuationDb: number): FilterTable {
  const key = `${inRate}/${outRate}/${passband}/${attenuationDb}`;
  const cached = tableCache.get(key);
  if (cached) return cached;

  const g = gcd(inRate, outRate);
  const L = outRate / g;
  const M = inRate / g;
  const lowerNyquist = Math.min(inRate, outRate) / 2;
  const passEdge = passband * lowerNyquist;
  const stopEdge = outRate >= inRate ? (2 - passband) * (inRate / 2) : outRate / 2;
  const cutoff = (passEdge + stopEdge) / 2; // Hz
  const transition = (stopEdge - passEdge) / inRate; // cycles per input sample
  const A = attenuationDb;
  let taps = Math.ceil((A - 7.95) / (2.285 * 2 * Math.PI * transition));
  taps = Math.max(8, Math.ceil(taps / 8) * 8);
  const beta = A > 50 ? 0.1102 * (A - 8.7) : A >= 21 ? 0.5842 * (A - 21) ** 0.4 + 0.07886 * (A - 21) : 0;
  const i0Beta = besselI0(beta);
  const fc = (2 * cutoff) / inRate; // cutoff relative to the input Nyquist
  const half = taps / 2;

  const coeffs = new Float32Array(L * taps);
  const row = new Float64Array(taps);
  for (let p = 0; p < L; p++) {
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      // Distance (in input samples) from the output instant to input sample j of the window.
      const tau = p / L + half - 1 - j;
      const r = tau / half;
      const w = r * r < 1 ? besselI0(beta * Math.sqrt(1 - r * r)) / i0Beta : 0;
      const x = fc * tau;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const v = fc * sinc * w;
      row[j] = v;
      sum += v;
    }
    const off = p * taps;
    for (let j = 0; j < taps; j++) coeffs[off + j] = row[j]! / sum;
  }
  const table: FilterTable = { L, M, taps, coeffs };
  tableCache.set(key, table);
  return table;
}

/** Input frames handled per kernel pass (bounds the per-stream buffers). */
const BLOCK_FRAMES = 4096;

/** Streaming sample-rate converter for 16-bit (or float) PCM, mono or interleaved stereo. */
export class Resampler {
  readonly inRate: number;
  readonly outRate: number;
  readonly channels: number;
  /** Output samples per input sample is L/M. */
  readonly L: number;
  readonly M: number;
  /** Taps per phase (0 when the rates are equal: plain copy). */
  readonly taps: number;
  /** Which dot-product implementation runs. */
  readonly kernel: 'wasm' | 'js' | 'copy';
  private readonly coeffs: Float32Array;
  private readonly wasm: FirKernel | undefined;
  /** Byte offsets of the per-channel history and output areas inside the kernel memory. */
  private readonly histOffsets: number[] = [];
  private readonly outOffsets: number[] = [];
  /** Per channel: input history, hist[0] is absolute input index `histStart`. */
  private readonly hist: Float32Array[] = [];
  /** Per channel: kernel output for one pass. */
  private readonly scratch: Array<Float32Array | Float64Array> = [];
  private histStart = 0;
  private histLen = 0;
  /** Total input frames received (per channel). */
  private inCount = 0;
  /** Next output index n, its input position i = floor(n·M/L) and phase p = n·M mod L. */
  private outIndex = 0;
  private pos = 0;
  private phase = 0;

  constructor(inRate: number, outRate: number, opts: ResamplerOptions = {}) {
    if (!Number.isInteger(inRate) || !Number.isInteger(outRate) || inRate <= 0 || outRate <= 0) {
      throw new RangeError(`sample rates must be positive integers (got ${inRate} → ${outRate})`);
    }
    const channels = opts.channels ?? 1;
    if (channels !== 1 && channels !== 2) throw new RangeError(`channels must be 1 or 2, got ${channels}`);
    const passband = opts.passband ?? 0.9;
    if (!(passband > 0 && passband < 1)) throw new RangeError(`passband must be in (0, 1), got ${passband}`);
    const attenuationDb = opts.attenuationDb ?? 110;
    if (!(attenuationDb >= 20 && attenuationDb <= 200)) throw new RangeError(`attenuationDb must be in [20, 200]`);
    this.inRate = inRate;
    this.outRate = outRate;
    this.channels = channels;
    if (inRate === outRate) {
      this.L = 1;
      this.M = 1;
      this.taps = 0;
      this.kernel = 'copy';
      this.coeffs = new Float32Array(0);
      this.wasm = undefined;
      return;
    }
    const table = designTable(inRate, outRate, passband, attenuationDb);
    this.L = table.L;
    this.M = table.M;
    this.taps = table.taps;
    this.coeffs = table.coeffs;

    const histCap = BLOCK_FRAMES + 2 * this.taps + 16;
    const outCap = Math.ceil(((BLOCK_FRAMES + 2 * this.taps) * this.L) / this.M) + 16;
    const want = opts.kernel ?? 'auto';
    const coefBytes = (this.coeffs.length * 4 + 15) & ~15;
    const wasm = want === 'js' ? undefined : loadFirKernel(coefBytes + channels * (histCap + outCap) * 4 + 64);
    if (want === 'wasm' && !wasm) throw new Error('WebAssembly SIMD is not available in this runtime');
    this.wasm = wasm;
    this.kernel = wasm ? 'wasm' : 'js';
    if (wasm) {
      new Float32Array(wasm.memory.buffer, 0, this.coeffs.length).set(this.coeffs);
      let at = coefBytes;
      for (let c = 0; c < channels; c++) {
        this.histOffsets.push(at);
        this.hist.push(new Float32Array(wasm.memory.buffer, at, histCap));
        at += histCap * 4;
        this.outOffsets.push(at);
        this.scratch.push(new Float32Array(wasm.memory.buffer, at, outCap));
        at += outCap * 4;
      }
    } else {
      for (let c = 0; c < channels; c++) {
        this.hist.push(new Float32Array(histCap));
        this.scratch.push(new Float64Array(outCap));
      }
    }
    this.reset();
  }

  /** Output samples per channel for `inputFrames` input samples per channel, after flush(). */
  outputLength(inputFrames: number): number {
    return Math.ceil((inputFrames * this.L) / this.M);
  }

  /** Algorithmic latency: input samples held back until enough look-ahead has arrived. */
  get lookaheadFrames(): number {
    return this.taps / 2;
  }

  /** Forgets all history; the next input starts a new stream. */
  reset(): void {
    // Zeros stand for the input before the stream start (x[k] = 0 for k < 0).
    const lead = this.taps > 0 ? this.taps / 2 - 1 : 0;
    for (const h of this.hist) h.fill(0, 0, lead);
    this.histStart = -lead;
    this.histLen = lead;
    this.inCount = 0;
    this.outIndex = 0;
    this.pos = 0;
    this.phase = 0;
  }

  /**
   * Consumes interleaved input (Int16 samples, or Float32 in [−1, 1] scaled by 32768) and
   * returns all output that is complete so far, rounded and clipped to 16 bits.
   */
  process(input: Int16Array | Float32Array): Int16Array {
    return this.run(input, false, new Int16Array(this.pendingOutput(input, false) * this.channels)) as Int16Array;
  }

  /** Returns the rest of the output (the input end is treated as followed by silence) and resets. */
  flush(): Int16Array {
    const out = this.run(undefined, true, new Int16Array(this.pendingOutput(undefined, true) * this.channels)) as Int16Array;
    this.reset();
    return out;
  }

  /** Like {@link process} but without rounding (for measurements). Float output on the Int16 scale. */
  processFloat(input: Int16Array | Float32Array | Float64Array): Float64Array {
    return this.run(input, false, new Float64Array(this.pendingOutput(input, false) * this.channels)) as Float64Array;
  }

  /** Like {@link flush} but without rounding. */
  flushFloat(): Float64Array {
    const out = this.run(undefined, true, new Float64Array(this.pendingOutput(undefined, true) * this.channels)) as Float64Array;
    this.reset();
    return out;
  }

  /** Output frames that become available once `input` is added (all remaining when `final`). */
  private pendingOutput(input: ArrayLike<number> | undefined, final: boolean): number {
    const ch = this.channels;
    if (input && input.length % ch !== 0) throw new RangeError(`input length ${input.length} is not a multiple of ${ch} channels`);
    const inCount = this.inCount + (input ? input.length / ch : 0);
    if (this.taps === 0) return final ? 0 : inCount - this.outIndex;
    return Math.max(0, this.limit(inCount, final) - this.outIndex);
  }

  /** Number of outputs (from the stream start) computable with `inCount` input frames. */
  private limit(inCount: number, final: boolean): number {
    const lastPos = final ? inCount - 1 : inCount - 1 - this.taps / 2;
    return lastPos < 0 ? 0 : Math.floor(((lastPos + 1) * this.L - 1) / this.M) + 1;
  }

  private run(input: Int16Array | Float32Array | Float64Array | undefined, final: boolean, out: Int16Array | Float64Array): Int16Array | Float64Array {
    const ch = this.channels;
    if (this.taps === 0) {
      // Equal rates: a copy (rounded and clipped like everything else for float input).
      if (input) {
        const scale = input instanceof Int16Array ? 1 : 32768;
        for (let k = 0; k < input.length; k++) {
          const v = input[k]! * scale;
          out[k] = out instanceof Int16Array ? clip16(v) : v;
        }
        this.inCount += input.length / ch;
        this.outIndex = this.inCount;
      }
      return out;
    }
    let written = 0;
    if (input) {
      const frames = input.length / ch;
      for (let at = 0; at < frames; at += BLOCK_FRAMES) {
        const n = Math.min(BLOCK_FRAMES, frames - at);
        this.append(input, at, n);
        written = this.produce(out, written, false);
      }
    }
    if (final) written = this.produce(out, written, true);
    return out;
  }

  private append(input: Int16Array | Float32Array | Float64Array, from: number, frames: number): void {
    const ch = this.channels;
    const scale = input instanceof Int16Array ? 1 : 32768;
    const at = this.histLen;
    for (let c = 0; c < ch; c++) {
      const h = this.hist[c]!;
      if (ch === 1 && scale === 1) h.set(input.subarray(from, from + frames), at);
      else for (let k = 0, src = from * ch + c; k < frames; k++, src += ch) h[at + k] = input[src]! * scale;
    }
    this.histLen += frames;
    this.inCount += frames;
  }

  /** Computes every output whose input window is available into out[written..]; returns the new count. */
  private produce(out: Int16Array | Float64Array, written: number, final: boolean): number {
    const count = this.limit(this.inCount, final) - this.outIndex;
    if (count <= 0) return written;
    const { L, M, taps } = this;
    const half = taps / 2;
    const ch = this.channels;
    if (final) for (const h of this.hist) h.fill(0, this.histLen, this.histLen + half); // look-ahead past the end
    const xb = this.pos - half + 1 - this.histStart;
    for (let c = 0; c < ch; c++) {
      const scratch = this.scratch[c]!;
      if (this.wasm) {
        this.wasm.run(0, this.histOffsets[c]! + xb * 4, this.outOffsets[c]!, count, taps * 4, L, M, this.phase, 4);
      } else {
        firJs(this.coeffs, this.hist[c]!, xb, scratch as Float64Array, count, taps, L, M, this.phase);
      }
      if (out instanceof Int16Array) {
        for (let n = 0, o = written * ch + c; n < count; n++, o += ch) out[o] = clip16(scratch[n]!);
      } else {
        for (let n = 0, o = written * ch + c; n < count; n++, o += ch) out[o] = scratch[n]!;
      }
    }
    const advanced = this.phase + count * M;
    this.pos += Math.floor(advanced / L);
    this.phase = advanced % L;
    this.outIndex += count;

    // Drop history no longer needed: the next output starts at pos − half + 1.
    const drop = Math.min(this.pos - half + 1 - this.histStart, this.histLen);
    if (drop > 0) {
      for (const h of this.hist) h.copyWithin(0, drop, this.histLen);
      this.histLen -= drop;
      this.histStart += drop;
    }
    return written + count;
  }
}

function clip16(v: number): number {
  const r = Math.round(v);
  return r > 32767 ? 32767 : r < -32768 ? -32768 : r;
}

/** JavaScript fallback of the SIMD kernel (f64 accumulation, unrolled by 4). */
function firJs(coeffs: Float32Array, x: Float32Array, xb: number, out: Float64Array, count: number, taps: number, L: number, M: number, phase: number): void {
  for (let n = 0; n < count; n++) {
    const cb = phase * taps;
    let a0 = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    for (let j = 0; j < taps; j += 4) {
      a0 += coeffs[cb + j]! * x[xb + j]!;
      a1 += coeffs[cb + j + 1]! * x[xb + j + 1]!;
      a2 += coeffs[cb + j + 2]! * x[xb + j + 2]!;
      a3 += coeffs[cb + j + 3]! * x[xb + j + 3]!;
    }
    out[n] = a0 + a1 + (a2 + a3);
    phase += M;
    while (phase >= L) {
      phase -= L;
      xb++;
    }
  }
}
