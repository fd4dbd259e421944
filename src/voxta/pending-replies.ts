/**
 * Requests waiting for their answer from the hub (welcome, chatStarted, chatClosed, lists…).
 *
 * Each wait belongs to one connection generation: a message of another generation never answers
 * it, and a dropped connection rejects the waits of its generation.
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

  /** Resolves with the first value `pick` returns for a message of generation `gen`; rejects after `timeoutMs`. */
  waitFor<T>(gen: number, pick: (m: ServerMessage) => Picked<T>, timeoutMs: number, what: string): Promise<T> {
    return this.begin(gen, pick, timeoutMs, what).result;
  }

  /**
   * Like {@link waitFor}, with a `cancel` for when the request that was to be answered could not
   * even be written: the waiter and its timer go away and `result` never settles (so nobody is
   * left holding a rejection that no one awaits).
   */
  begin<T>(gen: number, pick: (m: ServerMessage) => Picked<T>, timeoutMs: number, what: string): { result: Promise<T>; cancel: () => void } {
    let waiter: Waiter | undefined;
    const result = new Promise<T>((resolve, reject) => {
      const w: Waiter = {
        gen,
        pick,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w);
          reject(new VoxtaTimeoutError(what, timeoutMs));
        }, timeoutMs),
      };
      waiter = w;
      this.#waiters.add(w);
    });
    return {
      result,
      cancel: () => {
        if (!waiter || !this.#waiters.delete(waiter)) return;
        clearTimeout(waiter.timer);
      },
    };
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
