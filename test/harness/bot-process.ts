/**
 * Runs the bot under test exactly as in production: `node --import tsx src/index.ts` in a child
 * process, configured only through environment variables that point at the simulators. Its
 * output is captured line by line so tests can wait for log lines, and it can be killed and
 * restarted on the same DATA_DIR (auto-resume tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { DiscordSim } from '../../sim/discord/index.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface SpawnBotOptions {
  discordSim: DiscordSim;
  voxtaUrl: string;
  /** Reuse a data directory (restart tests); default: a fresh temp dir, removed by `cleanup()`. */
  dataDir?: string;
  /** Extra or overriding environment variables (e.g. DISCORD_GUILD_ID, BARGE_IN). */
  env?: Record<string, string | undefined>;
  /** LOG_LEVEL for the bot (default 'debug', so tests can wait for detailed lines). */
  logLevel?: string;
  /** Echo the bot's output to this process's stderr (default: when BOT_OUTPUT=1). */
  echo?: boolean;
}

export interface BotLogLine {
  stream: 'stdout' | 'stderr';
  line: string;
  at: number;
  /** The parsed pino JSON line, when it is one. */
  json: Record<string, unknown> | undefined;
}

export interface BotExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Variables from the parent's environment the child may see: nothing that configures the bot. */
const INHERITED_ENV = ['PATH', 'HOME', 'TMPDIR', 'TMP', 'TEMP', 'LANG', 'LC_ALL', 'TZ', 'SystemRoot', 'USERPROFILE'];

export class BotProcess {
  readonly lines: BotLogLine[] = [];
  readonly exited: Promise<BotExit>;
  private exitInfo: BotExit | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly child: ChildProcess,
    readonly dataDir: string,
    private readonly ownsDataDir: boolean,
    echo: boolean,
  ) {
    this.exited = new Promise<BotExit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
        this.notify();
      });
    });
    for (const stream of ['stdout', 'stderr'] as const) {
      const source = child[stream];
      if (!source) continue;
      createInterface({ input: source }).on('line', (line) => {
        let json: Record<string, unknown> | undefined;
        if (line.startsWith('{')) {
          try {
            json = JSON.parse(line) as Record<string, unknown>;
          } catch {
            json = undefined;
          }
        }
        this.lines.push({ stream, line, at: Date.now(), json });
        if (echo) process.stderr.write(`[bot ${stream}] ${line}\n`);
        this.notify();
      });
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Exit code and signal once the process has exited. */
  get exit(): BotExit | undefined {
    return this.exitInfo;
  }

  /** All output so far, one string (for failure messages). */
  output(): string {
    return this.lines.map((l) => l.line).join('\n');
  }

  /**
   * Resolves with the first line (past or future) matching `pattern`. Rejects when the process
   * exits first or after `timeoutMs`, quoting the tail of the output.
   */
  waitForLog(pattern: RegExp, timeoutMs = 15_000): Promise<BotLogLine> {
    return this.waitForLine((l) => pattern.test(l.line), timeoutMs, String(pattern));
  }

  /** Like {@link waitForLog} for a pino line whose `msg` matches (and whose fields satisfy `where`). */
  waitForLogMsg(msg: RegExp, where: (json: Record<string, unknown>) => boolean = () => true, timeoutMs = 15_000): Promise<BotLogLine> {
    return this.waitForLine((l) => l.json !== undefined && msg.test(String(l.json.msg ?? '')) && where(l.json), timeoutMs, `msg ${String(msg)}`);
  }

  /** Resolves with the first line (past or future) satisfying `predicate`. */
  waitForLine(predicate: (line: BotLogLine) => boolean, timeoutMs = 15_000, what = 'a matching line'): Promise<BotLogLine> {
    return new Promise<BotLogLine>((resolve, reject) => {
      const check = () => {
        const hit = this.lines.find(predicate);
        if (hit) {
          done();
          resolve(hit);
        } else if (this.exitInfo) {
          done();
          reject(new Error(`bot exited (${JSON.stringify(this.exitInfo)}) before logging ${what}; output:\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`bot did not log ${what} within ${timeoutMs} ms; output:\n${this.tail()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `timeoutMs` if it does not go. */
  async kill(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 8000): Promise<BotExit> {
    if (this.exitInfo) return this.exitInfo;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the process if needed and removes the temp data dir it created. */
  async cleanup(): Promise<void> {
    await this.kill('SIGKILL');
    if (this.ownsDataDir) await rm(this.dataDir, { recursive: true, force: true });
  }

  private tail(n = 40): string {
    return this.lines
      .slice(-n)
      .map((l) => l.line)
      .join('\n');
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Starts the production entry point against the simulators. */
export async function spawnBot(opts: SpawnBotOptions): Promise<BotProcess> {
  const ownsDataDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'voxta-discord-e2e-')));
  const env: Record<string, string> = {};
  for (const key of INHERITED_ENV) {
    const v = process.env[key];
    if (v !== undefined) env[key] = v;
  }
  Object.assign(env, {
    // Never read a developer's .env: the test decides the whole configuration.
    DOTENV_CONFIG_PATH: path.join(dataDir, '.env.none'),
    DOTENV_CONFIG_QUIET: 'true',
    DISCORD_TOKEN: opts.discordSim.token,
    DISCORD_API_URL: opts.discordSim.restUrl,
    DISCORD_CDN_URL: opts.discordSim.cdnUrl,
    VOXTA_URL: opts.voxtaUrl,
    DATA_DIR: dataDir,
    LOG_LEVEL: opts.logLevel ?? 'debug',
    HEALTH_PORT: '0',
    NODE_EXTRA_CA_CERTS: opts.discordSim.caCertPath,
  });
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  if (!env.NODE_EXTRA_CA_CERTS) delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/index.ts'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });
  return new BotProcess(child, dataDir, ownsDataDir, opts.echo ?? process.env.BOT_OUTPUT === '1');
}
