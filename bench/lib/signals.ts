/**
 * Test material for the benchmarks: a deterministic speech-like signal (espeak-ng is not
 * installed here), Discord-like Opus packets made from it, and a TTS-like WAV file.
 *
 * The signal is what matters to a codec's cost: voiced syllables (a glottal-like harmonic series
 * whose pitch glides between ~90 and ~200 Hz, shaped by three moving formants), short pauses
 * between syllables, fricative noise bursts, and a little background noise. Opus spends its
 * effort very differently on pure tones, on silence and on speech, so tones would flatter or
 * penalise the codecs in ways real users never see.
 */
import { OpusEncoder, type OpusApplication } from '../../src/audio/opus.js';

/** Small deterministic PRNG (mulberry32): the same material on every run and machine. */
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

interface Syllable {
  start: number;
  len: number;
  f1: number;
  f2: number;
  fricative: boolean;
}

/**
 * Mono speech-like signal at `rate`, `seconds` long, peak about `peak` (int16 scale).
 */
export function speechLike(rate: number, seconds: number, seed = 1, peak = 12000): Int16Array {
  const n = Math.round(rate * seconds);
  const rnd = prng(seed);
  // Syllable plan: 120–300 ms voiced, 30–120 ms gaps, every few syllables a longer pause.
  const syl: Syllable[] = [];
  let t = Math.round(rate * 0.02);
  let k = 0;
  while (t < n) {
    const len = Math.round(rate * (0.12 + 0.18 * rnd()));
    syl.push({ start: t, len, f1: 350 + 500 * rnd(), f2: 900 + 1400 * rnd(), fricative: rnd() < 0.35 });
    t += len + Math.round(rate * (0.03 + 0.09 * rnd()));
    if (++k % 5 === 0) t += Math.round(rate * 0.25 * rnd());
  }
  const out = new Float64Array(n);
  const nyq = rate / 2;
  const maxHarm = 40;
  const phases = new Float64Array(maxHarm + 1);
  let s = 0;
  let hp = 0; // one-pole high-pass state for fricatives
  for (let i = 0; i < n; i++) {
    while (s < syl.length - 1 && i >= syl[s]!.start + syl[s]!.len) s++;
    const cur = syl[s]!;
    const into = i - cur.start;
    let env = 0;
    if (into >= 0 && into < cur.len) {
      const x = into / cur.len;
      env = Math.sin(Math.PI * x) ** 0.6; // fast-ish onset, smooth decay
    }
    const time = i / rate;
    const f0 = 140 + 45 * Math.sin(2 * Math.PI * 0.55 * time) + 18 * Math.sin(2 * Math.PI * 2.3 * time + 1);
    let v = 0;
    if (env > 0) {
      for (let h = 1; h <= maxHarm; h++) {
        const f = h * f0;
        if (f > nyq * 0.95 || f > 7800) break;
        phases[h] = (phases[h]! + (2 * Math.PI * f) / rate) % (2 * Math.PI);
        // Spectral tilt (−6 dB/oct) times three formant resonances.
        const a = (1 / h) * (1 + 3 / (1 + ((f - cur.f1) / 120) ** 2) + 2 / (1 + ((f - cur.f2) / 180) ** 2) + 0.8 / (1 + ((f - 2700) / 250) ** 2));
        v += a * Math.sin(phases[h]!);
      }
      v *= env * 0.22;
    }
    const white = rnd() * 2 - 1;
    hp = 0.6 * hp + white;
    let fric = 0;
    if (cur.fricative && into >= 0 && into < cur.len * 0.3) fric = (white - hp * 0.4) * 0.25 * Math.sin((Math.PI * into) / (cur.len * 0.3));
    out[i] = v + fric + white * 0.002;
  }
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(out[i]!));
  const g = max > 0 ? peak / max : 0;
  const pcm = new Int16Array(n);
  for (let i = 0; i < n; i++) pcm[i] = Math.round(out[i]! * g);
  return pcm;
}

/** Mono → interleaved stereo with a hint of independent noise on the right (a real microphone path). */
export function toStereo(mono: Int16Array, seed = 7): Int16Array {
  const rnd = prng(seed);
  const out = new Int16Array(mono.length * 2);
  for (let i = 0; i < mono.length; i++) {
    out[2 * i] = mono[i]!;
    out[2 * i + 1] = Math.max(-32768, Math.min(32767, mono[i]! + Math.round((rnd() - 0.5) * 8)));
  }
  return out;
}

export interface DiscordPacketsOptions {
  seconds: number;
  seed?: number;
  bitrate?: number;
  application?: OpusApplication;
}

/**
 * What a Discord client sends for one speaker: 48 kHz stereo, 20 ms frames, ~64 kb/s. The
 * application is 'voip' (WebRTC's default, which Discord's client is built on).
 */
export function discordPackets(opts: DiscordPacketsOptions): Buffer[] {
  const rate = 48000;
  const stereo = toStereo(speechLike(rate, opts.seconds, opts.seed ?? 1));
  const enc = new OpusEncoder(rate, 2, opts.application ?? 'voip', { bitrate: opts.bitrate ?? 64000 });
  const frame = 960 * 2;
  const packets: Buffer[] = [];
  try {
    for (let at = 0; at + frame <= stereo.length; at += frame) packets.push(enc.encode(stereo.subarray(at, at + frame)));
  } finally {
    enc.destroy();
  }
  return packets;
}

/** A canonical 44-byte-header PCM WAV file (what TTS servers usually return). */
export function wavFile(pcm: Int16Array, sampleRate: number, channels = 1): Buffer {
  const data = pcm.length * 2;
  const b = Buffer.alloc(44 + data);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(36 + data, 4);
  b.write('WAVE', 8, 'ascii');
  b.write('fmt ', 12, 'ascii');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(sampleRate, 24);
  b.writeUInt32LE(sampleRate * channels * 2, 28);
  b.writeUInt16LE(channels * 2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36, 'ascii');
  b.writeUInt32LE(data, 40);
  Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength).copy(b, 44);
  return b;
}

/** A tone of `ms` with 5 ms fades (simulator members "speaking" a burst). */
export function toneBurst(rate: number, hz: number, ms: number, amplitude = 9000): Int16Array {
  const n = Math.round((rate * ms) / 1000);
  const fade = Math.max(1, Math.round(rate / 200));
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.min(1, i / fade, (n - 1 - i) / fade);
    out[i] = Math.round(amplitude * g * Math.sin((2 * Math.PI * hz * i) / rate));
  }
  return out;
}
