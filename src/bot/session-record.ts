/**
 * A guild's stored session record, as this process intends it to be.
 *
 * The session changes its record at every step of its life (started, moved into voice, stopped),
 * and a write can fail: a full disk, a read-only volume, `SQLITE_BUSY` from another process. A
 * failed write must neither wedge the session (the step goes on: the record in memory is the
 * truth for this process) nor be lost silently: the intended record is kept here, written again
 * on the next write and on a timer until it sticks, and the failure is reported (`problem`, shown
 * by `/status`; counted in the log). Because the whole intended record is rewritten, a retry can
 * never replay an old change over a newer one.
 */
import { errorInfo, type Logger } from '../log.js';
import type { GuildSessionRecord, Store } from '../store/store.js';

export type RecordInput = Omit<GuildSessionRecord, 'createdAt' | 'updatedAt'>;

/** How often a record that could not be written is tried again. */
export const RECORD_RETRY_MS = 10_000;

export interface SessionRecordDeps {
  guildId: string;
  store: Store;
  log: () => Logger;
  retryMs?: number;
  /** A write failed (for metrics). */
  onWriteFailed?: () => void;
}

export interface RecordProblem {
  message: string;
  since: number;
}

export class SessionRecord {
  /** The record as intended: undefined = none; `loaded` false until read from the store once. */
  #intended: GuildSessionRecord | undefined;
  #loaded = false;
  /** The store does not hold `#intended` yet (a write failed). */
  #dirty = false;
  /** The whole guild is to be forgotten (store.forgetGuild) rather than a record written. */
  #forget = false;
  #problem: RecordProblem | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: SessionRecordDeps) {}

  /** The record as this process intends it (read from the store the first time). */
  get(): GuildSessionRecord | undefined {
    if (!this.#loaded) {
      try {
        this.#intended = this.deps.store.getGuildSession(this.deps.guildId);
        this.#loaded = true;
      } catch (err) {
        this.deps.log().warn({ err: errorInfo(err) }, 'guild session: reading the stored record failed');
        return undefined;
      }
    }
    return this.#intended;
  }

  /** Why the store is behind, while it is. */
  get problem(): RecordProblem | undefined {
    return this.#problem;
  }

  /**
   * Saves a whole record. Returns true when it is in the store; false when writing failed (the
   * record is intended anyway and will be written again later).
   */
  save(rec: RecordInput): boolean {
    const now = Date.now();
    const prev = this.get();
    this.#intended = { ...rec, createdAt: prev?.guildId === rec.guildId ? prev.createdAt : now, updatedAt: now };
    this.#loaded = true;
    this.#forget = false;
    return this.#flush('save');
  }

  /**
   * Saves a whole record only if it can be written now: on failure the intended record stays what
   * it was (used where a record we could not store must not count, e.g. a chat being started) and
   * the error is returned.
   */
  trySave(rec: RecordInput): { ok: true } | { ok: false; error: string } {
    const before = { intended: this.get(), dirty: this.#dirty, problem: this.#problem };
    if (this.#dirty && !this.#flush('retry before save')) return { ok: false, error: this.#problem?.message ?? 'write failed' };
    if (this.save(rec)) return { ok: true };
    const error = this.#problem?.message ?? 'write failed';
    this.#intended = before.intended;
    this.#dirty = before.dirty;
    if (!this.#dirty) {
      this.#problem = before.problem;
      this.#stopTimer();
    }
    return { ok: false, error };
  }

  /** Forgets the guild's stored state entirely (the bot was removed from it). */
  forget(): boolean {
    this.#intended = undefined;
    this.#loaded = true;
    this.#forget = true;
    return this.#flush('forget');
  }

  /** Changes fields of the existing record (no-op without one). */
  update(patch: Partial<Pick<GuildSessionRecord, 'active' | 'voiceChannelId' | 'textChannelId' | 'cast' | 'characterId' | 'characterName'>>): boolean {
    const cur = this.get();
    if (!cur) return true;
    const next = { ...cur, ...patch, updatedAt: Date.now() };
    const same =
      next.active === cur.active &&
      next.voiceChannelId === cur.voiceChannelId &&
      next.textChannelId === cur.textChannelId &&
      next.characterId === cur.characterId &&
      next.characterName === cur.characterName &&
      JSON.stringify(next.cast ?? null) === JSON.stringify(cur.cast ?? null);
    if (same && !this.#dirty) return true;
    this.#intended = next;
    return this.#flush('update');
  }

  setActive(active: boolean): boolean {
    return this.update({ active });
  }

  /** Tries a failed write one last time, then stops retrying (the process stops, or the guild is forgotten). */
  dispose(): void {
    if (this.#dirty) this.#flush('last try');
    this.#stopTimer();
  }

  #stopTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #flush(what: string): boolean {
    const rec = this.#intended;
    try {
      if (this.#forget) this.deps.store.forgetGuild(this.deps.guildId);
      else if (rec) this.deps.store.saveGuildSession(rec);
      this.#forget = false;
      if (this.#dirty) this.deps.log().info({ after: what }, 'guild session: the stored record is up to date again');
      this.#dirty = false;
      this.#problem = undefined;
      this.#stopTimer();
      return true;
    } catch (err) {
      this.#dirty = true;
      const message = errorInfo(err).message;
      this.#problem ??= { message, since: Date.now() };
      this.#problem.message = message;
      this.deps.onWriteFailed?.();
      this.deps.log().error({ err: errorInfo(err), what, active: rec?.active }, 'guild session: writing the stored record failed; will retry');
      this.#armRetry();
      return false;
    }
  }

  #armRetry(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#dirty) this.#flush('timer');
    }, this.deps.retryMs ?? RECORD_RETRY_MS);
    this.#timer.unref();
  }
}
