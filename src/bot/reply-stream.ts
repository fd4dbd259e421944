/**
 * The character's replies as they stream into a guild's bound text channel: the typing indicator
 * while Voxta generates, one {@link ReplyRenderer} per reply, and the replies finished recently,
 * kept so that a later correction from Voxta (a reply cut after an interruption) can be shown.
 */
import type { Logger } from '../log.js';
import type { TextChannelPort } from './ports.js';
import type { ShownReply } from './reply-controls.js';
import { ReplyRenderer } from './reply-renderer.js';

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
  /** What a reply posts through (the reply controls add their buttons); default: the channel. */
  decorate?: (messageId: string, channel: TextChannelPort) => Pick<TextChannelPort, 'id' | 'send'>;
}

export class ReplyStream {
  private readonly streaming = new Map<string, ReplyRenderer>();
  /** Finished replies, newest last, kept briefly so a later `update` can correct them. */
  private readonly recent = new Map<string, ReplyRenderer>();
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

  chunk(messageId: string, text: string): void {
    const r = this.renderer(messageId);
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
    r.finish({ interrupted }).then(posted, () => undefined);
  }

  /** Voxta now stores this text for a reply (cut after an interruption, edited): show it so. */
  corrected(messageId: string, text: string): void {
    const shown = this.recent.get(messageId);
    if (shown && text) shown.rewrite(text).catch(() => undefined);
  }

  /** A reply as shown in the channel (streaming or finished recently), for the reply controls. */
  shown(messageId: string): ShownReply | undefined {
    const r = this.streaming.get(messageId) ?? this.recent.get(messageId);
    if (!r) return undefined;
    return { messages: r.postedMessages(), content: r.content, rewrite: (text) => r.rewrite(text) };
  }

  /** Replies still streaming are ended as interrupted, one after another (stop). */
  async cutAll(): Promise<void> {
    for (const r of this.streaming.values()) await r.finish({ interrupted: true }).catch(() => undefined);
    this.streaming.clear();
  }

  /** Replies a lost connection was streaming will never end: shown as cut, without waiting. */
  cutAllNow(): void {
    for (const r of this.streaming.values()) r.finish({ interrupted: true }).catch(() => undefined);
    this.streaming.clear();
  }

  /** A renderer for the reply, unless it is not to be shown. */
  private renderer(messageId: string): ReplyRenderer | undefined {
    let r = this.streaming.get(messageId);
    if (r) return r;
    if (!this.deps.showsReplies()) return undefined;
    const channel = this.deps.channel();
    if (!channel) return undefined;
    r = new ReplyRenderer(this.deps.decorate?.(messageId, channel) ?? channel, { log: this.deps.log(), editIntervalMs: this.deps.editIntervalMs });
    this.streaming.set(messageId, r);
    return r;
  }
}
