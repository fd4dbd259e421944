/**
 * The REST route table (`/api/v10/...`) as the bot's discord.js client uses it. Every route
 * checks what Discord checks for a bot (guild membership, channel permissions, authorship) and
 * answers with the same payload shapes and error codes.
 */
import { MessageFlags } from 'discord-api-types/v10';
import type { Logger } from '../../../src/log.js';
import { bulkOverwrite, deleteOne, upsertOne } from '../commands.js';
import type { Interactions } from '../interactions.js';
import { readMessageBody, type MessageService } from '../messages.js';
import { channelPayload, guildRestPayload, memberPayload, messagePayload, rolePayload, userPayload } from '../payloads.js';
import { Perm, hasAll } from '../permissions.js';
import type { SimChannel, SimGuild, SimMessage, SimState } from '../state.js';
import { Errors, type Route, type RouteHandler, type SimRequest } from './http.js';

export interface RestContext {
  state: SimState;
  messages: MessageService;
  interactions: Interactions;
  gatewayUrl(): string;
  /** Privileged "GUILD_MEMBERS" intent enabled in the portal (needed to list members). */
  membersIntentEnabled: boolean;
  typing(channelId: string, userId: string): void;
  log: Logger;
}

export function buildRoutes(ctx: RestContext): Route[] {
  const { state } = ctx;
  const bot = state.botUserId;
  const routes: Route[] = [];
  const add = (method: Route['method'], pattern: string, handler: RouteHandler, auth = true) => routes.push({ method, pattern, handler, auth });
  const ok = (body: unknown) => ({ status: 200, body });
  const noContent = () => ({ status: 204 });

  // ---- access helpers: what the bot can see ----
  const guildOf = (id: string): SimGuild => {
    const g = state.guilds.get(id);
    if (!g || !g.botPresent) throw Errors.unknownGuild();
    return g;
  };
  const channelOf = (id: string, need: bigint = Perm.ViewChannel): SimChannel => {
    const c = state.findChannel(id);
    if (!c) throw Errors.unknownChannel();
    guildOf(c.guildId);
    const perms = state.channelPermissions(c.id, bot);
    if (!hasAll(perms, Perm.ViewChannel)) throw Errors.missingAccess();
    if (!hasAll(perms, need)) throw Errors.missingPermissions();
    return c;
  };
  const messageOf = (channel: SimChannel, id: string): SimMessage => {
    const m = state.messages.get(id);
    if (!m || m.deleted || m.ephemeral || m.channelId !== channel.id) throw Errors.unknownMessage();
    return m;
  };
  const application = () => ({
    id: state.applicationId,
    name: state.user(bot).username,
    icon: null,
    description: 'Simulated application',
    bot_public: true,
    bot_require_code_grant: false,
    verify_key: '0'.repeat(64),
    flags: 0,
    team: null,
    owner: userPayload(state.user(bot)),
    bot: userPayload(state.user(bot)),
    approximate_guild_count: state.botGuilds().length,
  });
  const appCheck = (req: SimRequest) => {
    if (req.params.appId !== state.applicationId) throw Errors.missingAccess();
  };

  // ---- gateway, users, application ----
  add('GET', '/gateway', () => ok({ url: ctx.gatewayUrl() }), false);
  add('GET', '/gateway/bot', () =>
    ok({ url: ctx.gatewayUrl(), shards: 1, session_start_limit: { total: 1000, remaining: 999, reset_after: 86_400_000, max_concurrency: 1 } }),
  );
  add('GET', '/users/@me', () => ok({ ...userPayload(state.user(bot)), verified: true, mfa_enabled: false, locale: 'en-US' }));
  add('GET', '/users/:userId', (req) => {
    const u = state.users.get(req.params.userId as string);
    if (!u) throw Errors.unknownUser();
    return ok(userPayload(u));
  });
  add('GET', '/applications/@me', () => ok(application()));
  add('GET', '/oauth2/applications/@me', () => ok(application()));

  // ---- application commands ----
  const commandRoutes = (prefix: string, guildIdOf: (req: SimRequest) => string | undefined) => {
    const scope = (req: SimRequest) => {
      appCheck(req);
      const g = guildIdOf(req);
      if (g !== undefined) guildOf(g);
      return g;
    };
    add('GET', prefix, (req) => ok(state.commandsFor(scope(req)).map((c) => c.data)));
    add('PUT', prefix, (req) => {
      const g = scope(req);
      const out = bulkOverwrite(state, g, req.json);
      ctx.log.debug({ guildId: g ?? 'global', names: out.map((c) => c.data.name) }, 'discord-sim: application commands overwritten');
      return ok(out.map((c) => c.data));
    });
    add('POST', prefix, (req) => {
      const { command, created } = upsertOne(state, scope(req), req.json);
      return { status: created ? 201 : 200, body: command.data };
    });
    add('GET', `${prefix}/:commandId`, (req) => {
      const c = state.commandsFor(scope(req)).find((x) => x.id === req.params.commandId);
      if (!c) throw Errors.unknownCommand();
      return ok(c.data);
    });
    add('DELETE', `${prefix}/:commandId`, (req) => {
      deleteOne(state, scope(req), req.params.commandId as string);
      return noContent();
    });
  };
  commandRoutes('/applications/:appId/commands', () => undefined);
  commandRoutes('/applications/:appId/guilds/:guildId/commands', (req) => req.params.guildId);

  // ---- interactions and their webhooks (authenticated by the token in the path) ----
  add(
    'POST',
    '/interactions/:interactionId/:token/callback',
    (req) => ctx.interactions.callback(req.params.interactionId as string, req.params.token as string, req.json, req.files, req.query.get('with_response') === 'true'),
    false,
  );
  add('POST', '/webhooks/:webhookId/:token', (req) => ctx.interactions.followUp(req.params.webhookId as string, req.params.token as string, req.json, req.files, req.query.get('wait') === 'true'), false);
  add('GET', '/webhooks/:webhookId/:token/messages/:messageId', (req) => ctx.interactions.getMessage(req.params.webhookId as string, req.params.token as string, req.params.messageId as string), false);
  add(
    'PATCH',
    '/webhooks/:webhookId/:token/messages/:messageId',
    (req) => ctx.interactions.editMessage(req.params.webhookId as string, req.params.token as string, req.params.messageId as string, req.json, req.files),
    false,
  );
  add('DELETE', '/webhooks/:webhookId/:token/messages/:messageId', (req) => ctx.interactions.deleteMessage(req.params.webhookId as string, req.params.token as string, req.params.messageId as string), false);

  // ---- channels and messages ----
  add('GET', '/channels/:channelId', (req) => ok(channelPayload(channelOf(req.params.channelId as string))));
  add('GET', '/channels/:channelId/messages', (req) => {
    const c = channelOf(req.params.channelId as string, Perm.ReadMessageHistory);
    const limit = Math.min(100, Math.max(1, Number(req.query.get('limit') ?? 50) || 50));
    const before = req.query.get('before');
    const after = req.query.get('after');
    let list = state.channelMessages(c.id);
    if (before) list = list.filter((m) => BigInt(m.id) < BigInt(before));
    if (after) list = list.filter((m) => BigInt(m.id) > BigInt(after));
    list = after ? list.slice(0, limit) : list.slice(-limit);
    return ok(list.reverse().map((m) => messagePayload(state, m)));
  });
  add('GET', '/channels/:channelId/messages/:messageId', (req) => {
    const c = channelOf(req.params.channelId as string, Perm.ReadMessageHistory);
    return ok(messagePayload(state, messageOf(c, req.params.messageId as string)));
  });
  add('POST', '/channels/:channelId/messages', (req) => {
    const c = channelOf(req.params.channelId as string, Perm.SendMessages);
    if (c.kind !== 'text' && c.kind !== 'voice') throw Errors.unknownChannel();
    const body = readMessageBody(req.json, req.files, { requireSomething: true });
    const perms = state.channelPermissions(c.id, bot);
    if (req.files.length && !hasAll(perms, Perm.AttachFiles)) throw Errors.missingPermissions();
    if (body.referencedMessageId) messageOf(c, body.referencedMessageId);
    const msg = state.newMessage({
      channelId: c.id,
      authorId: bot,
      content: body.content ?? '',
      // Without Embed Links, Discord accepts the message and silently drops the embeds.
      embeds: hasAll(perms, Perm.EmbedLinks) ? (body.embeds ?? []) : [],
      attachments: ctx.messages.storeFiles(c.id, req.files, body.attachments),
      components: body.components ?? [],
      flags: (body.flags ?? 0) & (MessageFlags.SuppressEmbeds | MessageFlags.SuppressNotifications),
      referencedMessageId: body.referencedMessageId ?? null,
      tts: body.tts ?? false,
    });
    return ok(messagePayload(state, ctx.messages.post(msg)));
  });
  add('PATCH', '/channels/:channelId/messages/:messageId', (req) => {
    const c = channelOf(req.params.channelId as string);
    const msg = messageOf(c, req.params.messageId as string);
    if (msg.authorId !== bot) throw Errors.cannotEditOthers();
    const body = readMessageBody(req.json, req.files, { requireSomething: false });
    const kept = body.attachments ? msg.attachments.filter((a) => body.attachments?.some((k) => String(k.id) === a.id)) : msg.attachments;
    const change: Parameters<MessageService['edit']>[1] = { attachments: [...kept, ...ctx.messages.storeFiles(c.id, req.files, body.attachments)] };
    if (body.content !== undefined) change.content = body.content;
    if (body.embeds !== undefined) change.embeds = body.embeds;
    if (body.components !== undefined) change.components = body.components;
    const empty = !(change.content ?? msg.content) && (change.embeds ?? msg.embeds).length === 0 && change.attachments?.length === 0;
    if (empty) throw Errors.emptyMessage();
    return ok(messagePayload(state, ctx.messages.edit(msg, change)));
  });
  add('DELETE', '/channels/:channelId/messages/:messageId', (req) => {
    const c = channelOf(req.params.channelId as string);
    const msg = messageOf(c, req.params.messageId as string);
    if (msg.authorId !== bot && !hasAll(state.channelPermissions(c.id, bot), Perm.ManageMessages)) throw Errors.missingPermissions();
    ctx.messages.remove(msg);
    return noContent();
  });
  // Reactions (unicode emoji only: the bot uses ⏳, ✂️ and ❌ as status marks).
  const emojiOf = (raw: string): string => {
    const name = decodeURIComponent(raw);
    // Custom emoji arrive as "name:id"; the simulator has none.
    if (!name || /^[\w-]+:\d+$/.test(name) || /^[\x20-\x7e]+$/.test(name)) throw Errors.unknownEmoji();
    return name;
  };
  add('PUT', '/channels/:channelId/messages/:messageId/reactions/:emoji/@me', (req) => {
    const c = channelOf(req.params.channelId as string, Perm.ReadMessageHistory);
    const msg = messageOf(c, req.params.messageId as string);
    const emoji = emojiOf(req.params.emoji as string);
    const users = msg.reactions.get(emoji);
    // Adding a new emoji needs Add Reactions; joining an existing reaction does not (as on Discord).
    if (!users && !hasAll(state.channelPermissions(c.id, bot), Perm.AddReactions)) throw Errors.missingPermissions();
    if (users) users.add(bot);
    else msg.reactions.set(emoji, new Set([bot]));
    return noContent();
  });
  add('DELETE', '/channels/:channelId/messages/:messageId/reactions/:emoji/:userId', (req) => {
    const c = channelOf(req.params.channelId as string, Perm.ReadMessageHistory);
    const msg = messageOf(c, req.params.messageId as string);
    const emoji = emojiOf(req.params.emoji as string);
    const userId = req.params.userId === '@me' ? bot : (req.params.userId as string);
    if (userId !== bot && !hasAll(state.channelPermissions(c.id, bot), Perm.ManageMessages)) throw Errors.missingPermissions();
    const users = msg.reactions.get(emoji);
    users?.delete(userId);
    if (users && users.size === 0) msg.reactions.delete(emoji);
    return noContent();
  });
  add('POST', '/channels/:channelId/typing', (req) => {
    const c = channelOf(req.params.channelId as string, Perm.SendMessages);
    ctx.typing(c.id, bot);
    return noContent();
  });

  // ---- guilds ----
  add('GET', '/guilds/:guildId', (req) => ok(guildRestPayload(state, guildOf(req.params.guildId as string))));
  add('GET', '/guilds/:guildId/channels', (req) => {
    const g = guildOf(req.params.guildId as string);
    return ok([...g.channels.values()].filter((c) => !c.deleted).map((c) => channelPayload(c)));
  });
  add('GET', '/guilds/:guildId/roles', (req) => ok([...guildOf(req.params.guildId as string).roles.values()].map(rolePayload)));
  add('GET', '/guilds/:guildId/members/:userId', (req) => {
    const g = guildOf(req.params.guildId as string);
    const m = g.members.get(req.params.userId as string);
    if (!m || !m.present) throw Errors.unknownMember();
    return ok(memberPayload(state, m));
  });
  add('GET', '/guilds/:guildId/members', (req) => {
    const g = guildOf(req.params.guildId as string);
    if (!ctx.membersIntentEnabled) throw Errors.missingAccess();
    const limit = Math.min(1000, Math.max(1, Number(req.query.get('limit') ?? 1) || 1));
    const after = req.query.get('after') ?? '0';
    const list = [...g.members.values()].filter((m) => m.present && BigInt(m.userId) > BigInt(after)).sort((a, b) => (BigInt(a.userId) < BigInt(b.userId) ? -1 : 1));
    return ok(list.slice(0, limit).map((m) => memberPayload(state, m)));
  });
  const voiceStateRoute = (req: SimRequest) => {
    const g = guildOf(req.params.guildId as string);
    const userId = req.params.userId === '@me' ? bot : (req.params.userId as string);
    const v = g.voiceStates.get(userId);
    if (!v) throw Errors.unknownMember();
    return ok({ guild_id: g.id, channel_id: v.channelId, user_id: userId, session_id: v.sessionId, deaf: v.deaf, mute: v.mute, self_deaf: v.selfDeaf, self_mute: v.selfMute, self_video: false, suppress: false, request_to_speak_timestamp: null });
  };
  add('GET', '/guilds/:guildId/voice-states/:userId', voiceStateRoute);

  return routes;
}
