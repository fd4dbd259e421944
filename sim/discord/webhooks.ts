/**
 * Webhooks as Discord has them: created in a channel by someone with Manage Webhooks (at most 15
 * per channel, names 1–80 characters without "clyde"/"discord", an optional avatar image stored
 * as bytes and served by the CDN), executed with their token by anyone (content, username and
 * avatar overrides, embeds, files, allowed mentions, into a thread of their channel with
 * `thread_id`), their messages fetched, edited and deleted with the same token, and WEBHOOKS_UPDATE
 * sent whenever a channel's webhooks change. Messages they post carry `webhook_id` and an author
 * made of the webhook id with the effective name and avatar (Discord marks it `bot: true`).
 *
 * Checked against discord-api-docs `docs/resources/webhook.mdx` and discord.js 14.28.1
 * `structures/Webhook.js` / `managers/GuildChannelManager.js` (what the real client sends).
 */
import { randomBytes } from 'node:crypto';
import { MessageFlags } from 'discord-api-types/v10';
import type { Logger } from '../../src/log.js';
import type { CdnServer } from './cdn.js';
import type { Gateway } from './gateway.js';
import { avatarHash, parseImageDataUri, sniffImage } from './images.js';
import { readMessageBody, type MessageService } from './messages.js';
import { messagePayload, webhookPayload } from './payloads.js';
import { Perm, hasAll } from './permissions.js';
import { Errors, RateLimiter, RestError, fieldError, type RestResult, type UploadedFile } from './rest/http.js';
import { mentionedUserIds, type SimChannel, type SimMessage, type SimState, type SimWebhook, type SimWebhookAuthor } from './state.js';

/** Discord's per-channel webhook limit. */
export const MAX_WEBHOOKS_PER_CHANNEL = 15;

/** What a test sees of a webhook (`sim.webhooks()`). */
export interface SimWebhookInfo {
  id: string;
  token: string;
  channelId: string;
  guildId: string;
  name: string;
  /** The avatar image bytes (null when the webhook has none). */
  avatar: Buffer | null;
  avatarHash: string | null;
  creatorId: string;
  applicationId: string | null;
}

export interface WebhookServiceOptions {
  /** Discord's per-channel limit on webhook messages; undefined = not enforced. */
  channelMessageLimit: { limit: number; windowMs: number } | undefined;
  log: Logger;
}

export class WebhookService {
  private readonly channelLimiter: RateLimiter | undefined;

  constructor(
    private readonly state: SimState,
    private readonly gateway: Gateway,
    private readonly messages: MessageService,
    private readonly cdn: CdnServer,
    private readonly opts: WebhookServiceOptions,
  ) {
    const l = opts.channelMessageLimit;
    this.channelLimiter = l ? new RateLimiter({ limit: l.limit, windowMs: l.windowMs }) : undefined;
  }

  // ---- observation ----

  list(channelId?: string): SimWebhookInfo[] {
    return [...this.state.webhooks.values()]
      .filter((w) => !w.deleted && (channelId === undefined || w.channelId === channelId))
      .map((w) => ({
        id: w.id,
        token: w.token,
        channelId: w.channelId,
        guildId: w.guildId,
        name: w.name,
        avatar: w.avatar,
        avatarHash: w.avatarHash,
        creatorId: w.creatorId,
        applicationId: w.applicationId,
      }));
  }

  isWebhook(id: string): boolean {
    return this.state.webhooks.has(id);
  }

  // ---- management (as `actorId`: the bot over REST, or a simulated proxy bot) ----

  create(channelId: string, actorId: string, body: unknown): SimWebhook {
    const channel = this.webhookChannel(channelId, actorId);
    const b = asObject(body);
    const name = validateName(b.name, 'name', true) as string;
    const avatar = b.avatar === undefined || b.avatar === null ? null : parseAvatar(b.avatar);
    if (this.list(channel.id).length >= MAX_WEBHOOKS_PER_CHANNEL) throw Errors.maxWebhooks();
    const actor = this.state.user(actorId);
    const webhook: SimWebhook = {
      id: this.state.ids.next(),
      // Discord's tokens are 68 URL-safe characters.
      token: randomBytes(51).toString('base64url'),
      guildId: channel.guildId,
      channelId: channel.id,
      name,
      avatar: null,
      avatarContentType: null,
      avatarHash: null,
      creatorId: actorId,
      // A bot's webhooks belong to its application (every modern application id is its bot's user id).
      applicationId: actorId === this.state.botUserId ? this.state.applicationId : actor.bot ? actorId : null,
      createdAt: new Date(),
      deleted: false,
    };
    if (avatar) this.setAvatar(webhook, avatar);
    this.state.webhooks.set(webhook.id, webhook);
    this.opts.log.debug({ webhookId: webhook.id, channelId: channel.id, name }, 'discord-sim: webhook created');
    this.webhooksUpdate(webhook.guildId, webhook.channelId);
    return webhook;
  }

  listChannel(channelId: string, actorId: string): SimWebhook[] {
    const channel = this.webhookChannel(channelId, actorId);
    return [...this.state.webhooks.values()].filter((w) => !w.deleted && w.channelId === channel.id);
  }

  listGuild(guildId: string, actorId: string): SimWebhook[] {
    if (!hasAll(this.state.guildPermissions(guildId, actorId), Perm.ManageWebhooks)) throw Errors.missingPermissions();
    return [...this.state.webhooks.values()].filter((w) => !w.deleted && w.guildId === guildId);
  }

  /** GET /webhooks/:id: Manage Webhooks in its channel, unless the caller's application owns it. */
  get(id: string, actorId: string): SimWebhook {
    const w = this.byId(id);
    if (w.applicationId !== this.appOf(actorId)) this.requireManage(w.channelId, actorId);
    return w;
  }

  getWithToken(id: string, token: string): SimWebhook {
    return this.byToken(id, token);
  }

  /**
   * PATCH /webhooks/:id (actor, may move it with `channel_id`) or /webhooks/:id/:token (no actor,
   * `channel_id` not accepted: Discord ignores it there).
   */
  modify(w: SimWebhook, actorId: string | null, body: unknown): SimWebhook {
    if (actorId !== null) this.requireManage(w.channelId, actorId);
    const b = asObject(body);
    const name = validateName(b.name, 'name', false);
    const avatar = b.avatar === undefined ? undefined : b.avatar === null ? null : parseAvatar(b.avatar);
    let target: SimChannel | undefined;
    if (actorId !== null && b.channel_id !== undefined && b.channel_id !== null && b.channel_id !== w.channelId) {
      if (typeof b.channel_id !== 'string') throw Errors.invalidFormBody(fieldError('channel_id', 'NUMBER_TYPE_COERCE', 'Value is not snowflake.'));
      target = this.webhookChannel(b.channel_id, actorId);
      if (target.guildId !== w.guildId) throw Errors.unknownChannel();
      if (this.list(target.id).length >= MAX_WEBHOOKS_PER_CHANNEL) throw Errors.maxWebhooks();
    }
    if (name !== undefined) w.name = name;
    if (avatar === null) {
      w.avatar = null;
      w.avatarHash = null;
      w.avatarContentType = null;
    } else if (avatar) {
      this.setAvatar(w, avatar);
    }
    const from = w.channelId;
    if (target) w.channelId = target.id;
    this.webhooksUpdate(w.guildId, from);
    if (target) this.webhooksUpdate(w.guildId, target.id);
    return w;
  }

  /** DELETE /webhooks/:id (with an actor: Manage Webhooks) or with its token. */
  remove(w: SimWebhook, actorId: string | null): void {
    if (actorId !== null) this.requireManage(w.channelId, actorId);
    w.deleted = true;
    this.webhooksUpdate(w.guildId, w.channelId);
  }

  /** A moderator deletes the webhook in the server settings (WEBHOOKS_UPDATE; its token stops working). */
  deleteByModerator(id: string): void {
    const w = this.byId(id);
    w.deleted = true;
    this.opts.log.debug({ webhookId: id }, 'discord-sim: webhook deleted by a moderator');
    this.webhooksUpdate(w.guildId, w.channelId);
  }

  /** The channel was deleted: so are its webhooks (silently; CHANNEL_DELETE says enough). */
  channelDeleted(channelId: string): void {
    for (const w of this.state.webhooks.values()) if (w.channelId === channelId) w.deleted = true;
  }

  byId(id: string): SimWebhook {
    const w = this.state.webhooks.get(id);
    if (!w || w.deleted) throw Errors.unknownWebhook();
    return w;
  }

  byToken(id: string, token: string): SimWebhook {
    const w = this.byId(id);
    if (w.token !== token) throw Errors.invalidWebhookToken();
    return w;
  }

  // ---- execute and webhook messages ----

  /** POST /webhooks/:id/:token (`wait`, `thread_id`, `with_components` query parameters). */
  execute(id: string, token: string, json: unknown, files: UploadedFile[], query: URLSearchParams): RestResult {
    const w = this.byToken(id, token);
    const raw = asObject(json);
    const body = readMessageBody(json, files, { requireSomething: true });
    const username = validateName(raw.username, 'username', false);
    if (raw.avatar_url !== undefined && raw.avatar_url !== null && typeof raw.avatar_url !== 'string') {
      throw Errors.invalidFormBody(fieldError('avatar_url', 'BASE_TYPE_STRING', 'Must be a string.'));
    }
    const avatarUrl = typeof raw.avatar_url === 'string' && raw.avatar_url !== '' ? raw.avatar_url : null;
    const target = this.targetChannel(w, query.get('thread_id'));
    this.takeChannelLimit(w);
    let avatar: Buffer | null = w.avatar;
    let hash: string | null = w.avatarHash;
    if (avatarUrl) {
      // Discord fetches avatar_url through its media proxy. The simulator can only "fetch" its own
      // CDN's avatars; any other URL is recorded but shows no bytes (as an unreachable URL would).
      const own = this.cdn.avatarBytes(avatarUrl);
      avatar = own?.data ?? null;
      hash = own?.hash ?? avatarHash(Buffer.from(avatarUrl));
      if (own) this.cdn.putAvatar(w.id, own.hash, own.data, sniffImage(own.data)?.contentType ?? 'image/png');
    }
    const author: SimWebhookAuthor = { webhookId: w.id, username: username ?? w.name, avatar, avatarHash: hash, avatarUrl };
    const content = body.content ?? '';
    const flags = (body.flags ?? 0) & (MessageFlags.SuppressEmbeds | MessageFlags.SuppressNotifications);
    // Application-owned webhooks may send components; others only with with_components=true.
    const components = w.applicationId !== null || query.get('with_components') === 'true' ? (body.components ?? []) : [];
    const msg = this.state.newMessage({
      channelId: target.id,
      authorId: w.id,
      content,
      embeds: body.embeds ?? [],
      attachments: this.messages.storeFiles(target.id, files, body.attachments),
      components,
      flags,
      tts: body.tts ?? false,
      webhook: author,
      mentionUserIds: allowedMentions(raw.allowed_mentions, content),
    });
    if (target.thread?.archived && !target.thread.locked) target.thread.archived = false;
    this.messages.post(msg);
    return query.get('wait') === 'true' ? { status: 200, body: messagePayload(this.state, msg) } : { status: 204 };
  }

  getMessage(id: string, token: string, messageId: string, query: URLSearchParams): RestResult {
    const w = this.byToken(id, token);
    return { status: 200, body: messagePayload(this.state, this.webhookMessage(w, messageId, query.get('thread_id'))) };
  }

  editMessage(id: string, token: string, messageId: string, json: unknown, files: UploadedFile[], query: URLSearchParams): RestResult {
    const w = this.byToken(id, token);
    const msg = this.webhookMessage(w, messageId, query.get('thread_id'));
    const body = readMessageBody(json, files, { requireSomething: false });
    const kept = body.attachments ? msg.attachments.filter((a) => body.attachments?.some((k) => String(k.id) === a.id)) : msg.attachments;
    const change: Parameters<MessageService['edit']>[1] = { attachments: [...kept, ...this.messages.storeFiles(msg.channelId, files, body.attachments)] };
    if (body.content !== undefined) change.content = body.content;
    if (body.embeds !== undefined) change.embeds = body.embeds;
    if (body.components !== undefined && (w.applicationId !== null || query.get('with_components') === 'true')) change.components = body.components;
    if (body.flags !== undefined) change.flags = (msg.flags & ~MessageFlags.SuppressEmbeds) | (body.flags & MessageFlags.SuppressEmbeds);
    const empty = !(change.content ?? msg.content) && (change.embeds ?? msg.embeds).length === 0 && change.attachments?.length === 0;
    if (empty) throw Errors.emptyMessage();
    if (body.content !== undefined) msg.mentionUserIds = allowedMentions(asObject(json).allowed_mentions, body.content);
    this.messages.edit(msg, change);
    return { status: 200, body: messagePayload(this.state, msg) };
  }

  deleteMessage(id: string, token: string, messageId: string, query: URLSearchParams): RestResult {
    const w = this.byToken(id, token);
    this.messages.remove(this.webhookMessage(w, messageId, query.get('thread_id')));
    return { status: 204 };
  }

  // ---- internals ----

  private appOf(actorId: string): string | null {
    if (actorId === this.state.botUserId) return this.state.applicationId;
    return this.state.users.get(actorId)?.bot ? actorId : null;
  }

  /** A channel that can hold webhooks (not a thread), visible to the actor with Manage Webhooks. */
  private webhookChannel(channelId: string, actorId: string): SimChannel {
    const c = this.state.findChannel(channelId);
    if (!c || !this.state.guilds.get(c.guildId)?.members.get(actorId)?.present) throw Errors.unknownChannel();
    const perms = this.state.channelPermissions(c.id, actorId);
    if (!hasAll(perms, Perm.ViewChannel)) throw Errors.missingAccess();
    if (c.kind === 'thread') throw Errors.wrongChannelType();
    if (!hasAll(perms, Perm.ManageWebhooks)) throw Errors.missingPermissions();
    return c;
  }

  private requireManage(channelId: string, actorId: string): void {
    if (!hasAll(this.state.channelPermissions(channelId, actorId), Perm.ViewChannel | Perm.ManageWebhooks)) throw Errors.missingPermissions();
  }

  /** The webhook's channel, or with `thread_id` a thread in it (Discord: 10003 for any other channel). */
  private targetChannel(w: SimWebhook, threadId: string | null): SimChannel {
    if (threadId === null || threadId === '') return this.state.channel(w.channelId);
    const t = this.state.findChannel(threadId);
    if (!t || t.kind !== 'thread' || t.parentId !== w.channelId) throw Errors.unknownChannel();
    return t;
  }

  private webhookMessage(w: SimWebhook, messageId: string, threadId: string | null): SimMessage {
    const msg = this.state.messages.get(messageId);
    const channelId = threadId ?? w.channelId;
    if (!msg || msg.deleted || msg.webhook?.webhookId !== w.id || msg.channelId !== channelId) throw Errors.unknownMessage();
    return msg;
  }

  private takeChannelLimit(w: SimWebhook): void {
    const l = this.opts.channelMessageLimit;
    if (!this.channelLimiter || !l) return;
    const rl = this.channelLimiter.takeKey('webhook-messages', w.channelId, l.limit, l.windowMs);
    if (!rl.limited) return;
    this.opts.log.warn({ channelId: w.channelId }, 'discord-sim: webhook messages per channel limit exceeded (429)');
    const err = new RestError(429, 0, 'You are being rate limited.');
    err.retryAfterSec = rl.retryAfterSec;
    err.headers = { 'x-ratelimit-scope': 'shared' };
    throw err;
  }

  private setAvatar(w: SimWebhook, data: Buffer): void {
    const info = sniffImage(data);
    w.avatar = data;
    w.avatarContentType = info?.contentType ?? 'image/png';
    w.avatarHash = avatarHash(data);
    this.cdn.putAvatar(w.id, w.avatarHash, data, w.avatarContentType);
  }

  private webhooksUpdate(guildId: string, channelId: string): void {
    this.gateway.dispatch('WEBHOOKS_UPDATE', { guild_id: guildId, channel_id: channelId });
  }
}

function asObject(json: unknown): Record<string, unknown> {
  if (json === undefined || json === null) return {};
  if (typeof json !== 'object' || Array.isArray(json)) throw Errors.invalidFormBody(fieldError('_body', 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType'));
  return json as Record<string, unknown>;
}

/**
 * Webhook names and username overrides: 1–80 characters, without "clyde" or "discord" in any
 * case (Discord's documented rule). The `_errors` code strings are the simulator's own.
 */
function validateName(value: unknown, field: string, required: boolean): string | undefined {
  if (value === undefined || value === null) {
    if (required) throw Errors.invalidFormBody(fieldError(field, 'BASE_TYPE_REQUIRED', 'This field is required'));
    return undefined;
  }
  if (typeof value !== 'string') throw Errors.invalidFormBody(fieldError(field, 'BASE_TYPE_STRING', 'Must be a string.'));
  const name = value.trim();
  const length = [...name].length;
  if (length < 1 || length > 80) throw Errors.invalidFormBody(fieldError(field, 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 80 in length.'));
  const lower = name.toLowerCase();
  for (const word of ['clyde', 'discord']) {
    if (lower.includes(word)) throw Errors.invalidFormBody(fieldError(field, 'USERNAME_INVALID_CONTAINS', `Username cannot contain "${word}"`));
  }
  return name;
}

function parseAvatar(value: unknown): Buffer {
  const bytes = typeof value === 'string' ? parseImageDataUri(value) : undefined;
  // discord.js labels every Buffer "image/jpg"; Discord (and the simulator) look at the bytes.
  if (!bytes || !sniffImage(bytes)) throw Errors.invalidFormBody(fieldError('avatar', 'IMAGE_INVALID', 'Invalid image data'));
  return bytes;
}

/** The users a message really mentions under `allowed_mentions` (default: every `<@id>` in the content). */
function allowedMentions(raw: unknown, content: string): string[] {
  const inContent = mentionedUserIds(content);
  if (!raw || typeof raw !== 'object') return inContent;
  const am = raw as { parse?: unknown; users?: unknown };
  const parse = Array.isArray(am.parse) ? am.parse : [];
  if (parse.includes('users')) return inContent;
  const users = Array.isArray(am.users) ? am.users.filter((u): u is string => typeof u === 'string') : [];
  return inContent.filter((id) => users.includes(id));
}
