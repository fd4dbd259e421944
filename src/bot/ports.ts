/**
 * The narrow surfaces the bot core talks through. `app.ts` implements them over discord.js and
 * the real Voxta client; the core (sessions, bridge, commands) depends only on these, which keeps
 * it readable and lets the tests drive it at the same boundary.
 */
import type { DiscordGatewayAdapterCreator } from '@discordjs/voice';
import type { APIEmbed } from 'discord.js';
import type { GuildVoice, GuildVoiceOptions } from '../voice/guild-voice.js';
import type { SessionState, VoxtaChatSession } from '../voxta/chat-session.js';
import type { ImageRef } from './channel-images.js';

// ---- Discord side ------------------------------------------------------------------------

/** A button under a message the bot posted (the reply controls). */
export interface MessageButton {
  customId: string;
  label: string;
  emoji?: string;
  style: 'primary' | 'secondary' | 'success' | 'danger';
}

/** A message the bot posted, which it may edit or react to later. */
export interface PostedMessage {
  readonly id: string;
  edit(content: string): Promise<void>;
  /** Replaces the buttons under it (`[]` removes them); the text stays. Absent where not supported. */
  setButtons?(buttons: MessageButton[]): Promise<void>;
  /** Deletes it. Absent where not supported. */
  delete?(): Promise<void>;
}

/** A human's message the bot may mark (pending, truncated). */
export interface MarkableMessage {
  readonly id: string;
  react(emoji: string): Promise<void>;
  unreact(emoji: string): Promise<void>;
}

export interface OutgoingMessage {
  content?: string;
  embeds?: APIEmbed[];
  files?: Array<{ name: string; data: Buffer }>;
  /** One row of buttons under the message. */
  buttons?: MessageButton[];
}

export interface TextChannelPort {
  readonly id: string;
  readonly name: string;
  /** For a thread: the channel it belongs to (webhooks live there and post into the thread). */
  readonly parentId?: string;
  send(message: string | OutgoingMessage): Promise<PostedMessage>;
  sendTyping(): Promise<void>;
  /**
   * A message of this channel known only by id (e.g. one held before a restart), to set or clear
   * the bot's own status marks on it without fetching it.
   */
  markable(messageId: string): MarkableMessage;
}

export interface VoiceMember {
  id: string;
  displayName: string;
  bot: boolean;
}

/** One guild as the core sees it; implemented freshly over the discord.js cache. */
export interface GuildPort {
  readonly id: string;
  readonly name: string;
  readonly botUserId: string;
  /** False during a Discord outage of this guild (its channels are unknown then, not gone). */
  readonly available: boolean;
  textChannel(channelId: string): TextChannelPort | undefined;
  /** Channel name, or undefined when the channel does not exist (any more). */
  channelName(channelId: string): string | undefined;
  isVoiceChannel(channelId: string): boolean;
  /** A Stage channel: joining makes the bot audience (suppressed) until it may speak. */
  isStageChannel(channelId: string): boolean;
  /** The bot is in voice here but suppressed (a Stage audience): it cannot be heard. */
  botSuppressed(): boolean;
  /**
   * On a Stage: become a speaker (needs Mute Members there), else raise the bot's hand (Request to
   * Speak). What happened: 'speaking', 'requested' (a stage moderator must invite it) or 'refused'.
   */
  requestToSpeak(): Promise<'speaking' | 'requested' | 'refused'>;
  /** Why the bot cannot join and speak in this voice channel (permissions, full), or undefined. */
  voiceProblem(channelId: string): string | undefined;
  voiceMembers(channelId: string): VoiceMember[];
  displayName(userId: string): string;
  /** The member's roles as cached (may be stale without the Guild Members intent). */
  memberRoleIds(userId: string): string[];
  voiceAdapterCreator(): DiscordGatewayAdapterCreator;
  /**
   * Discord marks this channel age-restricted (`nsfw`; a thread inherits its parent's flag).
   * Absent or unknown: not age-restricted.
   */
  isAgeRestricted?(channelId: string): boolean;
  /** The server's roles (for `/config set chat-roles`); `managed`: a bot's or integration's own role. */
  guildRoles?(): Array<{ id: string; name: string; managed?: boolean }>;
  /**
   * The member's current roles from Discord (REST; the bot has no Guild Members intent, so its
   * cache may be stale); undefined when they are not a member.
   */
  fetchMemberRoleIds?(userId: string): Promise<string[] | undefined>;
  /** When the bot's current main-gateway session began (epoch ms of its last READY), if known. */
  gatewaySessionStartedAt?(): number | undefined;
  /** Channel webhooks (characters post as themselves); absent where the port cannot offer them. */
  readonly webhooks?: WebhookApi;
  /** Whether this user is a member of the guild (asked of Discord when not cached); for proxy bots. */
  hasMember?(userId: string): Promise<boolean>;
}

// ---- Webhooks ---------------------------------------------------------------------------

/** A webhook the bot can execute (its token is a credential: never logged). */
export interface WebhookRef {
  readonly id: string;
  readonly token: string;
}

/** A webhook as listed in a channel (`GET /channels/{id}/webhooks`). */
export interface ListedWebhook {
  id: string;
  name: string;
  /** Only for webhooks this application owns (Discord leaves it out for others'). */
  token?: string;
  /** Created by this bot's application. */
  own: boolean;
  /** The user who created it (a proxy bot's webhook names that bot). */
  creatorId?: string;
  applicationId?: string;
}

/**
 * The webhook calls the core needs, over Discord's REST API. Failures are
 * {@link WebhookCallError}s that say what went wrong in Discord's terms.
 */
export interface WebhookApi {
  /**
   * Why the bot cannot manage webhooks in this channel (a missing permission, in words), from
   * what it knows without asking Discord; undefined when it can.
   */
  problem(channelId: string): string | undefined;
  list(channelId: string): Promise<ListedWebhook[]>;
  create(channelId: string, p: { name: string; avatar?: { bytes: Buffer; contentType: string } }): Promise<WebhookRef & { name: string }>;
  /** Renames / re-avatars with the webhook's token (no permission needed). `avatar: null` removes it. */
  modify(hook: WebhookRef, p: { name: string; avatar: { bytes: Buffer; contentType: string } | null }): Promise<void>;
  /** Posts as the webhook (into `threadId` when given); the message is edited with the same token. */
  execute(hook: WebhookRef, p: { content: string; threadId?: string; buttons?: MessageButton[] }): Promise<PostedMessage>;
}

export type WebhookFailure =
  /** 10015: the webhook is gone (a moderator deleted it). */
  | 'unknown-webhook'
  /** 50013 / 50001: no Manage Webhooks (or no access). */
  | 'forbidden'
  /** 30007: the channel has the most webhooks Discord allows. */
  | 'limit'
  | 'other';

export class WebhookCallError extends Error {
  constructor(
    readonly kind: WebhookFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WebhookCallError';
  }
}

/** A human's message in a bound channel. */
export interface IncomingTextMessage extends MarkableMessage {
  channelId: string;
  authorId: string;
  authorName: string;
  content: string;
  /**
   * Reposted by a proxy bot (PluralKit, Tupperbox) under another name: always sent to Voxta as
   * `Name: text` (the name is the point of proxying).
   */
  proxied?: { webhookId: string };
  /** Pictures attached to it or embedded in it (for Voxta's vision). */
  images?: ImageRef[];
  /** The author's roles as the message carried them (current), when known. */
  roleIds?: string[];
}

// ---- Voxta side ---------------------------------------------------------------------------

/** One guild's Voxta connection: the real client (tests run it against the Voxta simulator). */
export type VoxtaSessionPort = VoxtaChatSession;
export type VoxtaSessionState = SessionState;
/** A new Voxta connection for a guild; `voice` declares audio input (WebSocketStream). */
export type VoxtaSessionFactory = (guildId: string, opts: { voice: boolean }) => VoxtaSessionPort;

// ---- Voice side (src/voice/guild-voice.ts) -----------------------------------------------

export type { GuildVoiceOptions } from '../voice/guild-voice.js';
export type GuildVoicePort = GuildVoice;
/** Joins a voice channel for a guild session (GuildVoice.join in production). */
export type GuildVoiceJoiner = (opts: GuildVoiceOptions) => Promise<GuildVoicePort>;
