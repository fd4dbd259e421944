/**
 * Timing and statistics for the benchmarks.
 *
 * Why this shape: the machines these run on are shared and noisy, so a time is never reported
 * alone. Each candidate ("arm") is run repeatedly, interleaved with its baseline in the same
 * process (A B, then B A, then A B …: the order alternates so neither arm always runs on a warmer
 * or colder machine), after a warm-up, with a full GC before every timed run when the runtime
 * allows it. Figures are medians with min/max; ratios are ours ÷ baseline of the medians.
 *
 * CPU time is `process.cpuUsage()` (user + system, all threads of this process, µs resolution):
 * that is what a speaker or a played second costs the machine, whatever else runs on it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface Sample {
  /** CPU time (user + system) of this process during the run, ms. */
  cpuMs: number;
  /** Wall-clock time of the run, ms. */
  wallMs: number;
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stat(values: readonly number[]): Stat {
  if (values.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

/** Nearest-rank percentile (p in 0..100) of the values; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank]!;
}

/** Scales every field of a stat (e.g. ms of CPU per run → ms of CPU per second of audio). */
export function scaleStat(s: Stat, factor: number): Stat {
  return { median: s.median * factor, min: s.min * factor, max: s.max * factor, n: s.n };
}

let gcFn: (() => void) | undefined | null;

/** A full garbage collection, when the runtime lets us have one (V8 flag set at run time). */
export function collectGarbage(): void {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
}

export function gcAvailable(): boolean {
  collectGarbage();
  return typeof gcFn === 'function';
}

function cpuNowMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Times one synchronous or asynchronous run. */
export async function timeRun(fn: () => unknown): Promise<Sample> {
  const c0 = cpuNowMs();
  const t0 = performance.now();
  const r = fn();
  if (r instanceof Promise) await r;
  const wallMs = performance.now() - t0;
  return { cpuMs: cpuNowMs() - c0, wallMs };
}

export interface Arm {
  name: string;
  /** One measured run (all setup that is not part of the measured work happens outside). */
  run(): unknown;
}

export interface InterleaveOptions {
  /** Unmeasured runs of every arm first. */
  warmup: number;
  /** Measured rounds; each round runs every arm once. */
  rounds: number;
}

/**
 * Runs the arms interleaved: round r starts with arm (r mod k) and goes round in order, so with
 * two arms the sequence is A B, B A, A B … Returns each arm's samples in run order.
 */
export async function interleave(arms: readonly Arm[], opts: InterleaveOptions): Promise<Map<string, Sample[]>> {
  for (let w = 0; w < opts.warmup; w++) for (const arm of arms) await arm.run();
  const out = new Map<string, Sample[]>(arms.map((a) => [a.name, []]));
  for (let r = 0; r < opts.rounds; r++) {
    for (let i = 0; i < arms.length; i++) {
      const arm = arms[(r + i) % arms.length]!;
      collectGarbage();
      out.get(arm.name)!.push(await timeRun(() => arm.run()));
    }
  }
  return out;
}

/** Ratio of two medians (NaN-safe). */
export function ratio(ours: Stat, base: Stat): number {
  return base.median > 0 ? ours.median / base.median : NaN;
}

/** Per-round ratios (ours[i] / base[i]) of paired samples: how stable the ratio is. */
export function pairedRatios(ours: readonly number[], base: readonly number[]): Stat {
  const r: number[] = [];
  for (let i = 0; i < Math.min(ours.length, base.length); i++) if (base[i]! > 0) r.push(ours[i]! / base[i]!);
  return stat(r);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
