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
 * - taps from Kaiser's formula N = (A − 7.95) / (2.285·Δω), rounded up to a multiple of 4 (the dot
 *   product is unrolled by 4); β = 0.1102·(A − 8.7). Each phase row is normalised to unity DC gain.
 * Defaults (passband 0.9, A = 110 dB) give ≥ 100 dB image/alias rejection with a passband ripple of
 * a few micro-dB; 72 taps per phase for upsampling, 428 for 48 → 16 kHz.
 */

export interface ResamplerOptions {
  /** Interleaved channels in and out (1 or 2). Default 1. */
  channels?: number;
  /** Passband edge as a fraction of the lower Nyquist frequency. Default 0.9. */
  passband?: number;
  /** Stopband attenuation the filter is designed for, dB. Default 110. */
  attenuationDb?: number;
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
  taps = Math.max(8, Math.ceil(taps / 4) * 4);
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

/** Streaming sample-rate converter for 16-bit (or float) PCM, mono or interleaved stereo. */
export class Resampler {
  readonly inRate: number;
  readonly outRate: number;
  readonly channels: number;
  /** Output samples per input sample is L/M. */
  readonly L: number;
  readonly M: number;
  /** Taps per phase. */
  readonly taps: number;
  private readonly coeffs: Float32Array;
  /** Per channel: input history as float, hist[0] is absolute input index `histStart`. */
  private hist: Float32Array[];
  private histStart: number;
  private histLen = 0;
  /** Total input frames received (per channel). */
  private inCount = 0;
  /** Next output index n, its input position i = floor(n·M/L) and phase p = n·M mod L. */
  private outIndex = 0;
  private pos = 0;
  private phase = 0;
  private readonly passthrough: boolean;

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
    this.passthrough = inRate === outRate;
    const table = designTable(inRate, outRate, passband, attenuationDb);
    this.L = table.L;
    this.M = table.M;
    this.taps = this.passthrough ? 0 : table.taps;
    this.coeffs = table.coeffs;
    this.histStart = 1 - this.taps / 2;
    this.hist = [];
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
    const cap = Math.max(1024, this.taps * 4);
    this.hist = [];
    for (let c = 0; c < this.channels; c++) this.hist.push(new Float32Array(cap));
    // Zeros stand for the input before the stream start (x[k] = 0 for k < 0).
    this.histStart = 1 - this.taps / 2;
    this.histLen = this.taps / 2 - 1 > 0 ? this.taps / 2 - 1 : 0;
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
    this.append(input);
    return this.toInt16(this.produce(false));
  }

  /** Returns the rest of the output (the input end is treated as followed by silence) and resets. */
  flush(): Int16Array {
    const out = this.toInt16(this.produce(true));
    this.reset();
    return out;
  }

  /** Like {@link process} but without rounding (for measurements). Float output on the Int16 scale. */
  processFloat(input: Int16Array | Float32Array | Float64Array): Float64Array {
    this.append(input);
    return this.produce(false);
  }

  /** Like {@link flush} but without rounding. */
  flushFloat(): Float64Array {
    const out = this.produce(true);
    this.reset();
    return out;
  }

  private append(input: Int16Array | Float32Array | Float64Array): void {
    const ch = this.channels;
    if (input.length % ch !== 0) throw new RangeError(`input length ${input.length} is not a multiple of ${ch} channels`);
    const frames = input.length / ch;
    if (frames === 0) return;
    const scale = input instanceof Int16Array ? 1 : 32768;
    const need = this.histLen + frames;
    if (need > this.hist[0]!.length) {
      let cap = this.hist[0]!.length;
      while (cap < need) cap *= 2;
      this.hist = this.hist.map((h) => {
        const bigger = new Float32Array(cap);
        bigger.set(h.subarray(0, this.histLen));
        return bigger;
      });
    }
    const at = this.histLen;
    if (ch === 1) {
      const h = this.hist[0]!;
      if (scale === 1) h.set(input, at);
      else for (let k = 0; k < frames; k++) h[at + k] = input[k]! * scale;
    } else {
      for (let c = 0; c < ch; c++) {
        const h = this.hist[c]!;
        for (let k = 0; k < frames; k++) h[at + k] = input[k * ch + c]! * scale;
      }
    }
    this.histLen += frames;
    this.inCount += frames;
  }

  /** Computes every output sample whose input window is available (all of them when `final`). */
  private produce(final: boolean): Float64Array {
    const ch = this.channels;
    if (this.passthrough) {
      const n = this.histLen;
      const out = new Float64Array(n * ch);
      for (let c = 0; c < ch; c++) {
        const h = this.hist[c]!;
        for (let k = 0; k < n; k++) out[k * ch + c] = h[k]!;
      }
      this.histStart += n;
      this.histLen = 0;
      this.outIndex += n;
      return out;
    }
    const { L, M, taps } = this;
    const half = taps / 2;
    // Output n is computable when its last input index i + half is available; when flushing, all
    // outputs before the end of input (i < inCount) are produced, with zeros as look-ahead.
    const lastPos = final ? this.inCount - 1 : this.inCount - 1 - half;
    const limit = lastPos < 0 ? 0 : Math.floor(((lastPos + 1) * L - 1) / M) + 1;
    const count = Math.max(0, limit - this.outIndex);
    const out = new Float64Array(count * ch);
    if (count === 0) return out;

    if (final) {
      // Append `half` zeros of look-ahead.
      const need = this.histLen + half;
      if (need > this.hist[0]!.length) {
        this.hist = this.hist.map((h) => {
          const bigger = new Float32Array(need);
          bigger.set(h.subarray(0, this.histLen));
          return bigger;
        });
      }
      for (const h of this.hist) h.fill(0, this.histLen, this.histLen + half);
    }

    const coeffs = this.coeffs;
    const histStart = this.histStart;
    let pos = 0;
    let phase = 0;
    for (let c = 0; c < ch; c++) {
      const x = this.hist[c]!;
      pos = this.pos;
      phase = this.phase;
      let o = c;
      for (let n = 0; n < count; n++) {
        const xb = pos - half + 1 - histStart;
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
        out[o] = a0 + a1 + (a2 + a3);
        o += ch;
        phase += M;
        while (phase >= L) {
          phase -= L;
          pos++;
        }
      }
    }
    this.pos = pos;
    this.phase = phase;
    this.outIndex += count;

    // Drop history no longer needed: the next output starts at pos − half + 1.
    const keepFrom = pos - half + 1 - histStart;
    if (keepFrom > 0) {
      const drop = Math.min(keepFrom, this.histLen);
      for (const h of this.hist) h.copyWithin(0, drop, this.histLen);
      this.histLen -= drop;
      this.histStart += drop;
    }
    return out;
  }

  private toInt16(f: Float64Array): Int16Array {
    const out = new Int16Array(f.length);
    for (let k = 0; k < f.length; k++) {
      const v = Math.round(f[k]!);
      out[k] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    }
    return out;
  }
}
