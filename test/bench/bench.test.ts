/**
 * Smoke test of `npm run bench`: every benchmark runs in its tiny "quick" mode and produces
 * well-formed figures. Nothing here asserts a time, a ratio or a target (machines are noisy;
 * the benchmark reports those, it does not gate on them).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { burstTrain, findOnsets } from '../../bench/latency.js';
import { LinearResampler, decimate3StereoToMono } from '../../bench/lib/naive.js';
import { judge, medianOf, type Row, type SectionResult } from '../../bench/lib/report.js';
import { interleave, percentile, stat } from '../../bench/lib/stats.js';
import { parseArgs, runBench, type SectionName } from '../../bench/run.js';
import { REPO_ROOT } from '../harness/bot-process.js';

const quiet = () => {};

async function quick(name: SectionName): Promise<SectionResult> {
  const report = await runBench({ quick: true, json: true, long: false, longMinutes: 30, dave: 'v1', only: [name] }, quiet);
  expect(report.failures).toEqual([]);
  expect(report.sections).toHaveLength(1);
  expect(existsSync(report.markdownPath)).toBe(true);
  expect(report.markdownPath.startsWith(tmpdir())).toBe(true);
  return report.sections[0]!;
}

function num(row: Row, field: 'ours' | 'baseline'): number {
  const v = medianOf(row[field]);
  expect(v, `${row.figure} ${field}`).toBeTypeOf('number');
  expect(Number.isFinite(v), `${row.figure} ${field} = ${v}`).toBe(true);
  return v!;
}

function row(section: SectionResult, figure: RegExp): Row {
  const r = section.rows.find((x) => figure.test(x.figure));
  expect(r, `row ${figure} in ${section.rows.map((x) => x.figure).join(' | ')}`).toBeDefined();
  return r!;
}

describe('bench helpers', () => {
  it('parses the command line and refuses unknown options', () => {
    expect(parseArgs([])).toMatchObject({ quick: false, json: false, long: false, dave: 'v1', only: ['uplink', 'downlink', 'resampler', 'latency', 'scale'] });
    expect(parseArgs(['--quick', '--json', '--only', 'scale,uplink', '--dave=off'])).toMatchObject({ quick: true, json: true, dave: 'off', only: ['uplink', 'scale'] });
    expect(parseArgs(['--long-minutes', '5'])).toMatchObject({ long: true, longMinutes: 5 });
    expect(() => parseArgs(['--long-minutes', 'x'])).toThrow(/--long-minutes/);
    expect(() => parseArgs(['--only', 'nope'])).toThrow(/--only/);
    expect(() => parseArgs(['--fast'])).toThrow(/unknown option/);
  });

  it('statistics: median, min/max, nearest-rank percentile; interleaving alternates the order', async () => {
    expect(stat([5, 1, 3])).toEqual({ median: 3, min: 1, max: 5, n: 3 });
    expect(stat([4, 1, 3, 2]).median).toBe(2.5);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95)).toBe(10);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50)).toBe(5);
    const order: string[] = [];
    const samples = await interleave(
      [
        { name: 'a', run: () => order.push('a') },
        { name: 'b', run: () => order.push('b') },
      ],
      { warmup: 1, rounds: 3 },
    );
    expect(order).toEqual(['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b']);
    expect(samples.get('a')).toHaveLength(3);
  });

  it('the baselines do what typical bots do: every third frame, straight lines between samples', () => {
    const stereo = Int16Array.from([10, 20, 99, 99, 99, 99, 30, 50, 99, 99, 99, 99]);
    expect([...decimate3StereoToMono(stereo)]).toEqual([15, 40]);
    // Linear 1:2 up, mono duplicated to stereo, chunking does not matter.
    const r1 = new LinearResampler(24000, 48000, 1, true);
    const whole = r1.process(Int16Array.from([0, 100, 200, 300]));
    expect([...whole]).toEqual([0, 0, 50, 50, 100, 100, 150, 150, 200, 200, 250, 250]);
    const r2 = new LinearResampler(24000, 48000, 1, true);
    const parts = [...r2.process(Int16Array.from([0, 100])), ...r2.process(Int16Array.from([200, 300]))];
    expect(parts).toEqual([...whole]);
  });

  it('finds every burst onset of the latency test signal', () => {
    const train = burstTrain(5);
    // Decimate the 48 kHz train to 16 kHz (the Voxta stream's rate) and look for the bursts.
    const pcm16 = new Int16Array(train.pcm.length / 3);
    for (let i = 0; i < pcm16.length; i++) pcm16[i] = train.pcm[3 * i]!;
    const onsets = findOnsets(pcm16);
    expect(onsets).toHaveLength(5);
    onsets.forEach((s, k) => expect(Math.floor((s * 3) / 960)).toBe(train.onsetPackets[k]));
    expect(train.endPacket).toBeGreaterThan(train.onsetPackets[4]!);
  });
});

describe('each benchmark runs in quick mode', () => {
  it('uplink: ours and the opusscript baseline both produce a CPU figure', async () => {
    const s = await quick('uplink');
    const r = row(s, /^Uplink CPU per speaker-second/);
    expect(num(r, 'ours')).toBeGreaterThan(0);
    expect(num(r, 'baseline')).toBeGreaterThan(0);
    expect(Number.isFinite(r.ratio)).toBe(true);
    expect(judge(r)).toBeTypeOf('boolean');
  }, 60_000);

  it('downlink: the deployed path, the forced 48 kHz path, the in-memory pair and the prism Raw baseline', async () => {
    const s = await quick('downlink');
    expect(s.rows).toHaveLength(3);
    for (const r of s.rows) {
      expect(num(r, 'ours')).toBeGreaterThan(0);
      expect(num(r, 'baseline')).toBeGreaterThan(0);
      expect(Number.isFinite(r.ratio)).toBe(true);
    }
  }, 60_000);

  it('resampler: quality and speed for every rate pair, the linear baseline measured alongside', async () => {
    const s = await quick('resampler');
    for (const pair of ['16k→48k', '22.05k→48k', '24k→48k', '44.1k→48k', '48k→16k']) {
      const rej = row(s, new RegExp(`^${pair} image/alias rejection`));
      const dev = row(s, new RegExp(`^${pair} passband deviation`));
      const speed = row(s, new RegExp(`^${pair} speed`));
      // The measurement tells a real filter from none at all.
      expect(num(rej, 'ours')).toBeGreaterThan(num(rej, 'baseline') + 40);
      expect(num(dev, 'ours')).toBeGreaterThanOrEqual(0);
      expect(num(speed, 'ours')).toBeGreaterThan(0);
      expect(num(speed, 'baseline')).toBeGreaterThan(0);
    }
  }, 90_000);

  it('latency: the simulators observe reply and speech latencies through the real bot', async () => {
    const s = await quick('latency');
    expect(s.notMeasured ?? []).toEqual([]);
    const samples = (s.details as { samples: { downlinkMs: number[]; uplinkMs: number[]; speechEndToReplyMs: number[] } }).samples;
    expect(samples.downlinkMs.length).toBeGreaterThanOrEqual(3);
    expect(samples.uplinkMs).toHaveLength(4);
    expect(samples.speechEndToReplyMs).toHaveLength(1);
    for (const v of [...samples.downlinkMs, ...samples.uplinkMs, ...samples.speechEndToReplyMs]) expect(v).toBeGreaterThan(0);
  }, 120_000);

  it('scale: bot CPU idle vs busy, memory per text session, compressed memory soak', async () => {
    const s = await quick('scale');
    expect(s.notMeasured ?? []).toEqual([]);
    const cpu = row(s, /^Bot CPU, full-duplex/);
    expect(num(cpu, 'ours')).toBeGreaterThan(0);
    expect(num(cpu, 'baseline')).toBeGreaterThanOrEqual(0);
    num(row(s, /^Memory per idle text session/), 'ours');
    num(row(s, /^Heap\+external growth/), 'ours');
  }, 180_000);
});

describe('npm run bench (CLI)', () => {
  it('prints exactly one JSON object with --json and writes the markdown table to a temp dir', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--json', '--only', 'downlink'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { sections: SectionResult[]; markdownPath: string; machine: { cpu: string; cores: number; node: string } };
    expect(report.sections.map((x) => x.name)).toEqual(['downlink']);
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(path.dirname(path.dirname(report.markdownPath))).toBe(tmpdir());
    const md = readFileSync(report.markdownPath, 'utf8');
    expect(md).toContain('| figure | ours | baseline | ratio | target | met? |');
    expect(md).toContain(report.machine.node);
  }, 90_000);

  it('rejects a bad option with exit code 2', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--only', 'nothing'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--only/);
  }, 40_000);
});
