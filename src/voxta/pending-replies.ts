/**
 * Requests waiting for their answer from the hub (welcome, chatStarted, chatClosed, lists…).
 *
 * Each wait belongs to one connection generation: a message of another generation never answers
 * it, and a dropped connection rejects the waits of its generation.
 *
 * A request is always made with {@link PendingReplies.ask}: the wait is registered BEFORE the
 * write (the answer may arrive before the write's promise settles) and removed again when the
 * write fails, so a failed write rejects its caller once and leaves nothing behind whose later
 * rejection (timeout, drop, close) nobody would handle.
 */
import { VoxtaTimeoutError } from './errors.js';
import type { ServerMessage } from './messages.js';

/** A value, an Error (→ reject) or undefined (not for me) from a waiter's picker. */
export type Picked<T> = T | Error | undefined;

interface Waiter {
  gen: number;
  pick: (m: ServerMessage) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class PendingReplies {
  readonly #waiters = new Set<Waiter>();

  get size(): number {
    return this.#waiters.size;
  }

  /**
   * Sends a request with `write` and resolves with the first value `pick` returns for a message of
   * generation `gen`; rejects after `timeoutMs`, when the connection drops, or with the write's own
   * error when the write fails (the wait is then gone).
   */
  async ask<T>(gen: number, pick: (m: ServerMessage) => Picked<T>, timeoutMs: number, what: string, write: () => Promise<void>): Promise<T> {
    let waiter: Waiter | undefined;
    const answer = new Promise<T>((resolve, reject) => {
      waiter = this.#register(gen, pick, timeoutMs, what, resolve as (v: unknown) => void, reject);
    });
    try {
      await write();
    } catch (err) {
      this.#cancel(waiter!);
      // The answer promise was never handed out: settle it quietly.
      answer.catch(() => undefined);
      throw err;
    }
    return answer;
  }

  #register(gen: number, pick: (m: ServerMessage) => unknown, timeoutMs: number, what: string, resolve: (v: unknown) => void, reject: (e: Error) => void): Waiter {
    const w: Waiter = {
      gen,
      pick,
      resolve,
      reject,
      timer: setTimeout(() => {
        this.#waiters.delete(w);
        reject(new VoxtaTimeoutError(what, timeoutMs));
      }, timeoutMs),
    };
    this.#waiters.add(w);
    return w;
  }

  #cancel(w: Waiter): void {
    this.#waiters.delete(w);
    clearTimeout(w.timer);
    w.reject(new Error('request cancelled: its write failed'));
  }

  /** Offers a message of the current generation `gen` to every waiter. */
  offer(m: ServerMessage, gen: number): void {
    for (const w of [...this.#waiters]) this.#offerTo(w, m, gen);
  }

  /** Rejects every waiter (of generation `gen` only, when given). */
  rejectAll(err: Error, gen?: number): void {
    for (const w of [...this.#waiters]) {
      if (gen !== undefined && w.gen !== gen) continue;
      this.#waiters.delete(w);
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  #offerTo(w: Waiter, m: ServerMessage, gen: number): void {
    if (w.gen !== gen) return;
    let v: unknown;
    try {
      v = w.pick(m);
    } catch (err) {
      v = err instanceof Error ? err : new Error(String(err));
    }
    if (v === undefined) return;
    this.#waiters.delete(w);
    clearTimeout(w.timer);
    if (v instanceof Error) w.reject(v);
    else w.resolve(v);
  }
}
