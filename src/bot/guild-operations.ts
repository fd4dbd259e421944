/**
 * One guild's state-changing operations, one at a time, and stop wins.
 *
 * Every operation that changes what a guild session is (start, resume, stop, join, leave, the
 * reopen with voice, and the events that stop or move a session) runs through this queue with an
 * `AbortSignal`. Operations run in the order they were asked for; none starts before the previous
 * one has settled, so an operation never sees the world half-changed by another.
 *
 * `preempt()` is how a stop gets in front: it aborts the running operation (its signal fires, and
 * every await in it is abortable, so it unwinds at once), cancels the queued ones (they never run;
 * their callers get {@link OperationCancelledError}) and runs next. An aborted operation leaves
 * what it acquired where the session can see it, and the preempting stop releases it: one place
 * tears down, whatever was in flight.
 */
import { UserFacingError } from './user-errors.js';

/** An operation that was cancelled (by a stop) before it could finish, said plainly. */
export class OperationCancelledError extends UserFacingError {
  constructor(message: string) {
    super(message);
    this.name = 'OperationCancelledError';
  }
}

type OperationFn<T> = (signal: AbortSignal) => Promise<T>;

interface Entry {
  readonly kind: string;
  readonly controller: AbortController;
  run(): Promise<void>;
  cancel(err: Error): void;
}

export class GuildOperations {
  #running: Entry | undefined;
  readonly #queue: Entry[] = [];
  /** Resolvers waiting for the queue to be empty. */
  #idleWaiters: Array<() => void> = [];

  /** The kind of the operation running now, if any. */
  get running(): string | undefined {
    return this.#running?.kind;
  }

  /** Kinds of the operations waiting, in order. */
  get queued(): string[] {
    return this.#queue.map((e) => e.kind);
  }

  /** True while an operation of this kind runs or waits. */
  has(kind: string): boolean {
    return this.#running?.kind === kind || this.#queue.some((e) => e.kind === kind);
  }

  /** Runs `fn` after every operation asked for before it. */
  run<T>(kind: string, fn: OperationFn<T>): Promise<T> {
    return this.#enqueue(kind, fn, false);
  }

  /**
   * Runs `fn` next: the running operation is aborted (with `why` as the reason) and the queued
   * ones are cancelled with an {@link OperationCancelledError} saying `why`.
   */
  preempt<T>(kind: string, why: string, fn: OperationFn<T>): Promise<T> {
    const reason = new OperationCancelledError(why);
    this.#running?.controller.abort(reason);
    for (const e of this.#queue.splice(0)) e.cancel(reason);
    return this.#enqueue(kind, fn, true);
  }

  /** Resolves once nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (!this.#running && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #enqueue<T>(kind: string, fn: OperationFn<T>, first: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const controller = new AbortController();
      const entry: Entry = {
        kind,
        controller,
        run: async () => {
          try {
            resolve(await fn(controller.signal));
          } catch (err) {
            reject(err);
          }
        },
        cancel: (err) => reject(err),
      };
      if (first) this.#queue.unshift(entry);
      else this.#queue.push(entry);
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#running) return;
    const next = this.#queue.shift();
    if (!next) {
      for (const w of this.#idleWaiters.splice(0)) w();
      return;
    }
    this.#running = next;
    const done = (): void => {
      this.#running = undefined;
      this.#pump();
    };
    // `run` settles the caller's promise itself and never rejects; both paths continue the queue.
    next.run().then(done, done);
  }
}

/**
 * Awaits `p` unless `signal` fires first: then rejects at once with the signal's reason, and `p`
 * is left to settle on its own (its rejection handled). What it brings late is the caller's to
 * release (the voice join checks the signal after it resolves).
 */
export function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    // Settling twice is a no-op: whichever of the abort and `p` comes first decides.
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** The signal's reason as an Error (an abort without a reason becomes a plain cancellation). */
export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new OperationCancelledError('The operation was cancelled.');
}

/** Throws the signal's reason when it has fired: the check after every await. */
export function checkNotAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortReason(signal);
}
