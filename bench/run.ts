/**
 * `npm run bench`: the project's performance figures, each beside a baseline measured in the same
 * run (see bench/README.md).
 *
 *   npm run bench                         everything (a few minutes)
 *   npm run bench -- --only uplink,downlink
 *   npm run bench -- --quick              tiny sizes (smoke test; figures not meaningful)
 *   npm run bench -- --json               one JSON object on stdout (progress on stderr)
 *   npm run bench -- --long               adds the real-time 30-minute memory soak through the bot
 *   npm run bench -- --long-minutes 5     the same soak, shorter (implies --long)
 *   npm run bench -- --dave off           loopback voice without DAVE (default v1, as Discord requires)
 *
 * Writes nothing outside a fresh temp directory (the markdown table; the bot's data dirs of the
 * latency/scale sections are temp dirs removed afterwards).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { benchDownlink } from './downlink.js';
import { benchLatency } from './latency.js';
import type { BenchOptions } from './lib/options.js';
import { judge, machine, machineLine, markdownTable, textTable, type SectionResult } from './lib/report.js';
import { gcAvailable } from './lib/stats.js';
import { benchResampler } from './resampler.js';
import { benchScale } from './scale.js';
import { benchUplink } from './uplink.js';

export const SECTIONS = ['uplink', 'downlink', 'resampler', 'latency', 'scale'] as const;
export type SectionName = (typeof SECTIONS)[number];

export interface RunArgs {
  quick: boolean;
  json: boolean;
  long: boolean;
  longMinutes: number;
  dave: 'off' | 'v1';
  only: SectionName[];
}

const USAGE = `usage: npm run bench -- [--quick] [--json] [--long] [--long-minutes N] [--dave off|v1] [--only ${SECTIONS.join(',')}]`;

export function parseArgs(argv: readonly string[]): RunArgs {
  const args: RunArgs = { quick: false, json: false, long: false, longMinutes: 30, dave: 'v1', only: [...SECTIONS] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const name = a.split('=')[0];
    if (name === '--quick') args.quick = true;
    else if (name === '--json') args.json = true;
    else if (name === '--long') args.long = true;
    else if (name === '--long-minutes') {
      const v = Number(value());
      if (!Number.isFinite(v) || v < 1 || v > 24 * 60) throw new Error(`--long-minutes must be a number of minutes (1–1440)`);
      args.long = true;
      args.longMinutes = v;
    }
    else if (name === '--dave') {
      const v = value();
      if (v !== 'off' && v !== 'v1') throw new Error(`--dave must be off or v1, got ${v}`);
      args.dave = v;
    } else if (name === '--only') {
      const list = value()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const bad = list.filter((s) => !(SECTIONS as readonly string[]).includes(s));
      if (bad.length || list.length === 0) throw new Error(`--only takes a comma-separated list of ${SECTIONS.join(', ')}; got ${bad.join(', ') || 'nothing'}`);
      args.only = SECTIONS.filter((s) => list.includes(s));
    } else if (name === '--help' || name === '-h') throw new Error(USAGE);
    else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  return args;
}

export interface BenchReport {
  machine: ReturnType<typeof machine>;
  startedAt: string;
  durationSec: number;
  options: RunArgs;
  gcBetweenRuns: boolean;
  sections: SectionResult[];
  /** Sections that threw (with the error). */
  failures: Array<{ section: string; error: string }>;
  markdownPath: string;
  markdown: string;
}

export async function runBench(args: RunArgs, progress: (m: string) => void): Promise<BenchReport> {
  const started = Date.now();
  const m = machine();
  const opts: BenchOptions = { quick: args.quick, long: args.long, longMinutes: args.longMinutes, progress };
  const runners: Record<SectionName, () => Promise<SectionResult>> = {
    uplink: () => benchUplink(opts),
    downlink: () => benchDownlink(opts),
    resampler: () => benchResampler(opts),
    latency: () => benchLatency({ ...opts, dave: args.dave }),
    scale: () => benchScale({ ...opts, dave: args.dave }),
  };
  const sections: SectionResult[] = [];
  const failures: BenchReport['failures'] = [];
  const gc = gcAvailable();
  for (const name of args.only) {
    const t0 = performance.now();
    try {
      sections.push(await runners[name]());
    } catch (err) {
      const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
      failures.push({ section: name, error: msg });
      sections.push({ name, rows: [], notes: [], notMeasured: [`${name} failed: ${msg}`] });
    }
    progress(`${name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'voxta-discord-bench-'));
  const markdownPath = path.join(dir, 'performance.md');
  const md = [
    `Measured with \`npm run bench${args.quick ? ' -- --quick' : ''}\` on ${new Date(started).toISOString().slice(0, 10)}: ${machineLine(m)}.`,
    '',
    markdownTable(sections),
    '',
    'Times are medians of repeated runs (min–max in brackets); ratio = ours ÷ baseline of the medians, both measured in the same run, interleaved (in brackets: the range of the per-round ratios).',
    '',
    ...sections.flatMap((s) => s.notes.map((n) => `- ${n}`)),
    '',
  ].join('\n');
  writeFileSync(markdownPath, md);
  return {
    machine: m,
    startedAt: new Date(started).toISOString(),
    durationSec: (Date.now() - started) / 1000,
    options: args,
    gcBetweenRuns: gc,
    sections,
    failures,
    markdownPath,
    markdown: md,
  };
}

async function main(): Promise<number> {
  let args: RunArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const progress = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
  // The simulators log through the process-wide logger (stdout): keep it quiet, and route
  // whatever they still print to stderr so stdout carries only the table or the one JSON object.
  process.env.LOG_LEVEL ??= 'warn';
  const stdoutWrite = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => (process.stderr.write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest)) as typeof process.stdout.write;
  let report: BenchReport;
  try {
    report = await runBench(args, progress);
  } finally {
    process.stdout.write = stdoutWrite;
  }
  if (args.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
  } else {
    const out: string[] = [];
    out.push(`Machine: ${machineLine(report.machine)}`);
    if (args.quick) out.push('QUICK MODE: tiny sizes, the figures are not meaningful.');
    out.push('');
    out.push(textTable(report.sections));
    out.push('');
    out.push('Times: median (min–max) of repeated runs; ratio = ours ÷ baseline of the medians, measured in the same run, interleaved (in brackets: range of the per-round ratios).');
    for (const s of report.sections) for (const n of s.notes) out.push(`- ${n}`);
    const missed = report.sections.flatMap((s) => s.rows.filter((r) => judge(r) === false).map((r) => r.figure));
    out.push('');
    out.push(missed.length ? `Targets missed: ${missed.join('; ')}` : 'All judged targets met.');
    out.push(`Markdown table: ${report.markdownPath}`);
    process.stdout.write(out.join('\n') + '\n');
  }
  return report.failures.length ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.dirname, 'run.ts')) {
  const code = await main();
  // Simulators, sockets and timers of the latency/scale sections must not keep the process alive.
  process.exit(code);
}
