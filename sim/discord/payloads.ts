/**
 * State → Discord API v10 payloads, shaped as discord.js 14 parses them (discord-api-types names).
 * One place, so that REST responses and gateway dispatches always agree.
 */
import type {
  APIAttachment,
  APIChannel,
  APIGuildMember,
  APIMessage,
  APIRole,
  APIUser,
  GatewayVoiceState,
} from 'discord-api-types/v10';
import { PermissionFlagsBits } from 'discord-api-types/v10';
import type { SimAttachment, SimChannel, SimGuild, SimMember, SimMessage, SimRole, SimState, SimUser, SimVoiceState, SimWebhook } from './state.js';

export function userPayload(u: SimUser): APIUser {
  return {
    id: u.id,
    username: u.username,
    global_name: u.globalName,
    discriminator: '0',
    avatar: null,
    bot: u.bot || undefined,
    flags: 0,
    public_flags: 0,
  } as unknown as APIUser;
}

export function rolePayload(r: SimRole): APIRole {
  return {
    id: r.id,
    name: r.name,
    color: r.color,
    colors: { primary_color: r.color, secondary_color: null, tertiary_color: null },
    hoist: r.hoist,
    icon: null,
    unicode_emoji: null,
    position: r.position,
    permissions: r.permissions.toString(),
    managed: r.managed,
    mentionable: r.mentionable,
    flags: 0,
  } as unknown as APIRole;
}

export function channelPayload(c: SimChannel, includeGuildId = true, state?: SimState): APIChannel {
  if (c.kind === 'thread' && c.thread) return threadPayload(c, includeGuildId, state);
  const base = {
    id: c.id,
    type: c.type,
    name: c.name,
    position: c.position,
    parent_id: null,
    nsfw: c.nsfw,
    flags: 0,
    permission_overwrites: c.overwrites.map((o) => ({
      id: o.id,
      type: o.type,
      allow: o.allow.toString(),
      deny: o.deny.toString(),
    })),
    ...(includeGuildId ? { guild_id: c.guildId } : {}),
  };
  if (c.kind === 'voice' || c.kind === 'stage') {
    return {
      ...base,
      bitrate: c.kind === 'stage' ? 40000 : 64000,
      user_limit: c.kind === 'stage' ? 10000 : 0,
      rtc_region: null,
      rate_limit_per_user: 0,
      last_message_id: null,
      ...(c.kind === 'stage' ? { topic: c.topic } : {}),
    } as unknown as APIChannel;
  }
  return { ...base, topic: c.topic, rate_limit_per_user: 0, last_message_id: null } as unknown as APIChannel;
}

/**
 * A thread as Discord sends it: parent, owner, counters and thread_metadata; no position,
 * overwrites or nsfw of its own (it inherits them). `member` is the bot's thread membership.
 */
function threadPayload(c: SimChannel, includeGuildId: boolean, state: SimState | undefined): APIChannel {
  const t = c.thread as NonNullable<SimChannel['thread']>;
  const botId = state?.botUserId;
  return {
    id: c.id,
    type: c.type,
    name: c.name,
    parent_id: c.parentId,
    owner_id: t.ownerId,
    last_message_id: null,
    rate_limit_per_user: 0,
    flags: 0,
    message_count: t.messageCount,
    member_count: Math.min(50, t.memberIds.size),
    total_message_sent: t.totalMessageSent,
    thread_metadata: {
      archived: t.archived,
      auto_archive_duration: t.autoArchiveDuration,
      archive_timestamp: t.archiveTimestamp.toISOString(),
      locked: t.locked,
      create_timestamp: t.createdAt.toISOString(),
      ...(t.private ? { invitable: true } : {}),
    },
    ...(botId && t.memberIds.has(botId) ? { member: { id: c.id, user_id: botId, join_timestamp: t.createdAt.toISOString(), flags: 0 } } : {}),
    ...(includeGuildId ? { guild_id: c.guildId } : {}),
  } as unknown as APIChannel;
}

export function memberPayload(state: SimState, m: SimMember, withUser = true): APIGuildMember {
  const payload = {
    nick: m.nick,
    avatar: null,
    banner: null,
    roles: [...m.roleIds],
    joined_at: m.joinedAt.toISOString(),
    premium_since: null,
    deaf: false,
    mute: false,
    flags: 0,
    pending: false,
    communication_disabled_until: null,
    ...(withUser ? { user: userPayload(state.user(m.userId)) } : {}),
  };
  return payload as APIGuildMember;
}

export function voiceStatePayload(state: SimState, v: SimVoiceState | (Omit<SimVoiceState, 'channelId'> & { channelId: null })): GatewayVoiceState {
  const guild = state.guild(v.guildId);
  const member = guild.members.get(v.userId);
  return {
    guild_id: v.guildId,
    channel_id: v.channelId,
    user_id: v.userId,
    ...(member ? { member: memberPayload(state, member) } : {}),
    session_id: v.sessionId,
    deaf: v.deaf,
    mute: v.mute,
    self_deaf: v.selfDeaf,
    self_mute: v.selfMute,
    self_video: false,
    suppress: v.suppress,
    request_to_speak_timestamp: v.requestToSpeakAt ? v.requestToSpeakAt.toISOString() : null,
  } as GatewayVoiceState;
}

export function attachmentPayload(a: SimAttachment): APIAttachment {
  return {
    id: a.id,
    filename: a.filename,
    size: a.size,
    url: a.url,
    proxy_url: a.proxyUrl,
    ...(a.contentType ? { content_type: a.contentType } : {}),
    ...(a.description ? { description: a.description } : {}),
    ...(a.width !== undefined && a.height !== undefined ? { width: a.width, height: a.height } : {}),
  };
}

/**
 * A webhook object. `withUser: false` for the token routes (Discord leaves out `user` there);
 * `withToken: false` when the caller may not see it.
 */
export function webhookPayload(state: SimState, w: SimWebhook, opts: { withUser: boolean; withToken: boolean }): Record<string, unknown> {
  const creator = state.users.get(w.creatorId);
  return {
    id: w.id,
    type: 1,
    guild_id: w.guildId,
    channel_id: w.channelId,
    name: w.name,
    avatar: w.avatarHash,
    application_id: w.applicationId,
    ...(opts.withToken ? { token: w.token } : {}),
    ...(opts.withUser && creator ? { user: userPayload(creator) } : {}),
  };
}

/** The author of a webhook message: the webhook's id with the effective name and avatar (Discord marks it a bot). */
function webhookAuthorPayload(m: SimMessage): APIUser {
  const w = m.webhook as NonNullable<SimMessage['webhook']>;
  return {
    id: w.webhookId,
    username: w.username,
    global_name: null,
    discriminator: '0000',
    avatar: w.avatarHash,
    bot: true,
    flags: 0,
    public_flags: 0,
  } as unknown as APIUser;
}

export function messagePayload(state: SimState, m: SimMessage): APIMessage & { guild_id?: string; member?: Partial<APIGuildMember> } {
  const guild = state.guilds.get(m.guildId);
  // Webhook messages have no member: their author is the webhook itself.
  const member = m.webhook ? undefined : guild?.members.get(m.authorId);
  const referenced = m.referencedMessageId ? state.messages.get(m.referencedMessageId) : undefined;
  return {
    id: m.id,
    channel_id: m.channelId,
    guild_id: m.guildId,
    author: m.webhook ? webhookAuthorPayload(m) : userPayload(state.user(m.authorId)),
    ...(member && member.present ? { member: memberPayload(state, member, false) } : {}),
    content: m.content,
    timestamp: m.createdAt.toISOString(),
    edited_timestamp: m.editedAt ? m.editedAt.toISOString() : null,
    tts: m.tts,
    mention_everyone: false,
    mentions: m.mentionUserIds.filter((id) => state.users.has(id)).map((id) => userPayload(state.user(id))),
    mention_roles: [],
    attachments: m.attachments.map(attachmentPayload),
    embeds: m.embeds as APIMessage['embeds'],
    pinned: false,
    type: m.type,
    flags: m.flags,
    components: m.components,
    ...(m.reactions.size
      ? {
          reactions: [...m.reactions].map(([name, users]) => ({
            emoji: { id: null, name },
            count: users.size,
            count_details: { burst: 0, normal: users.size },
            me: users.has(state.botUserId),
            me_burst: false,
            burst_colors: [],
          })),
        }
      : {}),
    ...(m.referencedMessageId
      ? {
          message_reference: { type: 0, message_id: m.referencedMessageId, channel_id: m.channelId, guild_id: m.guildId },
          referenced_message: referenced && !referenced.deleted ? (messagePayload(state, { ...referenced, referencedMessageId: null }) as APIMessage) : null,
        }
      : {}),
    ...(m.interactionId ? { webhook_id: state.applicationId, application_id: state.applicationId } : {}),
    ...(m.webhook ? { webhook_id: m.webhook.webhookId } : {}),
  } as APIMessage & { guild_id?: string };
}

/** Threads the bot can see (active, and for private ones: member or moderator), for GUILD_CREATE. */
export function visibleThreads(state: SimState, g: SimGuild): SimChannel[] {
  return state.threads(g.id).filter((t) => (state.channelPermissions(t.id, state.botUserId) & PermissionFlagsBits.ViewChannel) !== 0n);
}

/** The full GUILD_CREATE payload. `memberIds` are the members the bot is told about. */
export function guildCreatePayload(state: SimState, g: SimGuild, memberIds: readonly string[]): Record<string, unknown> {
  const members = memberIds.map((id) => g.members.get(id)).filter((m): m is SimMember => m !== undefined && m.present);
  return {
    id: g.id,
    name: g.name,
    icon: null,
    splash: null,
    discovery_splash: null,
    owner_id: g.ownerId,
    afk_channel_id: null,
    afk_timeout: 300,
    verification_level: 0,
    default_message_notifications: 0,
    explicit_content_filter: 0,
    roles: [...g.roles.values()].map(rolePayload),
    emojis: [],
    stickers: [],
    features: [],
    mfa_level: 0,
    application_id: null,
    system_channel_id: null,
    system_channel_flags: 0,
    rules_channel_id: null,
    vanity_url_code: null,
    description: null,
    banner: null,
    premium_tier: 0,
    premium_subscription_count: 0,
    preferred_locale: g.locale,
    public_updates_channel_id: null,
    nsfw_level: 0,
    premium_progress_bar_enabled: false,
    safety_alerts_channel_id: null,
    // GUILD_CREATE-only fields
    joined_at: (g.members.get(state.botUserId)?.joinedAt ?? g.createdAt).toISOString(),
    large: false,
    unavailable: false,
    member_count: [...g.members.values()].filter((m) => m.present).length,
    voice_states: [...g.voiceStates.values()].map((v) => {
      const { guild_id: _g, member: _m, ...rest } = voiceStatePayload(state, v) as GatewayVoiceState & { guild_id?: string };
      return rest;
    }),
    members: members.map((m) => memberPayload(state, m)),
    channels: [...g.channels.values()].filter((c) => !c.deleted && c.kind !== 'thread').map((c) => channelPayload(c, false)),
    threads: visibleThreads(state, g).map((t) => channelPayload(t, true, state)),
    presences: [],
    stage_instances: [],
    guild_scheduled_events: [],
    soundboard_sounds: [],
  };
}

/** GET /guilds/:id (no member/channel lists, like Discord). */
export function guildRestPayload(state: SimState, g: SimGuild): Record<string, unknown> {
  const full = guildCreatePayload(state, g, []);
  for (const key of ['joined_at', 'large', 'unavailable', 'member_count', 'voice_states', 'members', 'channels', 'threads', 'presences', 'stage_instances', 'guild_scheduled_events', 'soundboard_sounds']) {
    delete full[key];
  }
  return full;
}
