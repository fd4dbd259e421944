/**
 * The bookkeeping of one guild's user messages between "accepted from Discord" and "stored in the
 * Voxta chat": the SQLite rows (`pending_messages`) that let them survive a restart, the ⏳ / ❌
 * marks on the Discord messages, the messages handed to Voxta and waiting for its `update` echo,
 * and the delivery of held ones once a chat is (back) up. The guild session decides *when*; this
 * class keeps the lists consistent and tells the channel what will not be delivered.
 */
import { errorInfo, type Logger } from '../log.js';
import type { PendingMessage, Store } from '../store/store.js';
import type { HistoryMessage } from '../voxta/messages.js';
import { unescapeUserText } from '../voxta/user-text.js';
import type { MarkableMessage, TextChannelPort } from './ports.js';
import { notDeliveredNotice } from './session-notices.js';

const PENDING_EMOJI = '⏳';
const NOT_DELIVERED_EMOJI = '❌';

/** A message shown as waiting (⏳) in the channel. */
interface MarkedMessage {
  message: MarkableMessage;
  sentText: string;
  /** Its row in the store's pending messages (undefined when storing it failed). */
  rowId: number | undefined;
}

/** A bridged message handed to Voxta, waiting for the `update` echo that carries its Voxta id. */
interface AwaitingEcho {
  discordId: string;
  /** As Voxta will echo it (unescaped). */
  text: string;
  /** As handed to the Voxta client (what its `sent` event reports). */
  sentText: string;
  rowId: number | undefined;
  sent: boolean;
}

export interface PendingMessagesDeps {
  guildId: string;
  store: Store;
  /** The session's logger as it is now (it gains the chat id while a chat runs). */
  log: () => Logger;
  /** The bound text channel, if any. */
  channel: () => TextChannelPort | undefined;
  /** Posts one plain sentence in the bound channel (never throws). */
  post: (text: string) => Promise<void>;
  /** Records that a Discord message became this Voxta message (for edits and deletions). */
  link: (discordMessageId: string, voxtaMessageId: string, chatId: string) => void;
}

/** Hands one held message to Voxta the way the session delivers any user message. */
export type DeliverHeldMessage = (discordMessageId: string | undefined, text: string, rowId: number | undefined) => void;

export class PendingMessages {
  /**
   * Bridged messages waiting for Voxta's `update` echo (their Voxta id; and the proof they are
   * stored, which removes them from the store's pending messages).
   */
  private readonly awaitingEcho: AwaitingEcho[] = [];
  /** Messages queued while Voxta reconnects or the chat (re)starts (marked ⏳ until written). */
  private readonly marked: MarkedMessage[] = [];
  /** Last message id Voxta stored in this chat, as far as we have seen (anchor for the history check). */
  lastStoredMessageId: string | undefined;
  /** Between a successful (re)start and the delivery of the held messages: new ones queue behind them. */
  holding = false;

  constructor(private readonly deps: PendingMessagesDeps) {}

  /** Messages marked ⏳ in this process. */
  get heldCount(): number {
    return this.marked.length;
  }

  /** For `/status`: the larger of what is marked here and what is stored. */
  get count(): number {
    return Math.max(this.marked.length, this.stored().length);
  }

  /** Stores an accepted message until Voxta confirms it; its row id, or undefined when storing failed. */
  persist(discordMessageId: string, text: string, chatId: string | undefined): number | undefined {
    try {
      return this.deps.store.addPendingMessage({ guildId: this.deps.guildId, chatId, discordMessageId, text });
    } catch (err) {
      // Still delivered from memory; only a restart before Voxta confirms it would lose it.
      this.deps.log().warn({ err: errorInfo(err) }, 'guild session: storing a pending message failed');
      return undefined;
    }
  }

  /** Removes delivered (or abandoned) rows from the store. */
  forget(rowIds: Array<number | undefined>): void {
    const ids = rowIds.filter((id): id is number => id !== undefined);
    if (ids.length === 0) return;
    try {
      this.deps.store.deletePendingMessages(ids);
    } catch (err) {
      this.deps.log().warn({ err: errorInfo(err) }, 'guild session: removing delivered pending messages failed');
    }
  }

  /** Shows the message as waiting (⏳) until it is written to Voxta. */
  mark(message: MarkableMessage, sentText: string, rowId: number | undefined): void {
    this.marked.push({ message, sentText, rowId });
    message.react(PENDING_EMOJI).catch(() => undefined);
  }

  /** A message handed to the Voxta client: its echo will carry the Voxta id. */
  expectEcho(discordId: string, text: string, rowId: number | undefined): void {
    this.awaitingEcho.push({ discordId, text: unescapeUserText(text), sentText: text, rowId, sent: false });
    if (this.awaitingEcho.length > 50) this.awaitingEcho.shift();
  }

  /** The chat is gone: no echo will come for what was handed to the old one. */
  clearEchoes(): void {
    this.awaitingEcho.length = 0;
  }

  /** The Voxta client wrote this text on a live connection. */
  written(text: string): void {
    // Written on a live connection: from now on it may be in the chat even if we never see the echo.
    const e = this.awaitingEcho.find((a) => a.sentText === text && !a.sent) ?? this.awaitingEcho.find((a) => a.sentText === text);
    if (e) e.sent = true;
    // (One no longer tracked in memory, after a long outage, is found by its text.)
    const rowId = e ? e.rowId : this.untracked((r) => !r.sent && r.text === text)?.id;
    if (rowId !== undefined) {
      try {
        this.deps.store.markPendingMessageSent(rowId, this.lastStoredMessageId);
      } catch (err) {
        this.deps.log().warn({ err: errorInfo(err) }, 'guild session: marking a pending message sent failed');
      }
    }
    const i = this.marked.findIndex((p) => p.sentText === text);
    if (i < 0) return;
    const [p] = this.marked.splice(i, 1);
    p?.message.unreact(PENDING_EMOJI).catch(() => undefined);
  }

  /** Voxta's `update` echo of a user message: it is stored in the chat (`text` as Voxta holds it). */
  echoed(storedText: string, voxtaMessageId: string, chatId: string | undefined): void {
    const text = unescapeUserText(storedText);
    const idx = this.awaitingEcho.findIndex((e) => e.text === text);
    const hit = idx >= 0 ? this.awaitingEcho.splice(idx, 1)[0] : undefined;
    if (hit && chatId) this.deps.link(hit.discordId, voxtaMessageId, chatId);
    // Stored in the chat: no longer pending. Voxta stores user messages in order, so those
    // written before it are stored too (as the Voxta client itself assumes).
    if (hit) {
      const earlier = this.awaitingEcho.slice(0, idx).filter((e) => e.sent);
      this.forget([hit.rowId, ...earlier.map((e) => e.rowId)]);
      for (const e of earlier) e.rowId = undefined;
    } else {
      this.forget([this.untracked((r) => r.sent && unescapeUserText(r.text) === text)?.id]);
    }
  }

  /**
   * The chat is (back) up: the messages stored as pending for it go out now, once, in order, before
   * any new one. One written before a crash or shutdown whose echo we never saw is looked up in the
   * chat history first (after the last message we had seen when it was written) and not sent again
   * when it is there; the remaining window is two identical texts sent in a row around the crash,
   * which may be taken as one. Messages held for another chat (a /start replaced it) are reported
   * as not delivered.
   */
  deliverHeld(chatId: string, history: readonly HistoryMessage[], deliver: DeliverHeldMessage): void {
    const rows = this.stored();
    const lost: PendingMessage[] = [];
    const done: number[] = [];
    let from = 0;
    const delivered = new Set<number>();
    for (const row of rows) {
      if (row.chatId !== undefined && row.chatId !== chatId) {
        lost.push(row);
        continue;
      }
      if (row.sent) {
        const k = findUserMessage(history, row.text, Math.max(from, anchorIndex(history, row.afterMessageId) + 1));
        if (k >= 0) {
          from = k + 1;
          done.push(row.id);
          const voxtaId = history[k]?.messageId;
          if (row.discordMessageId && voxtaId) this.deps.link(row.discordMessageId, voxtaId, chatId);
          this.unmark(row.id);
          continue;
        }
      }
      delivered.add(row.id);
      // Held by an earlier process: its ⏳ goes when the Voxta client writes it, like any other.
      this.trackMark(row);
      deliver(row.discordMessageId, row.text, row.id);
    }
    // Held in memory only (storing them failed): after the stored ones, in order.
    for (const p of this.marked) if (p.rowId === undefined) deliver(p.message.id, p.sentText, undefined);
    // Rows of the guild not held here any more (another chat): their ⏳ goes, ❌ instead.
    for (const row of lost) {
      this.trackMark(row);
      this.unmark(row.id, !row.sent);
    }
    this.forget([...done, ...lost.map((r) => r.id)]);
    if (done.length || delivered.size || lost.length) {
      this.deps.log().info({ delivered: delivered.size, alreadyInChat: done.length, notDelivered: lost.length }, 'guild session: held messages handled');
    }
    const notSent = lost.filter((r) => !r.sent);
    if (notSent.length) this.deps.post(notDeliveredNotice(notSent)).catch(() => undefined);
  }

  /** Voxta is back: what it queued has been delivered; clear the ⏳ marks. */
  clearMarks(): void {
    for (const p of this.marked.splice(0)) p.message.unreact(PENDING_EMOJI).catch(() => undefined);
  }

  /**
   * Messages waiting for a chat that will not come (it is gone, or was stopped): forgotten, marked
   * ❌, and the channel told which ones did not reach the character. `unconfirmedLost`: Voxta
   * confirmed the chat's stop, so a message written to it but never echoed was not stored either
   * (Voxta drops the user messages it had queued, e.g. behind a reply being spoken); without that
   * confirmation a written message may be in the chat and is not reported.
   */
  abandon(opts: { unconfirmedLost?: boolean } = {}): void {
    const lost = (sent: boolean): boolean => !sent || opts.unconfirmedLost === true;
    const rows = this.stored();
    this.forget(rows.map((r) => r.id));
    const inMemory = this.marked.splice(0);
    for (const p of inMemory) {
      p.message.unreact(PENDING_EMOJI).catch(() => undefined);
      p.message.react(NOT_DELIVERED_EMOJI).catch(() => undefined);
    }
    // Held by an earlier process, or written and awaiting their echo (no handle here): marked
    // through the channel by id.
    const handled = new Set(inMemory.map((p) => p.rowId));
    for (const row of rows) {
      if (handled.has(row.id) || !row.discordMessageId) continue;
      const m = this.deps.channel()?.markable(row.discordMessageId);
      m?.unreact(PENDING_EMOJI).catch(() => undefined);
      if (lost(row.sent)) m?.react(NOT_DELIVERED_EMOJI).catch(() => undefined);
    }
    const notDelivered: Array<{ text: string }> = rows.filter((r) => lost(r.sent));
    for (const p of inMemory) if (p.rowId === undefined) notDelivered.push({ text: p.sentText });
    // Written from memory only (storing their row had failed): lost too once the stop is confirmed.
    if (opts.unconfirmedLost) {
      for (const e of this.awaitingEcho) {
        if (e.rowId !== undefined || !e.sent) continue;
        this.deps.channel()?.markable(e.discordId).react(NOT_DELIVERED_EMOJI).catch(() => undefined);
        notDelivered.push({ text: e.sentText });
      }
    }
    if (notDelivered.length) {
      this.deps.log().info({ messages: notDelivered.length }, 'guild session: pending messages will not be delivered');
      this.deps.post(notDeliveredNotice(notDelivered)).catch(() => undefined);
    }
  }

  private stored(): PendingMessage[] {
    try {
      return this.deps.store.listPendingMessages(this.deps.guildId);
    } catch (err) {
      this.deps.log().warn({ err: errorInfo(err) }, 'guild session: reading pending messages failed');
      return [];
    }
  }

  /** The oldest stored pending message of this guild that is not tracked in memory and matches. */
  private untracked(match: (row: PendingMessage) => boolean): PendingMessage | undefined {
    const tracked = new Set(this.awaitingEcho.map((a) => a.rowId));
    return this.stored().find((r) => !tracked.has(r.id) && match(r));
  }

  /** A stored row's Discord message, for its status marks, when this process has no handle on it yet. */
  private trackMark(row: PendingMessage): void {
    if (!row.discordMessageId || this.marked.some((p) => p.rowId === row.id)) return;
    const message = this.deps.channel()?.markable(row.discordMessageId);
    if (message) this.marked.push({ message, sentText: row.text, rowId: row.id });
  }

  private unmark(rowId: number, failed = false): void {
    const i = this.marked.findIndex((p) => p.rowId === rowId);
    if (i < 0) return;
    const [p] = this.marked.splice(i, 1);
    p?.message.unreact(PENDING_EMOJI).catch(() => undefined);
    if (failed) p?.message.react(NOT_DELIVERED_EMOJI).catch(() => undefined);
  }
}

/** Index of the history message with this id, or -1. */
function anchorIndex(history: readonly HistoryMessage[], messageId: string | undefined): number {
  return messageId === undefined ? -1 : history.findIndex((m) => m.messageId === messageId);
}

/** The first user message with this text at or after `from`, or -1 (escapes and spacing ignored). */
function findUserMessage(history: readonly HistoryMessage[], text: string, from: number): number {
  const want = unescapeUserText(text).replace(/\s+/g, ' ');
  for (let k = from; k < history.length; k++) {
    const h = history[k]!;
    if (h.role.toLowerCase() === 'user' && unescapeUserText(h.text).replace(/\s+/g, ' ') === want) return k;
  }
  return -1;
}
