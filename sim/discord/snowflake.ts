/**
 * Discord snowflakes: 64-bit ids whose top 42 bits are milliseconds since the Discord epoch.
 *
 * Ids are generated like Discord does so that discord.js's `SnowflakeUtil.timestampFrom(id)` and
 * `createdAt` getters give sensible values, and so that ids sort by creation time.
 */
const DISCORD_EPOCH = 1_420_070_400_000n;

export class SnowflakeGenerator {
  private increment = 0n;
  private lastMs = 0n;

  constructor(private readonly workerId = 1n) {}

  next(atMs: number = Date.now()): string {
    let ms = BigInt(atMs);
    // Keep ids strictly increasing even when the clock does not move (or goes back).
    if (ms < this.lastMs) ms = this.lastMs;
    if (ms === this.lastMs) {
      this.increment = (this.increment + 1n) & 0xfffn;
      if (this.increment === 0n) ms += 1n;
    } else {
      this.increment = 0n;
    }
    this.lastMs = ms;
    return (((ms - DISCORD_EPOCH) << 22n) | (this.workerId << 17n) | this.increment).toString();
  }
}

/** Milliseconds since 1970 encoded in a snowflake. */
export function snowflakeTime(id: string): number {
  return Number((BigInt(id) >> 22n) + DISCORD_EPOCH);
}

export function isSnowflake(value: unknown): value is string {
  return typeof value === 'string' && /^\d{15,21}$/.test(value);
}
