/**
 * Server-wide chat session rules (protocol §5.5, §7.4): the per-user concurrent-chat cap and the
 * one-session-per-chat lock. A session counts against both until it is removed here, which for a
 * dropped connection may be later than the drop (`chatLockReleaseDelayMs`).
 */
import type { ChatSession } from './chat-session.js';

export class SessionRegistry {
  private readonly sessions = new Map<string, ChatSession>();
  private readonly slotWaiters = new Set<() => void>();
  private readonly removalTimers = new Set<NodeJS.Timeout>();
  /** Dead connections' sessions kept (lock and slot) until the test releases them. */
  private holding = false;
  private readonly held = new Set<ChatSession>();

  add(session: ChatSession): void {
    this.sessions.set(session.sessionId, session);
  }

  get(sessionId: string): ChatSession | undefined {
    return this.sessions.get(sessionId);
  }

  all(): ChatSession[] {
    return [...this.sessions.values()];
  }

  forUser(userKey: string): ChatSession[] {
    return this.all().filter((s) => s.userKey === userKey);
  }

  /** The session holding the lock on `chatId`, if any. */
  holderOf(chatId: string): ChatSession | undefined {
    return this.all().find((s) => s.chat.id === chatId);
  }

  remove(session: ChatSession): void {
    if (this.sessions.get(session.sessionId) !== session) return;
    this.sessions.delete(session.sessionId);
    for (const wake of [...this.slotWaiters]) wake();
  }

  /**
   * From now on a dead connection keeps its chat (lock and slot) until {@link releaseHeld}: a test
   * that needs "the chat is still locked when the bot comes back" says so instead of racing a
   * delay against a busy machine.
   */
  holdDeadSessions(): void {
    this.holding = true;
  }

  /** Frees every session held by {@link holdDeadSessions} and stops holding. */
  releaseHeld(): void {
    this.holding = false;
    for (const s of [...this.held]) this.remove(s);
    this.held.clear();
  }

  /** Removes `session` after `delayMs` (0 = now): how long a dead connection keeps its chat. */
  removeLater(session: ChatSession, delayMs: number): void {
    if (this.holding) {
      this.held.add(session);
      return;
    }
    if (delayMs <= 0) {
      this.remove(session);
      return;
    }
    const timer = setTimeout(() => {
      this.removalTimers.delete(timer);
      this.remove(session);
    }, delayMs);
    this.removalTimers.add(timer);
  }

  /** Forgets everything at once (simulated server crash). */
  clear(): void {
    for (const t of this.removalTimers) clearTimeout(t);
    this.removalTimers.clear();
    this.held.clear();
    this.sessions.clear();
    for (const wake of [...this.slotWaiters]) wake();
  }

  /**
   * Waits up to `timeoutMs` for the user to have fewer than `max()` sessions, as Voxta waits for a
   * token before failing with "Cannot start more than N concurrent chats.". Resolves false on
   * timeout or when `cancelled()` turns true. The caller must register its session in the same
   * tick as a true result, so two starts cannot take the same slot.
   */
  acquireSlot(userKey: string, max: () => number, timeoutMs: number, cancelled: () => boolean): Promise<boolean> {
    const free = (): boolean => this.forUser(userKey).length < max();
    if (free()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (result: boolean): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.slotWaiters.delete(check);
        resolve(result);
      };
      const check = (): void => {
        if (cancelled()) done(false);
        else if (free()) done(true);
      };
      const timer = setTimeout(() => done(free() && !cancelled()), timeoutMs);
      // Also poll: `max` is a live option that a test may raise while a start is waiting.
      const poll = setInterval(check, 50);
      this.slotWaiters.add(check);
    });
  }
}
