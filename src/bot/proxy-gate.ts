/**
 * Messages proxied by PluralKit, Tupperbox and the like: read once, under the proxied name.
 *
 * A proxy bot reads a member's message ("luna: hi"), reposts it through a webhook of its own under
 * another name ("Luna": "hi") and deletes the original. The bridge must answer the repost, as said
 * by Luna, and never the original too. Real orderings differ:
 *
 *   PluralKit:  member's message → ~0.3–1 s → webhook repost → 1 s later (its deletion delay) → original deleted
 *   Tupperbox:  member's message → original deleted → repost (or repost first; it varies)
 *
 * Neither ordering lets the original be judged when it arrives, so in a guild where a known proxy
 * bot is a member (asked of Discord), or where one has been seen at work, each member's message is
 * HELD for a short window ({@link PROXY_HOLD_MS}) before it is forwarded:
 * - a repost whose text the held message contains (proxy tags are stripped from the repost)
 *   replaces it: the original is dropped and the repost goes out in its place;
 * - a held message deleted within the window is dropped (the proxy deleted it first);
 * - otherwise it goes out when the window ends (an ordinary message, ~1.5 s late).
 * Messages leave in the order they came, per channel.
 *
 * Which webhook messages are a proxy's: the webhook's creator is a known proxy bot (the bot lists
 * the channel's webhooks, which needs Manage Webhooks: the same permission it posts characters
 * with), or the message carries the proxy's application id. Without that permission the repost is
 * recognised by content instead: it must match a held (or just deleted) member's message. Other
 * webhooks (integrations, feeds) and the bot's own are never bridged.
 *
 * A repost that comes after its original already went out (the proxy was slower than the window,
 * or the guild was not known to have a proxy yet) does not make a second turn: the Voxta message
 * is corrected to the proxied name instead, and the original's later deletion leaves it in place.
 */
import { errorInfo, type Logger } from '../log.js';
import type { GuildPort, IncomingTextMessage, ListedWebhook } from './ports.js';

/** PluralKit and Tupperbox, by their bot user ids (also their application ids). */
export const KNOWN_PROXY_BOTS: Readonly<Record<string, string>> = {
  '466378653216014359': 'PluralKit',
  '431544605209788416': 'Tupperbox',
};

/** How long a member's message is held, in a guild with a proxy bot, before it goes out. */
export const PROXY_HOLD_MS = 1500;
/** A repost may still be classified this long after it came (listing webhooks may be slow). */
const CLASSIFY_TIMEOUT_MS = 3000;
/** A repost arriving this long after its original went out still corrects it. */
const LATE_REPOST_MS = 20_000;
/** Whether a proxy bot is in the guild is asked again after this long. */
const PRESENCE_TTL_MS = 10 * 60_000;

/** A message posted by a webhook that is not the bot's own. */
export interface IncomingWebhookMessage extends IncomingTextMessage {
  webhookId: string;
  /** The application that owns the webhook, when Discord says. */
  applicationId?: string;
}

export interface ProxyGateDeps {
  guild: () => GuildPort | undefined;
  /** Who created a webhook of a channel (undefined: cannot be learned). */
  describeWebhook: (channelId: string, webhookId: string) => Promise<ListedWebhook | undefined>;
  /** Hands a message on to the bridge (in order, per channel). */
  deliver: (msg: IncomingTextMessage) => Promise<void>;
  /** A late repost: the original (already sent to Voxta) is now said by the proxied name. */
  correct: (originalId: string, repost: IncomingTextMessage) => void;
  log: () => Logger;
  proxyBotIds: readonly string[];
  holdMs?: number;
  now?: () => number;
}

type Entry =
  | { kind: 'member'; msg: IncomingTextMessage; until: number; state: 'held' | 'drop' }
  | { kind: 'repost'; msg: IncomingWebhookMessage; state: 'classifying' | 'proxy' | 'drop' };

interface ChannelQueue {
  entries: Entry[];
  timer: NodeJS.Timeout | undefined;
  /** Deliveries run one after another. */
  tail: Promise<void>;
}

export class ProxyGate {
  private present: { value: boolean; at: number } | undefined;
  private checking: Promise<void> | undefined;
  /** A proxy was seen at work here (holding from now on, whatever the member check said). */
  private learned = false;
  private readonly queues = new Map<string, ChannelQueue>();
  private readonly recentDeleted: Array<{ channelId: string; content: string; at: number }> = [];
  private readonly recentForwarded: Array<{ id: string; channelId: string; content: string; at: number }> = [];
  /** Originals whose repost corrected them: their deletion must not delete the Voxta message. */
  private readonly superseded = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly deps: ProxyGateDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Whether members' messages are held here now. */
  get holding(): boolean {
    return this.learned || this.present?.value === true;
  }

  /** Asks Discord (again, when stale) whether a known proxy bot is a member. Never rejects. */
  refreshPresence(): Promise<void> {
    if (this.present && this.now() - this.present.at < PRESENCE_TTL_MS) return Promise.resolve();
    if (this.checking) return this.checking;
    this.checking = (async () => {
      const guild = this.deps.guild();
      if (!guild?.hasMember) return;
      let found = false;
      for (const id of this.deps.proxyBotIds) {
        try {
          if (await guild.hasMember(id)) {
            found = true;
            break;
          }
        } catch (err) {
          this.deps.log().debug({ err: errorInfo(err), userId: id }, 'proxy bots: asking whether a proxy bot is here failed');
          return;
        }
      }
      if (found && !this.present?.value) this.deps.log().info('proxy bots: a proxy bot (PluralKit, Tupperbox…) is in this server; members’ messages wait briefly for its reposts');
      this.present = { value: found, at: this.now() };
    })().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  /**
   * A member's message in a bridged channel. Resolves once it is handed on when it goes at once
   * (no proxy bot here), or at once when it is held.
   */
  human(msg: IncomingTextMessage): Promise<void> {
    this.refreshPresence().catch(() => undefined);
    const q = this.queue(msg.channelId);
    if (!this.holding && q.entries.length === 0) {
      this.forward(q, msg);
      return q.tail;
    }
    q.entries.push({ kind: 'member', msg, until: this.now() + (this.holding ? (this.deps.holdMs ?? PROXY_HOLD_MS) : 0), state: 'held' });
    this.pump(msg.channelId);
    return Promise.resolve();
  }

  /** A message posted by someone else's webhook in a bridged channel. */
  webhook(msg: IncomingWebhookMessage): void {
    const q = this.queue(msg.channelId);
    const entry: Entry = { kind: 'repost', msg, state: 'classifying' };
    q.entries.push(entry);
    const classified = this.classify(msg);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), CLASSIFY_TIMEOUT_MS);
      timer.unref();
    });
    Promise.race([classified, timeout])
      .then((verdict) => {
        clearTimeout(timer);
        this.settle(entry, verdict === 'timeout' ? this.matchesContent(msg) : verdict);
      })
      .catch((err: unknown) => {
        clearTimeout(timer);
        this.deps.log().debug({ err: errorInfo(err) }, 'proxy bots: classifying a webhook message failed');
        this.settle(entry, this.matchesContent(msg));
      });
  }

  /**
   * A message was deleted. True when that settles it here (a held original the proxy deleted, or
   * one a repost replaced): the bridge must not act on the deletion.
   */
  deleted(channelId: string, messageId: string): boolean {
    if (this.superseded.delete(messageId)) return true;
    const q = this.queues.get(channelId);
    const e = q?.entries.find((x) => x.kind === 'member' && x.msg.id === messageId);
    if (!e || e.kind !== 'member') return false;
    if (e.state === 'held') this.recentDeleted.push({ channelId, content: norm(e.msg.content), at: this.now() });
    this.trim(this.recentDeleted);
    e.state = 'drop';
    this.pump(channelId);
    return true;
  }

  /** A message was edited: one still held goes out with its new text. True when it was held. */
  edited(channelId: string, messageId: string, content: string): boolean {
    const e = this.queues.get(channelId)?.entries.find((x) => x.kind === 'member' && x.msg.id === messageId && x.state === 'held');
    if (!e) return false;
    e.msg.content = content;
    return true;
  }

  /** Drops everything held (the session stopped, or the guild is forgotten). */
  clear(): void {
    for (const q of this.queues.values()) if (q.timer) clearTimeout(q.timer);
    this.queues.clear();
  }

  // ---- internals --------------------------------------------------------------------------

  private queue(channelId: string): ChannelQueue {
    let q = this.queues.get(channelId);
    if (!q) {
      q = { entries: [], timer: undefined, tail: Promise.resolve() };
      this.queues.set(channelId, q);
    }
    return q;
  }

  /** True when the repost is a proxy bot's. */
  private async classify(msg: IncomingWebhookMessage): Promise<boolean> {
    const ids = this.deps.proxyBotIds;
    if (msg.applicationId && ids.includes(msg.applicationId)) return true;
    const hookChannel = this.deps.guild()?.textChannel(msg.channelId)?.parentId ?? msg.channelId;
    const hook = await this.deps.describeWebhook(hookChannel, msg.webhookId);
    if (hook) return (hook.creatorId !== undefined && ids.includes(hook.creatorId)) || (hook.applicationId !== undefined && ids.includes(hook.applicationId));
    // Its creator cannot be learned (no Manage Webhooks): a repost of a message we saw is one.
    return this.matchesContent(msg);
  }

  /** The repost's text is what a held (or just deleted) member's message of its channel said. */
  private matchesContent(msg: IncomingWebhookMessage): boolean {
    const text = norm(msg.content);
    if (!text) return false;
    const q = this.queues.get(msg.channelId);
    if (q?.entries.some((e) => e.kind === 'member' && e.state === 'held' && norm(e.msg.content).includes(text))) return true;
    this.trim(this.recentDeleted);
    return this.recentDeleted.some((d) => d.channelId === msg.channelId && d.content.includes(text));
  }

  private settle(entry: Entry & { kind: 'repost' }, proxy: boolean): void {
    const channelId = entry.msg.channelId;
    if (!proxy) {
      entry.state = 'drop';
      this.pump(channelId);
      return;
    }
    if (!this.learned && !this.present?.value) this.deps.log().info('proxy bots: a proxy bot reposted a message here; members’ messages now wait briefly for its reposts');
    this.learned = true;
    const text = norm(entry.msg.content);
    const q = this.queue(channelId);
    const at = q.entries.indexOf(entry);
    const original = q.entries.slice(0, at < 0 ? undefined : at).find((e) => e.kind === 'member' && e.state === 'held' && text !== '' && norm(e.msg.content).includes(text));
    if (original) {
      // The original will be deleted by the proxy: it never goes out, and its deletion is ours.
      original.state = 'drop';
      this.superseded.add(original.msg.id);
      entry.state = 'proxy';
    } else {
      this.trim(this.recentForwarded);
      const late = text ? this.recentForwarded.find((f) => f.channelId === channelId && f.content.includes(text)) : undefined;
      if (late) {
        this.recentForwarded.splice(this.recentForwarded.indexOf(late), 1);
        this.superseded.add(late.id);
        entry.state = 'drop';
        this.deps.log().info({ channelId }, 'proxy bots: a repost came after its original was sent; correcting the name instead of answering twice');
        try {
          this.deps.correct(late.id, entry.msg);
        } catch (err) {
          this.deps.log().warn({ err: errorInfo(err) }, 'proxy bots: correcting a late repost failed');
        }
      } else {
        entry.state = 'proxy';
      }
    }
    if (this.superseded.size > 200) this.superseded.delete(this.superseded.values().next().value!);
    this.pump(channelId);
  }

  /** Sends out what may go, in order; waits for the head of the queue otherwise. */
  private pump(channelId: string): void {
    const q = this.queues.get(channelId);
    if (!q) return;
    if (q.timer) clearTimeout(q.timer);
    q.timer = undefined;
    for (;;) {
      const e = q.entries[0];
      if (!e) break;
      if (e.state === 'drop') {
        q.entries.shift();
        continue;
      }
      if (e.kind === 'repost') {
        if (e.state === 'classifying') break;
        q.entries.shift();
        this.forward(q, e.msg);
        continue;
      }
      // A repost being classified may yet claim this message: wait for its verdict.
      const wait = e.until - this.now();
      if (wait > 0 || q.entries.some((x) => x.kind === 'repost' && x.state === 'classifying')) {
        if (wait > 0) {
          q.timer = setTimeout(() => this.pump(channelId), wait);
          q.timer.unref();
        }
        break;
      }
      q.entries.shift();
      this.forward(q, e.msg);
    }
  }

  private forward(q: ChannelQueue, msg: IncomingTextMessage): void {
    if (!msg.proxied) {
      this.recentForwarded.push({ id: msg.id, channelId: msg.channelId, content: norm(msg.content), at: this.now() });
      this.trim(this.recentForwarded);
    }
    q.tail = q.tail
      .then(() => this.deps.deliver(msg))
      .catch((err: unknown) => this.deps.log().warn({ err: errorInfo(err, true), channelId: msg.channelId }, 'bridging a message failed'));
  }

  private trim(list: Array<{ at: number }>): void {
    const cutoff = this.now() - LATE_REPOST_MS;
    while (list.length && (list[0]!.at < cutoff || list.length > 100)) list.shift();
  }
}

function norm(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
