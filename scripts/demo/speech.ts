/**
 * Speech-like synthetic audio for the demo's members (espeak-ng is not available everywhere).
 *
 * A tiny formant synthesiser: each vowel group of the text becomes a voiced syllable (harmonics of
 * a gliding pitch, weighted by the vowel's formant resonances), consonants become short noise
 * bursts, words are separated by brief dips. It is not intelligible, but it has the rhythm, pitch
 * contour and spectrum of speech, so voice-activity detectors, Opus and barge-in treat it like a
 * person talking (a pure tone would not exercise them the same way). Deterministic: the same text
 * and voice always give the same samples.
 */

export interface SynthVoice {
  /** Mean pitch in Hz (e.g. ~210 for a higher voice, ~120 for a lower one). */
  pitchHz: number;
  /** Formant scale (1 = adult male tract; ~1.15 for a shorter one). */
  formantScale: number;
  /** Syllables per second. */
  rate: number;
  /** Peak amplitude (int16). */
  amplitude: number;
}

export const VOICES = {
  alto: { pitchHz: 205, formantScale: 1.15, rate: 5.2, amplitude: 15000 },
  baritone: { pitchHz: 118, formantScale: 1.0, rate: 4.6, amplitude: 16000 },
  tenor: { pitchHz: 150, formantScale: 1.05, rate: 5.0, amplitude: 15000 },
} satisfies Record<string, SynthVoice>;

/** First three formants (Hz) of a few vowels (Peterson & Barney averages, adult male). */
const FORMANTS: Record<string, [number, number, number]> = {
  a: [730, 1090, 2440],
  e: [530, 1840, 2480],
  i: [270, 2290, 3010],
  o: [570, 840, 2410],
  u: [300, 870, 2240],
  y: [390, 1990, 2550],
};

interface Segment {
  kind: 'vowel' | 'fricative' | 'plosive' | 'gap';
  ms: number;
  formants?: [number, number, number];
  /** Relative loudness (stressed syllables are louder). */
  gain: number;
}

/** Deterministic PRNG (mulberry32) seeded from the text, so runs are reproducible. */
function rng(seedText: string): () => number {
  let seed = 0x9e3779b9;
  for (let i = 0; i < seedText.length; i++) seed = Math.imul(seed ^ seedText.charCodeAt(i), 0x85ebca6b) >>> 0;
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Text → a sequence of syllable-like segments. */
function segmentsOf(text: string, voice: SynthVoice, rand: () => number): Segment[] {
  const syllableMs = 1000 / voice.rate;
  const out: Segment[] = [];
  const words = text.toLowerCase().match(/[a-z']+/g) ?? ['ah'];
  for (const [w, word] of words.entries()) {
    const groups = word.match(/[aeiouy]+|[^aeiouy]+/g) ?? [word];
    let stressed = true;
    for (const g of groups) {
      if (/^[aeiouy]/.test(g)) {
        const f = FORMANTS[g[0]!] ?? FORMANTS.a!;
        out.push({ kind: 'vowel', ms: syllableMs * (0.55 + 0.3 * rand()) * (stressed ? 1.15 : 0.9), formants: f, gain: stressed ? 1 : 0.75 });
        stressed = false;
      } else if (/[szfvhxc]|sh|th/.test(g)) {
        out.push({ kind: 'fricative', ms: 35 + 25 * rand(), gain: 0.18 });
      } else {
        out.push({ kind: 'plosive', ms: 20 + 15 * rand(), gain: 0.25 });
      }
    }
    if (w < words.length - 1) out.push({ kind: 'gap', ms: 25 + 40 * rand(), gain: 0 });
  }
  return out;
}

/** Amplitude of a formant resonance at `hz` (a simple second-order peak). */
function resonance(hz: number, centre: number, bandwidth: number): number {
  const x = (hz - centre) / bandwidth;
  return 1 / (1 + x * x);
}

/**
 * Synthesises `text` as mono 16-bit PCM at `sampleRate`. Questions (ending in "?") rise in pitch
 * at the end; other sentences fall, as speech does.
 */
export function synthesizeSpeech(text: string, voice: SynthVoice, sampleRate = 48_000): Int16Array {
  const rand = rng(`${text}|${voice.pitchHz}`);
  const segments = segmentsOf(text, voice, rand);
  const totalMs = segments.reduce((s, x) => s + x.ms, 0);
  const total = Math.round((totalMs / 1000) * sampleRate);
  const out = new Int16Array(total);
  const question = text.trim().endsWith('?');
  const nyquist = sampleRate / 2;
  let phase = 0;
  let pos = 0;
  let noiseState = 0;
  // Formants glide from one vowel to the next instead of jumping.
  let current: [number, number, number] = [...(segments.find((s) => s.formants)?.formants ?? FORMANTS.a!)];
  for (const seg of segments) {
    const n = Math.round((seg.ms / 1000) * sampleRate);
    const target = seg.formants?.map((f) => f * voice.formantScale) as [number, number, number] | undefined;
    const fade = Math.max(1, Math.round(sampleRate * 0.02));
    for (let i = 0; i < n && pos < total; i++, pos++) {
      const progress = pos / total;
      const edge = Math.min(1, i / fade, (n - 1 - i) / fade);
      let sample = 0;
      if (seg.kind === 'vowel' && target) {
        for (let k = 0; k < 3; k++) current[k] = current[k]! + (target[k]! - current[k]!) * 0.0015;
        // Declination over the sentence, a rise at the end of a question, a little vibrato.
        const contour = question && progress > 0.75 ? 1 + (progress - 0.75) * 1.6 : 1.08 - 0.16 * progress;
        const f0 = voice.pitchHz * contour * (1 + 0.01 * Math.sin((2 * Math.PI * 5 * pos) / sampleRate));
        phase += (2 * Math.PI * f0) / sampleRate;
        if (phase > 2 * Math.PI * 1000) phase -= 2 * Math.PI * 1000;
        // Additive synthesis: glottal harmonics (−6 dB/octave) shaped by three formants.
        for (let h = 1; h * f0 < Math.min(4000, nyquist); h++) {
          const hz = h * f0;
          const envelope = resonance(hz, current[0], 90) + 0.6 * resonance(hz, current[1], 120) + 0.3 * resonance(hz, current[2], 160);
          sample += (envelope / h) * Math.sin(h * phase);
        }
        sample *= 0.55;
      } else if (seg.kind === 'fricative' || seg.kind === 'plosive') {
        // High-passed noise (first difference) for hiss and bursts.
        const white = rand() * 2 - 1;
        sample = white - noiseState;
        noiseState = white;
        if (seg.kind === 'plosive') sample *= Math.exp(-i / (sampleRate * 0.01));
      }
      out[pos] = Math.max(-32767, Math.min(32767, Math.round(sample * voice.amplitude * seg.gain * edge)));
    }
  }
  return out;
}

/** Duration in milliseconds of `pcm` at `sampleRate`. */
export function durationMs(pcm: Int16Array, sampleRate = 48_000): number {
  return (pcm.length / sampleRate) * 1000;
}
