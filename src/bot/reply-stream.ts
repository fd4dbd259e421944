/**
 * The character's replies as they stream into a guild's bound text channel: the typing indicator
 * while Voxta generates, one {@link ReplyRenderer} per reply, and the replies finished recently,
 * kept so that a later correction from Voxta (a reply cut after an interruption) can be shown.
 */
import type { Logger } from '../log.js';
import type { OutgoingMessage, PostedMessage, TextChannelPort } from './ports.js';
import type { ShownReply } from './reply-controls.js';
import { ReplyRenderer } from './reply-renderer.js';
import type { ReplyTarget, Speaker } from './reply-targets.js';

/** Where a reply's messages are posted: the channel, a character's webhook, or either with buttons. */
export interface ReplySink {
  readonly id: string;
  send(message: string | OutgoingMessage): Promise<PostedMessage>;
}

const TYPING_REFRESH_MS = 8000;
/** Finished replies kept for corrections. */
const RECENT_REPLIES = 20;

export interface ReplyStreamDeps {
  channel: () => TextChannelPort | undefined;
  /** The session's logger as it is now (it gains the chat id while a chat runs). */
  log: () => Logger;
  /** False when a new reply is not to be shown (it answers a voice turn while mirroring is off). */
  showsReplies: () => boolean;
  /** Reply edit throttle (tests shorten it). */
  editIntervalMs?: number;
  /**
   * Where a reply of this speaker goes (its character's webhook, or the bot with the name).
   * Without it replies are posted by the bot, as they are.
   */
  target?: (channel: TextChannelPort, speaker: Speaker | undefined) => ReplyTarget;
  /**
   * What a reply posts through, given where it goes (the reply controls add their buttons and
   * track the message carrying them); default: straight there.
   */
  decorate?: (messageId: string, to: ReplySink) => ReplySink;
}

export class ReplyStream {
  private readonly streaming = new Map<string, ReplyRenderer>();
  /** Finished replies, newest last, kept briefly so a later `update` can correct them. */
  private readonly recent = new Map<string, ReplyRenderer>();
  /** Each streaming reply's target, released when the reply is finished. */
  private readonly targets = new Map<string, ReplyTarget>();
  private typingTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: ReplyStreamDeps) {}

  /** Voxta started generating a reply: show "typing…" until its first shown chunk. */
  generating(): void {
    if (this.typingTimer) return;
    const tick = (): void => {
      this.deps.channel()?.sendTyping().catch(() => undefined);
    };
    tick();
    this.typingTimer = setInterval(tick, TYPING_REFRESH_MS);
    this.typingTimer.unref();
  }

  stopTyping(): void {
    if (this.typingTimer) clearInterval(this.typingTimer);
    this.typingTimer = undefined;
  }

  chunk(messageId: string, text: string, speaker?: Speaker): void {
    const r = this.renderer(messageId, speaker);
    if (r) {
      this.stopTyping();
      r.append(text);
    }
  }

  /**
   * The reply ended (or was cancelled: it then says it was interrupted). `posted` gets the ids of
   * the Discord messages it ended up in.
   */
  ended(messageId: string, interrupted: boolean, posted: (discordMessageIds: string[]) => void): void {
    this.stopTyping();
    const r = this.streaming.get(messageId);
    if (!r) return;
    this.streaming.delete(messageId);
    this.recent.set(messageId, r);
    if (this.recent.size > RECENT_REPLIES) this.recent.delete(this.recent.keys().next().value!);
    r.finish({ interrupted })
      .then(posted, () => undefined)
      .finally(() => this.release(messageId))
      .catch(() => undefined);
  }

  /** The reply's target is no longer needed (its character's webhook may serve another). */
  private release(messageId: string): void {
    this.targets.get(messageId)?.done();
    this.targets.delete(messageId);
  }

  /** Voxta now stores this text for a reply (cut after an interruption, edited): show it so. */
  corrected(messageId: string, text: string): void {
    const shown = this.recent.get(messageId);
    if (shown && text) shown.rewrite(text).catch(() => undefined);
  }

  /** The Discord messages a reply was (or is being) posted in, oldest first; empty when not shown. */
  discordMessagesOf(messageId: string): string[] {
    return (this.streaming.get(messageId) ?? this.recent.get(messageId))?.messageIds() ?? [];
  }

  /** The most recent reply that was shown, if any. */
  lastShownReply(): string | undefined {
    return [...this.streaming.keys(), ...this.recent.keys()].filter((id) => this.discordMessagesOf(id).length > 0).at(-1);
  }

  /** A reply as shown in the channel (streaming or finished recently), for the reply controls. */
  shown(messageId: string): ShownReply | undefined {
    const r = this.streaming.get(messageId) ?? this.recent.get(messageId);
    if (!r) return undefined;
    return { messages: r.postedMessages(), content: r.content, rewrite: (text) => r.rewrite(text) };
  }

  /** Replies still streaming are ended as interrupted, one after another (stop). */
  async cutAll(): Promise<void> {
    for (const [id, r] of this.streaming) {
      await r.finish({ interrupted: true }).catch(() => undefined);
      this.release(id);
    }
    this.streaming.clear();
  }

  /** Replies a lost connection was streaming will never end: shown as cut, without waiting. */
  cutAllNow(): void {
    for (const [id, r] of this.streaming) {
      r.finish({ interrupted: true })
        .catch(() => undefined)
        .finally(() => this.release(id))
        .catch(() => undefined);
    }
    this.streaming.clear();
  }

  /** A renderer for the reply, unless it is not to be shown. */
  private renderer(messageId: string, speaker: Speaker | undefined): ReplyRenderer | undefined {
    let r = this.streaming.get(messageId);
    if (r) return r;
    if (!this.deps.showsReplies()) return undefined;
    const channel = this.deps.channel();
    if (!channel) return undefined;
    const target = this.deps.target?.(channel, speaker);
    if (target) this.targets.set(messageId, target);
    const to: ReplySink = target ?? channel;
    r = new ReplyRenderer(this.deps.decorate?.(messageId, to) ?? to, { log: this.deps.log(), editIntervalMs: this.deps.editIntervalMs, ...(target ? { limit: target.limit } : {}) });
    this.streaming.set(messageId, r);
    return r;
  }
}
