/**
 * The playback acknowledgements Voxta needs (protocol §4c), owned in one place per chat session.
 *
 * After every `replyEnd` Voxta holds the session's foreground queue until it receives
 * `speechPlaybackComplete` for that message; without it the chat silently stops answering. An
 * extra complete can release the hold of a LATER reply early. So: exactly one complete per
 * messageId, and only after its `replyEnd`.
 *
 * Rules implemented here:
 * - `chunkStarted` → `speechPlaybackStart` with the TRUE duration in seconds (Voxta cuts an
 *   interrupted reply's stored text by elapsed ÷ duration, so 0 means "no tracking").
 * - complete when `replyEnded` AND (`drained` OR `abort`); `drained`/`abort` may come before or
 *   after `replyEnded`. `replyCancelled` is an abort (a `replyEnd` usually follows).
 * - a safety timer completes a reply that was ended but never drained (a consumer bug must not
 *   freeze the chat forever); it is logged as a warning.
 * - `reset()` when the session changes: everything owed to the dead session is forgotten (a complete
 *   carrying a dead sessionId is meaningless, and a new session must not inherit the old state).
 *
 * Auto-acknowledge mode (default ON, for the text-only bot): the chat session acknowledges each
 * `replyChunk` itself (duration 0, also for `silence:<ms>`) and completes right after
 * `replyEnd`. The voice pipeline turns it off and reports `chunkStarted`/`drained` itself.
 * "Drained" means: nothing of that message is playing, queued or still downloading.
 */
import { EventEmitter } from 'node:events';
import { logger, type Logger } from '../log.js';
import { clientMessage, type ClientMessage } from './messages.js';

export interface PlaybackSink {
  /** Sends a client message on the live connection (fire and forget). */
  send(message: ClientMessage): void;
  /** The current chat session id; undefined when there is none. */
  sessionId(): string | undefined;
}

export interface ChunkInfo {
  startIndex: number;
  endIndex: number;
  isNarration: boolean;
}

export type CompleteReason = 'drained' | 'aborted' | 'timeout';

export interface PlaybackContractOptions {
  /** Completes an ended-but-never-drained reply after this long (+ the reported audio). Default 30 s. */
  safetyTimeoutMs?: number;
  /** Default true. */
  autoAcknowledge?: boolean;
  log?: Logger;
}

export interface PlaybackStats {
  startsSent: number;
  completesSent: number;
  /** Replies that still owe a complete (ended or not). */
  owed: number;
  /** Completes forced by the safety timer. */
  timeouts: number;
  /** Replies forgotten by `reset()` (session changed) without a complete. */
  droppedOnReset: number;
}

interface Entry {
  ended: boolean;
  drained: boolean;
  aborted: boolean;
  starts: number;
  audioSec: number;
  timer: NodeJS.Timeout | undefined;
}

type Events = {
  complete: [messageId: string, reason: CompleteReason];
  start: [messageId: string, durationSec: number];
};

const REMEMBER_COMPLETED = 512;

export class PlaybackContract extends EventEmitter<Events> {
  #auto: boolean;
  readonly #entries = new Map<string, Entry>();
  /** Recently completed ids, so late calls for them are no-ops instead of new entries. */
  readonly #completed = new Set<string>();
  readonly #log: Logger;
  readonly #safetyMs: number;
  readonly #stats = { startsSent: 0, completesSent: 0, timeouts: 0, droppedOnReset: 0 };

  constructor(
    private readonly sink: PlaybackSink,
    opts: PlaybackContractOptions = {},
  ) {
    super();
    this.#auto = opts.autoAcknowledge ?? true;
    this.#safetyMs = opts.safetyTimeoutMs ?? 30_000;
    this.#log = (opts.log ?? logger()).child({ mod: 'voxta-playback' });
  }

  get autoAcknowledge(): boolean {
    return this.#auto;
  }

  /** ON (default): the session acknowledges replies itself. OFF: the voice pipeline reports playback. */
  setAutoAcknowledge(on: boolean): void {
    this.#auto = on;
  }

  /**
   * A chunk of `messageId` started playing, lasting `durationSec` seconds. Sends
   * `speechPlaybackStart`. Returns false (and sends nothing) when the reply is already completed
   * or aborted.
   */
  chunkStarted(messageId: string, chunk: ChunkInfo, durationSec: number): boolean {
    if (this.#completed.has(messageId)) {
      this.#log.debug({ messageId }, 'playback start for a completed reply ignored');
      return false;
    }
    const e = this.#entry(messageId);
    if (e.aborted) return false;
    const sessionId = this.sink.sessionId();
    if (!sessionId) return false;
    const duration = Number.isFinite(durationSec) && durationSec > 0 ? Math.round(durationSec * 1000) / 1000 : 0;
    e.drained = false;
    e.starts++;
    e.audioSec += duration;
    this.sink.send(clientMessage.speechPlaybackStart(sessionId, messageId, chunk, duration));
    this.#stats.startsSent++;
    this.emit('start', messageId, duration);
    if (e.ended) this.#arm(messageId, e, duration);
    return true;
  }

  /** The server sent `replyEnd` for this message. */
  replyEnded(messageId: string): void {
    if (this.#completed.has(messageId)) return;
    const e = this.#entry(messageId);
    e.ended = true;
    // The audio reported so far may still be playing: give the safety timer that much on top.
    if (!this.#maybeComplete(messageId, e)) this.#arm(messageId, e, e.audioSec);
  }

  /** All of this message's audio has finished playing (nothing queued or downloading). */
  drained(messageId: string): void {
    if (this.#completed.has(messageId)) return;
    const e = this.#entry(messageId);
    e.drained = true;
    this.#maybeComplete(messageId, e);
  }

  /** Playback of this message was stopped (interrupted, failed, cancelled): complete as soon as it has ended. */
  abort(messageId: string): void {
    if (this.#completed.has(messageId)) return;
    const e = this.#entry(messageId);
    e.aborted = true;
    this.#maybeComplete(messageId, e);
  }

  /** Aborts every reply still owed (e.g. `interruptSpeech` without a messageId). */
  abortAll(): void {
    for (const id of [...this.#entries.keys()]) this.abort(id);
  }

  /** Forgets everything owed to the previous session (no message is sent). */
  reset(): void {
    for (const e of this.#entries.values()) {
      if (e.timer) clearTimeout(e.timer);
      this.#stats.droppedOnReset++;
    }
    this.#entries.clear();
    this.#completed.clear();
  }

  isCompleted(messageId: string): boolean {
    return this.#completed.has(messageId);
  }

  /** Reply ids that still owe a complete. */
  owedIds(): string[] {
    return [...this.#entries.keys()];
  }

  get stats(): PlaybackStats {
    return { ...this.#stats, owed: this.#entries.size };
  }

  #entry(messageId: string): Entry {
    let e = this.#entries.get(messageId);
    if (!e) {
      e = { ended: false, drained: false, aborted: false, starts: 0, audioSec: 0, timer: undefined };
      this.#entries.set(messageId, e);
    }
    return e;
  }

  #maybeComplete(messageId: string, e: Entry, reason?: CompleteReason): boolean {
    if (!e.ended) return false;
    if (!reason) {
      if (e.aborted) reason = 'aborted';
      else if (e.drained) reason = 'drained';
      else return false;
    }
    this.#complete(messageId, e, reason);
    return true;
  }

  #complete(messageId: string, e: Entry, reason: CompleteReason): void {
    if (e.timer) clearTimeout(e.timer);
    this.#entries.delete(messageId);
    this.#completed.add(messageId);
    if (this.#completed.size > REMEMBER_COMPLETED) {
      const oldest = this.#completed.values().next().value;
      if (oldest !== undefined) this.#completed.delete(oldest);
    }
    const sessionId = this.sink.sessionId();
    if (!sessionId) {
      this.#log.debug({ messageId }, 'no session: complete not sent');
      return;
    }
    this.sink.send(clientMessage.speechPlaybackComplete(sessionId, messageId));
    this.#stats.completesSent++;
    this.emit('complete', messageId, reason);
  }

  /** (Re)arms the safety timer of an ended reply, giving it the reported audio length on top. */
  #arm(messageId: string, e: Entry, extraSec: number): void {
    if (e.timer) clearTimeout(e.timer);
    const ms = this.#safetyMs + extraSec * 1000;
    e.timer = setTimeout(() => {
      if (this.#entries.get(messageId) !== e) return;
      this.#stats.timeouts++;
      this.#log.warn({ messageId, afterMs: ms }, 'reply was never reported drained: sending speechPlaybackComplete so the chat does not freeze');
      this.#complete(messageId, e, 'timeout');
    }, ms);
    e.timer.unref();
  }
}
