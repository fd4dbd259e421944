/**
 * The simulated Discord's world: guilds, channels, roles, members, voice states, messages and
 * registered application commands. Plain data plus the queries every other module needs
 * (permissions, lookups). It sends nothing: the gateway and REST modules turn changes into
 * dispatches and responses.
 */
import { EventEmitter } from 'node:events';
import { ChannelType, PermissionFlagsBits } from 'discord-api-types/v10';
import {
  ALL_PERMISSIONS,
  basePermissions,
  channelPermissions,
  type Overwrite,
  type PermissionContext,
} from './permissions.js';
import { SnowflakeGenerator } from './snowflake.js';

export interface SimUser {
  id: string;
  username: string;
  globalName: string | null;
  bot: boolean;
  locale: string;
}

/** What a webhook is (Discord's incoming webhook, type 1). */
export interface SimWebhook {
  id: string;
  /** The secret that authenticates the token routes (68 characters, like Discord's). */
  token: string;
  guildId: string;
  channelId: string;
  name: string;
  /** Avatar image bytes (null when none), its content type and Discord-style hash. */
  avatar: Buffer | null;
  avatarContentType: string | null;
  avatarHash: string | null;
  /** The user who created it (`user` in the webhook object). */
  creatorId: string;
  /** The application that created it (a bot's webhooks belong to its application). */
  applicationId: string | null;
  createdAt: Date;
  deleted: boolean;
}

/** Who a webhook message appears to be from: the effective name and avatar of that one message. */
export interface SimWebhookAuthor {
  webhookId: string;
  /** The `username` override, or the webhook's name. */
  username: string;
  /** The avatar shown: the webhook's own, or the `avatar_url` override's bytes when the simulator could resolve them. */
  avatar: Buffer | null;
  avatarHash: string | null;
  /** The `avatar_url` override as sent (null when none). */
  avatarUrl: string | null;
}

/** Thread-only state of a thread channel (Discord's thread_metadata, owner, members, counters). */
export interface SimThreadInfo {
  ownerId: string;
  private: boolean;
  archived: boolean;
  locked: boolean;
  autoArchiveDuration: 60 | 1440 | 4320 | 10080;
  archiveTimestamp: Date;
  createdAt: Date;
  /** Thread members (explicit membership: the creator, people who posted, people added). */
  memberIds: Set<string>;
  messageCount: number;
  totalMessageSent: number;
}

export interface SimRole {
  id: string;
  guildId: string;
  name: string;
  permissions: bigint;
  position: number;
  color: number;
  hoist: boolean;
  mentionable: boolean;
  managed: boolean;
}

export type SimChannelKind = 'text' | 'voice' | 'stage' | 'thread';

export type SimChannelType = ChannelType.GuildText | ChannelType.GuildVoice | ChannelType.GuildStageVoice | ChannelType.PublicThread | ChannelType.PrivateThread;

export interface SimChannel {
  id: string;
  guildId: string;
  name: string;
  kind: SimChannelKind;
  type: SimChannelType;
  position: number;
  overwrites: Overwrite[];
  topic: string | null;
  /** Age-restricted. Threads have none of their own: they inherit their parent's. */
  nsfw: boolean;
  /** For threads: the text channel they live in. */
  parentId: string | null;
  thread: SimThreadInfo | null;
  deleted: boolean;
}

/** Voice and stage channels: where members and the bot can connect. */
export function isVoiceChannel(c: SimChannel): boolean {
  return c.kind === 'voice' || c.kind === 'stage';
}

export interface SimMember {
  userId: string;
  guildId: string;
  nick: string | null;
  roleIds: string[];
  joinedAt: Date;
  /** Present in the guild (false after a GUILD_MEMBER_REMOVE). */
  present: boolean;
}

export interface SimVoiceState {
  guildId: string;
  channelId: string;
  userId: string;
  sessionId: string;
  selfMute: boolean;
  selfDeaf: boolean;
  mute: boolean;
  deaf: boolean;
  /** Stage channels: audience (true) or speaker (false). Always false in voice channels. */
  suppress: boolean;
  /** Stage channels: a raised hand. */
  requestToSpeakAt: Date | null;
}

export interface SimGuild {
  id: string;
  name: string;
  ownerId: string;
  locale: string;
  createdAt: Date;
  /** The bot is a member (false after `removeBotFromGuild`). */
  botPresent: boolean;
  roles: Map<string, SimRole>;
  channels: Map<string, SimChannel>;
  members: Map<string, SimMember>;
  voiceStates: Map<string, SimVoiceState>;
}

export interface SimAttachment {
  id: string;
  filename: string;
  size: number;
  contentType: string | undefined;
  description: string | undefined;
  url: string;
  proxyUrl: string;
  /** Measured from the bytes for images (PNG, JPEG, GIF, WebP), like Discord does. */
  width: number | undefined;
  height: number | undefined;
  data: Buffer;
}

export interface SimMessageRevision {
  content: string;
  embeds: unknown[];
  attachments: SimAttachment[];
  at: Date;
}

export interface SimMessage {
  id: string;
  channelId: string;
  guildId: string;
  authorId: string;
  content: string;
  embeds: unknown[];
  attachments: SimAttachment[];
  /** Message components (action rows of buttons and select menus) as the bot sent them. */
  components: unknown[];
  /** Discord message flags (64 = ephemeral, 128 = loading / "is thinking"). */
  flags: number;
  /** Discord message type: 0 default, 19 reply, 20 chat input command. */
  type: number;
  createdAt: Date;
  editedAt: Date | null;
  /** Earlier versions, oldest first; the current version is the message itself. */
  history: SimMessageRevision[];
  deleted: boolean;
  mentionUserIds: string[];
  referencedMessageId: string | null;
  /** Set for interaction responses and follow-ups. */
  interactionId: string | null;
  /** Ephemeral interaction messages are only visible to the invoking member. */
  ephemeral: boolean;
  tts: boolean;
  /** Unicode emoji → ids of the users who reacted with it, in reaction order. */
  reactions: Map<string, Set<string>>;
  /** Set for messages posted through a webhook (not interaction responses): the effective name and avatar. */
  webhook: SimWebhookAuthor | null;
}

export interface RegisteredCommand {
  id: string;
  applicationId: string;
  /** Undefined for global commands. */
  guildId: string | undefined;
  version: string;
  /** The command as the bot sent it, with `id`, `application_id`, `guild_id`, `version` added. */
  data: RegisteredCommandData;
}

export interface RegisteredCommandOption {
  type: number;
  name: string;
  description?: string;
  required?: boolean;
  choices?: Array<{ name: string; value: string | number }>;
  options?: RegisteredCommandOption[];
  channel_types?: number[];
  min_value?: number;
  max_value?: number;
  min_length?: number;
  max_length?: number;
  autocomplete?: boolean;
}

export interface RegisteredCommandData {
  id: string;
  application_id: string;
  guild_id?: string;
  version: string;
  name: string;
  description: string;
  type: number;
  options?: RegisteredCommandOption[];
  default_member_permissions: string | null;
  [key: string]: unknown;
}

export interface TypingEvent {
  channelId: string;
  userId: string;
  at: Date;
}

export interface StateEvents {
  messageCreated: [SimMessage];
  messageUpdated: [SimMessage];
  messageDeleted: [SimMessage];
  typing: [TypingEvent];
  commandsChanged: [string | undefined];
}

/** User ids mentioned as `<@id>` / `<@!id>` in message content. */
export function mentionedUserIds(content: string): string[] {
  return [...content.matchAll(/<@!?(\d{15,21})>/g)].map((m) => m[1] as string);
}

export class SimError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimError';
  }
}

export class SimState extends EventEmitter<StateEvents> {
  readonly ids = new SnowflakeGenerator();
  readonly users = new Map<string, SimUser>();
  readonly guilds = new Map<string, SimGuild>();
  readonly channelIndex = new Map<string, SimChannel>();
  readonly messages = new Map<string, SimMessage>();
  readonly messagesByChannel = new Map<string, SimMessage[]>();
  readonly globalCommands: RegisteredCommand[] = [];
  readonly guildCommands = new Map<string, RegisteredCommand[]>();
  readonly typingEvents: TypingEvent[] = [];
  readonly attachments = new Map<string, SimAttachment>();
  readonly webhooks = new Map<string, SimWebhook>();

  constructor(
    readonly botUserId: string,
    readonly applicationId: string,
    botUsername: string,
  ) {
    super();
    this.users.set(botUserId, { id: botUserId, username: botUsername, globalName: null, bot: true, locale: 'en-US' });
  }

  // ---- lookups (throwing SimError with a clear message for scenario mistakes) ----

  guild(id: string): SimGuild {
    const g = this.guilds.get(id);
    if (!g) throw new SimError(`unknown guild ${id}`);
    return g;
  }

  channel(id: string): SimChannel {
    const c = this.channelIndex.get(id);
    if (!c || c.deleted) throw new SimError(`unknown channel ${id}`);
    return c;
  }

  user(id: string): SimUser {
    const u = this.users.get(id);
    if (!u) throw new SimError(`unknown user ${id}`);
    return u;
  }

  member(guildId: string, userId: string): SimMember {
    const m = this.guild(guildId).members.get(userId);
    if (!m || !m.present) throw new SimError(`user ${userId} is not a member of guild ${guildId}`);
    return m;
  }

  findChannel(id: string): SimChannel | undefined {
    const c = this.channelIndex.get(id);
    return c && !c.deleted ? c : undefined;
  }

  /** Guilds the bot is in and can see (what READY and the REST routes expose). */
  botGuilds(): SimGuild[] {
    return [...this.guilds.values()].filter((g) => g.botPresent);
  }

  // ---- creation ----

  createUser(p: { id?: string; username: string; globalName?: string | null; bot?: boolean; locale?: string }): SimUser {
    if (p.id !== undefined && this.users.has(p.id)) throw new SimError(`user ${p.id} already exists`);
    const user: SimUser = {
      id: p.id ?? this.ids.next(),
      username: p.username,
      globalName: p.globalName ?? null,
      bot: p.bot ?? false,
      locale: p.locale ?? 'en-US',
    };
    this.users.set(user.id, user);
    return user;
  }

  createGuild(p: { name: string; ownerId: string; locale?: string; everyonePermissions: bigint }): SimGuild {
    const id = this.ids.next();
    const guild: SimGuild = {
      id,
      name: p.name,
      ownerId: p.ownerId,
      locale: p.locale ?? 'en-US',
      createdAt: new Date(),
      botPresent: true,
      roles: new Map(),
      channels: new Map(),
      members: new Map(),
      voiceStates: new Map(),
    };
    guild.roles.set(id, {
      id,
      guildId: id,
      name: '@everyone',
      permissions: p.everyonePermissions,
      position: 0,
      color: 0,
      hoist: false,
      mentionable: false,
      managed: false,
    });
    this.guilds.set(id, guild);
    return guild;
  }

  createRole(guildId: string, p: { name: string; permissions: bigint; managed?: boolean }): SimRole {
    const guild = this.guild(guildId);
    const role: SimRole = {
      id: this.ids.next(),
      guildId,
      name: p.name,
      permissions: p.permissions,
      position: guild.roles.size,
      color: 0,
      hoist: false,
      mentionable: false,
      managed: p.managed ?? false,
    };
    guild.roles.set(role.id, role);
    return role;
  }

  createChannel(guildId: string, p: { name: string; kind: 'text' | 'voice' | 'stage'; topic?: string; nsfw?: boolean }): SimChannel {
    const guild = this.guild(guildId);
    const type = p.kind === 'text' ? ChannelType.GuildText : p.kind === 'voice' ? ChannelType.GuildVoice : ChannelType.GuildStageVoice;
    const channel: SimChannel = {
      id: this.ids.next(),
      guildId,
      name: p.name,
      kind: p.kind,
      type,
      position: [...guild.channels.values()].filter((c) => c.kind === p.kind).length,
      overwrites: [],
      topic: p.topic ?? null,
      nsfw: p.nsfw ?? false,
      parentId: null,
      thread: null,
      deleted: false,
    };
    guild.channels.set(channel.id, channel);
    this.channelIndex.set(channel.id, channel);
    return channel;
  }

  /** A thread in a text channel, started by `ownerId` (who becomes its first member). */
  createThread(parentId: string, p: { name: string; ownerId: string; private: boolean; autoArchiveDuration?: SimThreadInfo['autoArchiveDuration'] }): SimChannel {
    const parent = this.channel(parentId);
    if (parent.kind !== 'text') throw new SimError(`threads can only be started in text channels (#${parent.name} is ${parent.kind})`);
    const now = new Date();
    const channel: SimChannel = {
      id: this.ids.next(),
      guildId: parent.guildId,
      name: p.name,
      kind: 'thread',
      type: p.private ? ChannelType.PrivateThread : ChannelType.PublicThread,
      position: 0,
      overwrites: [],
      topic: null,
      nsfw: false,
      parentId: parent.id,
      thread: {
        ownerId: p.ownerId,
        private: p.private,
        archived: false,
        locked: false,
        autoArchiveDuration: p.autoArchiveDuration ?? 4320,
        archiveTimestamp: now,
        createdAt: now,
        memberIds: new Set([p.ownerId]),
        messageCount: 0,
        totalMessageSent: 0,
      },
      deleted: false,
    };
    this.guild(parent.guildId).channels.set(channel.id, channel);
    this.channelIndex.set(channel.id, channel);
    return channel;
  }

  /** Active (not deleted) threads of a guild, optionally of one parent channel. */
  threads(guildId: string, parentId?: string): SimChannel[] {
    return [...this.guild(guildId).channels.values()].filter((c) => c.kind === 'thread' && !c.deleted && (parentId === undefined || c.parentId === parentId));
  }

  /** Whether a channel is age-restricted (threads inherit it from their parent). */
  isNsfw(channel: SimChannel): boolean {
    if (channel.kind === 'thread' && channel.parentId) return this.channelIndex.get(channel.parentId)?.nsfw ?? false;
    return channel.nsfw;
  }

  addMember(guildId: string, userId: string, roleIds: string[] = [], nick: string | null = null): SimMember {
    const guild = this.guild(guildId);
    const member: SimMember = { userId, guildId, nick, roleIds: [...roleIds], joinedAt: new Date(), present: true };
    guild.members.set(userId, member);
    return member;
  }

  // ---- permissions ----

  permissionContext(guild: SimGuild): PermissionContext {
    const rolePermissions = new Map<string, bigint>();
    for (const r of guild.roles.values()) rolePermissions.set(r.id, r.permissions);
    return { guildId: guild.id, ownerId: guild.ownerId, rolePermissions };
  }

  guildPermissions(guildId: string, userId: string): bigint {
    const guild = this.guild(guildId);
    const member = guild.members.get(userId);
    if (!member || !member.present) return 0n;
    return basePermissions(this.permissionContext(guild), { userId, roleIds: member.roleIds });
  }

  /**
   * Permissions in a channel. Threads inherit their parent's overwrites; a private thread is only
   * visible to its members and to moderators (Manage Threads), as on Discord.
   */
  channelPermissions(channelId: string, userId: string): bigint {
    const channel = this.channel(channelId);
    const guild = this.guild(channel.guildId);
    const member = guild.members.get(userId);
    if (!member || !member.present) return 0n;
    const source = channel.kind === 'thread' && channel.parentId ? this.channel(channel.parentId) : channel;
    const perms = channelPermissions(this.permissionContext(guild), { userId, roleIds: member.roleIds }, source.overwrites);
    if (channel.thread?.private && !channel.thread.memberIds.has(userId) && (perms & PermissionFlagsBits.ManageThreads) === 0n) return 0n;
    return perms;
  }

  /** The permission a message needs in this channel: Send Messages, or Send Messages in Threads in a thread. */
  sendPermission(channel: SimChannel): bigint {
    return channel.kind === 'thread' ? PermissionFlagsBits.SendMessagesInThreads : PermissionFlagsBits.SendMessages;
  }

  isAdministrator(guildId: string, userId: string): boolean {
    return this.guildPermissions(guildId, userId) === ALL_PERMISSIONS;
  }

  // ---- messages ----

  addMessage(msg: SimMessage): SimMessage {
    this.messages.set(msg.id, msg);
    const thread = this.channelIndex.get(msg.channelId)?.thread;
    if (thread && !msg.ephemeral) {
      thread.messageCount += 1;
      thread.totalMessageSent += 1;
      // Posting in a thread makes the author a thread member (webhooks are not members).
      if (!msg.webhook) thread.memberIds.add(msg.authorId);
    }
    if (!msg.ephemeral) {
      let list = this.messagesByChannel.get(msg.channelId);
      if (!list) this.messagesByChannel.set(msg.channelId, (list = []));
      list.push(msg);
    }
    this.emit('messageCreated', msg);
    return msg;
  }

  /**
   * Applies an edit, keeping the previous version in `history`. `markEdited: false` is for
   * server-side changes that are not edits (Discord resolving a link embed sets no edited_timestamp).
   */
  editMessage(
    msg: SimMessage,
    change: { content?: string; embeds?: unknown[]; attachments?: SimAttachment[]; components?: unknown[]; flags?: number },
    opts: { markEdited?: boolean } = {},
  ): SimMessage {
    msg.history.push({ content: msg.content, embeds: msg.embeds, attachments: msg.attachments, at: msg.editedAt ?? msg.createdAt });
    if (change.content !== undefined) msg.content = change.content;
    if (change.embeds !== undefined) msg.embeds = change.embeds;
    if (change.attachments !== undefined) msg.attachments = change.attachments;
    if (change.components !== undefined) msg.components = change.components;
    if (change.flags !== undefined) msg.flags = change.flags;
    if (opts.markEdited ?? true) msg.editedAt = new Date();
    this.emit('messageUpdated', msg);
    return msg;
  }

  deleteMessage(msg: SimMessage): void {
    msg.deleted = true;
    const thread = this.channelIndex.get(msg.channelId)?.thread;
    if (thread && !msg.ephemeral) thread.messageCount = Math.max(0, thread.messageCount - 1);
    this.emit('messageDeleted', msg);
  }

  channelMessages(channelId: string, includeDeleted = false): SimMessage[] {
    const list = this.messagesByChannel.get(channelId) ?? [];
    return includeDeleted ? [...list] : list.filter((m) => !m.deleted);
  }

  newMessage(p: {
    channelId: string;
    authorId: string;
    content: string;
    embeds?: unknown[];
    attachments?: SimAttachment[];
    components?: unknown[];
    flags?: number;
    type?: number;
    referencedMessageId?: string | null;
    interactionId?: string | null;
    ephemeral?: boolean;
    tts?: boolean;
    webhook?: SimWebhookAuthor | null;
    mentionUserIds?: string[];
  }): SimMessage {
    const channel = this.channel(p.channelId);
    return {
      id: this.ids.next(),
      channelId: channel.id,
      guildId: channel.guildId,
      authorId: p.authorId,
      content: p.content,
      embeds: p.embeds ?? [],
      attachments: p.attachments ?? [],
      components: p.components ?? [],
      flags: p.flags ?? 0,
      type: p.type ?? (p.referencedMessageId ? 19 : 0),
      createdAt: new Date(),
      editedAt: null,
      history: [],
      deleted: false,
      mentionUserIds: p.mentionUserIds ?? mentionedUserIds(p.content),
      referencedMessageId: p.referencedMessageId ?? null,
      interactionId: p.interactionId ?? null,
      ephemeral: p.ephemeral ?? false,
      tts: p.tts ?? false,
      reactions: new Map(),
      webhook: p.webhook ?? null,
    };
  }

  // ---- commands ----

  commandsFor(guildId: string | undefined): RegisteredCommand[] {
    return guildId === undefined ? this.globalCommands : (this.guildCommands.get(guildId) ?? []);
  }

  setCommands(guildId: string | undefined, commands: RegisteredCommand[]): void {
    if (guildId === undefined) this.globalCommands.splice(0, this.globalCommands.length, ...commands);
    else this.guildCommands.set(guildId, commands);
    this.emit('commandsChanged', guildId);
  }

  /** The chat-input command `name` as a member in the guild would find it: guild commands first, then global. */
  findChatInputCommand(guildId: string, name: string): RegisteredCommand | undefined {
    return (
      this.commandsFor(guildId).find((c) => c.data.name === name && c.data.type === 1) ??
      this.globalCommands.find((c) => c.data.name === name && c.data.type === 1)
    );
  }
}
