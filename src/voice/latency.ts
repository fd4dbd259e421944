/**
 * A bounded window of latency samples (ms) with percentiles, for stats() and the benchmarks.
 */
export class LatencyRecorder {
  private readonly samples: number[] = [];
  private total = 0;

  constructor(private readonly capacity = 2048) {}

  add(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.total++;
    this.samples.push(ms);
    if (this.samples.length > this.capacity) this.samples.shift();
  }

  /** Samples recorded since the start (the window keeps only the latest `capacity`). */
  get count(): number {
    return this.total;
  }

  /** The samples in the window, oldest first. */
  values(): number[] {
    return [...this.samples];
  }

  /** Nearest-rank percentile of the window (0 when empty). */
  percentile(p: number): number {
    if (this.samples.length === 0) return 0;
    const sorted = [...this.samples].sort((a, b) => a - b);
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[rank]!;
  }
}
