/**
 * Streams one character reply into Discord: the first chunk is posted at once, later chunks edit
 * that message at most once per `editIntervalMs` (Discord rate-limits edits), and when the text
 * outgrows Discord's 2000-character limit the message is closed at a sentence or word boundary and
 * the rest continues in a new message. Every Discord call runs in order on one queue, and a
 * failed call is logged and does not stop the reply.
 */
import type { Logger } from '../log.js';
import { errorInfo } from '../log.js';
import type { PostedMessage } from './ports.js';
import { DISCORD_MESSAGE_LIMIT, findSplitPoint, splitMessage } from './split-message.js';

const collapse = (t: string): string => t.replace(/\s+/g, ' ').trim();

/** Appended to a reply that ended without Voxta finishing it (cancelled, stopped, connection lost). */
export const INTERRUPTED_MARK = '*(interrupted)*';

export interface ReplyRendererOptions {
  editIntervalMs?: number;
  limit?: number;
  log: Logger;
}

export class ReplyRenderer {
  private text = '';
  /** Characters of `text` already frozen into finished messages. */
  private frozen = 0;
  private current: { message: PostedMessage; shown: string } | undefined;
  private readonly finished: PostedMessage[] = [];
  private queue: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private lastFlushAt = 0;
  private done = false;
  /** The reply was cut off: its text carries {@link INTERRUPTED_MARK}. */
  private interrupted = false;
  private readonly editIntervalMs: number;
  private readonly limit: number;

  constructor(
    private readonly channel: { readonly id: string; send(content: string): Promise<PostedMessage> },
    private readonly opts: ReplyRendererOptions,
  ) {
    this.editIntervalMs = opts.editIntervalMs ?? 1000;
    this.limit = opts.limit ?? DISCORD_MESSAGE_LIMIT;
  }

  /** The reply text so far. */
  get content(): string {
    return this.text;
  }

  /** Adds a chunk (usually a sentence). Chunks are joined with a space, as Voxta clients do. */
  append(chunk: string): void {
    if (this.done || chunk === '') return;
    if (this.text && !/\s$/.test(this.text) && !/^\s/.test(chunk)) this.text += ' ';
    this.text += chunk;
    this.schedule();
  }

  /**
   * Writes out everything and resolves with the ids of all messages of this reply. `interrupted`:
   * the reply ended without Voxta finishing it, so the shown text says so instead of looking whole.
   */
  async finish(opts: { interrupted?: boolean } = {}): Promise<string[]> {
    if (!this.done) {
      this.done = true;
      if (opts.interrupted && this.text.trim() !== '') {
        this.interrupted = true;
        this.text = `${this.text.trimEnd()} ${INTERRUPTED_MARK}`;
      }
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.enqueueFlush();
    }
    await this.queue;
    return this.messageIds();
  }

  /**
   * Voxta changed the stored text of this reply after it was shown (it keeps only what was heard
   * of an interrupted spoken reply): show that text instead, in the same messages. Messages the
   * new text no longer needs say so rather than vanish.
   */
  async rewrite(stored: string): Promise<void> {
    await this.finish();
    const text = this.interrupted ? `${stored.trimEnd()} ${INTERRUPTED_MARK}` : stored;
    if (collapse(text) === collapse(this.text)) return;
    this.text = text;
    const parts = splitMessage(text, this.limit);
    const messages = [...this.finished, ...(this.current ? [this.current.message] : [])];
    this.queue = this.queue.then(async () => {
      for (const [i, m] of messages.entries()) {
        const content = parts[i] ?? '*(not said: the reply was cut short)*';
        await m.edit(content).catch((err: unknown) => this.opts.log.warn({ err: errorInfo(err) }, 'reply: rewriting a message failed'));
      }
      for (const extra of parts.slice(messages.length)) await this.channel.send(extra).catch(() => undefined);
    });
    await this.queue;
  }

  messageIds(): string[] {
    return this.postedMessages().map((m) => m.id);
  }

  /** The messages of this reply posted so far, in order. */
  postedMessages(): PostedMessage[] {
    return [...this.finished, ...(this.current ? [this.current.message] : [])];
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.lastFlushAt + this.editIntervalMs - Date.now());
    // The first chunk goes out at once: that is the latency users feel.
    if (!this.current && this.finished.length === 0 && wait === 0) {
      this.enqueueFlush();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.enqueueFlush();
    }, wait);
  }

  private enqueueFlush(): void {
    this.lastFlushAt = Date.now();
    this.queue = this.queue.then(() => this.flush()).catch((err: unknown) => this.opts.log.warn({ err: errorInfo(err) }, 'reply: flush failed'));
  }

  private async flush(): Promise<void> {
    // Close full messages first, so each one ends at a natural boundary.
    for (;;) {
      const rest = this.text.slice(this.frozen);
      const lead = rest.length - rest.trimStart().length;
      const body = rest.slice(lead);
      if (body.length <= this.limit) break;
      const cut = findSplitPoint(body, this.limit);
      const piece = body.slice(0, cut).trimEnd();
      await this.write(piece);
      if (this.current) this.finished.push(this.current.message);
      this.current = undefined;
      this.frozen += lead + cut;
    }
    const tail = this.text.slice(this.frozen).trim();
    if (tail) await this.write(tail);
  }

  private async write(content: string): Promise<void> {
    if (this.current) {
      if (this.current.shown === content) return;
      try {
        await this.current.message.edit(content);
        this.current.shown = content;
      } catch (err) {
        this.opts.log.warn({ err: errorInfo(err) }, 'reply: editing the message failed');
      }
      return;
    }
    try {
      const message = await this.channel.send(content);
      this.current = { message, shown: content };
    } catch (err) {
      this.opts.log.warn({ err: errorInfo(err), channelId: this.channel.id }, 'reply: posting the message failed');
    }
  }
}
