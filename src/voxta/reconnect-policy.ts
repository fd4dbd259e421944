/**
 * When and how often a lost session tries again: capped exponential back-off with jitter, giving
 * up after `giveUpAfterMs`. The first retry comes quickly (at most `initialDelayMs`); auth and URL
 * errors are not retried (they will not fix themselves), nor are errors we do not recognise.
 * "Chat session already exists", "still trying to start or close" and the capacity error are
 * retried: the dead connection still holds the chat until the server notices it is gone.
 */
import { isRetriableResumeError, VoxtaAuthError, VoxtaError, VoxtaServerError, VoxtaUrlError } from './errors.js';
import type { ReconnectOptions } from './session-options.js';

export interface ReconnectAttempts<T> {
  /** One attempt (1, 2, …); resolves when reconnected, rejects to retry or give up. */
  attempt(n: number): Promise<T>;
  /** Attempt `n` failed with a retriable error: another follows after the back-off. */
  retrying(n: number, err: unknown): void;
}

export type ReconnectOutcome<T> =
  | { kind: 'reconnected'; attempt: number; value: T }
  /**
   * `signal` was aborted (the session is closing). `duringWait`: noticed after a back-off wait, so
   * no attempt was under way; otherwise an attempt may have opened a connection after the abort.
   */
  | { kind: 'aborted'; duringWait: boolean }
  | { kind: 'gaveUp'; lastError: Error | undefined };

/** Runs `attempts` with back-off until one succeeds, one fails for good, time runs out or `signal` aborts. */
export async function reconnectWithBackoff<T>(
  options: ReconnectOptions,
  signal: AbortSignal,
  cause: Error | undefined,
  attempts: ReconnectAttempts<T>,
): Promise<ReconnectOutcome<T>> {
  const initial = options.initialDelayMs ?? 500;
  const max = options.maxDelayMs ?? 15_000;
  const giveUpAt = Date.now() + (options.giveUpAfterMs ?? 300_000);
  const jitter = options.jitter ?? 0.2;
  let delay = initial;
  let attempt = 0;
  let lastError: Error | undefined = cause;

  while (!signal.aborted) {
    const wait = Math.round(delay * (1 + (Math.random() * 2 - 1) * jitter));
    await sleep(attempt === 0 ? Math.min(wait, initial) : wait, signal);
    if (signal.aborted) return { kind: 'aborted', duringWait: true };
    attempt++;
    let value: T;
    try {
      value = await attempts.attempt(attempt);
    } catch (err) {
      lastError = err instanceof Error ? err : new Error(String(err));
      if (!isWorthRetrying(err) || Date.now() >= giveUpAt) break;
      attempts.retrying(attempt, err);
      delay = Math.min(max, Math.max(initial, delay * 2));
      continue;
    }
    if (signal.aborted) break;
    return { kind: 'reconnected', attempt, value };
  }
  return signal.aborted ? { kind: 'aborted', duringWait: false } : { kind: 'gaveUp', lastError };
}

function isWorthRetrying(err: unknown): boolean {
  if (err instanceof VoxtaAuthError || err instanceof VoxtaUrlError || !(err instanceof VoxtaError)) return false;
  return isRetriableResumeError(err) || err.constructor === VoxtaError || err instanceof VoxtaServerError;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
