/**
 * The offline Discord: REST + gateway on one loopback HTTP server, plus the voice server
 * (`./voice`), driven through a scenario API in Discord terms (guilds, channels, members who
 * type, run commands and speak). The real discord.js client accepts it unchanged when built with
 * `new Client({ rest: { api: sim.restUrl } })`. Test-only code: never imported by `src/`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatewayIntentBits, PermissionFlagsBits } from 'discord-api-types/v10';
import { logger, type Logger } from '../../src/log.js';
import { CdnServer, type CdnFaultRule, type CdnRequestRecord } from './cdn.js';
import type { LinkEmbed } from './handles.js';
import { sniffImage } from './images.js';
import { ProxyBots } from './proxy.js';
import { WebhookService, type SimWebhookInfo } from './webhooks.js';
import { Gateway, makeBotToken, type GatewayFrameRecord, type GatewaySession, type IdentifyRecord, type RequestGuildMembers } from './gateway.js';
import { Interactions } from './interactions.js';
import { MessageService } from './messages.js';
import { channelPayload, guildCreatePayload, memberPayload, messagePayload, userPayload } from './payloads.js';
import { DEFAULT_BOT_PERMISSIONS, DEFAULT_EVERYONE_PERMISSIONS } from './permissions.js';
import { DISCORD_LIKE_RATE_LIMITS, type RateLimitOptions } from './rest/http.js';
import { buildRoutes } from './rest/routes.js';
import { API_PREFIX, RestServer, type RecordedRequest } from './rest/server.js';
import { SimError, SimState, type RegisteredCommand, type SimChannel, type SimGuild, type SimMessage, type TypingEvent } from './state.js';
import { RecordingVoiceBackend, type VoiceBackend } from './voice-link.js';
import { VoiceStates, type BotVoiceState, type PendingVoiceJoin } from './voice-states.js';
import { SimGuildHandle } from './handles.js';
import { startVoiceServer, type VoiceServer } from './voice/index.js';

export { CommandRejectedError, InteractionHandle, type AutocompleteChoice, type FinalReply, type InteractionResponseRecord, type OptionValue } from './interactions.js';
export { RecordingVoiceBackend, type VoiceBackend, type VoiceCall } from './voice-link.js';
export { ALL_PERMISSIONS, DEFAULT_BOT_PERMISSIONS, DEFAULT_EVERYONE_PERMISSIONS, Perm } from './permissions.js';
export { SimError, type SimMessage, type SimAttachment, type SimWebhookAuthor, type RegisteredCommand, type TypingEvent } from './state.js';
export type { CdnFault, CdnFaultRule, CdnRequestRecord } from './cdn.js';
export type { SimWebhookInfo } from './webhooks.js';
export { MAX_WEBHOOKS_PER_CHANNEL } from './webhooks.js';
export { PLURALKIT_USER_ID, type ProxiedMessage, type SayProxiedOptions } from './proxy.js';
export type { RecordedRequest } from './rest/server.js';
export { DISCORD_LIKE_RATE_LIMITS, type RateLimitOptions } from './rest/http.js';
export type { GatewayFrameRecord, IdentifyRecord } from './gateway.js';
export type { BotVoiceState, PendingVoiceJoin } from './voice-states.js';
export { SimGuildHandle, SimChannelHandle, SimMemberHandle, type AddMemberOptions, type SpeakOptions, type SayOptions, type MemberAttachment, type LinkEmbed } from './handles.js';
export type { VoiceServer, BotAudioRecord, BotAudioPacket, SessionInfo } from './voice/index.js';

export interface DiscordSimOptions {
  /** DAVE for the voice server: 'off' negotiates protocol version 0, 'v1' real MLS. Default 'off'. */
  dave?: 'off' | 'v1';
  /** The Message Content privileged intent is enabled for the app (default true). When false, or
   *  when the bot does not request the intent, guild messages arrive without content. */
  messageContent?: boolean;
  /** Server Members privileged intent enabled (default true). */
  membersIntent?: boolean;
  /** Presence privileged intent enabled (default true). */
  presencesIntent?: boolean;
  /** Close with 4014 "Disallowed intent(s)" when a disabled privileged intent is requested, like
   *  Discord does (default false: the intent is silently not honoured). */
  rejectDisallowedIntents?: boolean;
  /** HELLO heartbeat interval; Discord uses 41250. Tests use ~500 to exercise heartbeats. */
  heartbeatIntervalMs?: number;
  botToken?: string;
  botUserId?: string;
  botUsername?: string;
  /** Default: the bot user id (true of every modern Discord application). */
  applicationId?: string;
  /** The bot's permissions in every guild (its managed role). Default {@link DEFAULT_BOT_PERMISSIONS}. */
  botPermissions?: bigint;
  /** Time the bot has to acknowledge an interaction (Discord: 3000 ms). */
  interactionAckTimeoutMs?: number;
  /** Per-bucket REST rate limits: default 50 per second per bucket (generous, but real);
   *  'discord' for Discord-like per-route limits (5 messages / 5 s per channel, …). */
  rateLimit?: RateLimitOptions | 'discord';
  /** Voice backend: default starts the real voice server (`./voice`); `false` uses a
   *  {@link RecordingVoiceBackend} (signalling only); or pass any {@link VoiceBackend}. */
  voice?: VoiceBackend | false;
  /** HELLO interval of the voice gateway (voice server option). */
  voiceHeartbeatIntervalMs?: number;
  /** Time between the bot's op 4 and VOICE_SERVER_UPDATE (default 0); see also {@link DiscordSim.holdVoiceJoins}. */
  voiceJoinDelayMs?: number;
  log?: Logger;
}

/** A participant's voice state as the simulator holds it (`sim.voiceState()`): the same fields as the bot's. */
export type SimVoiceStateInfo = BotVoiceState;

export async function startDiscordSim(opts: DiscordSimOptions = {}): Promise<DiscordSim> {
  const log = opts.log ?? logger().child({ component: 'discord-sim' });
  let voice: VoiceBackend;
  let real: VoiceServer | undefined;
  if (opts.voice === false) {
    voice = new RecordingVoiceBackend();
  } else if (opts.voice) {
    voice = opts.voice;
  } else {
    real = await startVoiceServer({ dave: opts.dave ?? 'off', log, ...(opts.voiceHeartbeatIntervalMs ? { helloIntervalMs: opts.voiceHeartbeatIntervalMs } : {}) });
    voice = real;
  }
  try {
    const sim = new DiscordSim(opts, log, voice, real);
    await sim.listen();
    return sim;
  } catch (err) {
    await real?.stop();
    throw err;
  }
}

export class DiscordSim {
  readonly token: string;
  readonly botUserId: string;
  readonly applicationId: string;
  readonly state: SimState;
  readonly gateway: Gateway;
  readonly rest: RestServer;
  readonly interactions: Interactions;
  readonly voiceStates: VoiceStates;
  /** The CDN (attachments, avatars, proxied link images); `sim.cdnUrl` for discord.js `rest.cdn`. */
  readonly cdn: CdnServer;
  /** @internal */
  readonly webhookService: WebhookService;
  /** @internal */
  readonly proxyBots: ProxyBots;
  private readonly messagesService: MessageService;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly server: Server;
  private port = 0;
  private readonly botPermissions: bigint;
  private readonly guildHandles = new Map<string, SimGuildHandle>();
  private closed = false;

  /** @internal use {@link startDiscordSim} */
  constructor(
    private readonly opts: DiscordSimOptions,
    readonly log: Logger,
    /** The voice backend (the real voice server unless replaced in the options). */
    readonly voice: VoiceBackend,
    private readonly realVoice: VoiceServer | undefined,
  ) {
    this.botUserId = opts.botUserId ?? '1300000000000000001';
    this.applicationId = opts.applicationId ?? this.botUserId;
    this.token = opts.botToken ?? makeBotToken(this.botUserId);
    this.botPermissions = opts.botPermissions ?? DEFAULT_BOT_PERMISSIONS;
    this.state = new SimState(this.botUserId, this.applicationId, opts.botUsername ?? 'VoxtaBot');
    this.gateway = new Gateway({
      token: this.token,
      botUserId: this.botUserId,
      heartbeatIntervalMs: opts.heartbeatIntervalMs ?? 41_250,
      privileged: {
        messageContent: opts.messageContent ?? true,
        members: opts.membersIntent ?? true,
        presences: opts.presencesIntent ?? true,
      },
      rejectDisallowedIntents: opts.rejectDisallowedIntents ?? false,
      resumeUrl: () => this.gatewayUrl,
      log,
    });
    this.cdn = new CdnServer((id) => this.state.attachments.get(id), log);
    this.messagesService = new MessageService(this.state, this.gateway, {
      messageContent: opts.messageContent ?? true,
      attachmentUrl: (channelId, id, filename) => this.cdn.attachmentUrl(channelId, id, filename),
    });
    const rateLimit = opts.rateLimit === 'discord' ? DISCORD_LIKE_RATE_LIMITS : (opts.rateLimit ?? { limit: 50, windowMs: 1000 });
    this.webhookService = new WebhookService(this.state, this.gateway, this.messagesService, this.cdn, { channelMessageLimit: rateLimit.webhookMessagesPerChannel, log });
    this.proxyBots = new ProxyBots(this);
    this.interactions = new Interactions(this.state, this.gateway, this.messagesService, { ackTimeoutMs: opts.interactionAckTimeoutMs ?? 3000, log });
    this.voiceStates = new VoiceStates(this.state, this.gateway, voice, log, { joinDelayMs: opts.voiceJoinDelayMs });
    this.rest = new RestServer(
      buildRoutes({
        state: this.state,
        messages: this.messagesService,
        interactions: this.interactions,
        webhooks: this.webhookService,
        voiceStates: this.voiceStates,
        gatewayUrl: () => this.gatewayUrl,
        membersIntentEnabled: opts.membersIntent ?? true,
        typing: (channelId, userId) => this.recordTyping(channelId, userId),
        log,
      }),
      { token: this.token, rateLimit, log },
    );
    this.gateway.setHooks({
      botInGuild: (guildId) => this.state.guilds.get(guildId)?.botPresent ?? false,
      sessionStarted: (session) => this.voiceStates.dropStaleBotStates(session.id),
      readyData: (session) => this.readyData(session),
      initialGuilds: (session) => this.state.botGuilds().map((g) => this.guildCreate(g, session)),
      voiceStateUpdate: (session, d) => this.voiceStates.onBotRequest(session, d),
      requestGuildMembers: (session, d) => this.requestGuildMembers(session, d),
    });
    this.server = createServer((req, res) => {
      this.rest.handle(req, res).catch((err: unknown) => this.log.error({ err: String(err) }, 'discord-sim: a REST request failed unexpectedly'));
    });
    this.server.on('upgrade', (req, socket, head) => this.gateway.handleUpgrade(req, socket, head));
  }

  /** @internal */
  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    await this.cdn.listen();
    this.log.info({ restUrl: this.restUrl, cdnUrl: this.cdnUrl }, 'discord-sim: listening');
  }

  /** For `new Client({ rest: { api: sim.restUrl } })` and `DISCORD_API_URL`. */
  get restUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}/gateway`;
  }

  /** The CDN's base URL, for `new Client({ rest: { api: sim.restUrl, cdn: sim.cdnUrl } })` (avatar URLs). */
  get cdnUrl(): string {
    return this.cdn.url;
  }

  /** Every request the CDN served (attachments, avatars, proxied images), in order. */
  get cdnRequests(): CdnRequestRecord[] {
    return this.cdn.requests;
  }

  /**
   * The real voice server (bot audio, DAVE state, fault injection: see sim/discord/voice/README.md).
   * Throws when the simulator was started with a replacement voice backend.
   */
  get voiceServer(): VoiceServer {
    if (!this.realVoice) throw new SimError('this simulator runs without the real voice server (options.voice was given)');
    return this.realVoice;
  }

  /** CA certificate of the voice server (NODE_EXTRA_CA_CERTS for a bot process). */
  get caCertPath(): string {
    return this.voice.caCertPath;
  }

  get caCertPem(): string {
    return this.voice.caCertPem;
  }

  /** Every REST request, in order. */
  get requests(): RecordedRequest[] {
    return this.rest.requests;
  }

  /** Every gateway frame, both directions. */
  get gatewayFrames(): GatewayFrameRecord[] {
    return this.gateway.frames;
  }

  /** The IDENTIFY payloads received (token redacted), latest last. */
  get identifies(): IdentifyRecord[] {
    return this.gateway.identifies;
  }

  get typingEvents(): TypingEvent[] {
    return this.state.typingEvents;
  }

  // ---- scenario: world building ----

  addGuild(p: { name: string; locale?: string; everyonePermissions?: bigint }): SimGuildHandle {
    const owner = this.state.createUser({ username: `${p.name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-owner` });
    const guild = this.state.createGuild({ name: p.name, ownerId: owner.id, locale: p.locale, everyonePermissions: p.everyonePermissions ?? DEFAULT_EVERYONE_PERMISSIONS });
    this.state.addMember(guild.id, owner.id);
    const botRole = this.state.createRole(guild.id, { name: this.state.user(this.botUserId).username, permissions: this.botPermissions, managed: true });
    this.state.addMember(guild.id, this.botUserId, [botRole.id]);
    const handle = new SimGuildHandle(this, guild);
    this.guildHandles.set(guild.id, handle);
    // A guild created while the bot is connected is one the bot was just added to.
    this.dispatchGuildCreate(guild);
    return handle;
  }

  guild(id: string): SimGuildHandle {
    const h = this.guildHandles.get(id);
    if (!h) throw new SimError(`unknown guild ${id}`);
    return h;
  }

  /** The bot is kicked from (or leaves) the guild: GUILD_DELETE without `unavailable`. */
  removeBotFromGuild(guildId: string): void {
    const guild = this.state.guild(guildId);
    if (!guild.botPresent) return;
    this.voiceStates.disconnectBot(guildId);
    guild.botPresent = false;
    const bot = guild.members.get(this.botUserId);
    if (bot) bot.present = false;
    this.gateway.dispatch('GUILD_DELETE', { id: guildId });
  }

  /** The bot is (re)invited: GUILD_CREATE. */
  addBotToGuild(guildId: string): void {
    const guild = this.state.guild(guildId);
    if (guild.botPresent) return;
    guild.botPresent = true;
    const bot = guild.members.get(this.botUserId);
    if (bot) {
      bot.present = true;
      bot.joinedAt = new Date();
    }
    this.dispatchGuildCreate(guild);
  }

  /**
   * Deletes a channel (CHANNEL_DELETE) or a thread (THREAD_DELETE); whoever was in it (voice,
   * stage) is disconnected first; its threads and webhooks go with it.
   */
  deleteChannel(channelId: string): void {
    const channel = this.state.channel(channelId);
    const guild = this.state.guild(channel.guildId);
    if (channel.kind === 'thread') {
      const visible = this.botCanView(channel.id);
      channel.deleted = true;
      guild.channels.delete(channelId);
      if (visible && guild.botPresent) this.gateway.dispatch('THREAD_DELETE', { id: channel.id, guild_id: channel.guildId, parent_id: channel.parentId, type: channel.type });
      return;
    }
    if (channel.kind === 'voice' || channel.kind === 'stage') this.voiceStates.channelDeleted(channel.guildId, channelId);
    // Threads of a deleted channel disappear with it; discord.js drops them on CHANNEL_DELETE.
    for (const t of this.state.threads(channel.guildId, channelId)) {
      t.deleted = true;
      guild.channels.delete(t.id);
    }
    this.webhookService.channelDeleted(channelId);
    channel.deleted = true;
    guild.channels.delete(channelId);
    if (guild.botPresent) this.gateway.dispatch('CHANNEL_DELETE', channelPayload(channel));
  }

  /** A moderator deletes a webhook (WEBHOOKS_UPDATE); executing it afterwards is `10015 Unknown Webhook`. */
  deleteWebhook(webhookId: string): void {
    this.webhookService.deleteByModerator(webhookId);
  }

  // ---- scenario: stage channels ----

  /** A stage moderator lets the user speak (suppress false); Discord's rules for the raised hand apply. */
  approveSpeaker(guildId: string, userId: string): void {
    this.setSuppressed(guildId, userId, false);
  }

  /**
   * A stage moderator moves the user to the audience (true) or to the speakers (false):
   * VOICE_STATE_UPDATE. Unsuppressed humans get `request_to_speak_timestamp` = now (bots do not),
   * suppressed users lose theirs (Modify User Voice State in discord-api-docs).
   */
  setSuppressed(guildId: string, userId: string, suppressed: boolean): void {
    const bot = this.state.users.get(userId)?.bot ?? false;
    this.voiceStates.updateStageState(guildId, userId, suppressed ? { suppress: true, requestToSpeakAt: null } : { suppress: false, ...(bot ? {} : { requestToSpeakAt: new Date() }) });
  }

  /** Anyone's voice state (undefined when not in voice). */
  voiceState(guildId: string, userId: string): SimVoiceStateInfo | undefined {
    const v = this.state.guilds.get(guildId)?.voiceStates.get(userId);
    if (!v) return undefined;
    return { channelId: v.channelId, sessionId: v.sessionId, selfMute: v.selfMute, selfDeaf: v.selfDeaf, suppress: v.suppress, requestToSpeakTimestamp: v.requestToSpeakAt ? v.requestToSpeakAt.toISOString() : null };
  }

  // ---- scenario: voice join timing ----

  /** Time between the bot's op 4 and VOICE_SERVER_UPDATE from now on. */
  setVoiceJoinDelay(ms: number): void {
    this.voiceStates.joinDelayMs = ms;
  }

  /**
   * Closes the gate: the bot's voice joins get their VOICE_STATE_UPDATE but stop before
   * VOICE_SERVER_UPDATE until {@link releaseVoiceJoins}, so a test can act while a join is in flight.
   */
  holdVoiceJoins(): void {
    this.voiceStates.holdJoins();
  }

  /** Opens the gate: held joins complete (unless a later op 4 superseded them). */
  releaseVoiceJoins(): void {
    this.voiceStates.releaseJoins();
  }

  /** Joins in flight: op 4 received, VOICE_SERVER_UPDATE not sent yet. */
  pendingVoiceJoins(): PendingVoiceJoin[] {
    return this.voiceStates.pendingJoins();
  }

  /** Resolves once a voice join of the guild waits at the gate. */
  waitForHeldVoiceJoin(guildId: string, timeoutMs = 5000): Promise<PendingVoiceJoin> {
    return this.voiceStates.waitForHeldJoin(guildId, timeoutMs);
  }

  // ---- scenario: the CDN ----

  /** Makes the CDN misbehave for matching requests (see {@link CdnFaultRule}). */
  addCdnFault(rule: CdnFaultRule): void {
    this.cdn.addFault(rule);
  }

  clearCdnFaults(): void {
    this.cdn.clearFaults();
  }

  /** Ages every signed attachment URL: past their `ex`, the CDN answers 404 (a bot must re-fetch the message for a fresh URL). */
  advanceCdnClock(seconds: number): void {
    this.cdn.advanceClock(seconds);
  }

  // ---- scenario: observation ----

  /** Webhooks (not deleted), of one channel or all: id, token, name, avatar bytes, creator. */
  webhooks(channelId?: string): SimWebhookInfo[] {
    return this.webhookService.list(channelId);
  }

  /** Messages of a channel (bot's and members', not ephemeral ones), oldest first, with edit history. */
  messages(channelId: string, opts: { includeDeleted?: boolean } = {}): SimMessage[] {
    return this.state.channelMessages(channelId, opts.includeDeleted ?? false);
  }

  /** Resolves with the first message (existing, new or edited) in the channel matching `predicate`. */
  waitForMessage(channelId: string, predicate?: (m: SimMessage) => boolean, timeoutMs = 5000): Promise<SimMessage> {
    return this.messagesService.waitForMessage(channelId, predicate, timeoutMs);
  }

  /** Registered commands: global when `guildId` is omitted. */
  commands(guildId?: string): RegisteredCommand['data'][] {
    return this.state.commandsFor(guildId).map((c) => c.data);
  }

  /** Resolves once commands named `names` are registered (guild scope, or global without guildId). */
  waitForCommands(names: string[], guildId?: string, timeoutMs = 10_000): Promise<void> {
    const ready = () => names.every((n) => this.state.commandsFor(guildId).some((c) => c.data.name === n) || (guildId !== undefined && this.state.globalCommands.some((c) => c.data.name === n)));
    return waitForEvent(this.state, 'commandsChanged', ready, timeoutMs, `commands ${names.join(', ')}`);
  }

  /** The bot's voice state in a guild (undefined when not in voice). */
  botVoiceState(guildId: string): BotVoiceState | undefined {
    return this.voiceStates.botVoiceState(guildId);
  }

  /** Resolves when the bot's voice channel in the guild is `channelId` (null: not in voice). */
  async waitForBotVoice(guildId: string, channelId: string | null, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.botVoiceState(guildId)?.channelId ?? null) !== channelId) {
      if (Date.now() > deadline) throw new Error(`discord-sim: bot voice channel in ${guildId} is ${this.botVoiceState(guildId)?.channelId ?? 'none'}, expected ${channelId ?? 'none'} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Resolves when a session is READY (every GUILD_CREATE sent) and connected. After a bot restart,
   * pass `minIdentifies` (e.g. 2) to wait for the new process's session rather than the old one.
   */
  waitForBotReady(timeoutMs = 10_000, minIdentifies = 1): Promise<void> {
    const ready = () => this.gateway.identifies.length >= minIdentifies && this.gateway.currentSession !== undefined && this.gateway.connected;
    return waitForEvent(this.gateway, 'ready', ready, timeoutMs, `bot READY (identify #${minIdentifies})`);
  }

  /** Resolves with the first recorded REST request matching `'METHOD /route/:template'` (and `predicate`). */
  waitForRequest(methodAndRoute: string, predicate: (r: RecordedRequest) => boolean = () => true, timeoutMs = 5000): Promise<RecordedRequest> {
    const find = () => this.rest.find(methodAndRoute).find(predicate);
    return waitForEvent(this.rest, 'request', () => find() !== undefined, timeoutMs, methodAndRoute).then(() => find() as RecordedRequest);
  }

  // ---- scenario: faults ----

  /** Server-side removal of the bot from voice: VOICE_STATE_UPDATE with a null channel, voice session closed. */
  disconnectBotFromVoice(guildId: string): void {
    this.voiceStates.disconnectBot(guildId);
  }

  /** Drops the gateway socket (default close code 4000) without ending the session: the client resumes. */
  dropGatewayConnection(code = 4000): void {
    this.gateway.dropConnection(code);
  }

  /** Stop (or resume) answering gateway heartbeats. */
  setGatewayHeartbeatAcks(enabled: boolean): void {
    this.gateway.ackHeartbeats = enabled;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    // Held voice joins find the simulator closed and stop.
    this.voiceStates.stop();
    await this.gateway.close();
    await this.cdn.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.realVoice?.stop();
  }

  // ---- internals used by the handles ----

  /** @internal */
  dispatchGuildCreate(guild: SimGuild): void {
    if (!guild.botPresent) return;
    this.gateway.dispatch('GUILD_CREATE', null, (_d, session) => this.guildCreate(guild, session));
  }

  /** @internal */
  dispatch(t: string, d: unknown, guildId: string): void {
    if (this.state.guild(guildId).botPresent) this.gateway.dispatch(t, d);
  }

  /** @internal */
  get messageService(): MessageService {
    return this.messagesService;
  }

  /** @internal Whether the bot can view a channel or thread (what Discord tells it about). */
  botCanView(channelId: string): boolean {
    const c = this.state.findChannel(channelId);
    return c !== undefined && (this.state.channelPermissions(c.id, this.botUserId) & PermissionFlagsBits.ViewChannel) !== 0n;
  }

  /** @internal THREAD_CREATE / THREAD_UPDATE, only when the bot can see the thread (Discord's rule). */
  dispatchThread(t: 'THREAD_CREATE' | 'THREAD_UPDATE', thread: SimChannel, extra: Record<string, unknown>): void {
    if (!this.state.guild(thread.guildId).botPresent || !this.botCanView(thread.id)) return;
    this.gateway.dispatch(t, { ...channelPayload(thread, true, this.state), ...extra });
  }

  /**
   * @internal Discord unfurls a link a moment after the message: MESSAGE_UPDATE adding an embed
   * whose image is served by the CDN's media proxy (`proxy_url`). No edited_timestamp.
   */
  resolveLinkEmbed(msg: SimMessage, e: LinkEmbed): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.closed || msg.deleted) return;
      const info = sniffImage(e.image);
      const contentType = e.contentType ?? info?.contentType ?? 'application/octet-stream';
      const proxyUrl = this.cdn.putExternal(e.url, e.image, contentType);
      const media = { url: e.url, proxy_url: proxyUrl, ...(info ? { width: info.width, height: info.height } : {}), content_type: contentType, flags: 0 };
      const embed =
        (e.type ?? 'image') === 'image'
          ? { type: 'image', url: e.url, thumbnail: media }
          : { type: 'article', url: e.url, ...(e.title ? { title: e.title } : {}), image: media };
      this.messagesService.edit(msg, { embeds: [...msg.embeds, embed] }, { markEdited: false });
    }, e.delayMs ?? 150);
    this.timers.add(timer);
  }

  /** @internal */
  recordTyping(channelId: string, userId: string): void {
    const event: TypingEvent = { channelId, userId, at: new Date() };
    this.state.typingEvents.push(event);
    this.state.emit('typing', event);
    if (userId !== this.botUserId && this.botCanView(channelId)) {
      const channel = this.state.channel(channelId);
      const member = this.state.member(channel.guildId, userId);
      this.dispatch('TYPING_START', { channel_id: channelId, guild_id: channel.guildId, user_id: userId, timestamp: Math.floor(event.at.getTime() / 1000), member: memberPayload(this.state, member) }, channel.guildId);
    }
  }

  private readyData(session: GatewaySession): Record<string, unknown> {
    void session;
    return {
      v: 10,
      user: { ...userPayload(this.state.user(this.botUserId)), verified: true, mfa_enabled: false, email: null },
      guilds: this.state.botGuilds().map((g) => ({ id: g.id, unavailable: true })),
      application: { id: this.applicationId, flags: 0 },
      shard: [0, 1],
      user_settings: {},
      private_channels: [],
      presences: [],
      relationships: [],
      guild_join_requests: [],
      geo_ordered_rtc_regions: ['simulated'],
      session_type: 'normal',
      auth: {},
    };
  }

  /**
   * GUILD_CREATE as Discord sends it: without the Guild Presences intent, `members` holds only the
   * bot and members in voice channels (Discord's documented rule); with it, everyone.
   */
  private guildCreate(guild: SimGuild, session: GatewaySession): Record<string, unknown> {
    const presences = (session.intents & GatewayIntentBits.GuildPresences) !== 0 && (this.opts.presencesIntent ?? true);
    const ids = presences
      ? [...guild.members.keys()]
      : [this.botUserId, ...[...guild.voiceStates.keys()].filter((id) => id !== this.botUserId)];
    return guildCreatePayload(this.state, guild, ids);
  }

  private requestGuildMembers(session: GatewaySession, d: RequestGuildMembers): void {
    const guild = this.state.guilds.get(d.guild_id);
    if (!guild || !guild.botPresent) return;
    const all = [...guild.members.values()].filter((m) => m.present);
    let members = all;
    if (d.user_ids !== undefined) {
      const ids = Array.isArray(d.user_ids) ? d.user_ids : [d.user_ids];
      members = all.filter((m) => ids.includes(m.userId));
    } else {
      if ((session.intents & GatewayIntentBits.GuildMembers) === 0) {
        this.log.warn('discord-sim: member list requested without the GuildMembers intent; answering with none');
        members = [];
      }
      const q = (d.query ?? '').toLowerCase();
      members = members.filter((m) => this.state.user(m.userId).username.toLowerCase().startsWith(q));
      if (d.limit) members = members.slice(0, d.limit);
    }
    this.gateway.dispatch('GUILD_MEMBERS_CHUNK', {
      guild_id: guild.id,
      members: members.map((m) => memberPayload(this.state, m)),
      chunk_index: 0,
      chunk_count: 1,
      not_found: [],
      ...(d.nonce ? { nonce: d.nonce } : {}),
    });
  }
}

function waitForEvent(emitter: { on(e: string, f: () => void): unknown; off(e: string, f: () => void): unknown }, event: string, ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
  if (ready()) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!ready()) return;
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`discord-sim: timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      emitter.off(event, check);
    };
    emitter.on(event, check);
  });
}

// Re-exported for tests that build payloads themselves.
export { messagePayload, API_PREFIX };
