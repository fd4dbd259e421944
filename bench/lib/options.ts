/** Options every benchmark receives from bench/run.ts. */
export interface BenchOptions {
  /** Tiny sizes, few repeats: proves the benchmark works (smoke test), figures are not meaningful. */
  quick: boolean;
  /** Real-time 30-minute conversation through the bot (scale section only). */
  long: boolean;
  /** Progress messages (stderr). */
  progress(message: string): void;
}
