/**
 * The bot without discord.js: every guild's {@link GuildSession}, admission control, the Voxta
 * catalog, metrics and the events `app.ts` forwards from Discord. Commands work against this.
 */
import type { Config } from '../config.js';
import { errorInfo, type Logger } from '../log.js';
import type { GuildSessionRecord, Store } from '../store/store.js';
import { VoxtaCapacityError, VoxtaChatLockedError, VoxtaNotFoundError } from '../voxta/errors.js';
import { Admission } from './admission.js';
import { AgeGate, AgeRestrictionError } from './age-gate.js';
import { createBotMetrics, type BotMetrics } from './bot-metrics.js';
import { VoxtaCatalog, type VoxtaCatalogPort } from './catalog.js';
import { OperationCancelledError } from './guild-operations.js';
import { credentialsRefusedNotice, GuildSession, isAuthRefusal, type GuildSessionState } from './guild-session.js';
import type { ImageRef } from './channel-images.js';
import { GuildSettings, type SettingName } from './guild-settings.js';
import { TalkGate } from './talk-gate.js';
import type { GuildPort, GuildVoiceJoiner, IncomingTextMessage, VoxtaSessionFactory } from './ports.js';
import { KNOWN_PROXY_BOTS, ProxyGate, type IncomingWebhookMessage } from './proxy-gate.js';
import { AvatarCache } from './reply-targets.js';
import { WebhookPool } from './webhook-pool.js';

export interface BotCoreDeps {
  config: Config;
  store: Store;
  rest: VoxtaCatalogPort;
  createVoxta: VoxtaSessionFactory;
  joinVoice: GuildVoiceJoiner | undefined;
  guild: (guildId: string) => GuildPort | undefined;
  log: Logger;
  editIntervalMs?: number;
  contextDebounceMs?: number;
  voiceIdleLeaveMs?: number;
  /** Back-off for resuming stored sessions Voxta could not take at boot. */
  resumeRetryMs?: { first: number; max: number };
  /** Retry period for a stored record that could not be written (tests shorten it). */
  recordRetryMs?: number;
  /** How long members' messages wait for a proxy bot's repost (tests shorten it). */
  proxyHoldMs?: number;
}

export class BotCore {
  readonly admission: Admission;
  readonly metrics: BotMetrics;
  readonly catalog: VoxtaCatalog;
  readonly config: Config;
  readonly store: Store;
  readonly log: Logger;
  /** The bot's channel webhooks (characters post through them). */
  readonly webhooks: WebhookPool;
  readonly avatars: AvatarCache;
  /** Per-server settings (`/config`), over the environment's defaults. */
  readonly settings: GuildSettings;
  /** Who may talk to the character, and how often. */
  readonly gate: TalkGate;
  /** Explicit characters only in age-restricted channels. */
  readonly ageGate: AgeGate;
  private readonly sessions = new Map<string, GuildSession>();
  /** Per guild: members' messages held for proxy bots' reposts (see proxy-gate.ts). */
  private readonly gates = new Map<string, ProxyGate>();
  /** Guilds the bot is being removed from (nothing new is made for them). */
  private readonly removing = new Set<string>();
  private readonly resumeTimers = new Map<string, NodeJS.Timeout>();
  /** Guilds whose channel was told that Voxta refused the bot's credentials (told once per outage). */
  private readonly toldCredentialsRefused = new Set<string>();
  /** Set by app.ts: the gateway is ready. */
  discordReady = false;
  /** False when Discord refused the MessageContent intent: text bridging is off. */
  messageContentAvailable = true;
  private shuttingDown = false;
  private voxtaProbe: { ok: boolean; at: number } | undefined;

  constructor(private readonly deps: BotCoreDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.log = deps.log;
    this.admission = new Admission(deps.config.voxta.maxChats, deps.config.voxta.maxVoiceSessions);
    this.metrics = createBotMetrics();
    this.catalog = new VoxtaCatalog(deps.rest, { log: deps.log });
    this.webhooks = new WebhookPool({ store: deps.store, log: deps.log.child({ mod: 'webhooks' }) });
    this.avatars = new AvatarCache((url, opts) => deps.rest.fetchBytes(url, opts), deps.log);
    this.settings = new GuildSettings(deps.store, deps.config, deps.log);
    this.gate = new TalkGate({ settings: this.settings, store: deps.store, metrics: this.metrics, log: deps.log, guild: deps.guild });
    this.ageGate = new AgeGate({ catalog: this.catalog, settings: this.settings, log: deps.log });
    this.metrics.bind({
      sessionStates: () => {
        const counts: Record<string, number> = {};
        for (const s of this.sessions.values()) counts[s.state] = (counts[s.state] ?? 0) + 1;
        return counts;
      },
      voiceGuilds: () => this.admission.voiceCount,
      decodeErrors: () => [...this.sessions.values()].reduce((n, s) => n + s.decodeErrorsTotal(), 0),
      unheardUtterances: () => [...this.sessions.values()].reduce((n, s) => n + s.unheardUtterancesTotal(), 0),
      playback: () => {
        const total = { owed: 0, sent: 0 };
        for (const s of this.sessions.values()) {
          const p = s.playbackStats();
          total.owed += p.owed;
          total.sent += p.sent;
        }
        return total;
      },
      discordReady: () => this.discordReady,
    });
  }

  /** The guild's session object (created idle on first use). */
  session(guildId: string): GuildSession {
    let s = this.sessions.get(guildId);
    if (!s) {
      s = new GuildSession({
        guildId,
        guild: () => this.deps.guild(guildId),
        store: this.store,
        admission: this.admission,
        metrics: this.metrics,
        config: this.config,
        createVoxta: this.deps.createVoxta,
        joinVoice: this.deps.joinVoice,
        log: this.log,
        editIntervalMs: this.deps.editIntervalMs,
        contextDebounceMs: this.deps.contextDebounceMs,
        voiceIdleLeaveMs: this.deps.voiceIdleLeaveMs,
        recordRetryMs: this.deps.recordRetryMs,
        webhooks: this.webhooks,
        avatars: this.avatars,
        admin: { settings: this.settings, gate: this.gate, ageGate: this.ageGate },
      });
      s.on('voxtaFailed', (info?: { authRefused?: boolean }) => {
        // The session already told the channel; later attempts that meet the same refusal stay quiet.
        if (info?.authRefused) this.toldCredentialsRefused.add(guildId);
        this.scheduleResume(guildId, 1);
      });
      this.sessions.set(guildId, s);
      // Known before the first message: whether a proxy bot's reposts are to be waited for (not
      // for a guild being removed: its gate is gone for good).
      if (!this.removing.has(guildId)) this.proxyGate(guildId).refreshPresence().catch(() => undefined);
    }
    return s;
  }

  /** The guild's proxy gate (created on first use). */
  private proxyGate(guildId: string): ProxyGate {
    let g = this.gates.get(guildId);
    if (!g) {
      g = new ProxyGate({
        guild: () => this.deps.guild(guildId),
        describeWebhook: (channelId, webhookId) => this.webhooks.describe(this.deps.guild(guildId)?.webhooks, channelId, webhookId),
        deliver: (msg) => this.routeHumanMessage(guildId, msg),
        correct: (originalId, repost) => this.sessions.get(guildId)?.supersede(originalId, repost),
        log: () => this.log.child({ guildId }),
        proxyBotIds: [...Object.keys(KNOWN_PROXY_BOTS), ...this.config.discord.proxyBotIds],
        holdMs: this.deps.proxyHoldMs,
      });
      this.gates.set(guildId, g);
    }
    return g;
  }

  /** True for a webhook of this bot: its messages are the characters' own, never bridged. */
  isOwnWebhook(webhookId: string): boolean {
    return this.webhooks.isOwn(webhookId);
  }

  guild(guildId: string): GuildPort | undefined {
    return this.deps.guild(guildId);
  }

  guildHasTextChannel(guildId: string, channelId: string): boolean {
    return this.deps.guild(guildId)?.textChannel(channelId) !== undefined;
  }

  existingSession(guildId: string): GuildSession | undefined {
    return this.sessions.get(guildId);
  }

  sessionStates(): Array<{ guildId: string; state: GuildSessionState; voxta: string; voice: boolean }> {
    return [...this.sessions.values()].map((s) => ({ guildId: s.guildId, state: s.state, voxta: s.voxtaState, voice: s.voiceChannelId !== undefined }));
  }

  /**
   * Resumes every guild stored as active (after a restart). Runs them one after another: Voxta
   * serialises chat starts anyway, and a failure in one guild must not stop the others. Guilds
   * Voxta cannot take now (down, busy) are retried with back-off while they stay active.
   */
  async resumeAll(): Promise<void> {
    const records = this.store.listActiveGuildSessions();
    if (records.length) this.log.info({ guilds: records.length }, 'resuming the chats that were active before the restart');
    for (const rec of records) await this.resumeStored(rec.guildId, 0);
  }

  private async resumeStored(guildId: string, attempt: number): Promise<void> {
    this.resumeTimers.delete(guildId);
    if (this.shuttingDown) return;
    const session = this.session(guildId);
    const rec = session.record;
    if (!rec?.active) return;
    // Running already (an admin's /start or /resume got in first): nothing to do.
    if (session.state !== 'idle') return;
    // An operation is in flight (an admin's /start or /resume): it cancels the retries when it
    // succeeds; when it fails, the retries go on from here.
    if (session.busy) {
      this.scheduleResume(guildId, attempt);
      return;
    }
    const guild = this.deps.guild(guildId);
    if (!guild) {
      this.log.info({ guildId }, 'resume: the bot is no longer in this guild; ending its session');
      await session.stop('not in the guild any more');
      return;
    }
    if (!guild.available) {
      this.log.info({ guildId }, 'resume: the guild is unavailable (Discord outage); will retry');
      this.scheduleResume(guildId, attempt + 1);
      return;
    }
    if (!guild.textChannel(rec.textChannelId)) {
      this.log.info({ guildId, channelId: rec.textChannelId }, 'resume: the bound text channel is gone; ending the session');
      await session.stop('bound text channel gone');
      return;
    }
    const voiceChannelId = rec.voiceChannelId && guild.isVoiceChannel(rec.voiceChannelId) ? rec.voiceChannelId : null;
    try {
      const out = await session.resume({ voiceChannelId, keepPendingOnFailure: true });
      this.toldCredentialsRefused.delete(guildId);
      this.log.info({ guildId, chatId: out.record.chatId }, 'resume: chat resumed after restart');
      if (out.voiceNote) await session.post(out.voiceNote);
    } catch (err) {
      if (err instanceof OperationCancelledError) {
        // A /stop (or shutdown) got in first: it also cancelled the retries.
        this.log.info({ guildId }, 'resume: cancelled');
        return;
      }
      if (err instanceof AgeRestrictionError) {
        this.log.info({ guildId, reason: err.message }, 'resume: the chat may not run in its channels any more; not resuming it');
        if (await this.giveUp(session, rec.chatId, 'age restriction')) {
          await session.post(`I did not resume the chat with ${rec.characterName}. ${err.message} It stays saved for /resume.`);
        }
        return;
      }
      if (err instanceof VoxtaNotFoundError) {
        this.log.warn({ guildId, err: errorInfo(err) }, 'resume: giving up on this guild');
        if (await this.giveUp(session, rec.chatId, 'the chat is gone')) {
          await session.post(`I could not resume the chat with ${rec.characterName}: Voxta does not know that chat any more. Start a new one with /start.`);
        }
        return;
      }
      if (isAuthRefusal(err)) {
        // Not the chat's fault: it stays stored and active (a restart with the right key resumes
        // it, held messages included). We try again quietly in case the key is accepted again.
        this.log.warn({ guildId, err: errorInfo(err) }, 'resume: Voxta refused the credentials (check VOXTA_API_KEY); the chat stays stored, will retry');
        if (!this.toldCredentialsRefused.has(guildId)) {
          this.toldCredentialsRefused.add(guildId);
          await session.post(credentialsRefusedNotice(rec.characterName));
        }
        this.scheduleResume(guildId, attempt + 1);
        return;
      }
      this.log.warn({ guildId, err: errorInfo(err) }, 'resume: failed; will retry');
      if (attempt === 0) {
        const why =
          err instanceof VoxtaChatLockedError
            ? 'the chat is still open from before, and Voxta frees it within a minute'
            : err instanceof VoxtaCapacityError
              ? 'Voxta is running as many chats as it allows'
              : 'Voxta is not available';
        await session.post(`I could not resume the chat with ${rec.characterName} yet (${why}); I will keep trying.`);
      }
      this.scheduleResume(guildId, attempt + 1);
    }
  }

  /** Marks the stored chat inactive unless an admin's command got in first; whether it did. */
  private async giveUp(session: GuildSession, chatId: string | undefined, reason: string): Promise<boolean> {
    try {
      return await session.giveUpStoredChat(chatId, reason);
    } catch (err) {
      this.log.info({ guildId: session.guildId, err: errorInfo(err) }, 'resume: not giving up the stored chat (a stop got in first)');
      return false;
    }
  }

  /** Tries to resume a stored active session later, with capped exponential back-off. */
  private scheduleResume(guildId: string, attempt: number): void {
    if (this.shuttingDown || this.resumeTimers.has(guildId)) return;
    const retry = this.deps.resumeRetryMs ?? { first: 5000, max: 60_000 };
    const delay = Math.min(retry.max, retry.first * 2 ** Math.max(0, attempt - 1));
    const t = setTimeout(() => {
      this.resumeStored(guildId, attempt).catch((err: unknown) => this.log.error({ guildId, err: errorInfo(err, true) }, 'resume: failed unexpectedly'));
    }, delay);
    t.unref();
    this.resumeTimers.set(guildId, t);
  }

  /** An automatic resume of this guild is scheduled. */
  autoResumePending(guildId: string): boolean {
    return this.resumeTimers.has(guildId);
  }

  /** Cancels a pending automatic resume (the admin ran /start, /resume or /stop). */
  cancelAutoResume(guildId: string): void {
    const t = this.resumeTimers.get(guildId);
    if (t) clearTimeout(t);
    this.resumeTimers.delete(guildId);
    this.toldCredentialsRefused.delete(guildId);
  }

  // ---- Discord events forwarded by app.ts -------------------------------------------------

  /**
   * A member's message. In a bridged channel it goes through the guild's proxy gate (held briefly
   * where a proxy bot may repost it), then to the session.
   */
  async humanMessage(guildId: string, msg: IncomingTextMessage): Promise<void> {
    if (!this.bridges(guildId, msg.channelId)) return;
    await this.proxyGate(guildId).human(msg);
  }

  /** A message of someone else's webhook in a bridged channel: a proxy bot's repost is bridged. */
  webhookMessage(guildId: string, msg: IncomingWebhookMessage): void {
    // Bridged channel first: the own-webhook check may read the database.
    if (!this.bridges(guildId, msg.channelId) || this.isOwnWebhook(msg.webhookId)) return;
    this.proxyGate(guildId).webhook({ ...msg, proxied: { webhookId: msg.webhookId } });
  }

  /** Messages in this channel are (or will be, once resumed) bridged. */
  private bridges(guildId: string, channelId: string): boolean {
    if (this.removing.has(guildId)) return false;
    return this.sessions.get(guildId)?.ownsChannel(channelId) === true || this.awaitsResume(guildId, channelId);
  }

  /**
   * The stored chat of this channel is waiting for its automatic resume (after a restart, or while
   * Voxta is away) and nothing runs in the guild: its messages are held for it, not dropped. A
   * guild without a session object is answered from the store (no session is made for every
   * guild whose members merely talk).
   */
  private awaitsResume(guildId: string, channelId: string): boolean {
    const s = this.sessions.get(guildId);
    if (this.shuttingDown || (s && s.state !== 'idle')) return false;
    const rec = s ? s.record : this.readStored(guildId);
    return rec?.active === true && rec.textChannelId === channelId;
  }

  private readStored(guildId: string): GuildSessionRecord | undefined {
    try {
      return this.store.getGuildSession(guildId);
    } catch (err) {
      this.log.warn({ guildId, err: errorInfo(err) }, 'reading the stored chat failed');
      return undefined;
    }
  }

  private async routeHumanMessage(guildId: string, msg: IncomingTextMessage): Promise<void> {
    const owned = this.sessions.get(guildId)?.ownsChannel(msg.channelId) === true;
    if (!owned && !this.awaitsResume(guildId, msg.channelId)) return;
    const session = this.session(guildId);
    if (this.refused(guildId, session, msg)) return;
    await session.handleHumanMessage(msg, owned ? {} : { resumePending: true });
  }

  /**
   * Who may talk, and how often (see TalkGate): a message that is not forwarded gets one reaction
   * (⛔ or 🐢) and nothing else.
   */
  private refused(guildId: string, session: GuildSession, msg: IncomingTextMessage): boolean {
    const refusal = this.gate.admitText(guildId, msg.authorId, msg.roleIds, session.queuedTurns);
    if (!refusal) return false;
    this.log.debug({ guildId, userId: msg.authorId, reason: refusal.reason }, 'a message was not forwarded');
    msg.react(refusal.emoji).catch((err: unknown) => this.log.debug({ guildId, err: errorInfo(err) }, 'marking a refused message failed'));
    return true;
  }

  /** A channel of the guild changed (its age-restricted flag, or a thread's parent's). */
  channelUpdated(guildId: string): void {
    this.sessions.get(guildId)?.recheckAgeRestriction('a channel changed');
  }

  /** An admin changed a setting: what runs follows it where it can without a restart. */
  settingChanged(guildId: string, name: SettingName): void {
    const s = this.sessions.get(guildId);
    if (!s) return;
    if (name === 'barge-in') s.applyBargeIn();
    if (name === 'chat-roles') s.prefetchVoiceRoles();
    if (name === 'explicit-characters') s.recheckAgeRestriction('the explicit-characters setting changed');
  }

  /** A bridged message was edited (`proxied`: a proxy bot's repost, said by its name). */
  /** Discord resolved an image link of a member's message (a picture embed added later). */
  messageImagesResolved(guildId: string, channelId: string, authorId: string, authorName: string, refs: ImageRef[]): void {
    this.sessions.get(guildId)?.imagesResolved(channelId, authorId, authorName, refs);
  }

  messageEdited(guildId: string, channelId: string, messageId: string, authorName: string, content: string, proxied = false): void {
    // Still held for a proxy bot's repost: it goes out with the new text.
    if (this.gates.get(guildId)?.edited(channelId, messageId, content)) return;
    const s = this.sessions.get(guildId);
    if (!s || s.textChannelId !== channelId) return;
    s.handleMessageEdit(messageId, authorName, content, proxied);
  }

  messageDeleted(guildId: string, channelId: string, messageId: string): void {
    // A held original its proxy bot deleted (or one a repost replaced): nothing more to do.
    if (this.gates.get(guildId)?.deleted(channelId, messageId)) return;
    const s = this.sessions.get(guildId);
    if (!s || s.textChannelId !== channelId) {
      // Still drop a stale link so the map does not keep ids of deleted messages.
      try {
        if (this.store.findMessageLink(messageId)) this.store.unlinkMessage(messageId);
      } catch (err) {
        this.log.warn({ guildId, err: errorInfo(err) }, 'forgetting a deleted message link failed');
      }
      return;
    }
    s.handleMessageDelete(messageId);
  }

  voiceStateChanged(guildId: string, oldChannelId: string | undefined, newChannelId: string | undefined, userId?: string): void {
    const s = this.sessions.get(guildId);
    if (s && userId !== undefined && userId === this.deps.guild(guildId)?.botUserId) s.botVoiceChanged();
    // A voice state carries the member's current roles: known fresh before they first speak.
    if (s && userId && newChannelId && newChannelId === s.voiceChannelId) {
      const roles = this.deps.guild(guildId)?.memberRoleIds(userId);
      if (roles) this.gate.noteRoles(guildId, userId, roles);
    }
    s?.voiceMembersChanged([oldChannelId, newChannelId]);
  }

  async channelDeleted(guildId: string, channelId: string): Promise<void> {
    const s = this.sessions.get(guildId);
    if (s && s.state !== 'idle') {
      await s.channelDeleted(channelId);
      return;
    }
    const rec = s ? s.record : this.readStored(guildId);
    if (rec?.active && rec.textChannelId === channelId) {
      this.cancelAutoResume(guildId);
      await this.session(guildId).stop('bound text channel deleted');
    }
  }

  /** The bot was removed from a guild (or the guild was deleted): end the session, forget it. */
  async guildRemoved(guildId: string): Promise<void> {
    this.removing.add(guildId);
    try {
      this.cancelAutoResume(guildId);
      this.gates.get(guildId)?.clear();
      this.gates.delete(guildId);
      const s = this.session(guildId);
      await s.stop('removed from the guild', { forget: true });
      s.dispose();
      this.sessions.delete(guildId);
      // A message routed while stopping may have made a new gate: it goes too.
      this.gates.get(guildId)?.clear();
      this.gates.delete(guildId);
    } finally {
      this.removing.delete(guildId);
    }
    this.log.info({ guildId }, 'removed from a guild; its session and stored state are gone');
  }

  // ---- health -----------------------------------------------------------------------------

  /** Whether Voxta answers its REST API (cached for 10 s so health probes stay cheap). */
  async voxtaReachable(): Promise<boolean> {
    // Live sessions know best and know at once: a connected one proves Voxta answers, one that is
    // reconnecting (with none connected) proves it does not. Only without sessions do we ask.
    const states = [...this.sessions.values()].map((s) => s.voxtaState);
    if (states.includes('ready')) return true;
    if (states.includes('reconnecting')) return false;
    const now = Date.now();
    if (this.voxtaProbe && now - this.voxtaProbe.at < 10_000) return this.voxtaProbe.ok;
    let ok: boolean;
    try {
      await this.deps.rest.listCharacters({ timeoutMs: 3000 });
      ok = true;
    } catch {
      ok = false;
    }
    this.voxtaProbe = { ok, at: now };
    return ok;
  }

  // ---- shutdown ---------------------------------------------------------------------------

  /**
   * Leaves voice (the voice module sends the playback completes it owes), closes every Voxta
   * connection and keeps the stored state active, so the next start resumes the same chats.
   */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    for (const t of this.resumeTimers.values()) clearTimeout(t);
    this.resumeTimers.clear();
    await Promise.all(
      [...this.sessions.values()].map(async (s) => {
        await s.stop('shutdown', { keepActive: true }).catch((err: unknown) => this.log.warn({ guildId: s.guildId, err: errorInfo(err) }, 'shutdown: stopping a session failed'));
        // A record that could not be written is tried once more before the database closes.
        s.dispose();
      }),
    );
  }
}
