/**
 * Structured logging (pino). JSON lines in production, readable lines in a terminal.
 *
 * Secrets never reach a log line: known secret-bearing keys are redacted by pino, and
 * {@link redactSecrets} scrubs free text (error messages, URLs) before it is logged.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const REDACT_PATHS = [
  'token',
  'apiKey',
  'password',
  'authorization',
  'Authorization',
  'headers.authorization',
  'headers.Authorization',
  '*.token',
  '*.apiKey',
  '*.password',
  '*.authorization',
  '*.Authorization',
];

const knownSecrets = new Set<string>();

/** Registers a secret (token, API key, password) so that {@link redactSecrets} removes it from text. */
export function registerSecret(secret: string | undefined): void {
  if (secret && secret.length >= 4) knownSecrets.add(secret);
}

/** Removes registered secrets, bearer/basic credentials and URL user info from free text. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const s of knownSecrets) out = out.split(s).join('[redacted]');
  out = out.replace(/(Bearer|Basic|Bot)\s+[A-Za-z0-9._~+/=-]{6,}/g, '$1 [redacted]');
  out = out.replace(/(\w+:\/\/)[^/\s:@]+:[^/\s@]*@/g, '$1[redacted]@');
  out = out.replace(/([?&]access_token=)[^&\s]+/g, '$1[redacted]');
  return out;
}

/** An error reduced to a loggable, secret-free object (no stack unless asked for). */
export function errorInfo(err: unknown, withStack = false): { message: string; name?: string; stack?: string } {
  if (err instanceof Error) {
    const info: { message: string; name?: string; stack?: string } = { name: err.name, message: redactSecrets(err.message) };
    if (withStack && err.stack) info.stack = redactSecrets(err.stack);
    return info;
  }
  return { message: redactSecrets(String(err)) };
}

let root: Logger | undefined;

export interface LoggerOptions {
  level?: string;
  /** Force pretty (true) or JSON (false); default: pretty when stdout is a terminal. */
  pretty?: boolean;
}

/** Creates (or replaces) the process-wide root logger. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const pretty = opts.pretty ?? Boolean(process.stdout.isTTY);
  root = pino(
    {
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      formatters: pretty ? undefined : { level: (label) => ({ level: label }) },
      hooks: {
        logMethod(args, method) {
          // Scrub free-text messages too: an error message may quote a URL with credentials.
          const scrubbed = args.map((a) => (typeof a === 'string' ? redactSecrets(a) : a)) as typeof args;
          method.apply(this, scrubbed);
        },
      },
    },
    pretty ? prettyStream() : undefined,
  );
  return root;
}

/** The root logger, created with defaults on first use. */
export function logger(): Logger {
  return root ?? createLogger();
}

/** A tiny human-readable destination for terminals, so no extra dependency is needed. */
function prettyStream(): { write(line: string): void } {
  const levels: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
  return {
    write(line: string) {
      try {
        const { level, time, msg, pid: _pid, hostname: _h, ...rest } = JSON.parse(line) as Record<string, unknown>;
        const t = new Date(Number(time)).toISOString().slice(11, 23);
        const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
        process.stdout.write(`${t} ${levels[Number(level)] ?? level} ${String(msg ?? '')}${extra}\n`);
      } catch {
        process.stdout.write(line);
      }
    },
  };
}
