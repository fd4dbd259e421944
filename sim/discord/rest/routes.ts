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
import { channelPayload, guildRestPayload, memberPayload, messagePayload, rolePayload, userPayload, voiceStatePayload, webhookPayload } from '../payloads.js';
import { Perm, hasAll } from '../permissions.js';
import type { SimChannel, SimGuild, SimMessage, SimState } from '../state.js';
import type { VoiceStates } from '../voice-states.js';
import type { WebhookService } from '../webhooks.js';
import { Errors, fieldError, type Route, type RouteHandler, type SimRequest } from './http.js';

export interface RestContext {
  state: SimState;
  messages: MessageService;
  interactions: Interactions;
  webhooks: WebhookService;
  voiceStates: VoiceStates;
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
  // Interaction follow-ups use the application id as webhook id; real webhooks are in state.webhooks.
  const p = (req: SimRequest, key: string) => req.params[key] as string;
  add(
    'POST',
    '/webhooks/:webhookId/:token',
    (req) =>
      ctx.webhooks.isWebhook(p(req, 'webhookId'))
        ? ctx.webhooks.execute(p(req, 'webhookId'), p(req, 'token'), req.json, req.files, req.query)
        : ctx.interactions.followUp(p(req, 'webhookId'), p(req, 'token'), req.json, req.files, req.query.get('wait') === 'true'),
    false,
  );
  add(
    'GET',
    '/webhooks/:webhookId/:token/messages/:messageId',
    (req) =>
      ctx.webhooks.isWebhook(p(req, 'webhookId'))
        ? ctx.webhooks.getMessage(p(req, 'webhookId'), p(req, 'token'), p(req, 'messageId'), req.query)
        : ctx.interactions.getMessage(p(req, 'webhookId'), p(req, 'token'), p(req, 'messageId')),
    false,
  );
  add(
    'PATCH',
    '/webhooks/:webhookId/:token/messages/:messageId',
    (req) =>
      ctx.webhooks.isWebhook(p(req, 'webhookId'))
        ? ctx.webhooks.editMessage(p(req, 'webhookId'), p(req, 'token'), p(req, 'messageId'), req.json, req.files, req.query)
        : ctx.interactions.editMessage(p(req, 'webhookId'), p(req, 'token'), p(req, 'messageId'), req.json, req.files),
    false,
  );
  add(
    'DELETE',
    '/webhooks/:webhookId/:token/messages/:messageId',
    (req) =>
      ctx.webhooks.isWebhook(p(req, 'webhookId'))
        ? ctx.webhooks.deleteMessage(p(req, 'webhookId'), p(req, 'token'), p(req, 'messageId'), req.query)
        : ctx.interactions.deleteMessage(p(req, 'webhookId'), p(req, 'token'), p(req, 'messageId')),
    false,
  );

  // ---- webhooks (management) ----
  // The token of another application's webhook (e.g. PluralKit's) is only shown to that application.
  const hookOut = (w: Parameters<typeof webhookPayload>[1], withUser: boolean) =>
    webhookPayload(state, w, { withUser, withToken: w.applicationId === null || w.applicationId === state.applicationId });
  add('POST', '/channels/:channelId/webhooks', (req) => ok(hookOut(ctx.webhooks.create(p(req, 'channelId'), bot, req.json), true)));
  add('GET', '/channels/:channelId/webhooks', (req) => ok(ctx.webhooks.listChannel(p(req, 'channelId'), bot).map((w) => hookOut(w, true))));
  add('GET', '/guilds/:guildId/webhooks', (req) => ok(ctx.webhooks.listGuild(guildOf(p(req, 'guildId')).id, bot).map((w) => hookOut(w, true))));
  add('GET', '/webhooks/:webhookId', (req) => ok(hookOut(ctx.webhooks.get(p(req, 'webhookId'), bot), true)));
  add('GET', '/webhooks/:webhookId/:token', (req) => ok(hookOut(ctx.webhooks.getWithToken(p(req, 'webhookId'), p(req, 'token')), false)), false);
  add('PATCH', '/webhooks/:webhookId', (req) => ok(hookOut(ctx.webhooks.modify(ctx.webhooks.byId(p(req, 'webhookId')), bot, req.json), true)));
  add(
    'PATCH',
    '/webhooks/:webhookId/:token',
    (req) => ok(hookOut(ctx.webhooks.modify(ctx.webhooks.byToken(p(req, 'webhookId'), p(req, 'token')), null, req.json), false)),
    false,
  );
  add('DELETE', '/webhooks/:webhookId', (req) => {
    ctx.webhooks.remove(ctx.webhooks.byId(p(req, 'webhookId')), bot);
    return noContent();
  });
  add(
    'DELETE',
    '/webhooks/:webhookId/:token',
    (req) => {
      ctx.webhooks.remove(ctx.webhooks.byToken(p(req, 'webhookId'), p(req, 'token')), null);
      return noContent();
    },
    false,
  );

  // ---- channels and messages ----
  add('GET', '/channels/:channelId', (req) => ok(channelPayload(channelOf(req.params.channelId as string), true, state)));
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
    const found = channelOf(req.params.channelId as string);
    // Threads need Send Messages in Threads (Send Messages has no effect there).
    const c = channelOf(found.id, state.sendPermission(found));
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
    const found = channelOf(req.params.channelId as string);
    const c = channelOf(found.id, state.sendPermission(found));
    ctx.typing(c.id, bot);
    return noContent();
  });

  // ---- guilds ----
  add('GET', '/guilds/:guildId', (req) => ok(guildRestPayload(state, guildOf(req.params.guildId as string))));
  add('GET', '/guilds/:guildId/channels', (req) => {
    const g = guildOf(req.params.guildId as string);
    // Like Discord: threads are not listed with the channels.
    return ok([...g.channels.values()].filter((c) => !c.deleted && c.kind !== 'thread').map((c) => channelPayload(c)));
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
    if (!v) throw Errors.unknownVoiceState();
    const { member: _m, ...payload } = voiceStatePayload(state, v) as ReturnType<typeof voiceStatePayload> & { member?: unknown };
    return ok(payload);
  };
  add('GET', '/guilds/:guildId/voice-states/:userId', voiceStateRoute);
  /**
   * Modify (Current) User Voice State, stage channels only (discord-api-docs resources/voice.mdx):
   * unsuppressing needs Mute Members in the channel (suppressing yourself is always allowed);
   * raising your hand needs Request to Speak; for others only `suppress`, with Mute Members.
   * Unsuppressed non-bot users get a request_to_speak_timestamp of now; suppressed users lose theirs.
   */
  add('PATCH', '/guilds/:guildId/voice-states/:userId', (req) => {
    const g = guildOf(req.params.guildId as string);
    const self = req.params.userId === '@me' || req.params.userId === bot;
    const userId = self ? bot : (req.params.userId as string);
    const body = (req.json ?? {}) as { channel_id?: unknown; suppress?: unknown; request_to_speak_timestamp?: unknown };
    const v = g.voiceStates.get(userId);
    if (!v) throw Errors.unknownVoiceState();
    if (body.channel_id !== undefined && body.channel_id !== v.channelId) throw Errors.invalidFormBody(fieldError('channel_id', 'CHANNEL_ID_INVALID', 'The user is not in this channel.'));
    const channel = state.channel(v.channelId);
    if (channel.kind !== 'stage') throw Errors.wrongChannelType();
    const perms = state.channelPermissions(channel.id, bot);
    if (body.suppress !== undefined && typeof body.suppress !== 'boolean') throw Errors.invalidFormBody(fieldError('suppress', 'BASE_TYPE_BOOLEAN', 'Must be either true or false.'));
    const change: { suppress?: boolean; requestToSpeakAt?: Date | null } = {};
    if (typeof body.suppress === 'boolean') {
      if ((!self || body.suppress === false) && !hasAll(perms, Perm.MuteMembers)) throw Errors.missingPermissions();
      change.suppress = body.suppress;
      if (body.suppress) change.requestToSpeakAt = null;
      else if (!self && !state.user(userId).bot) change.requestToSpeakAt = new Date();
    }
    if (body.request_to_speak_timestamp !== undefined) {
      if (!self) throw Errors.invalidFormBody(fieldError('request_to_speak_timestamp', 'BASE_TYPE_BAD_FIELD', 'Only the current user can request to speak.'));
      if (body.request_to_speak_timestamp === null) {
        change.requestToSpeakAt = null;
      } else {
        if (typeof body.request_to_speak_timestamp !== 'string' || Number.isNaN(Date.parse(body.request_to_speak_timestamp))) {
          throw Errors.invalidFormBody(fieldError('request_to_speak_timestamp', 'DATE_TIME_TYPE_PARSE', 'Could not interpret the value as a date-time.'));
        }
        if (!hasAll(perms, Perm.RequestToSpeak)) throw Errors.missingPermissions();
        change.requestToSpeakAt = new Date(body.request_to_speak_timestamp);
      }
    }
    ctx.voiceStates.updateStageState(g.id, userId, change);
    return noContent();
  });

  return routes;
}
