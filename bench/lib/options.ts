/** Options every benchmark receives from bench/run.ts. */
export interface BenchOptions {
  /** Tiny sizes, few repeats: proves the benchmark works (smoke test), figures are not meaningful. */
  quick: boolean;
  /** Real-time conversation through the bot for `longMinutes` (scale section only). */
  long: boolean;
  /** Length of the `--long` soak in minutes (default 30). */
  longMinutes?: number;
  /** Progress messages (stderr). */
  progress(message: string): void;
}
