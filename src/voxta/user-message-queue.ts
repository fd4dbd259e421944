/**
 * User messages (`send`) delivered EXACTLY ONCE, in order, across reconnects:
 * 1. `send()` appends to a queue. The queue is flushed only while a chat is live, one item at a
 *    time, with SignalR `send` (fire and forget: no completion to wait for). An item leaves the
 *    queue only after SignalR wrote it on a live connection; if the write fails it stays queued.
 * 2. A written item moves to "in flight" until the server's echo (`update` with role User and the
 *    same text) confirms it. Voxta processes user messages in order, so an echo also confirms every
 *    earlier in-flight item.
 * 3. If the connection dies with items in flight we cannot know whether they reached the server.
 *    After re-resuming, `chatStarted.messages` (the stored history) tells: an in-flight item whose
 *    text appears as a user message after the last message we had seen when we wrote it was
 *    delivered and is NOT sent again; the others are put back at the FRONT of the queue (keeping
 *    order) and sent on the new session. A message that reached the dead session but was still
 *    waiting behind a playback hold was never stored, so it is correctly sent again.
 *    Limit: two identical texts sent in a row around a drop could be taken as one.
 */
import { errorInfo, type Logger } from '../log.js';
import type { HistoryMessage, SendOptions, ServerUpdateMessage } from './messages.js';
import type { SentInfo, SessionStats } from './session-events.js';
import { unescapeUserText } from './user-text.js';

/** Where the queue delivers: the session's live chat. */
export interface UserMessageSink {
  /** sessionId of the chat to write to now; undefined while no chat is live (the queue waits). */
  liveSessionId(): string | undefined;
  /** Writes one user message on the live connection; rejects when it is gone. */
  write(sessionId: string, text: string, opts: SendOptions): Promise<void>;
  /** Called once per message written. */
  sent(info: SentInfo): void;
}

/** The part of the session's stats about user messages. */
export type UserMessageQueueStats = Pick<SessionStats, 'sendsQueued' | 'sendsWritten' | 'sendsResent' | 'sendsDropped' | 'sendsConfirmedByHistory' | 'queued' | 'inFlight'>;

interface QueuedSend {
  text: string;
  opts: SendOptions;
  resend: boolean;
}
interface InFlightSend extends QueuedSend {
  sessionId: string;
  /** Last stored message id known when written: history after it is where the echo must be. */
  afterMessageId: string | undefined;
}

/** Written messages remembered while waiting for their echo (the oldest are forgotten beyond it). */
const MAX_IN_FLIGHT = 50;

export class UserMessageQueue {
  #queue: QueuedSend[] = [];
  #inFlight: InFlightSend[] = [];
  #flushing = false;
  /** Id of the last message the chat stored, as far as we have seen. */
  #lastStoredMessageId: string | undefined;
  readonly #sink: UserMessageSink;
  readonly #maxQueued: number;
  readonly #log: Logger;
  readonly #counts = { sendsQueued: 0, sendsWritten: 0, sendsResent: 0, sendsDropped: 0, sendsConfirmedByHistory: 0 };

  constructor(sink: UserMessageSink, opts: { maxQueued: number; log: Logger }) {
    this.#sink = sink;
    this.#maxQueued = opts.maxQueued;
    this.#log = opts.log;
  }

  get stats(): UserMessageQueueStats {
    return { ...this.#counts, queued: this.#queue.length, inFlight: this.#inFlight.length };
  }

  /** Queues a message (dropping the oldest queued one when full) and flushes if a chat is live. */
  enqueue(text: string, opts: SendOptions): void {
    if (this.#queue.length >= this.#maxQueued) {
      const dropped = this.#queue.shift();
      this.#counts.sendsDropped++;
      this.#log.warn({ queued: this.#queue.length, chars: dropped?.text.length }, 'send queue full: dropped the oldest queued message');
    }
    this.#queue.push({ text, opts: { ...opts }, resend: false });
    this.#counts.sendsQueued++;
    this.flushInBackground();
  }

  /** {@link flush} for callers that do not wait (failures are the queue's to report; nothing escapes). */
  flushInBackground(): void {
    this.flush().catch((err: unknown) => this.#log.error({ err: errorInfo(err, true) }, 'voxta: flushing queued messages failed unexpectedly'));
  }

  /** Writes queued messages to the live chat, in order, until the queue is empty or the chat is gone. */
  async flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const sessionId = this.#sink.liveSessionId();
        if (sessionId === undefined) return;
        const item = this.#queue[0]!;
        try {
          await this.#sink.write(sessionId, item.text, item.opts);
        } catch {
          return; // stays queued; the reconnect flushes again
        }
        // Written on the live connection of this chat: it leaves the queue now, exactly once.
        if (this.#queue[0] === item) this.#queue.shift();
        this.#inFlight.push({ ...item, sessionId, afterMessageId: this.#lastStoredMessageId });
        if (this.#inFlight.length > MAX_IN_FLIGHT) this.#inFlight.shift();
        this.#counts.sendsWritten++;
        if (item.resend) this.#counts.sendsResent++;
        this.#sink.sent({ text: item.text, sessionId, resend: item.resend });
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** Forgets every queued and in-flight message (they belonged to a chat that is gone). */
  dropAll(reason: string): void {
    const n = this.#queue.length + this.#inFlight.length;
    if (n > 0) this.#log.info({ dropped: n, reason }, 'dropped queued user messages');
    this.#counts.sendsDropped += this.#queue.length;
    this.#queue = [];
    this.#inFlight = [];
  }

  /** The live chat stored a message (`update`); a user message is the echo of what we wrote. */
  stored(update: ServerUpdateMessage): void {
    this.#lastStoredMessageId = update.messageId;
    if (update.role.toLowerCase() === 'user') this.#confirmEcho(update);
  }

  /**
   * A chat started or was resumed with this stored history: in-flight messages found in it were
   * delivered; the others go back to the front of the queue, in order.
   */
  chatStarted(history: HistoryMessage[]): void {
    const last = history.at(-1);
    this.#reconcileInFlight(history);
    this.#lastStoredMessageId = last?.messageId;
  }

  /** The live chat is gone: what it stored says nothing about the next one. */
  chatEnded(): void {
    this.#lastStoredMessageId = undefined;
  }

  /** The server stored a user message: confirm it and every in-flight message before it. */
  #confirmEcho(update: ServerUpdateMessage): void {
    const text = normaliseForMatch(update.text);
    const i = this.#inFlight.findIndex((f) => f.sessionId === update.sessionId && normaliseForMatch(f.text) === text);
    if (i >= 0) this.#inFlight.splice(0, i + 1);
  }

  #reconcileInFlight(history: HistoryMessage[]): void {
    if (this.#inFlight.length === 0) return;
    const pending = this.#inFlight;
    this.#inFlight = [];
    const firstAfter = pending[0]?.afterMessageId;
    let from = 0;
    if (firstAfter) {
      const idx = history.findIndex((m) => m.messageId === firstAfter);
      if (idx >= 0) from = idx + 1;
    }
    const requeue: QueuedSend[] = [];
    for (const item of pending) {
      const found = indexOfUserText(history, item.text, from);
      if (found >= 0) {
        from = found + 1;
        this.#counts.sendsConfirmedByHistory++;
      } else {
        requeue.push({ text: item.text, opts: item.opts, resend: true });
      }
    }
    if (requeue.length > 0) this.#log.info({ resend: requeue.length, confirmed: pending.length - requeue.length }, 'messages lost with the old connection will be sent again');
    this.#queue = [...requeue, ...this.#queue];
  }
}

/** Index of the first user message with this text at or after `from`, or -1. */
function indexOfUserText(history: HistoryMessage[], text: string, from: number): number {
  const want = normaliseForMatch(text);
  for (let k = from; k < history.length; k++) {
    const h = history[k]!;
    if (h.role.toLowerCase() === 'user' && normaliseForMatch(h.text) === want) return k;
  }
  return -1;
}

/** Text as compared between what we sent and what the server stored (escape and spacing ignored). */
function normaliseForMatch(text: string): string {
  return unescapeUserText(text).replace(/\s+/g, ' ');
}
