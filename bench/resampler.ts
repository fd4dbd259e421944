/**
 * Resampler quality and speed: 16, 22.05, 24, 44.1 kHz → 48 kHz and 48 → 16 kHz.
 *
 * Quality (src/audio/quality.ts, the same measurement the unit tests assert): pure tones across
 * the passband (up to 0.9 × the lower Nyquist) and, for downsampling, tones above the output
 * Nyquist; Kaiser-windowed (β 20) spectra of the float output. "Rejection" is the worst image,
 * alias or spurious component relative to the tone; "passband deviation" the largest gain error.
 * The naive linear interpolator goes through the same tones for comparison.
 *
 * Speed: one mono stream of noise-like 16-bit input fed in 20 ms chunks (process + flush), CPU
 * time, × real time = seconds of input ÷ seconds of CPU; interleaved with the streaming linear
 * interpolator on the same chunks.
 */
import { Resampler } from '../src/audio/resampler.js';
import { measureResampler, toneAmplitude, worstSpur } from '../src/audio/quality.js';
import { LinearResampler, linearResampleFloat } from './lib/naive.js';
import type { BenchOptions } from './lib/options.js';
import type { Row, SectionResult } from './lib/report.js';
import { prng } from './lib/signals.js';
import { interleave, pairedRatios, stat, type Stat } from './lib/stats.js';

const PAIRS: ReadonlyArray<[number, number]> = [
  [16000, 48000],
  [22050, 48000],
  [24000, 48000],
  [44100, 48000],
  [48000, 16000],
];

const label = (a: number, b: number) => `${a / 1000}k→${b / 1000}k`;

const FFT_N = 32768;

/** The linear interpolator through the same tones as measureResampler (float, no rounding). */
function measureLinear(inRate: number, outRate: number): { rejectionDb: number; passbandDeviationDb: number } {
  const lowerNyq = Math.min(inRate, outRate) / 2;
  const edge = 0.9 * lowerNyq;
  const pass: number[] = [];
  for (const f of [100, 440, 1000, 2500, 0.25, 0.5, 0.7, 0.8, 0.85, 0.9]) {
    const hz = f < 1 ? Math.round(f * lowerNyq * 10) / 10 : f;
    if (hz <= edge && !pass.includes(hz)) pass.push(hz);
  }
  const stop: number[] = [];
  if (outRate < inRate) {
    for (const f of [1.01, 1.05, 1.1, 1.25, 1.5, 2, 2.5]) {
      const hz = Math.round(f * (outRate / 2));
      if (hz < (inRate / 2) * 0.98) stop.push(hz);
    }
    stop.push(Math.round((inRate / 2) * 0.95));
  }
  const amp = 0.5;
  const run = (freq: number) => {
    const inFrames = Math.ceil(((FFT_N + 256) * inRate) / outRate) + 4;
    const x = new Float64Array(inFrames);
    for (let i = 0; i < inFrames; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / inRate + 0.3);
    return linearResampleFloat(x, inRate, outRate);
  };
  let dev = 0;
  let worst = -Infinity;
  for (const f of pass) {
    const y = run(f);
    const a = toneAmplitude(y, outRate, f, 64, FFT_N);
    dev = Math.max(dev, Math.abs(20 * Math.log10(a / amp)));
    worst = Math.max(worst, worstSpur(y, outRate, 64, FFT_N, amp, [f]).levelDb);
  }
  for (const f of stop) worst = Math.max(worst, worstSpur(run(f), outRate, 64, FFT_N, amp, []).levelDb);
  return { rejectionDb: -worst, passbandDeviationDb: dev };
}

function noiseInput(rate: number, seconds: number): Int16Array {
  const n = Math.round(rate * seconds);
  const rnd = prng(99);
  const x = new Int16Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.round((rnd() - 0.5) * 20000 + 8000 * Math.sin(i * 0.05));
  return x;
}

export async function benchResampler(o: BenchOptions): Promise<SectionResult> {
  const seconds = o.quick ? 0.5 : 20;
  const rounds = o.quick ? 2 : 11;
  const pairs = PAIRS;
  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  for (const [inRate, outRate] of pairs) {
    const name = label(inRate, outRate);
    o.progress(`resampler: ${name} quality (tones) and speed`);
    const q = measureResampler(inRate, outRate);
    const lin = measureLinear(inRate, outRate);
    const x = noiseInput(inRate, seconds);
    const chunk = Math.round(inRate / 50);
    const samples = await interleave(
      [
        {
          name: 'ours',
          run: () => {
            const r = new Resampler(inRate, outRate);
            for (let at = 0; at < x.length; at += chunk) r.process(x.subarray(at, at + chunk));
            r.flush();
          },
        },
        {
          name: 'linear',
          run: () => {
            const r = new LinearResampler(inRate, outRate);
            for (let at = 0; at < x.length; at += chunk) r.process(x.subarray(at, at + chunk));
          },
        },
      ],
      { warmup: 1, rounds },
    );
    const xrt = (name: string): Stat => stat(samples.get(name)!.map((s) => (seconds * 1000) / Math.max(s.cpuMs, 1e-3)));
    const ours = xrt('ours');
    const linear = xrt('linear');
    rows.push(
      {
        section: 'resampler',
        figure: `${name} image/alias rejection`,
        unit: 'dB',
        ours: q.rejectionDb,
        baseline: lin.rejectionDb,
        target: { on: 'ours', op: '>=', value: 100 },
        digits: 1,
      },
      {
        section: 'resampler',
        figure: `${name} passband deviation`,
        unit: 'dB',
        ours: q.passbandDeviationDb,
        baseline: lin.passbandDeviationDb,
        target: { on: 'ours', op: '<=', value: 0.1 },
        digits: 4,
      },
      {
        section: 'resampler',
        figure: `${name} speed`,
        unit: '× real time',
        ours,
        baseline: linear,
        ratio: ours.median / linear.median,
        ratioRange: pairedRatios(
          samples.get('linear')!.map((x) => x.cpuMs),
          samples.get('ours')!.map((x) => x.cpuMs),
        ),
        target: { on: 'ours', op: '>=', value: 100 },
        digits: 0,
      },
    );
    details[name] = { taps: q.tapsPerPhase, passbandTonesHz: q.passbandTonesHz, stopbandTonesHz: q.stopbandTonesHz, worstSpurDb: q.worstSpurDb, worstAliasDb: q.worstAliasDb, kernel: new Resampler(inRate, outRate).kernel };
  }
  return {
    name: 'resampler',
    rows,
    notes: [
      `Resampler: baseline = naive linear interpolation (same tones; same 20 ms chunks for speed). Speed ratio = ours ÷ linear in × real time (${seconds} s mono per run, ${rounds} rounds interleaved, CPU time). Quality on float output, Kaiser β 20 analysis windows, passband to 0.9 × lower Nyquist.`,
    ],
    details,
  };
}
