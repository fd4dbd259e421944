/**
 * Result rows and their rendering: a plain-text table for the terminal, a markdown table for the
 * README's Performance section, and the JSON object for `--json`.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Stat } from './stats.js';

export type Value = Stat | number | string | undefined;

export interface Target {
  /** Which figure the target applies to. */
  on: 'ours' | 'ratio';
  op: '<=' | '>=';
  value: number;
}

export interface Row {
  /** Benchmark section: uplink, downlink, resampler, latency, scale. */
  section: string;
  figure: string;
  unit: string;
  ours: Value;
  baseline?: Value;
  /** ours ÷ baseline (of the medians). */
  ratio?: number | undefined;
  /** Spread of the per-round ratios (paired interleaved runs), shown beside the ratio. */
  ratioRange?: Stat | undefined;
  target?: Target;
  /** Computed from `target` unless a row sets it (undefined = not judged). */
  met?: boolean | undefined;
  /** Decimals for the numbers of this row. */
  digits?: number;
}

export interface SectionResult {
  name: string;
  rows: Row[];
  /** How the figures were obtained, in a sentence or three (printed below the table). */
  notes: string[];
  /** Everything else worth keeping in the JSON (raw samples, settings). */
  details?: Record<string, unknown>;
  /** Figures that could not be measured, with the reason. */
  notMeasured?: string[];
}

export function medianOf(v: Value): number | undefined {
  if (v === undefined || typeof v === 'string') return undefined;
  return typeof v === 'number' ? v : v.median;
}

export function judge(row: Row): boolean | undefined {
  if (row.met !== undefined) return row.met;
  const t = row.target;
  if (!t) return undefined;
  const x = t.on === 'ratio' ? row.ratio : medianOf(row.ours);
  if (x === undefined || !Number.isFinite(x)) return undefined;
  return t.op === '<=' ? x <= t.value : x >= t.value;
}

function fmtNum(x: number, digits: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && a < 10 ** -digits) return x.toPrecision(2);
  return x.toFixed(digits);
}

export function fmtValue(v: Value, digits = 2): string {
  if (v === undefined) return '—';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return fmtNum(v, digits);
  if (v.n <= 1 || v.min === v.max) return fmtNum(v.median, digits);
  return `${fmtNum(v.median, digits)} (${fmtNum(v.min, digits)}–${fmtNum(v.max, digits)})`;
}

function fmtTarget(row: Row): string {
  const t = row.target;
  if (!t) return '—';
  const op = t.op === '<=' ? '≤' : '≥';
  return t.on === 'ratio' ? `ratio ${op} ${t.value}` : `${op} ${t.value}`;
}

function fmtMet(m: boolean | undefined): string {
  return m === undefined ? '—' : m ? 'yes' : 'NO';
}

export interface TableLine {
  figure: string;
  ours: string;
  baseline: string;
  ratio: string;
  target: string;
  met: string;
}

export function tableLines(rows: readonly Row[]): TableLine[] {
  return rows.map((r) => ({
    figure: `${r.figure}${r.unit ? ` [${r.unit}]` : ''}`,
    ours: fmtValue(r.ours, r.digits),
    baseline: fmtValue(r.baseline, r.digits),
    ratio: r.ratio === undefined ? '—' : r.ratioRange && r.ratioRange.n > 1 ? `${fmtNum(r.ratio, 2)} (${fmtNum(r.ratioRange.min, 2)}–${fmtNum(r.ratioRange.max, 2)})` : fmtNum(r.ratio, 2),
    target: fmtTarget(r),
    met: fmtMet(judge(r)),
  }));
}

const HEAD: TableLine = { figure: 'figure', ours: 'ours', baseline: 'baseline', ratio: 'ratio', target: 'target', met: 'met?' };
const COLS = ['figure', 'ours', 'baseline', 'ratio', 'target', 'met'] as const;

export function textTable(sections: readonly SectionResult[]): string {
  const all = sections.flatMap((s) => tableLines(s.rows));
  const width = Object.fromEntries(COLS.map((c) => [c, Math.max(HEAD[c].length, ...all.map((l) => l[c].length))])) as Record<(typeof COLS)[number], number>;
  const line = (l: TableLine) => COLS.map((c) => l[c].padEnd(width[c])).join(' | ');
  const sep = COLS.map((c) => '-'.repeat(width[c])).join('-+-');
  const out: string[] = [line(HEAD), sep];
  for (const s of sections) {
    out.push(`[${s.name}]`);
    for (const l of tableLines(s.rows)) out.push(line(l));
    for (const m of s.notMeasured ?? []) out.push(`  not measured: ${m}`);
  }
  return out.join('\n');
}

export function markdownTable(sections: readonly SectionResult[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const out = ['| figure | ours | baseline | ratio | target | met? |', '| --- | --- | --- | --- | --- | --- |'];
  for (const s of sections) {
    out.push(`| **${s.name}** | | | | | |`);
    for (const l of tableLines(s.rows)) out.push(`| ${COLS.map((c) => esc(l[c])).join(' | ')} |`);
    for (const m of s.notMeasured ?? []) out.push(`| not measured: ${esc(m)} | | | | | |`);
  }
  return out.join('\n');
}

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  platform: string;
  memoryGiB: number;
  load: number[];
}

export function machine(): Machine {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) cpu = m[1].trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  return {
    cpu,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    load: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}, load average ${m.load.join(' / ')} at start`;
}
