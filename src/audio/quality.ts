/**
 * Signal measurements shared by the tests and the benchmark: windowed spectra, tone levels,
 * SNR with delay alignment, and the resampler's quality figures.
 *
 * Measurement windows are Kaiser with β = 20 (side lobes below −180 dB), so the analysis' own
 * leakage sits far below the ≥ 100 dB figures being checked. Resampler figures are taken on the
 * float output ({@link Resampler.processFloat}): the filter itself, without the 16-bit rounding
 * every Int16 output then adds (−98 dB of white noise for a full-scale signal).
 */
import { Resampler, type ResamplerOptions } from './resampler.js';

const windowCache = new Map<string, Float64Array>();

function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 300; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/** Kaiser window of length n. */
export function kaiserWindow(n: number, beta = 20): Float64Array {
  const key = `${n}/${beta}`;
  const hit = windowCache.get(key);
  if (hit) return hit;
  const w = new Float64Array(n);
  const i0b = besselI0(beta);
  for (let i = 0; i < n; i++) {
    const r = (2 * i) / (n - 1) - 1;
    w[i] = besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r))) / i0b;
  }
  windowCache.set(key, w);
  return w;
}

type Samples = ArrayLike<number>;

/**
 * Amplitude of the component at `freq` Hz in `signal[start .. start+length)` (windowed DFT
 * evaluated at exactly that frequency). A sine of amplitude A gives A.
 */
export function toneAmplitude(signal: Samples, sampleRate: number, freq: number, start = 0, length = signal.length - start): number {
  const w = kaiserWindow(length);
  let re = 0;
  let im = 0;
  let wsum = 0;
  const dw = (2 * Math.PI * freq) / sampleRate;
  // Rotate a phasor instead of calling cos/sin per sample; renormalise now and then.
  let c = 1;
  let s = 0;
  const cd = Math.cos(dw);
  const sd = Math.sin(dw);
  for (let i = 0; i < length; i++) {
    const v = signal[start + i]! * w[i]!;
    re += v * c;
    im -= v * s;
    wsum += w[i]!;
    const nc = c * cd - s * sd;
    s = s * cd + c * sd;
    c = nc;
    if ((i & 1023) === 1023) {
      const m = Math.hypot(c, s);
      c /= m;
      s /= m;
    }
  }
  return (2 * Math.hypot(re, im)) / wsum;
}

/** In-place iterative radix-2 complex FFT (n a power of two). */
function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      let t = re[i]!;
      re[i] = re[j]!;
      re[j] = t;
      t = im[i]!;
      im[i] = im[j]!;
      im[j] = t;
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    const wr = Math.cos(ang);
    const wi = Math.sin(ang);
    const halfLen = len >> 1;
    for (let i = 0; i < n; i += len) {
      let cr = 1;
      let ci = 0;
      for (let k = 0; k < halfLen; k++) {
        const a = i + k;
        const b = a + halfLen;
        const xr = re[b]! * cr - im[b]! * ci;
        const xi = re[b]! * ci + im[b]! * cr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a] = re[a]! + xr;
        im[a] = im[a]! + xi;
        const ncr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = ncr;
      }
    }
  }
}

/**
 * Amplitude spectrum (Kaiser-windowed) of `signal[start .. start+n)`, n a power of two:
 * bin k is at k·rate/n Hz and reads A for a sine of amplitude A centred on the bin.
 */
export function amplitudeSpectrum(signal: Samples, start: number, n: number): Float64Array {
  if (n & (n - 1)) throw new RangeError('FFT length must be a power of two');
  const w = kaiserWindow(n);
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  let wsum = 0;
  for (let i = 0; i < n; i++) {
    re[i] = signal[start + i]! * w[i]!;
    wsum += w[i]!;
  }
  fft(re, im);
  const half = n >> 1;
  const mag = new Float64Array(half + 1);
  for (let k = 0; k <= half; k++) mag[k] = (2 * Math.hypot(re[k]!, im[k]!)) / wsum;
  return mag;
}

export interface SpurResult {
  /** Largest component outside the excluded band, relative to `reference`, dB. */
  levelDb: number;
  freq: number;
}

/**
 * Strongest spectral component of `signal[start .. start+n)` outside `excludeHz` ± `guardHz`,
 * relative to amplitude `reference` (dB). The peak is refined between bins so the window's
 * scalloping does not flatter the result.
 */
export function worstSpur(signal: Samples, sampleRate: number, start: number, n: number, reference: number, excludeHz: number[] = [], guardHz?: number): SpurResult {
  const mag = amplitudeSpectrum(signal, start, n);
  const binHz = sampleRate / n;
  const guard = guardHz ?? 16 * binHz;
  let best = -1;
  let bestK = 0;
  for (let k = 1; k < mag.length; k++) {
    const f = k * binHz;
    if (excludeHz.some((e) => Math.abs(f - e) <= guard)) continue;
    if (mag[k]! > best) {
      best = mag[k]!;
      bestK = k;
    }
  }
  let peak = best;
  let peakF = bestK * binHz;
  for (const d of [-0.5, -0.25, 0.25, 0.5]) {
    const f = (bestK + d) * binHz;
    const a = toneAmplitude(signal, sampleRate, f, start, n);
    if (a > peak) {
      peak = a;
      peakF = f;
    }
  }
  return { levelDb: 20 * Math.log10(Math.max(peak, 1e-300) / reference), freq: peakF };
}

/** Cross-correlation lag (test delayed by `lag` relative to ref) in [minLag, maxLag] maximising normalised correlation. */
export function bestLag(ref: Samples, test: Samples, minLag: number, maxLag: number): { lag: number; correlation: number } {
  let bestL = minLag;
  let bestC = -Infinity;
  for (let lag = minLag; lag <= maxLag; lag++) {
    const c = correlation(ref, test, lag);
    if (c > bestC) {
      bestC = c;
      bestL = lag;
    }
  }
  return { lag: bestL, correlation: bestC };
}

/** Normalised correlation of ref[i] with test[i + lag] over their overlap. */
export function correlation(ref: Samples, test: Samples, lag: number): number {
  const from = Math.max(0, -lag);
  const to = Math.min(ref.length, test.length - lag);
  let xy = 0;
  let xx = 0;
  let yy = 0;
  for (let i = from; i < to; i++) {
    const x = ref[i]!;
    const y = test[i + lag]!;
    xy += x * y;
    xx += x * x;
    yy += y * y;
  }
  return xx > 0 && yy > 0 ? xy / Math.sqrt(xx * yy) : 0;
}

/**
 * SNR (dB) of `test` against `ref` after aligning by `lag` (test[i + lag] ≈ ref[i]), over
 * ref[from .. to). The gain is not fitted: a level error counts as noise.
 */
export function snrDb(ref: Samples, test: Samples, lag: number, from = 0, to = ref.length): number {
  let sig = 0;
  let err = 0;
  for (let i = from; i < to; i++) {
    const j = i + lag;
    if (j < 0 || j >= test.length) continue;
    const x = ref[i]!;
    const d = test[j]! - x;
    sig += x * x;
    err += d * d;
  }
  return 10 * Math.log10(sig / Math.max(err, 1e-30));
}

export interface ResamplerQuality {
  inRate: number;
  outRate: number;
  tapsPerPhase: number;
  /** Tones checked in the passband (≤ passband × lower Nyquist). */
  passbandTonesHz: number[];
  /** Largest |gain − 1| over the passband tones, dB. */
  passbandDeviationDb: number;
  /** Worst image/alias/spurious level relative to the tone, over the passband tones, dB (negative). */
  worstSpurDb: number;
  /** Downsampling only: tones above the output Nyquist, and the worst level of what they leave behind, dB. */
  stopbandTonesHz: number[];
  worstAliasDb: number | undefined;
  /** min(−worstSpurDb, −worstAliasDb): the rejection figure, dB. */
  rejectionDb: number;
}

const FFT_N = 32768;
const TEST_AMPLITUDE = 16384;

function tone(rate: number, freq: number, frames: number): Float64Array {
  // Float samples on the [−1, 1] scale (Resampler scales non-Int16 input by 32768).
  const x = new Float64Array(frames);
  const a = TEST_AMPLITUDE / 32768;
  const w = (2 * Math.PI * freq) / rate;
  for (let i = 0; i < frames; i++) x[i] = a * Math.sin(w * i + 0.3);
  return x;
}

function runTone(inRate: number, outRate: number, freq: number, opts: ResamplerOptions): { out: Float64Array; start: number } {
  const r = new Resampler(inRate, outRate, opts);
  const settleOut = Math.ceil((r.taps * outRate) / inRate) + 32;
  const outFrames = FFT_N + 2 * settleOut;
  const inFrames = Math.ceil((outFrames * inRate) / outRate);
  const x = tone(inRate, freq, inFrames);
  const a = r.processFloat(x);
  const b = r.flushFloat();
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return { out, start: settleOut };
}

/**
 * Measures passband flatness and image/alias rejection of `new Resampler(inRate, outRate, opts)`
 * with pure tones (mono), as the tests assert and the benchmark reports.
 */
export function measureResampler(inRate: number, outRate: number, opts: ResamplerOptions = {}): ResamplerQuality {
  const passband = opts.passband ?? 0.9;
  const lowerNyq = Math.min(inRate, outRate) / 2;
  const edge = passband * lowerNyq;
  const passTones: number[] = [];
  for (const f of [100, 440, 1000, 2500, 0.25, 0.5, 0.7, 0.8, 0.85, 0.9]) {
    const hz = f < 1 ? Math.round(f * lowerNyq * 10) / 10 : f;
    if (hz <= edge && !passTones.includes(hz)) passTones.push(hz);
  }
  passTones.sort((a, b) => a - b);
  const taps = new Resampler(inRate, outRate, opts).taps;
  let dev = 0;
  let spur = -Infinity;
  for (const f of passTones) {
    const { out, start } = runTone(inRate, outRate, f, opts);
    const amp = toneAmplitude(out, outRate, f, start, FFT_N);
    dev = Math.max(dev, Math.abs(20 * Math.log10(amp / TEST_AMPLITUDE)));
    spur = Math.max(spur, worstSpur(out, outRate, start, FFT_N, TEST_AMPLITUDE, [f]).levelDb);
  }
  const stopTones: number[] = [];
  let alias: number | undefined;
  if (outRate < inRate) {
    const nyqOut = outRate / 2;
    const nyqIn = inRate / 2;
    for (const f of [1.01, 1.05, 1.1, 1.25, 1.5, 2, 2.5]) {
      const hz = Math.round(f * nyqOut);
      if (hz < nyqIn * 0.98) stopTones.push(hz);
    }
    stopTones.push(Math.round(nyqIn * 0.95));
    for (const f of stopTones) {
      const { out, start } = runTone(inRate, outRate, f, opts);
      const level = worstSpur(out, outRate, start, FFT_N, TEST_AMPLITUDE, []).levelDb;
      alias = alias === undefined ? level : Math.max(alias, level);
    }
  }
  return {
    inRate,
    outRate,
    tapsPerPhase: taps,
    passbandTonesHz: passTones,
    passbandDeviationDb: dev,
    worstSpurDb: spur,
    stopbandTonesHz: stopTones,
    worstAliasDb: alias,
    rejectionDb: -Math.max(spur, alias ?? -Infinity),
  };
}

/**
 * Speed of one mono stream in multiples of real time: `seconds` of noise-like 16-bit input fed
 * in `chunkMs` chunks through process() and flush(). Best of `repeats` runs.
 */
export function measureResamplerSpeed(inRate: number, outRate: number, seconds = 5, chunkMs = 20, repeats = 3, opts: ResamplerOptions = {}): number {
  const frames = Math.round(inRate * seconds);
  const x = new Int16Array(frames);
  let seed = 12345;
  for (let i = 0; i < frames; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    x[i] = ((seed >>> 16) & 0x7fff) - 16384 + Math.round(8000 * Math.sin(i * 0.05));
  }
  const chunk = Math.max(1, Math.round((inRate * chunkMs) / 1000));
  let best = Infinity;
  for (let rep = 0; rep < repeats; rep++) {
    const r = new Resampler(inRate, outRate, opts);
    const t0 = performance.now();
    for (let at = 0; at < frames; at += chunk) r.process(x.subarray(at, at + chunk));
    r.flush();
    best = Math.min(best, performance.now() - t0);
  }
  return (seconds * 1000) / best;
}
