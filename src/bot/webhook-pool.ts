/**
 * The bot's channel webhooks: characters post through them under their own name and avatar.
 *
 * Design (see also the README "Characters post as themselves"):
 * - One webhook per character per channel, created with the character's name and its avatar
 *   uploaded as image data (a Voxta server is usually local: Discord could not fetch an avatar
 *   URL). Webhooks live in a channel; a thread's messages go through its parent's webhooks with
 *   `thread_id`.
 * - They are stored (SQLite `channel_webhooks`) and reused across restarts. The first use of a
 *   channel in a process lists the channel's webhooks once: stored ones that are gone are
 *   forgotten, the bot's own ones the store does not know (a lost database) are adopted, and the
 *   channel's total (proxy bots' and integrations' webhooks count too) is learned.
 * - Discord allows 15 webhooks per channel. The bot keeps to {@link MAX_OWN_PER_CHANNEL} of its
 *   own and leaves {@link RESERVED_SLOTS} free for others (PluralKit needs one in every channel it
 *   proxies in); beyond that the least recently used of its webhooks is renamed and re-avatared for
 *   the next character. A webhook whose character is speaking right now (a lease is held) is never
 *   taken: a reply that continues in a second message must keep its name.
 * - A webhook deleted by a moderator answers 10015 Unknown Webhook: it is forgotten and the post is
 *   retried once with a new one. No Manage Webhooks (known from the cached permissions, or a 50013
 *   from Discord) makes the channel unavailable for a while; the caller then posts as the bot.
 * - Every call for one channel runs in order (a per-channel queue), so two characters answering at
 *   once never create two webhooks for the same character or rename the same one twice.
 */
import { createHash } from 'node:crypto';
import { errorInfo, registerSecret, type Logger } from '../log.js';
import type { Store, StoredWebhook } from '../store/store.js';
import { WebhookCallError, type ListedWebhook, type MessageButton, type PostedMessage, type WebhookApi } from './ports.js';

/** Discord's per-channel limit. */
export const DISCORD_WEBHOOKS_PER_CHANNEL = 15;
/** The most webhooks of its own the bot keeps in one channel. */
export const MAX_OWN_PER_CHANNEL = 10;
/** Slots left free for other bots' webhooks (a proxy bot creates one on first use). */
export const RESERVED_SLOTS = 1;
/** After Discord refused webhooks in a channel, they are not tried there again for this long. */
export const UNAVAILABLE_RETRY_MS = 60_000;
/** A channel's listing (for the creators of unknown webhooks) is refreshed at most this often. */
const RELIST_MIN_MS = 5_000;

/** Who a webhook posts as. */
export interface Persona {
  /** Stable identity (a character id). */
  key: string;
  name: string;
  /** The avatar image, when there is one (loaded lazily, cached by the caller). */
  avatar?: () => Promise<{ bytes: Buffer; contentType: string } | undefined>;
}

/** Webhooks cannot be used in this channel now; `reason` says why, for people. */
export class WebhooksUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'WebhooksUnavailableError';
  }
}

interface ChannelState {
  /** The bot's webhooks here (also in the store), least recently used first. */
  hooks: StoredWebhook[];
  /** Every webhook in the channel, by id (from the last listing): creators, for proxy detection. */
  listed: Map<string, ListedWebhook> | undefined;
  listedAt: number;
  /** Why webhooks cannot be used here, until when. */
  unavailable: { reason: string; until: number } | undefined;
  /** Persona keys with a live lease (count). */
  leases: Map<string, number>;
  /** The per-channel queue. */
  tail: Promise<unknown>;
}

export interface WebhookPoolDeps {
  store: Store;
  log: Logger;
  now?: () => number;
  maxOwnPerChannel?: number;
}

/** A character speaking in a channel: posts through its webhook while the lease is held. */
export interface PersonaLease {
  send(content: string, buttons?: MessageButton[]): Promise<PostedMessage>;
  release(): void;
}

export class WebhookPool {
  private readonly channels = new Map<string, ChannelState>();
  private readonly now: () => number;
  private readonly maxOwn: number;

  constructor(private readonly deps: WebhookPoolDeps) {
    this.now = deps.now ?? Date.now;
    this.maxOwn = Math.min(deps.maxOwnPerChannel ?? MAX_OWN_PER_CHANNEL, DISCORD_WEBHOOKS_PER_CHANNEL - RESERVED_SLOTS);
  }

  /** True for a webhook of this bot (its messages are its own: never bridged). */
  isOwn(webhookId: string): boolean {
    for (const st of this.channels.values()) if (st.hooks.some((h) => h.id === webhookId)) return true;
    try {
      return this.deps.store.findWebhook(webhookId) !== undefined;
    } catch {
      return false;
    }
  }

  /** Why characters cannot post as themselves in this channel (thread: its parent), or undefined. */
  problem(api: WebhookApi | undefined, channelId: string): string | undefined {
    if (!api) return 'this connection to Discord offers no webhooks';
    const known = api.problem(channelId);
    if (known) return known;
    const st = this.channels.get(channelId);
    if (st?.unavailable && st.unavailable.until > this.now()) return st.unavailable.reason;
    return undefined;
  }

  /**
   * Speaks as `persona` in a channel (`parentId` + `threadId` for a thread) until released. Each
   * `send` posts through the persona's webhook (created or taken over on first use); it rejects
   * with {@link WebhooksUnavailableError} when webhooks cannot be used, so the caller posts as the bot.
   */
  lease(api: WebhookApi | undefined, guildId: string, target: { channelId: string; threadId?: string }, persona: Persona): PersonaLease {
    const channelId = target.channelId;
    const st = this.state(channelId);
    st.leases.set(persona.key, (st.leases.get(persona.key) ?? 0) + 1);
    let released = false;
    return {
      send: async (content, buttons) => {
        if (!api) throw new WebhooksUnavailableError('this connection to Discord offers no webhooks');
        for (let attempt = 0; ; attempt++) {
          const hook = await this.acquire(api, guildId, channelId, persona);
          try {
            const posted = await api.execute(hook, { content, ...(target.threadId ? { threadId: target.threadId } : {}), ...(buttons ? { buttons } : {}) });
            return this.watchEdits(posted, channelId, hook);
          } catch (err) {
            if (err instanceof WebhookCallError && err.kind === 'unknown-webhook' && attempt === 0) {
              this.deps.log.info({ channelId, webhookId: hook.id, persona: persona.name }, 'webhooks: a webhook of mine was deleted; making a new one');
              await this.inOrder(channelId, async () => this.forget(channelId, hook.id));
              continue;
            }
            if (err instanceof WebhookCallError && err.kind === 'forbidden') {
              this.markUnavailable(channelId, 'Discord refused my webhooks in this channel (I need the Manage Webhooks permission there)');
              throw new WebhooksUnavailableError(st.unavailable!.reason);
            }
            throw err;
          }
        }
      },
      release: () => {
        if (released) return;
        released = true;
        const n = (st.leases.get(persona.key) ?? 1) - 1;
        if (n <= 0) st.leases.delete(persona.key);
        else st.leases.set(persona.key, n);
      },
    };
  }

  /**
   * Who created a webhook of this channel (for proxy bots' reposts), listing the channel's
   * webhooks when it is not known yet. Undefined when it cannot be learned (no Manage Webhooks).
   */
  async describe(api: WebhookApi | undefined, channelId: string, webhookId: string): Promise<ListedWebhook | undefined> {
    if (!api || api.problem(channelId)) return undefined;
    const st = this.state(channelId);
    const known = st.listed?.get(webhookId);
    if (known || this.now() - st.listedAt < RELIST_MIN_MS) return known;
    return this.inOrder(channelId, async () => {
      if (!st.listed?.has(webhookId) && this.now() - st.listedAt >= RELIST_MIN_MS) await this.relist(api, channelId, st).catch(() => undefined);
      return st.listed?.get(webhookId);
    });
  }

  // ---- internals --------------------------------------------------------------------------

  private state(channelId: string): ChannelState {
    let st = this.channels.get(channelId);
    if (!st) {
      let hooks: StoredWebhook[] = [];
      try {
        hooks = this.deps.store.listWebhooks(channelId);
      } catch (err) {
        this.deps.log.warn({ err: errorInfo(err), channelId }, 'webhooks: reading the stored webhooks failed');
      }
      for (const h of hooks) registerSecret(h.token);
      st = { hooks, listed: undefined, listedAt: -Infinity, unavailable: undefined, leases: new Map(), tail: Promise.resolve() };
      this.channels.set(channelId, st);
    }
    return st;
  }

  /** Runs `fn` after every earlier call for this channel. */
  private inOrder<T>(channelId: string, fn: () => Promise<T>): Promise<T> {
    const st = this.state(channelId);
    const run = st.tail.then(fn, fn);
    st.tail = run.catch(() => undefined);
    return run;
  }

  private markUnavailable(channelId: string, reason: string): void {
    this.state(channelId).unavailable = { reason, until: this.now() + UNAVAILABLE_RETRY_MS };
  }

  /** A webhook wearing `persona` in the channel: found, created, or taken over. */
  private async acquire(api: WebhookApi, guildId: string, channelId: string, persona: Persona): Promise<StoredWebhook> {
    const problem = this.problem(api, channelId);
    if (problem) throw new WebhooksUnavailableError(problem);
    // Fetched before taking the channel's turn: another character need not wait for this one's picture.
    const avatar = await loadAvatar(persona, this.deps.log);
    return this.inOrder(channelId, async () => {
      const st = this.state(channelId);
      const problemNow = this.problem(api, channelId);
      if (problemNow) throw new WebhooksUnavailableError(problemNow);
      if (!st.listed) await this.relist(api, channelId, st, guildId);
      const name = webhookName(persona.name);
      const avatarKey = avatar ? hashOf(avatar.bytes) : '';
      let hook = st.hooks.find((h) => h.personaKey === persona.key);
      if (!hook) {
        hook = (await this.create(api, guildId, channelId, st, persona.key, name, avatar, avatarKey)) ?? this.takeOver(st, persona.key);
        if (!hook) throw new WebhooksUnavailableError('more characters are speaking at once than this channel has webhooks for');
      }
      if (hook.name !== name || hook.avatarKey !== avatarKey || hook.personaKey !== persona.key) {
        try {
          await api.modify(hook, { name, avatar: avatar ?? null });
        } catch (err) {
          if (err instanceof WebhookCallError && err.kind === 'unknown-webhook') {
            this.forget(channelId, hook.id);
            const fresh = await this.create(api, guildId, channelId, st, persona.key, name, avatar, avatarKey);
            if (!fresh) throw new WebhooksUnavailableError('this channel has no free webhook slot');
            hook = fresh;
          } else {
            throw err;
          }
        }
        hook.name = name;
        hook.avatarKey = avatarKey;
        hook.personaKey = persona.key;
      }
      hook.lastUsedAt = this.now();
      // Least recently used first.
      st.hooks.splice(st.hooks.indexOf(hook), 1);
      st.hooks.push(hook);
      this.save(hook);
      return hook;
    });
  }

  /** Creates a webhook for the persona when the channel has room; undefined when it has not. */
  private async create(
    api: WebhookApi,
    guildId: string,
    channelId: string,
    st: ChannelState,
    personaKey: string,
    name: string,
    avatar: { bytes: Buffer; contentType: string } | undefined,
    avatarKey: string,
  ): Promise<StoredWebhook | undefined> {
    const total = st.listed ? Math.max(st.listed.size, st.hooks.length) : st.hooks.length;
    if (st.hooks.length >= this.maxOwn || total >= DISCORD_WEBHOOKS_PER_CHANNEL - RESERVED_SLOTS) {
      // Room for one more only if every webhook of ours is speaking right now.
      if (st.hooks.some((h) => !this.leased(st, h)) || total >= DISCORD_WEBHOOKS_PER_CHANNEL) return undefined;
    }
    let made: { id: string; token: string; name: string };
    try {
      made = await api.create(channelId, { name, ...(avatar ? { avatar } : {}) });
    } catch (err) {
      if (err instanceof WebhookCallError && err.kind === 'limit') {
        // Others filled the channel since we listed it: learn how many, then take one of ours over.
        await this.relist(api, channelId, st).catch(() => undefined);
        return undefined;
      }
      if (err instanceof WebhookCallError && err.kind === 'forbidden') {
        this.markUnavailable(channelId, 'Discord refused to create a webhook in this channel (I need the Manage Webhooks permission there)');
        throw new WebhooksUnavailableError(st.unavailable!.reason);
      }
      throw err;
    }
    registerSecret(made.token);
    const now = this.now();
    const hook: StoredWebhook = { id: made.id, guildId, channelId, token: made.token, personaKey, name, avatarKey, lastUsedAt: now, createdAt: now };
    st.hooks.push(hook);
    st.listed?.set(hook.id, { id: hook.id, name, token: hook.token, own: true });
    this.deps.log.info({ channelId, webhookId: hook.id, name }, 'webhooks: created a webhook for a character');
    return hook;
  }

  /** The least recently used webhook of ours whose character is not speaking now, if any. */
  private takeOver(st: ChannelState, personaKey: string): StoredWebhook | undefined {
    const hook = st.hooks.find((h) => !this.leased(st, h));
    if (hook) this.deps.log.info({ webhookId: hook.id, from: hook.name, persona: personaKey }, 'webhooks: reusing the least recently used webhook for another character');
    return hook;
  }

  private leased(st: ChannelState, h: StoredWebhook): boolean {
    return h.personaKey !== undefined && (st.leases.get(h.personaKey) ?? 0) > 0;
  }

  /** Lists the channel's webhooks: forgets stored ones that are gone, adopts unknown ones of ours. */
  private async relist(api: WebhookApi, channelId: string, st: ChannelState, guildId?: string): Promise<void> {
    let listed: ListedWebhook[];
    try {
      listed = await api.list(channelId);
    } catch (err) {
      st.listedAt = this.now();
      if (err instanceof WebhookCallError && err.kind === 'forbidden') {
        this.markUnavailable(channelId, 'Discord refused to list the webhooks of this channel (I need the Manage Webhooks permission there)');
        throw new WebhooksUnavailableError(st.unavailable!.reason);
      }
      // Not fatal: the stored webhooks are used as they are (a gone one is noticed when used).
      this.deps.log.warn({ err: errorInfo(err), channelId }, 'webhooks: listing the channel webhooks failed');
      st.listed ??= new Map(st.hooks.map((h) => [h.id, { id: h.id, name: h.name, own: true }]));
      return;
    }
    st.listedAt = this.now();
    st.listed = new Map(listed.map((w) => [w.id, w]));
    for (const h of [...st.hooks]) if (!st.listed.has(h.id)) this.forget(channelId, h.id);
    for (const w of listed) {
      if (!w.own || !w.token || !guildId || st.hooks.some((h) => h.id === w.id)) continue;
      registerSecret(w.token);
      // Adopted without a persona: it wears none of ours until it is renamed for one.
      const hook: StoredWebhook = { id: w.id, guildId, channelId, token: w.token, personaKey: undefined, name: w.name, avatarKey: '?', lastUsedAt: 0, createdAt: this.now() };
      st.hooks.unshift(hook);
      this.save(hook);
    }
  }

  private forget(channelId: string, webhookId: string): void {
    const st = this.state(channelId);
    const i = st.hooks.findIndex((h) => h.id === webhookId);
    if (i >= 0) st.hooks.splice(i, 1);
    st.listed?.delete(webhookId);
    try {
      this.deps.store.deleteWebhook(webhookId);
    } catch (err) {
      this.deps.log.warn({ err: errorInfo(err), webhookId }, 'webhooks: forgetting a stored webhook failed');
    }
  }

  private save(hook: StoredWebhook): void {
    try {
      this.deps.store.saveWebhook(hook);
    } catch (err) {
      // Kept in memory; a restart would list the channel and adopt it again.
      this.deps.log.warn({ err: errorInfo(err), webhookId: hook.id }, 'webhooks: storing a webhook failed');
    }
  }

  /** A posted message whose edits notice a deleted webhook (the next post then makes a new one). */
  private watchEdits(posted: PostedMessage, channelId: string, hook: StoredWebhook): PostedMessage {
    return {
      id: posted.id,
      edit: async (content) => {
        try {
          await posted.edit(content);
        } catch (err) {
          if (err instanceof WebhookCallError && err.kind === 'unknown-webhook') await this.inOrder(channelId, async () => this.forget(channelId, hook.id));
          throw err;
        }
      },
      ...(posted.setButtons ? { setButtons: posted.setButtons } : {}),
      ...(posted.delete ? { delete: posted.delete } : {}),
    };
  }
}

async function loadAvatar(persona: Persona, log: Logger): Promise<{ bytes: Buffer; contentType: string } | undefined> {
  if (!persona.avatar) return undefined;
  try {
    return await persona.avatar();
  } catch (err) {
    log.debug({ err: errorInfo(err), persona: persona.name }, 'webhooks: loading an avatar failed; going on without it');
    return undefined;
  }
}

/** Avatar hashes by buffer: the avatar cache hands out the same bytes for every post of a character. */
const hashes = new WeakMap<Buffer, string>();

function hashOf(bytes: Buffer): string {
  let h = hashes.get(bytes);
  if (h === undefined) {
    h = createHash('sha256').update(bytes).digest('hex').slice(0, 32);
    hashes.set(bytes, h);
  }
  return h;
}

/**
 * A name Discord accepts for a webhook: 1–80 characters, and never "clyde" or "discord" (in any
 * case), which Discord refuses; those get a look-alike letter instead.
 */
export function webhookName(name: string): string {
  let n = name.replace(/\s+/g, ' ').trim();
  n = n.replace(/clyde/gi, (m) => m.slice(0, 4) + (m[4] === 'E' ? '\u0415' : '\u0435')).replace(/discord/gi, (m) => m.slice(0, 5) + (m[5] === 'R' ? 'Ŗ' : 'ŗ') + m.slice(6));
  const chars = [...n];
  if (chars.length > 80) n = chars.slice(0, 79).join('') + '…';
  return n || 'Character';
}
