/**
 * The narrow surfaces the bot core talks through. `app.ts` implements them over discord.js and
 * the real Voxta client; the core (sessions, bridge, commands) depends only on these, which keeps
 * it readable and lets the tests drive it at the same boundary.
 */
import type { DiscordGatewayAdapterCreator } from '@discordjs/voice';
import type { APIEmbed } from 'discord.js';
import type { GuildVoice, GuildVoiceOptions } from '../voice/guild-voice.js';
import type { SessionState, VoxtaChatSession } from '../voxta/chat-session.js';

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
  /** Why the bot cannot join and speak in this voice channel (permissions, full), or undefined. */
  voiceProblem(channelId: string): string | undefined;
  voiceMembers(channelId: string): VoiceMember[];
  displayName(userId: string): string;
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
}

/** A human's message in a bound channel. */
export interface IncomingTextMessage extends MarkableMessage {
  channelId: string;
  authorId: string;
  authorName: string;
  content: string;
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
