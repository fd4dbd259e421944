/**
 * The simulated Discord's world: guilds, channels, roles, members, voice states, messages and
 * registered application commands. Plain data plus the queries every other module needs
 * (permissions, lookups). It sends nothing: the gateway and REST modules turn changes into
 * dispatches and responses.
 */
import { EventEmitter } from 'node:events';
import { ChannelType } from 'discord-api-types/v10';
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

export type SimChannelKind = 'text' | 'voice';

export interface SimChannel {
  id: string;
  guildId: string;
  name: string;
  kind: SimChannelKind;
  type: ChannelType.GuildText | ChannelType.GuildVoice;
  position: number;
  overwrites: Overwrite[];
  topic: string | null;
  deleted: boolean;
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

  createUser(p: { username: string; globalName?: string | null; bot?: boolean; locale?: string }): SimUser {
    const user: SimUser = {
      id: this.ids.next(),
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

  createChannel(guildId: string, p: { name: string; kind: SimChannelKind; topic?: string }): SimChannel {
    const guild = this.guild(guildId);
    const channel: SimChannel = {
      id: this.ids.next(),
      guildId,
      name: p.name,
      kind: p.kind,
      type: p.kind === 'text' ? ChannelType.GuildText : ChannelType.GuildVoice,
      position: [...guild.channels.values()].filter((c) => c.kind === p.kind).length,
      overwrites: [],
      topic: p.topic ?? null,
      deleted: false,
    };
    guild.channels.set(channel.id, channel);
    this.channelIndex.set(channel.id, channel);
    return channel;
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

  channelPermissions(channelId: string, userId: string): bigint {
    const channel = this.channel(channelId);
    const guild = this.guild(channel.guildId);
    const member = guild.members.get(userId);
    if (!member || !member.present) return 0n;
    return channelPermissions(this.permissionContext(guild), { userId, roleIds: member.roleIds }, channel.overwrites);
  }

  isAdministrator(guildId: string, userId: string): boolean {
    return this.guildPermissions(guildId, userId) === ALL_PERMISSIONS;
  }

  // ---- messages ----

  addMessage(msg: SimMessage): SimMessage {
    this.messages.set(msg.id, msg);
    if (!msg.ephemeral) {
      let list = this.messagesByChannel.get(msg.channelId);
      if (!list) this.messagesByChannel.set(msg.channelId, (list = []));
      list.push(msg);
    }
    this.emit('messageCreated', msg);
    return msg;
  }

  /** Applies an edit, keeping the previous version in `history`. */
  editMessage(
    msg: SimMessage,
    change: { content?: string; embeds?: unknown[]; attachments?: SimAttachment[]; components?: unknown[]; flags?: number },
  ): SimMessage {
    msg.history.push({ content: msg.content, embeds: msg.embeds, attachments: msg.attachments, at: msg.editedAt ?? msg.createdAt });
    if (change.content !== undefined) msg.content = change.content;
    if (change.embeds !== undefined) msg.embeds = change.embeds;
    if (change.attachments !== undefined) msg.attachments = change.attachments;
    if (change.components !== undefined) msg.components = change.components;
    if (change.flags !== undefined) msg.flags = change.flags;
    msg.editedAt = new Date();
    this.emit('messageUpdated', msg);
    return msg;
  }

  deleteMessage(msg: SimMessage): void {
    msg.deleted = true;
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
      mentionUserIds: [...p.content.matchAll(/<@!?(\d{15,21})>/g)].map((m) => m[1] as string),
      referencedMessageId: p.referencedMessageId ?? null,
      interactionId: p.interactionId ?? null,
      ephemeral: p.ephemeral ?? false,
      tts: p.tts ?? false,
      reactions: new Map(),
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
