/**
 * Deterministic test signals (no randomness that changes between runs).
 */

/** Small seeded PRNG (mulberry32) → [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function clip(v: number): number {
  const r = Math.round(v);
  return r > 32767 ? 32767 : r < -32768 ? -32768 : r;
}

/** Sum of sines (amplitudes on the Int16 scale), mono. */
export function tones(rate: number, frames: number, parts: Array<{ hz: number; amp: number; phase?: number }>): Int16Array {
  const x = new Int16Array(frames);
  for (let i = 0; i < frames; i++) {
    let v = 0;
    for (const p of parts) v += p.amp * Math.sin((2 * Math.PI * p.hz * i) / rate + (p.phase ?? 0));
    x[i] = clip(v);
  }
  return x;
}

/** Linear chirp from f0 to f1 Hz over the signal. */
export function chirp(rate: number, frames: number, f0: number, f1: number, amp: number): Int16Array {
  const x = new Int16Array(frames);
  const dur = frames / rate;
  for (let i = 0; i < frames; i++) {
    const t = i / rate;
    x[i] = clip(amp * Math.sin(2 * Math.PI * (f0 * t + ((f1 - f0) * t * t) / (2 * dur))));
  }
  return x;
}

/** White noise (uniform), seeded. */
export function noise(frames: number, amp: number, seed = 1): Int16Array {
  const r = prng(seed);
  const x = new Int16Array(frames);
  for (let i = 0; i < frames; i++) x[i] = clip((r() * 2 - 1) * amp);
  return x;
}

/**
 * Speech-like signal: a harmonic series on a gliding pitch (100–180 Hz) shaped by three formant
 * bumps, with a syllable-rate envelope and short noise bursts (fricatives) between syllables.
 * All harmonics stay below `maxHz`.
 */
export function speechLike(rate: number, frames: number, seed = 7, maxHz = Math.min(rate / 2 - 500, 7000)): Int16Array {
  const r = prng(seed);
  const x = new Int16Array(frames);
  let phase = 0;
  for (let i = 0; i < frames; i++) {
    const t = i / rate;
    const f0 = 140 + 40 * Math.sin(2 * Math.PI * 0.9 * t);
    phase += (2 * Math.PI * f0) / rate;
    let v = 0;
    for (let h = 1; h * f0 < maxHz; h++) {
      const fh = h * f0;
      const g = Math.exp(-((fh - 700) ** 2) / 80_000) + 0.6 * Math.exp(-((fh - 1800) ** 2) / 180_000) + 0.3 * Math.exp(-((fh - 2900) ** 2) / 320_000) + 0.02;
      v += g * Math.sin(h * phase);
    }
    const syl = Math.sin(2 * Math.PI * 3.5 * t);
    const voiced = syl > 0 ? syl : 0;
    const fric = syl < -0.6 ? (r() * 2 - 1) * 1500 : 0;
    x[i] = clip(5000 * v * voiced + fric);
  }
  return x;
}

/** Interleaves two mono signals of equal length. */
export function interleave(left: Int16Array, right: Int16Array): Int16Array {
  const out = new Int16Array(left.length * 2);
  for (let i = 0; i < left.length; i++) {
    out[2 * i] = left[i]!;
    out[2 * i + 1] = right[i]!;
  }
  return out;
}

/** Channel `c` of an interleaved signal. */
export function channel(x: Int16Array, channels: number, c: number): Int16Array {
  const out = new Int16Array(Math.floor(x.length / channels));
  for (let i = 0; i < out.length; i++) out[i] = x[i * channels + c]!;
  return out;
}

/** A tone with 10 ms fades (a member "speaking"), mono. */
export function tone(hz: number, ms: number, rate = 48_000, amplitude = 8000): Int16Array {
  const n = Math.round((rate * ms) / 1000);
  const fade = Math.round(rate / 100);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.min(1, i / fade, (n - 1 - i) / fade);
    out[i] = Math.round(amplitude * g * Math.sin((2 * Math.PI * hz * i) / rate));
  }
  return out;
}
