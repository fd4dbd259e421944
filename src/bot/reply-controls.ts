/**
 * The buttons under the character's latest reply: Regenerate (Voxta `retry`), Stop (`interrupt`)
 * and Undo (Voxta `revert`: the last exchange leaves the chat).
 *
 * Only the latest shown reply carries them: a reply's messages are posted with the buttons (no
 * extra request), and the message that carried them before loses them (one edit). A reply that is
 * not shown in text (a voice turn while transcripts are off) also takes them away from the older
 * one, since Regenerate and Undo act on the chat's latest message. A button of any other message
 * than the chat's latest is refused, so a click that races a new message never undoes the wrong one.
 *
 * What Voxta deletes comes back as `messageDeleted`, whatever asked for it: a regenerated reply's
 * messages are deleted (the new reply replaces them); an undone reply is struck through; a member's
 * undone message gets ↩️ (the bot cannot edit members' messages). The message links are dropped
 * first, so that deleting our own message is not taken for a member deleting it.
 */
import { errorInfo, type Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { MessageButton, OutgoingMessage, PostedMessage, TextChannelPort } from './ports.js';
import type { ReplySink } from './reply-stream.js';

export type ReplyAction = 'regenerate' | 'stop' | 'undo';
const ACTIONS: readonly ReplyAction[] = ['regenerate', 'stop', 'undo'];
export const REPLY_BUTTON_PREFIX = 'reply';
export const UNDONE_EMOJI = '↩️';
/** A Regenerate waits this long at most for Voxta's deletion of the old reply. */
const REGENERATE_WINDOW_MS = 30_000;

/** The buttons of a reply (custom ids carry the Voxta message id, ≤ 100 characters). */
export function replyButtons(voxtaMessageId: string): MessageButton[] {
  const id = (action: ReplyAction): string => `${REPLY_BUTTON_PREFIX}:${action}:${voxtaMessageId}`.slice(0, 100);
  return [
    { customId: id('regenerate'), label: 'Regenerate', emoji: '🔄', style: 'secondary' },
    { customId: id('stop'), label: 'Stop', emoji: '⏹️', style: 'secondary' },
    { customId: id('undo'), label: 'Undo', emoji: '↩️', style: 'danger' },
  ];
}

export function parseReplyButton(customId: string): { action: ReplyAction; messageId: string } | undefined {
  const [prefix, action, ...rest] = customId.split(':');
  if (prefix !== REPLY_BUTTON_PREFIX || !ACTIONS.includes(action as ReplyAction) || rest.length === 0) return undefined;
  return { action: action as ReplyAction, messageId: rest.join(':') };
}

/** The parts of a shown reply this needs (implemented by ReplyStream). */
export interface ShownReply {
  messages: PostedMessage[];
  /** Shows this text instead (same messages). */
  rewrite(text: string): Promise<void>;
  content: string;
}

export interface ReplyControlsDeps {
  store: Store;
  log: () => Logger;
  channel: () => TextChannelPort | undefined;
  chatId: () => string | undefined;
}

export class ReplyControls {
  /** The message carrying the buttons now, and the reply it belongs to. */
  private carrier: { voxtaId: string; message: PostedMessage } | undefined;
  /** Discord calls about buttons, in order. */
  private queue: Promise<void> = Promise.resolve();
  private regenerating: { voxtaId: string; until: number } | undefined;
  private deletionWaiters: Array<() => void> = [];
  /** The chat's latest message (a reply or a member's message), as far as seen. */
  latestMessageId: string | undefined;
  /** A chat is open: replies get the buttons (not after a stop, while late posts may still go out). */
  private active = false;

  constructor(private readonly deps: ReplyControlsDeps) {}

  /**
   * The channel a shown reply posts through: each of its messages is posted with the buttons, and
   * the message that carried them before loses them.
   */
  decorate(voxtaId: string, channel: ReplySink): ReplySink {
    return {
      id: channel.id,
      send: async (message: string | OutgoingMessage): Promise<PostedMessage> => {
        const m = typeof message === 'string' ? { content: message } : message;
        if (!this.active) return channel.send(m);
        const posted = await channel.send({ ...m, buttons: replyButtons(voxtaId) });
        if (this.active) this.moveTo({ voxtaId, message: posted });
        else await posted.setButtons?.([]).catch(() => undefined);
        return posted;
      },
    };
  }

  /** A new message in the chat: a reply (shown or not) or a member's message stored by Voxta. */
  noteMessage(voxtaId: string, kind: 'reply' | 'user'): void {
    this.latestMessageId = voxtaId;
    // A reply that is not shown takes the buttons away from the older one; a shown one moves them
    // itself when it posts. A member's new message leaves them: the reply is still the one before it.
    if (kind === 'reply' && this.carrier && this.carrier.voxtaId !== voxtaId) this.moveTo(undefined);
  }

  /** Regenerate was asked for this reply: its deletion replaces it instead of striking it through. */
  regenerate(voxtaId: string): void {
    this.regenerating = { voxtaId, until: Date.now() + REGENERATE_WINDOW_MS };
  }

  /** Resolves true at the next deletion Voxta reports, false after `ms`. */
  nextDeletion(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.deletionWaiters = this.deletionWaiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      timer.unref();
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.deletionWaiters.push(done);
    });
  }

  /**
   * Voxta deleted a message of the chat. `shown`: the reply as rendered in the channel, when it
   * was one of ours.
   */
  deleted(voxtaId: string, shown: ShownReply | undefined): void {
    for (const w of this.deletionWaiters.splice(0)) w();
    const chatId = this.deps.chatId();
    let discordIds: string[] = [];
    if (chatId) {
      try {
        discordIds = this.deps.store.findMessageLinksByVoxtaId(chatId, voxtaId);
        for (const id of discordIds) this.deps.store.unlinkMessage(id);
      } catch (err) {
        this.deps.log().warn({ err: errorInfo(err) }, 'reply controls: reading or dropping message links failed');
      }
    }
    if (this.latestMessageId === voxtaId) this.latestMessageId = undefined;
    const regenerated = this.regenerating?.voxtaId === voxtaId && Date.now() < this.regenerating.until;
    if (regenerated) this.regenerating = undefined;
    const carried = this.carrier?.voxtaId === voxtaId ? this.carrier : undefined;
    if (carried) this.carrier = undefined;
    this.enqueue(async () => {
      if (shown) {
        if (regenerated) {
          for (const m of shown.messages) {
            if (m.delete) await m.delete().catch((err: unknown) => this.deps.log().warn({ err: errorInfo(err) }, 'reply controls: deleting a replaced reply failed'));
          }
          if (shown.messages.every((m) => m.delete)) return;
        }
        if (carried) await carried.message.setButtons?.([]).catch(() => undefined);
        await shown.rewrite(struckThrough(shown.content, regenerated ? 'replaced' : 'undone')).catch(() => undefined);
        return;
      }
      // A member's message (or one of ours no longer in memory): marked, since it cannot be edited.
      const channel = this.deps.channel();
      for (const id of discordIds) await channel?.markable(id).react(UNDONE_EMOJI).catch(() => undefined);
    });
  }

  /** A chat is being opened: its replies carry the buttons. */
  activate(): void {
    this.active = true;
  }

  /** The chat stopped: no buttons stay behind (nor come later). Resolves once Discord was asked. */
  async clear(): Promise<void> {
    this.active = false;
    this.moveTo(undefined);
    this.latestMessageId = undefined;
    this.regenerating = undefined;
    await this.queue;
  }

  private moveTo(next: { voxtaId: string; message: PostedMessage } | undefined): void {
    const prev = this.carrier;
    this.carrier = next;
    if (prev && prev.message !== next?.message) {
      this.enqueue(async () => {
        await prev.message.setButtons?.([]);
      });
    }
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((err: unknown) => this.deps.log().warn({ err: errorInfo(err) }, 'reply controls: updating the buttons failed'));
  }
}

/** Each line struck through, and a note saying why. */
export function struckThrough(text: string, why: 'undone' | 'replaced'): string {
  const body = text
    .split('\n')
    .map((line) => (line.trim() ? `~~${line.trim().replace(/~~/g, '')}~~` : line))
    .join('\n');
  return `${body}\n*(${why === 'undone' ? 'undone' : 'replaced by a regenerated reply'})*`;
}
