/**
 * One guild's conversation: its Voxta chat session, its bound text channel and (when joined) its
 * voice connection, driven by an explicit state machine:
 *
 *   idle ──start/resume──▶ starting ──ok──▶ active ◀──resumed── reconnecting
 *    ▲                        │ fail                │  Voxta lost ──▶ │
 *    └────────── stopping ◀───┴────── stop / failed / channel gone ───┘
 *
 * Transitions are logged and emitted (`state`). Stored state follows the machine: a record is
 * `active` from the moment a chat has started until an explicit stop (so a restart resumes it),
 * and a failed start leaves the previous record as it was.
 */
import { EventEmitter } from 'node:events';
import type { Config } from '../config.js';
import { errorInfo, type Logger } from '../log.js';
import type { GuildSessionRecord, PendingMessage, Store } from '../store/store.js';
import { VoxtaAuthError } from '../voxta/errors.js';
import type { ContextItem, HistoryMessage, ServerMessage } from '../voxta/messages.js';
import { attributeSpeaker, capText, sanitizeUserText, unescapeUserText } from '../voxta/user-text.js';
import type { Admission } from './admission.js';
import type { BotMetrics } from './bot-metrics.js';
import { RecentSamples } from './metrics.js';
import type {
  GuildPort,
  GuildVoiceJoiner,
  GuildVoicePort,
  IncomingTextMessage,
  MarkableMessage,
  TextChannelPort,
  VoxtaSessionFactory,
  VoxtaSessionPort,
  VoxtaSessionState,
} from './ports.js';
import { ReplyRenderer } from './reply-renderer.js';
import { UserFacingError } from './user-errors.js';

export type GuildSessionState = 'idle' | 'starting' | 'active' | 'reconnecting' | 'stopping';

const TRANSITIONS: Record<GuildSessionState, readonly GuildSessionState[]> = {
  idle: ['starting'],
  starting: ['active', 'stopping', 'idle'],
  active: ['reconnecting', 'stopping'],
  reconnecting: ['active', 'stopping'],
  stopping: ['idle'],
};

/** Longest user text sent as one message; see `text-bridge` notes in the README. */
export const MAX_SEND_CHARS = 6000;
const PENDING_EMOJI = '⏳';
const TRUNCATED_EMOJI = '✂️';
const TYPING_REFRESH_MS = 8000;
const CONTEXT_DEBOUNCE_MS = 1500;
/** The same Voxta error is posted again only after this long. */
const ERROR_REPEAT_MS = 5 * 60_000;
/** How long the bot stays in a voice channel with no human in it. */
export const VOICE_IDLE_LEAVE_MS = 120_000;

export interface GuildSessionDeps {
  guildId: string;
  /** The guild as it is now (Discord objects change); undefined when the bot is no longer in it. */
  guild: () => GuildPort | undefined;
  store: Store;
  admission: Admission;
  metrics: BotMetrics;
  config: Config;
  createVoxta: VoxtaSessionFactory;
  joinVoice: GuildVoiceJoiner | undefined;
  log: Logger;
  /** Reply edit throttle (tests shorten it). */
  editIntervalMs?: number;
  contextDebounceMs?: number;
  /** Leave an empty voice channel after this long (tests shorten it). */
  voiceIdleLeaveMs?: number;
}

export interface StartRequest {
  characterId: string;
  characterName: string;
  textChannelId: string;
  voiceChannelId: string | undefined;
}

export interface ResumeRequest {
  chatId?: string;
  /** Override the stored channels (for `/resume` run elsewhere). */
  textChannelId?: string;
  voiceChannelId?: string | null;
  /** An automatic resume that will be retried: messages queued for it survive a failed attempt. */
  keepPendingOnFailure?: boolean;
}

export interface StartOutcome {
  record: GuildSessionRecord;
  /** Why voice was not joined although a channel was asked for, in plain words. */
  voiceNote: string | undefined;
  resumed: boolean;
}

export interface SessionStatus {
  state: GuildSessionState;
  record: GuildSessionRecord | undefined;
  voxtaState: VoxtaSessionState | 'none';
  voice: { channelId: string; state: string } | undefined;
  latency: { p50: number | undefined; p95: number | undefined; samples: number };
  pendingMessages: number;
}

/** A message shown as waiting (⏳) in the channel. */
interface PendingUserMessage {
  message: MarkableMessage;
  sentText: string;
  /** Its row in the store's pending messages (undefined when storing it failed). */
  rowId: number | undefined;
}

/** A bridged message handed to Voxta, waiting for the `update` echo that carries its Voxta id. */
interface AwaitingEcho {
  discordId: string;
  /** As Voxta will echo it (unescaped). */
  text: string;
  /** As handed to the Voxta client (what its `sent` event reports). */
  sentText: string;
  rowId: number | undefined;
  sent: boolean;
}

/** Voxta refused the bot's credentials (directly, or as the cause of giving up reconnecting). */
export function isAuthRefusal(err: unknown): boolean {
  for (let cur: unknown = err, depth = 0; cur && depth < 8; depth++) {
    if (cur instanceof VoxtaAuthError) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/** The one notice for refused credentials: what happened, what to check, what happens to the chat. */
export function credentialsRefusedNotice(characterName: string): string {
  return `Voxta refused my credentials, so the chat with ${characterName} is paused. Check VOXTA_API_KEY: the chat stays stored and is resumed (with any messages sent meanwhile) once Voxta accepts the key, for example when the bot restarts with the right one.`;
}

export class GuildSession extends EventEmitter {
  readonly guildId: string;
  private _state: GuildSessionState = 'idle';
  private voxta: VoxtaSessionPort | undefined;
  private voice: GuildVoicePort | undefined;
  /** Carries guildId always, and chatId while a chat runs. */
  private log: Logger;
  private readonly latency = new RecentSamples(50);
  /** Humans who have written in this session, to decide whether names are attached. */
  private readonly speakers = new Set<string>();
  /**
   * Bridged messages waiting for Voxta's `update` echo (their Voxta id; and the proof they are
   * stored, which removes them from the store's pending messages).
   */
  private readonly awaitingEcho: AwaitingEcho[] = [];
  /** Messages queued while Voxta reconnects or the chat (re)starts (marked ⏳ until written). */
  private readonly pending: PendingUserMessage[] = [];
  /** Last message id Voxta stored in this chat, as far as we have seen (anchor for the history check). */
  private lastStoredMessageId: string | undefined;
  /** Between a successful (re)start and the delivery of the held messages: new ones queue behind them. */
  private holding = false;
  /** The chat being resumed while `starting` (undefined for a new chat). */
  private openingChatId: string | undefined;
  private readonly renderers = new Map<string, ReplyRenderer>();
  /** Finished replies, newest last, kept briefly so a later `update` can correct them. */
  private readonly recentReplies = new Map<string, ReplyRenderer>();
  private typingTimer: NodeJS.Timeout | undefined;
  private contextTimer: NodeJS.Timeout | undefined;
  private turnStartedAt: number | undefined;
  private announced = new Set<string>();
  private readonly errorAnnouncedAt = new Map<string, number>();
  private lastInput: 'text' | 'voice' = 'text';
  /** The Voxta connection declared audio input (voice possible without reopening). */
  private voxtaHasAudio = false;
  /** The voice channel we left because it was empty (we come back when a human joins it). */
  private awayFromVoice: string | undefined;
  private emptyTimer: NodeJS.Timeout | undefined;
  private rejoining = false;
  /** Playback completes sent by this guild's earlier (closed) Voxta sessions. */
  private completesSentBefore = 0;
  private decodeErrorsBefore = 0;

  constructor(private readonly deps: GuildSessionDeps) {
    super();
    this.guildId = deps.guildId;
    this.log = deps.log.child({ guildId: deps.guildId });
  }

  get state(): GuildSessionState {
    return this._state;
  }

  get record(): GuildSessionRecord | undefined {
    return this.deps.store.getGuildSession(this.guildId);
  }

  /** True while messages in the bound channel go to Voxta. */
  get bridging(): boolean {
    return this._state === 'active' || this._state === 'reconnecting';
  }

  get textChannelId(): string | undefined {
    return this.bridging || this._state === 'starting' ? this.boundTextChannelId : undefined;
  }
  private boundTextChannelId: string | undefined;

  get voiceChannelId(): string | undefined {
    return this.voice?.channelId;
  }

  get voxtaState(): VoxtaSessionState | 'none' {
    return this.voxta?.state ?? 'none';
  }

  private transition(to: GuildSessionState, why: string): void {
    const from = this._state;
    if (from === to) return;
    if (!TRANSITIONS[from].includes(to)) throw new Error(`guild session: illegal transition ${from} → ${to} (${why})`);
    this._state = to;
    this.log.info({ from, to, why }, 'guild session state');
    this.emit('state', to, from);
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Starts a new chat with a character. Throws {@link UserFacingError} or a Voxta error. */
  async start(req: StartRequest): Promise<StartOutcome> {
    return this.open('start', undefined, req.textChannelId, req.voiceChannelId, false, async (voxta) => {
      const { chatId } = await voxta.startChat({ characterId: req.characterId, contexts: this.contexts(req.textChannelId, req.voiceChannelId) });
      return { characterId: req.characterId, characterName: req.characterName, chatId };
    });
  }

  /** Resumes the stored chat, or the given one. */
  async resume(req: ResumeRequest = {}): Promise<StartOutcome> {
    const stored = this.record;
    const chatId = req.chatId ?? stored?.chatId;
    if (!chatId || !stored) {
      throw new UserFacingError('There is no earlier chat to resume in this server. Start one with /start.');
    }
    const textChannelId = req.textChannelId ?? stored.textChannelId;
    const voiceChannelId = req.voiceChannelId === null ? undefined : (req.voiceChannelId ?? stored.voiceChannelId);
    return this.open('resume', chatId, textChannelId, voiceChannelId, req.keepPendingOnFailure ?? false, async (voxta) => {
      const res = await voxta.resumeChat({ chatId, contexts: this.contexts(textChannelId, voiceChannelId) });
      return { characterId: stored.characterId, characterName: stored.characterName, chatId: res.chatId || chatId };
    });
  }

  private async open(
    kind: 'start' | 'resume',
    chatIdToResume: string | undefined,
    textChannelId: string,
    voiceChannelId: string | undefined,
    keepPendingOnFailure: boolean,
    begin: (voxta: VoxtaSessionPort) => Promise<{ characterId: string; characterName: string; chatId: string }>,
  ): Promise<StartOutcome> {
    if (this._state === 'starting') throw new UserFacingError('A chat is already being started in this server. Wait a moment, then check /status.');
    if (this._state === 'stopping') throw new UserFacingError('The chat in this server is stopping. Try again in a moment.');
    if (this._state !== 'idle') {
      const name = this.record?.characterName ?? 'a character';
      throw new UserFacingError(`A chat with ${name} is already running in this server. Use /stop first.`);
    }
    const guild = this.deps.guild();
    if (!guild) throw new UserFacingError('The bot is not in this server any more.');
    const channel = guild.textChannel(textChannelId);
    if (!channel) throw new UserFacingError('I cannot post in that text channel (it is gone, or I lack access). Pick another one.');
    if (!this.deps.admission.tryAcquireChat(this.guildId)) {
      throw new UserFacingError(
        `Voxta already runs ${this.deps.admission.maxChats} chat${this.deps.admission.maxChats === 1 ? '' : 's'}, the most it allows (VOXTA_MAX_CHATS). Try again when another server has stopped its chat.`,
      );
    }
    // From here on this call owns the guild: a second /start sees 'starting' and is refused.
    this.transition('starting', kind);
    this.openingChatId = chatIdToResume;
    this.boundTextChannelId = textChannelId;
    this.announced.clear();
    // Decide about voice before connecting: the Voxta connection declares audio input only when
    // this guild will stream it (Voxta's speech pipeline is shared by all its chats).
    const plan = voiceChannelId ? this.planVoice(guild, voiceChannelId) : { join: false, note: undefined };
    const voxta = this.deps.createVoxta(this.guildId, { voice: plan.join });
    this.voxtaHasAudio = plan.join;
    this.attachVoxta(voxta);
    let started: { characterId: string; characterName: string; chatId: string } | undefined;
    const save = (): GuildSessionRecord =>
      this.deps.store.saveGuildSession({
        guildId: this.guildId,
        characterId: started!.characterId,
        characterName: started!.characterName,
        chatId: started!.chatId,
        textChannelId,
        voiceChannelId: this.voice?.channelId ?? (plan.join ? voiceChannelId : undefined),
        active: true,
      });
    try {
      await voxta.connect();
      started = await begin(voxta);
      // Stored before the session counts as running: a chat we could not record would not be
      // resumed after a restart, so it is better refused now.
      save();
    } catch (err) {
      this.detachVoxta(voxta);
      // A chat that did start (but could not be stored) is stopped, not left running unseen.
      await voxta.close({ stopChat: started !== undefined }).catch(() => undefined);
      this.deps.admission.releaseChat(this.guildId);
      this._state = 'idle';
      this.log.info({ from: 'starting', to: 'idle', why: `${kind} failed` }, 'guild session state');
      this.emit('state', 'idle', 'starting');
      this.log.warn({ err: errorInfo(err) }, `guild session: ${kind} failed`);
      if (!keepPendingOnFailure) this.abandonPending();
      throw err;
    }
    // Messages typed from now until the held ones are delivered queue behind them.
    this.holding = true;
    const history = voxta.chat?.messages ?? [];
    this.lastStoredMessageId = history.at(-1)?.messageId;
    this.voxta = voxta;
    this.log = this.deps.log.child({ guildId: this.guildId, chatId: started.chatId });
    this.log.info({ chatId: started.chatId, sessionId: voxta.sessionId }, `guild session: chat ${kind === 'start' ? 'started' : 'resumed'}`);
    this.transition('active', `${kind} ok`);
    this.deps.metrics.sessionsStarted.inc({ kind });
    const voiceNote = plan.join && voiceChannelId ? await this.connectVoice(voiceChannelId) : plan.note;
    let record: GuildSessionRecord;
    try {
      record = save();
    } catch (err) {
      this.log.error({ err: errorInfo(err) }, 'guild session: storing the voice channel failed');
      record = this.record!;
    }
    this.deliverHeld(voxta, started.chatId, history);
    return { record, voiceNote, resumed: kind === 'resume' };
  }

  /**
   * Stops the chat and leaves voice. `keepActive` (shutdown) leaves the stored record active so
   * the next start resumes it; otherwise it is marked inactive, kept for `/resume`.
   */
  async stop(reason: string, opts: { keepActive?: boolean; stopChat?: boolean; notice?: string } = {}): Promise<boolean> {
    if (this._state === 'idle' || this._state === 'stopping') {
      if (!opts.keepActive && this._state === 'idle' && this.record?.active) this.deps.store.setGuildSessionActive(this.guildId, false);
      return false;
    }
    if (this._state === 'starting') {
      // Let the start finish (it cannot be cancelled half-way on Voxta's side), then stop it.
      await new Promise<void>((resolve) => {
        const onState = (s: GuildSessionState): void => {
          if (s !== 'starting') {
            this.off('state', onState);
            resolve();
          }
        };
        this.on('state', onState);
      });
      return this.stop(reason, opts);
    }
    this.transition('stopping', reason);
    this.awayFromVoice = undefined;
    if (opts.notice) await this.announce(opts.notice);
    this.stopTyping();
    if (this.contextTimer) clearTimeout(this.contextTimer);
    this.contextTimer = undefined;
    await this.leaveVoice(reason);
    // A reply still streaming is cut here: it says so.
    for (const r of this.renderers.values()) await r.finish({ interrupted: true }).catch(() => undefined);
    this.renderers.clear();
    const voxta = this.voxta;
    this.voxta = undefined;
    if (voxta) {
      // Replies that ended but were never acknowledged get their complete now (protocol §4c).
      voxta.playback.abortAll();
      this.completesSentBefore += voxta.playback.stats.completesSent;
      this.detachVoxta(voxta);
      // close() stops the chat first (bounded); on shutdown closing the connection is enough, and
      // Voxta disposes the chat itself (protocol §5.4).
      await voxta.close({ stopChat: opts.stopChat ?? !opts.keepActive }).catch((err: unknown) => this.log.warn({ err: errorInfo(err) }, 'guild session: closing the Voxta connection failed'));
    }
    if (!opts.keepActive) this.deps.store.setGuildSessionActive(this.guildId, false);
    this.deps.admission.releaseChat(this.guildId);
    // Kept active (shutdown, Voxta gone): the held messages stay stored and are delivered when
    // the chat is resumed. Stopped for good: they will not be delivered, and the channel is told.
    if (!opts.keepActive) this.abandonPending();
    this.holding = false;
    this.awaitingEcho.length = 0;
    this.speakers.clear();
    this.transition('idle', reason);
    this.log = this.deps.log.child({ guildId: this.guildId });
    return true;
  }

  // ---- voice ---------------------------------------------------------------------------

  /**
   * Whether this guild may join voice now; takes the voice slot when it may. A refusal comes with
   * the plain sentence the user sees (the chat then runs text-only: our documented choice, rather
   * than refusing the whole /start).
   */
  private planVoice(guild: GuildPort, channelId: string): { join: boolean; note: string | undefined } {
    if (!this.deps.joinVoice) return { join: false, note: 'Voice is not available in this build, so this chat is text-only.' };
    const problem = guild.voiceProblem(channelId);
    if (problem) return { join: false, note: `I cannot join: ${problem}, so this chat is text-only.` };
    if (!this.deps.admission.tryAcquireVoice(this.guildId)) {
      const max = this.deps.admission.maxVoice;
      const note =
        max === 0
          ? 'Voice is turned off on this bot (VOXTA_MAX_VOICE_SESSIONS=0), so this chat is text-only.'
          : `Voice is busy in another server (Voxta can listen to ${max === 1 ? 'one voice channel' : `${max} voice channels`} at a time), so this chat is text-only for now.`;
      return { join: false, note };
    }
    return { join: true, note: undefined };
  }

  /** Joins voice (slot already taken); returns a plain note when it could not (text-only then). */
  private async connectVoice(channelId: string): Promise<string | undefined> {
    const guild = this.deps.guild();
    const voxta = this.voxta;
    if (!this.deps.joinVoice || !guild || !voxta) {
      this.deps.admission.releaseVoice(this.guildId);
      return 'Voice is not available right now, so this chat is text-only.';
    }
    try {
      const voice = await this.deps.joinVoice({
        guildId: this.guildId,
        channelId,
        adapterCreator: guild.voiceAdapterCreator(),
        botUserId: guild.botUserId,
        voxta,
        config: this.deps.config.voice,
        isListenable: (userId) => this.isListenable(userId),
        displayName: (userId) => this.deps.guild()?.displayName(userId) ?? 'Someone',
        notify: (text) => void this.post(text),
        mirror: (kind, name, text) => this.mirror(kind, name, text),
        gatewaySessionStartedAt: () => this.deps.guild()?.gatewaySessionStartedAt?.(),
        humansInChannel: () => (this.deps.guild()?.voiceMembers(channelId) ?? []).filter((m) => !m.bot && m.id !== guild.botUserId).map((m) => m.id),
      });
      this.voice = voice;
      voice.once('ended', (why: string) => {
        if (this.voice !== voice) return;
        this.voice = undefined;
        this.retireVoiceStats(voice);
        if (this.emptyTimer) clearTimeout(this.emptyTimer);
        this.emptyTimer = undefined;
        this.deps.admission.releaseVoice(this.guildId);
        this.log.info({ why: String(why ?? '') }, 'guild session: voice ended, going on text-only');
        void this.post('I was disconnected from the voice channel; the chat goes on here in text. Run /join to bring me back.');
      });
      this.scheduleContextUpdate();
      this.checkOccupancy();
      return undefined;
    } catch (err) {
      this.deps.admission.releaseVoice(this.guildId);
      this.log.warn({ err: errorInfo(err), channelId }, 'guild session: joining voice failed');
      return 'I could not join the voice channel (check my Connect and Speak permissions there), so this chat is text-only.';
    }
  }

  /** `/join`: joins (or moves to) a voice channel in a running session. */
  async joinVoiceChannel(channelId: string): Promise<string | undefined> {
    if (!this.bridging) throw new UserFacingError('No chat is running in this server. Start one with /start.');
    if (this.voice?.channelId === channelId) return undefined;
    this.awayFromVoice = undefined;
    const guild = this.deps.guild();
    if (!guild) throw new UserFacingError('The bot is not in this server any more.');
    if (!this.voxtaHasAudio) {
      // The Voxta connection was opened text-only; reopen the same chat with audio input.
      const plan = this.planVoice(guild, channelId);
      if (!plan.join) return plan.note;
      this.deps.admission.releaseVoice(this.guildId); // open() takes it again
      await this.stop('reopening with voice', { keepActive: true, stopChat: true });
      const out = await this.resume({ voiceChannelId: channelId });
      return out.voiceNote;
    }
    await this.leaveVoice('moving');
    const plan = this.planVoice(guild, channelId);
    const note = plan.join ? await this.connectVoice(channelId) : plan.note;
    const rec = this.record;
    if (rec) this.deps.store.saveGuildSession({ ...rec, voiceChannelId: this.voice ? channelId : undefined });
    return note;
  }

  /** `/leave`: leaves voice and goes on text-only. */
  async leaveVoiceChannel(): Promise<boolean> {
    const wasAway = this.awayFromVoice !== undefined;
    this.awayFromVoice = undefined;
    if (!this.voice) return wasAway;
    await this.leaveVoice('asked to leave');
    const rec = this.record;
    if (rec) this.deps.store.saveGuildSession({ ...rec, voiceChannelId: undefined });
    return true;
  }

  private async leaveVoice(reason: string): Promise<void> {
    if (this.emptyTimer) clearTimeout(this.emptyTimer);
    this.emptyTimer = undefined;
    const voice = this.voice;
    if (!voice) return;
    this.voice = undefined;
    this.retireVoiceStats(voice);
    try {
      await voice.leave(reason);
    } catch (err) {
      this.log.warn({ err: errorInfo(err) }, 'guild session: leaving voice failed');
    }
    this.deps.admission.releaseVoice(this.guildId);
  }

  private isListenable(userId: string): boolean {
    const guild = this.deps.guild();
    if (!guild || userId === guild.botUserId) return false;
    if (this.deps.store.isVoiceOptedOut(this.guildId, userId)) return false;
    const optOutRole = this.deps.config.voice.optOutRoleId;
    if (optOutRole && guild.memberRoleIds(userId).includes(optOutRole)) return false;
    const member = this.voice ? guild.voiceMembers(this.voice.channelId).find((m) => m.id === userId) : undefined;
    return !member?.bot;
  }

  voiceStats(): Record<string, number> | undefined {
    return this.voice?.stats();
  }

  /** Opus packets that failed to decode, over this guild's whole run (earlier joins too). */
  decodeErrorsTotal(): number {
    return this.decodeErrorsBefore + (this.voice?.stats().decodeErrors ?? 0);
  }

  private retireVoiceStats(voice: GuildVoicePort): void {
    try {
      this.decodeErrorsBefore += voice.stats().decodeErrors ?? 0;
    } catch {
      // stats of a torn-down connection are not worth failing over
    }
  }

  private mirror(kind: 'member' | 'character', name: string, text: string): void {
    if (kind === 'member') {
      this.lastInput = 'voice';
      this.turnStartedAt = Date.now();
      this.deps.metrics.turns.inc({ source: 'voice' });
    }
    // Character replies are already rendered from the reply stream; only spoken input is mirrored.
    if (kind !== 'member' || !this.mirrorTranscripts()) return;
    void this.post(`🎙️ **${name}**: ${text}`);
  }

  mirrorTranscripts(): boolean {
    return this.deps.store.getBooleanSetting(this.guildId, 'mirrorTranscripts', this.deps.config.voice.mirrorTranscripts);
  }

  // ---- text bridge ---------------------------------------------------------------------

  /** A human's message in the bound channel. */
  /**
   * A human's message in the bound channel. With `resumePending` (the stored chat of this guild is
   * about to be resumed automatically) it is queued, marked ⏳, and delivered once the chat is back.
   */
  async handleHumanMessage(msg: IncomingTextMessage, opts: { resumePending?: boolean } = {}): Promise<void> {
    const waitingForResume = opts.resumePending === true && this._state === 'idle';
    if (!waitingForResume && (msg.channelId !== this.boundTextChannelId || !(this.bridging || this._state === 'starting'))) return;
    this.speakers.add(msg.authorId);
    const multi = this.speakers.size > 1;
    const composed = multi ? attributeSpeaker(msg.authorName, msg.content, { maxChars: MAX_SEND_CHARS }) : this.capped(msg.content);
    if (composed === '') return; // only an attachment or whitespace: nothing to say
    // capText marks a cut with " […]" (a message that itself ends so is not a cut).
    const truncated = composed.endsWith(' […]') && !msg.content.trimEnd().endsWith(' […]');
    if (truncated) {
      void msg.react(TRUNCATED_EMOJI).catch(() => undefined);
      void this.post(`Your message was longer than ${MAX_SEND_CHARS} characters; the character only got the first part.`);
    }
    const voxta = this.voxta;
    // Stored until Voxta confirms it, so that a restart meanwhile does not lose it.
    const chatId = voxta?.chatId ?? (this._state === 'starting' ? this.openingChatId : this.record?.chatId);
    const rowId = this.persistPending(msg.id, composed, chatId);
    if (this._state === 'starting' || waitingForResume || !voxta || this.holding) {
      if (waitingForResume && this.pending.length === 0) this.log.info('guild session: holding messages until the stored chat is resumed');
      this.pending.push({ message: msg, sentText: composed, rowId });
      void msg.react(PENDING_EMOJI).catch(() => undefined);
      return;
    }
    if (voxta.state !== 'ready') {
      // The Voxta client queues and delivers in order after it is back; show the user it waits.
      this.pending.push({ message: msg, sentText: composed, rowId });
      void msg.react(PENDING_EMOJI).catch(() => undefined);
    }
    this.deliver(voxta, msg.id, composed, 'text', rowId);
  }

  private persistPending(discordMessageId: string, text: string, chatId: string | undefined): number | undefined {
    try {
      return this.deps.store.addPendingMessage({ guildId: this.guildId, chatId, discordMessageId, text });
    } catch (err) {
      // Still delivered from memory; only a restart before Voxta confirms it would lose it.
      this.log.warn({ err: errorInfo(err) }, 'guild session: storing a pending message failed');
      return undefined;
    }
  }

  private forgetPending(rowIds: Array<number | undefined>): void {
    const ids = rowIds.filter((id): id is number => id !== undefined);
    if (ids.length === 0) return;
    try {
      this.deps.store.deletePendingMessages(ids);
    } catch (err) {
      this.log.warn({ err: errorInfo(err) }, 'guild session: removing delivered pending messages failed');
    }
  }

  private storedPending(): PendingMessage[] {
    try {
      return this.deps.store.listPendingMessages(this.guildId);
    } catch (err) {
      this.log.warn({ err: errorInfo(err) }, 'guild session: reading pending messages failed');
      return [];
    }
  }

  private capped(text: string): string {
    const clean = sanitizeUserText(text);
    if (clean === '') return '';
    const { text: capped } = capText(clean, MAX_SEND_CHARS);
    return capped;
  }

  private deliver(voxta: VoxtaSessionPort, discordId: string | undefined, text: string, source: 'text' | 'say', rowId?: number): void {
    this.lastInput = 'text';
    this.turnStartedAt = Date.now();
    this.deps.metrics.turns.inc({ source });
    if (discordId) {
      this.awaitingEcho.push({ discordId, text: unescapeUserText(text), sentText: text, rowId, sent: false });
      if (this.awaitingEcho.length > 50) this.awaitingEcho.shift();
    }
    try {
      voxta.send(text);
    } catch (err) {
      // No chat to deliver to (closed under us): say so instead of dropping it silently.
      this.log.warn({ err: errorInfo(err) }, 'guild session: a message could not be queued for Voxta');
      this.forgetPending([rowId]);
      void this.post('That message could not reach the character: no chat is running. Start one with /start.');
    }
  }

  /**
   * The chat is (back) up: the messages stored as pending for it go out now, once, in order, before
   * any new one. One written before a crash or shutdown whose echo we never saw is looked up in the
   * chat history first (after the last message we had seen when it was written) and not sent again
   * when it is there; the remaining window is two identical texts sent in a row around the crash,
   * which may be taken as one. Messages held for another chat (a /start replaced it) are reported
   * as not delivered.
   */
  private deliverHeld(voxta: VoxtaSessionPort, chatId: string, history: readonly HistoryMessage[]): void {
    this.holding = false;
    // Stopped while joining voice: the rows were kept or abandoned by stop() already.
    if (this.voxta !== voxta || !this.bridging) return;
    const rows = this.storedPending();
    const lost: PendingMessage[] = [];
    const done: number[] = [];
    let from = 0;
    const delivered = new Set<number>();
    for (const row of rows) {
      if (row.chatId !== undefined && row.chatId !== chatId) {
        lost.push(row);
        continue;
      }
      if (row.sent) {
        const k = findUserMessage(history, row.text, Math.max(from, anchorIndex(history, row.afterMessageId) + 1));
        if (k >= 0) {
          from = k + 1;
          done.push(row.id);
          const voxtaId = history[k]?.messageId;
          if (row.discordMessageId && voxtaId) this.link(row.discordMessageId, voxtaId, chatId);
          this.unmarkPending(row.id);
          continue;
        }
      }
      delivered.add(row.id);
      // Held by an earlier process: its ⏳ goes when the Voxta client writes it, like any other.
      this.trackMark(row);
      this.deliver(voxta, row.discordMessageId, row.text, 'text', row.id);
    }
    // Held in memory only (storing them failed): after the stored ones, in order.
    for (const p of this.pending) if (p.rowId === undefined) this.deliver(voxta, p.message.id, p.sentText, 'text');
    // Rows of the guild not held here any more (another chat): their ⏳ goes, ❌ instead.
    for (const row of lost) {
      this.trackMark(row);
      this.unmarkPending(row.id, !row.sent);
    }
    this.forgetPending([...done, ...lost.map((r) => r.id)]);
    if (done.length || delivered.size || lost.length) {
      this.log.info({ delivered: delivered.size, alreadyInChat: done.length, notDelivered: lost.length }, 'guild session: held messages handled');
    }
    const notSent = lost.filter((r) => !r.sent);
    if (notSent.length) void this.post(notDeliveredNotice(notSent));
  }

  /** The oldest stored pending message of this guild that is not tracked in memory and matches. */
  private untrackedPending(match: (row: PendingMessage) => boolean): PendingMessage | undefined {
    const tracked = new Set(this.awaitingEcho.map((a) => a.rowId));
    return this.storedPending().find((r) => !tracked.has(r.id) && match(r));
  }

  /** A stored row's Discord message, for its status marks, when this process has no handle on it yet. */
  private trackMark(row: PendingMessage): void {
    if (!row.discordMessageId || this.pending.some((p) => p.rowId === row.id)) return;
    const message = this.channel()?.markable(row.discordMessageId);
    if (message) this.pending.push({ message, sentText: row.text, rowId: row.id });
  }

  private unmarkPending(rowId: number, failed = false): void {
    const i = this.pending.findIndex((p) => p.rowId === rowId);
    if (i < 0) return;
    const [p] = this.pending.splice(i, 1);
    void p?.message.unreact(PENDING_EMOJI).catch(() => undefined);
    if (failed) void p?.message.react('❌').catch(() => undefined);
  }

  /** Voxta is back: what it queued has been delivered; clear the ⏳ marks. */
  private clearPendingMarks(): void {
    for (const p of this.pending.splice(0)) void p.message.unreact(PENDING_EMOJI).catch(() => undefined);
  }

  /**
   * Messages waiting for a chat that will not come (it is gone, or was stopped): forgotten, marked
   * ❌, and the channel told which ones did not reach the character.
   */
  dropPending(): void {
    this.abandonPending();
  }

  private abandonPending(): void {
    const rows = this.storedPending();
    this.forgetPending(rows.map((r) => r.id));
    const inMemory = this.pending.splice(0);
    for (const p of inMemory) {
      void p.message.unreact(PENDING_EMOJI).catch(() => undefined);
      void p.message.react('❌').catch(() => undefined);
    }
    // Held by an earlier process (no handle here): marked through the channel by id.
    const handled = new Set(inMemory.map((p) => p.rowId));
    for (const row of rows) {
      if (handled.has(row.id) || !row.discordMessageId) continue;
      const m = this.channel()?.markable(row.discordMessageId);
      void m?.unreact(PENDING_EMOJI).catch(() => undefined);
      if (!row.sent) void m?.react('❌').catch(() => undefined);
    }
    // Only those never written to Voxta are surely undelivered (a written one may be in the chat).
    const notSent: Array<{ text: string }> = rows.filter((r) => !r.sent);
    for (const p of inMemory) if (p.rowId === undefined) notSent.push({ text: p.sentText });
    if (notSent.length) {
      this.log.info({ messages: notSent.length }, 'guild session: pending messages will not be delivered');
      void this.post(notDeliveredNotice(notSent));
    }
  }

  /** A bridged message was edited: edit the Voxta message it created. */
  handleMessageEdit(discordMessageId: string, authorName: string, newContent: string): boolean {
    const link = this.deps.store.findMessageLink(discordMessageId);
    if (!link || !this.voxta || link.chatId !== this.voxta.chatId) return false;
    const text = this.speakers.size > 1 ? attributeSpeaker(authorName, newContent, { maxChars: MAX_SEND_CHARS }) : this.capped(newContent);
    if (!text) return false;
    void this.voxta.updateMessage(link.voxtaMessageId, text);
    return true;
  }

  /** A bridged message was deleted: delete the Voxta message it created. */
  handleMessageDelete(discordMessageId: string): boolean {
    const link = this.deps.store.findMessageLink(discordMessageId);
    if (!link) return false;
    this.deps.store.unlinkMessage(discordMessageId);
    if (!this.voxta || link.chatId !== this.voxta.chatId) return false;
    void this.voxta.deleteMessage(link.voxtaMessageId);
    return true;
  }

  /** `/say`: the character says exactly this text. */
  async say(text: string): Promise<void> {
    const voxta = this.requireRunning();
    const clean = text.trim();
    if (!clean) throw new UserFacingError('Give the text the character should say.');
    if (!(await voxta.characterSpeechRequest(capText(clean, MAX_SEND_CHARS).text))) {
      throw new UserFacingError('Voxta is reconnecting right now; try again in a moment.');
    }
  }

  /** `/interrupt`: stop the current reply (and its speech). */
  async interrupt(): Promise<void> {
    if (!(await this.requireRunning().interrupt())) throw new UserFacingError('Voxta is reconnecting right now; try again in a moment.');
  }

  private requireRunning(): VoxtaSessionPort {
    if (!this.bridging || !this.voxta) throw new UserFacingError('No chat is running in this server. Start one with /start.');
    return this.voxta;
  }

  // ---- Voxta events --------------------------------------------------------------------

  private readonly onVoxtaMessage = (m: ServerMessage): void => {
    try {
      this.handleVoxtaMessage(m);
    } catch (err) {
      this.log.error({ err: errorInfo(err, true), type: m.$type }, 'guild session: handling a Voxta message failed');
    }
  };
  private readonly onVoxtaState = (s: VoxtaSessionState): void => {
    if (s === 'reconnecting' && this._state === 'active') {
      this.transition('reconnecting', 'Voxta connection lost');
      this.deps.metrics.reconnects.inc();
      this.announceOnce('reconnecting', 'I lost the connection to Voxta and am reconnecting. Messages you send meanwhile will be delivered once it is back.');
    }
  };
  private readonly onVoxtaSent = (info: { text: string }): void => {
    // Written on a live connection: from now on it may be in the chat even if we never see the echo.
    const e = this.awaitingEcho.find((a) => a.sentText === info.text && !a.sent) ?? this.awaitingEcho.find((a) => a.sentText === info.text);
    if (e) e.sent = true;
    // (One no longer tracked in memory, after a long outage, is found by its text.)
    const rowId = e ? e.rowId : this.untrackedPending((r) => !r.sent && r.text === info.text)?.id;
    if (rowId !== undefined) {
      try {
        this.deps.store.markPendingMessageSent(rowId, this.lastStoredMessageId);
      } catch (err) {
        this.log.warn({ err: errorInfo(err) }, 'guild session: marking a pending message sent failed');
      }
    }
    const i = this.pending.findIndex((p) => p.sentText === info.text);
    if (i < 0) return;
    const [p] = this.pending.splice(i, 1);
    void p?.message.unreact(PENDING_EMOJI).catch(() => undefined);
  };
  private readonly onVoxtaChatLost = (info: { chatId: string }): void => {
    this.log.warn({ chatId: info.chatId }, 'guild session: the chat could not be resumed after reconnecting');
    if (!this.bridging) return;
    void this.stop('chat lost', { notice: 'The chat no longer exists on Voxta (it may have been deleted there), so I stopped. Start a new one with /start.' });
  };
  private readonly onVoxtaReconnected = (): void => {
    if (this._state === 'reconnecting') this.transition('active', 'Voxta resumed');
    this.lastStoredMessageId = this.voxta?.chat?.messages.at(-1)?.messageId ?? this.lastStoredMessageId;
    // Replies the lost connection was streaming will never end: show them as cut.
    for (const r of this.renderers.values()) void r.finish({ interrupted: true }).catch(() => undefined);
    this.renderers.clear();
    this.clearPendingMarks();
    if (this.announced.has('reconnecting')) {
      this.announced.delete('reconnecting');
      this.announceOnce('resumed', 'Reconnected to Voxta; the chat goes on.');
      this.announced.delete('resumed');
    }
    this.scheduleContextUpdate();
  };
  private readonly onVoxtaFailed = (err: Error): void => {
    this.log.warn({ err: errorInfo(err) }, 'guild session: Voxta connection failed for good');
    if (!this.bridging) return;
    // The record stays active: the bot core tries again to resume it (and so does the next start).
    // Refused credentials get their own notice: "keep trying" would promise what a wrong key
    // cannot give, and the admin has something to fix.
    const authRefused = isAuthRefusal(err);
    void this.stop('Voxta failed', {
      keepActive: true,
      notice: authRefused
        ? credentialsRefusedNotice(this.record?.characterName ?? 'the character')
        : 'I could not get the connection to Voxta back. I will keep trying to resume this chat; /stop cancels that.',
    }).then(() => this.emit('voxtaFailed', { authRefused }));
  };
  private readonly onVoxtaChatClosed = (): void => {
    if (!this.bridging) return;
    // Closed on the Voxta side (its app, or an admin): nothing to talk to any more.
    void this.stop('chat closed by Voxta', { notice: 'The chat was closed on the Voxta side. /resume opens it again.' });
  };

  private attachVoxta(v: VoxtaSessionPort): void {
    v.on('message', this.onVoxtaMessage);
    v.on('state', this.onVoxtaState);
    v.on('reconnected', this.onVoxtaReconnected);
    v.on('failed', this.onVoxtaFailed);
    v.on('sent', this.onVoxtaSent);
    v.on('chatLost', this.onVoxtaChatLost);
    v.on('chatClosed', this.onVoxtaChatClosed);
  }

  private detachVoxta(v: VoxtaSessionPort): void {
    v.off('message', this.onVoxtaMessage);
    v.off('state', this.onVoxtaState);
    v.off('reconnected', this.onVoxtaReconnected);
    v.off('failed', this.onVoxtaFailed);
    v.off('sent', this.onVoxtaSent);
    v.off('chatLost', this.onVoxtaChatLost);
    v.off('chatClosed', this.onVoxtaChatClosed);
  }

  private handleVoxtaMessage(m: ServerMessage): void {
    switch (m.$type) {
      case 'replyGenerating':
        this.startTyping();
        break;
      case 'replyChunk': {
        if (this.turnStartedAt !== undefined) {
          const ms = Date.now() - this.turnStartedAt;
          this.turnStartedAt = undefined;
          this.latency.add(ms);
          this.deps.metrics.turnLatency.observe(ms / 1000);
        }
        const r = this.renderer(m.messageId);
        if (r) {
          this.stopTyping();
          r.append(m.text);
        }
        break;
      }
      case 'replyEnd':
      case 'replyCancelled': {
        this.stopTyping();
        const r = this.renderers.get(m.messageId);
        if (r) {
          this.renderers.delete(m.messageId);
          this.recentReplies.set(m.messageId, r);
          if (this.recentReplies.size > 20) this.recentReplies.delete(this.recentReplies.keys().next().value!);
          const chatId = this.voxta?.chatId;
          void r.finish({ interrupted: m.$type === 'replyCancelled' }).then((ids) => {
            if (chatId) for (const id of ids) this.link(id, m.messageId, chatId);
          });
        }
        break;
      }
      case 'update': {
        this.lastStoredMessageId = m.messageId;
        if (m.role.toLowerCase() !== 'user') {
          // The stored text of a reply we showed changed (cut after an interruption, edited).
          const shown = this.recentReplies.get(m.messageId);
          if (shown && m.text) void shown.rewrite(m.text);
          break;
        }
        const text = unescapeUserText(m.text);
        const idx = this.awaitingEcho.findIndex((e) => e.text === text);
        const hit = idx >= 0 ? this.awaitingEcho.splice(idx, 1)[0] : undefined;
        const chatId = this.voxta?.chatId;
        if (hit && chatId) this.link(hit.discordId, m.messageId, chatId);
        // Stored in the chat: no longer pending. Voxta stores user messages in order, so those
        // written before it are stored too (as the Voxta client itself assumes).
        if (hit) {
          const earlier = this.awaitingEcho.slice(0, idx).filter((e) => e.sent);
          this.forgetPending([hit.rowId, ...earlier.map((e) => e.rowId)]);
          for (const e of earlier) e.rowId = undefined;
        } else {
          this.forgetPending([this.untrackedPending((r) => r.sent && unescapeUserText(r.text) === text)?.id]);
        }
        break;
      }
      case 'chatSessionError':
        // The same error every turn (a dead LLM service) is repeated at most every few minutes.
        if (Date.now() - (this.errorAnnouncedAt.get(m.message) ?? -Infinity) >= ERROR_REPEAT_MS) {
          this.errorAnnouncedAt.set(m.message, Date.now());
          void this.post(`Voxta reported a problem: ${m.message.slice(0, 300)}`);
        }
        break;
      default:
        break;
    }
  }

  /** A renderer for the reply, unless it answers a voice turn while mirroring is off. */
  private renderer(messageId: string): ReplyRenderer | undefined {
    let r = this.renderers.get(messageId);
    if (r) return r;
    if (this.lastInput === 'voice' && this.voice && !this.mirrorTranscripts()) return undefined;
    const channel = this.channel();
    if (!channel) return undefined;
    r = new ReplyRenderer(channel, { log: this.log, editIntervalMs: this.deps.editIntervalMs });
    this.renderers.set(messageId, r);
    return r;
  }

  private link(discordMessageId: string, voxtaMessageId: string, chatId: string): void {
    try {
      this.deps.store.linkMessage({ discordMessageId, guildId: this.guildId, chatId, voxtaMessageId });
    } catch (err) {
      this.log.warn({ err: errorInfo(err) }, 'guild session: storing a message link failed');
    }
  }

  private startTyping(): void {
    if (this.typingTimer) return;
    const tick = (): void => {
      void this.channel()?.sendTyping().catch(() => undefined);
    };
    tick();
    this.typingTimer = setInterval(tick, TYPING_REFRESH_MS);
    this.typingTimer.unref();
  }

  private stopTyping(): void {
    if (this.typingTimer) clearInterval(this.typingTimer);
    this.typingTimer = undefined;
  }

  // ---- context -------------------------------------------------------------------------

  /** Voice members changed (join/leave/move) in this guild: update Voxta's context, debounced. */
  voiceMembersChanged(channelIds: Array<string | undefined>): void {
    if (!this.bridging) return;
    if (this.voice && channelIds.includes(this.voice.channelId)) {
      this.scheduleContextUpdate();
      this.checkOccupancy();
    } else if (this.awayFromVoice && channelIds.includes(this.awayFromVoice)) {
      this.checkOccupancy();
    }
  }

  private humansIn(channelId: string): number {
    const guild = this.deps.guild();
    if (!guild) return 0;
    return guild.voiceMembers(channelId).filter((m) => !m.bot && m.id !== guild.botUserId).length;
  }

  /**
   * Nobody to talk to in voice: leave after a grace period (and come back when someone joins),
   * so the bot does not sit in an empty channel holding Voxta's one voice slot.
   */
  private checkOccupancy(): void {
    if (!this.bridging) return;
    const voice = this.voice;
    if (voice) {
      const humans = this.humansIn(voice.channelId);
      if (humans === 0 && !this.emptyTimer) {
        this.emptyTimer = setTimeout(() => void this.leaveBecauseEmpty(voice.channelId), this.deps.voiceIdleLeaveMs ?? VOICE_IDLE_LEAVE_MS);
        this.emptyTimer.unref();
      } else if (humans > 0 && this.emptyTimer) {
        clearTimeout(this.emptyTimer);
        this.emptyTimer = undefined;
      }
      return;
    }
    const away = this.awayFromVoice;
    if (away && this.humansIn(away) > 0 && !this.rejoining) void this.rejoinAfterAway(away);
  }

  private async leaveBecauseEmpty(channelId: string): Promise<void> {
    this.emptyTimer = undefined;
    if (!this.bridging || this.voice?.channelId !== channelId || this.humansIn(channelId) > 0) return;
    await this.leaveVoice('voice channel empty');
    this.awayFromVoice = channelId;
    this.log.info({ channelId }, 'guild session: left the empty voice channel; will come back when someone joins');
    await this.post(`Everyone left <#${channelId}>, so I left too. I will come back when someone joins it.`);
  }

  private async rejoinAfterAway(channelId: string): Promise<void> {
    const guild = this.deps.guild();
    if (!guild) return;
    this.rejoining = true;
    try {
      this.awayFromVoice = undefined;
      const plan = this.planVoice(guild, channelId);
      const note = plan.join ? await this.connectVoice(channelId) : plan.note;
      if (note) await this.post(note);
      else this.checkOccupancy();
    } finally {
      this.rejoining = false;
    }
  }

  private scheduleContextUpdate(): void {
    if (this.contextTimer) clearTimeout(this.contextTimer);
    this.contextTimer = setTimeout(() => {
      this.contextTimer = undefined;
      const voxta = this.voxta;
      if (!voxta || !this.bridging || !this.boundTextChannelId) return;
      void voxta.updateContext(this.contexts(this.boundTextChannelId, this.voice?.channelId));
    }, this.deps.contextDebounceMs ?? CONTEXT_DEBOUNCE_MS);
    this.contextTimer.unref();
  }

  /** Where the character is: the guild, the channels and who is present. */
  contexts(textChannelId: string, voiceChannelId: string | undefined): ContextItem[] {
    const guild = this.deps.guild();
    if (!guild) return [];
    const lines = [`You are talking with people on the Discord server "${guild.name}", in the text channel #${guild.channelName(textChannelId) ?? 'unknown'}.`];
    if (voiceChannelId && this.voice) {
      const present = guild
        .voiceMembers(voiceChannelId)
        .filter((m) => !m.bot && m.id !== guild.botUserId)
        .map((m) => m.displayName);
      lines.push(
        `You are also in the voice channel "${guild.channelName(voiceChannelId) ?? 'voice'}"; present there now: ${present.length ? present.join(', ') : 'nobody'}.`,
      );
    }
    return [{ name: 'discord', text: lines.join(' ') }];
  }

  // ---- channel & announcements -----------------------------------------------------------

  private channel(): TextChannelPort | undefined {
    return this.boundTextChannelId ? this.deps.guild()?.textChannel(this.boundTextChannelId) : undefined;
  }

  /** Posts one plain sentence in the bound channel (logged, never thrown). */
  async post(text: string): Promise<void> {
    const channel = this.channel();
    if (!channel) return;
    try {
      await channel.send(text);
    } catch (err) {
      this.log.warn({ err: errorInfo(err) }, 'guild session: posting a notice failed');
    }
  }

  private announce(text: string): Promise<void> {
    return this.post(text);
  }

  private announceOnce(key: string, text: string): void {
    if (this.announced.has(key)) return;
    this.announced.add(key);
    void this.post(text);
  }

  /** The bound text channel or the voice channel was deleted. */
  async channelDeleted(channelId: string): Promise<void> {
    if (channelId === this.voice?.channelId) {
      await this.leaveVoiceChannel();
      await this.post('The voice channel was deleted; the chat goes on here in text.');
      return;
    }
    if (channelId === this.boundTextChannelId && (this.bridging || this._state === 'starting')) {
      this.log.info({ channelId }, 'guild session: bound text channel deleted; stopping');
      await this.stop('text channel deleted');
    }
  }

  status(): SessionStatus {
    return {
      state: this._state,
      record: this.record,
      voxtaState: this.voxtaState,
      voice: this.voice ? { channelId: this.voice.channelId, state: this.voice.state } : undefined,
      latency: { p50: this.latency.percentile(50), p95: this.latency.percentile(95), samples: this.latency.count },
      pendingMessages: Math.max(this.pending.length, this.storedPending().length),
    };
  }

  /** Completes owed by the live session, and sent over this guild's whole run (closed sessions too). */
  playbackStats(): { owed: number; sent: number } {
    const st = this.voxta?.playback.stats;
    return { owed: st?.owed ?? 0, sent: this.completesSentBefore + (st?.completesSent ?? 0) };
  }
}


/** Index of the history message with this id, or -1. */
function anchorIndex(history: readonly HistoryMessage[], messageId: string | undefined): number {
  return messageId === undefined ? -1 : history.findIndex((m) => m.messageId === messageId);
}

/** The first user message with this text at or after `from`, or -1 (escapes and spacing ignored). */
function findUserMessage(history: readonly HistoryMessage[], text: string, from: number): number {
  const want = unescapeUserText(text).replace(/\s+/g, ' ');
  for (let k = from; k < history.length; k++) {
    const h = history[k]!;
    if (h.role.toLowerCase() === 'user' && unescapeUserText(h.text).replace(/\s+/g, ' ') === want) return k;
  }
  return -1;
}

/** "These messages did not reach the character: “a”, “b”." in one plain sentence. */
export function notDeliveredNotice(messages: ReadonlyArray<{ text: string }>): string {
  const shown = messages.slice(0, 5).map((m) => {
    const t = unescapeUserText(m.text).replace(/\s+/g, ' ').trim();
    return `“${t.length > 80 ? `${t.slice(0, 79)}…` : t}”`;
  });
  const more = messages.length > shown.length ? ` and ${messages.length - shown.length} more` : '';
  return messages.length === 1
    ? `This message did not reach the character and will not be delivered: ${shown[0]}.`
    : `These ${messages.length} messages did not reach the character and will not be delivered: ${shown.join(', ')}${more}.`;
}
