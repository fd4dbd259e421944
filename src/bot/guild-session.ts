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
 *
 * The session decides what happens when; the details live with their own parts:
 * `PendingMessages` (user messages until Voxta has stored them: ⏳/❌, SQLite rows, held delivery),
 * `ReplyStream` (replies streamed into the channel), `VoiceAttachment` (the voice connection and
 * its slot) and `session-notices` (the sentences for failures).
 */
import { EventEmitter } from 'node:events';
import type { Config } from '../config.js';
import { errorInfo, type Logger } from '../log.js';
import type { GuildSessionRecord, Store } from '../store/store.js';
import type { ContextItem, HistoryMessage, ServerMessage } from '../voxta/messages.js';
import { attributeSpeaker, capText, sanitizeUserText } from '../voxta/user-text.js';
import type { Admission } from './admission.js';
import type { BotMetrics } from './bot-metrics.js';
import { RecentSamples } from './metrics.js';
import { PendingMessages } from './pending-messages.js';
import type {
  GuildPort,
  GuildVoiceJoiner,
  IncomingTextMessage,
  TextChannelPort,
  VoxtaSessionFactory,
  VoxtaSessionPort,
  VoxtaSessionState,
} from './ports.js';
import { ReplyStream } from './reply-stream.js';
import { credentialsRefusedNotice, isAuthRefusal } from './session-notices.js';
import { UserFacingError } from './user-errors.js';
import { VoiceAttachment } from './voice-attachment.js';

// Moved into their own modules; still importable from here.
export { credentialsRefusedNotice, isAuthRefusal, notDeliveredNotice } from './session-notices.js';
export { VOICE_IDLE_LEAVE_MS } from './voice-attachment.js';

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
const TRUNCATED_EMOJI = '✂️';
const CONTEXT_DEBOUNCE_MS = 1500;
/** The same Voxta error is posted again only after this long. */
const ERROR_REPEAT_MS = 5 * 60_000;

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

export class GuildSession extends EventEmitter {
  readonly guildId: string;
  private _state: GuildSessionState = 'idle';
  private voxta: VoxtaSessionPort | undefined;
  /** Voice connection, its slot, and the empty-channel leave / come-back. */
  private readonly voiceAttachment: VoiceAttachment;
  /** User messages between "accepted" and "stored in the chat" (rows, ⏳/❌ marks, echoes). */
  private readonly pending: PendingMessages;
  /** Carries guildId always, and chatId while a chat runs. */
  private log: Logger;
  private readonly latency = new RecentSamples(50);
  /** Humans who have written in this session, to decide whether names are attached. */
  private readonly speakers = new Set<string>();
  /** The chat being resumed while `starting` (undefined for a new chat). */
  private openingChatId: string | undefined;
  /** The character's replies streaming into the bound channel. */
  private readonly replies: ReplyStream;
  private contextTimer: NodeJS.Timeout | undefined;
  private turnStartedAt: number | undefined;
  private announced = new Set<string>();
  private readonly errorAnnouncedAt = new Map<string, number>();
  private lastInput: 'text' | 'voice' = 'text';
  /** The Voxta connection declared audio input (voice possible without reopening). */
  private voxtaHasAudio = false;
  /** Playback completes sent by this guild's earlier (closed) Voxta sessions. */
  private completesSentBefore = 0;

  constructor(private readonly deps: GuildSessionDeps) {
    super();
    this.guildId = deps.guildId;
    this.log = deps.log.child({ guildId: deps.guildId });
    const post = (text: string): Promise<void> => this.post(text);
    this.pending = new PendingMessages({
      guildId: deps.guildId,
      store: deps.store,
      log: () => this.log,
      channel: () => this.channel(),
      post,
      link: (discordId, voxtaId, chatId) => this.link(discordId, voxtaId, chatId),
    });
    this.replies = new ReplyStream({
      channel: () => this.channel(),
      log: () => this.log,
      // A reply to a voice turn is heard; it is shown only when transcripts are mirrored.
      showsReplies: () => !(this.lastInput === 'voice' && this.voiceAttachment.connection && !this.mirrorTranscripts()),
      editIntervalMs: deps.editIntervalMs,
    });
    this.voiceAttachment = new VoiceAttachment({
      guildId: deps.guildId,
      guild: deps.guild,
      store: deps.store,
      admission: deps.admission,
      config: deps.config,
      joinVoice: deps.joinVoice,
      log: () => this.log,
      voxta: () => this.voxta,
      bridging: () => this.bridging,
      post,
      mirror: (kind, name, text) => this.mirror(kind, name, text),
      presenceChanged: () => this.scheduleContextUpdate(),
      idleLeaveMs: deps.voiceIdleLeaveMs,
    });
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
    return this.voiceAttachment.channelId;
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
    const plan = voiceChannelId ? this.voiceAttachment.plan(guild, voiceChannelId) : { join: false, note: undefined };
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
        voiceChannelId: this.voiceAttachment.channelId ?? (plan.join ? voiceChannelId : undefined),
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
      if (!keepPendingOnFailure) this.pending.abandon();
      throw err;
    }
    // Messages typed from now until the held ones are delivered queue behind them.
    this.pending.holding = true;
    const history = voxta.chat?.messages ?? [];
    this.pending.lastStoredMessageId = history.at(-1)?.messageId;
    this.voxta = voxta;
    this.log = this.deps.log.child({ guildId: this.guildId, chatId: started.chatId });
    this.log.info({ chatId: started.chatId, sessionId: voxta.sessionId }, `guild session: chat ${kind === 'start' ? 'started' : 'resumed'}`);
    this.transition('active', `${kind} ok`);
    this.deps.metrics.sessionsStarted.inc({ kind });
    const voiceNote = plan.join && voiceChannelId ? await this.voiceAttachment.connect(voiceChannelId) : plan.note;
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
    this.voiceAttachment.forgetAway();
    if (opts.notice) await this.announce(opts.notice);
    this.replies.stopTyping();
    if (this.contextTimer) clearTimeout(this.contextTimer);
    this.contextTimer = undefined;
    await this.voiceAttachment.leave(reason);
    // A reply still streaming is cut here: it says so.
    await this.replies.cutAll();
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
    if (!opts.keepActive) this.pending.abandon();
    this.pending.holding = false;
    this.pending.clearEchoes();
    this.speakers.clear();
    this.transition('idle', reason);
    this.log = this.deps.log.child({ guildId: this.guildId });
    return true;
  }

  // ---- voice ---------------------------------------------------------------------------

  /** `/join`: joins (or moves to) a voice channel in a running session. */
  async joinVoiceChannel(channelId: string): Promise<string | undefined> {
    if (!this.bridging) throw new UserFacingError('No chat is running in this server. Start one with /start.');
    if (this.voiceAttachment.channelId === channelId) return undefined;
    this.voiceAttachment.forgetAway();
    const guild = this.deps.guild();
    if (!guild) throw new UserFacingError('The bot is not in this server any more.');
    if (!this.voxtaHasAudio) {
      // The Voxta connection was opened text-only; reopen the same chat with audio input.
      const plan = this.voiceAttachment.plan(guild, channelId);
      if (!plan.join) return plan.note;
      this.deps.admission.releaseVoice(this.guildId); // open() takes it again
      await this.stop('reopening with voice', { keepActive: true, stopChat: true });
      const out = await this.resume({ voiceChannelId: channelId });
      return out.voiceNote;
    }
    await this.voiceAttachment.leave('moving');
    const note = await this.voiceAttachment.planAndConnect(guild, channelId);
    const rec = this.record;
    if (rec) this.deps.store.saveGuildSession({ ...rec, voiceChannelId: this.voiceAttachment.connection ? channelId : undefined });
    return note;
  }

  /** `/leave`: leaves voice and goes on text-only. */
  async leaveVoiceChannel(): Promise<boolean> {
    const wasAway = this.voiceAttachment.isAway;
    this.voiceAttachment.forgetAway();
    if (!this.voiceAttachment.connection) return wasAway;
    await this.voiceAttachment.leave('asked to leave');
    const rec = this.record;
    if (rec) this.deps.store.saveGuildSession({ ...rec, voiceChannelId: undefined });
    return true;
  }

  voiceStats(): Record<string, number> | undefined {
    return this.voiceAttachment.stats();
  }

  /** Opus packets that failed to decode, over this guild's whole run (earlier joins too). */
  decodeErrorsTotal(): number {
    return this.voiceAttachment.decodeErrorsTotal();
  }

  private mirror(kind: 'member' | 'character' | 'unheard', name: string, text: string): void {
    if (kind === 'member') {
      this.lastInput = 'voice';
      this.turnStartedAt = Date.now();
      this.deps.metrics.turns.inc({ source: 'voice' });
    }
    // Character replies are already rendered from the reply stream; only spoken input is mirrored
    // (and, in its place, an utterance Voxta never got: 'unheard' carries the "not heard" text).
    if (kind === 'character' || !this.mirrorTranscripts()) return;
    void this.post(`🎙️ **${name}**: ${text}`);
  }

  mirrorTranscripts(): boolean {
    return this.deps.store.getBooleanSetting(this.guildId, 'mirrorTranscripts', this.deps.config.voice.mirrorTranscripts);
  }

  // ---- text bridge ---------------------------------------------------------------------

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
    const rowId = this.pending.persist(msg.id, composed, chatId);
    if (this._state === 'starting' || waitingForResume || !voxta || this.pending.holding) {
      if (waitingForResume && this.pending.heldCount === 0) this.log.info('guild session: holding messages until the stored chat is resumed');
      this.pending.mark(msg, composed, rowId);
      return;
    }
    if (voxta.state !== 'ready') {
      // The Voxta client queues and delivers in order after it is back; show the user it waits.
      this.pending.mark(msg, composed, rowId);
    }
    this.deliver(voxta, msg.id, composed, 'text', rowId);
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
    if (discordId) this.pending.expectEcho(discordId, text, rowId);
    try {
      voxta.send(text);
    } catch (err) {
      // No chat to deliver to (closed under us): say so instead of dropping it silently.
      this.log.warn({ err: errorInfo(err) }, 'guild session: a message could not be queued for Voxta');
      this.pending.forget([rowId]);
      void this.post('That message could not reach the character: no chat is running. Start one with /start.');
    }
  }

  /** The chat is (back) up: the held messages go out now, before any new one (see PendingMessages). */
  private deliverHeld(voxta: VoxtaSessionPort, chatId: string, history: readonly HistoryMessage[]): void {
    this.pending.holding = false;
    // Stopped while joining voice: the rows were kept or abandoned by stop() already.
    if (this.voxta !== voxta || !this.bridging) return;
    this.pending.deliverHeld(chatId, history, (discordId, text, rowId) => this.deliver(voxta, discordId, text, 'text', rowId));
  }

  /**
   * Messages waiting for a chat that will not come (it is gone, or was stopped): forgotten, marked
   * ❌, and the channel told which ones did not reach the character.
   */
  dropPending(): void {
    this.pending.abandon();
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
    this.pending.written(info.text);
  };
  private readonly onVoxtaChatLost = (info: { chatId: string }): void => {
    this.log.warn({ chatId: info.chatId }, 'guild session: the chat could not be resumed after reconnecting');
    if (!this.bridging) return;
    void this.stop('chat lost', { notice: 'The chat no longer exists on Voxta (it may have been deleted there), so I stopped. Start a new one with /start.' });
  };
  private readonly onVoxtaReconnected = (): void => {
    if (this._state === 'reconnecting') this.transition('active', 'Voxta resumed');
    this.pending.lastStoredMessageId = this.voxta?.chat?.messages.at(-1)?.messageId ?? this.pending.lastStoredMessageId;
    // Replies the lost connection was streaming will never end: show them as cut.
    this.replies.cutAllNow();
    this.pending.clearMarks();
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
        this.replies.generating();
        break;
      case 'replyChunk': {
        if (this.turnStartedAt !== undefined) {
          const ms = Date.now() - this.turnStartedAt;
          this.turnStartedAt = undefined;
          this.latency.add(ms);
          this.deps.metrics.turnLatency.observe(ms / 1000);
        }
        this.replies.chunk(m.messageId, m.text);
        break;
      }
      case 'replyEnd':
      case 'replyCancelled': {
        const chatId = this.voxta?.chatId;
        this.replies.ended(m.messageId, m.$type === 'replyCancelled', (ids) => {
          if (chatId) for (const id of ids) this.link(id, m.messageId, chatId);
        });
        break;
      }
      case 'update': {
        this.pending.lastStoredMessageId = m.messageId;
        if (m.role.toLowerCase() !== 'user') {
          // The stored text of a reply we showed changed (cut after an interruption, edited).
          this.replies.corrected(m.messageId, m.text);
          break;
        }
        this.pending.echoed(m.text, m.messageId, this.voxta?.chatId);
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

  private link(discordMessageId: string, voxtaMessageId: string, chatId: string): void {
    try {
      this.deps.store.linkMessage({ discordMessageId, guildId: this.guildId, chatId, voxtaMessageId });
    } catch (err) {
      this.log.warn({ err: errorInfo(err) }, 'guild session: storing a message link failed');
    }
  }

  // ---- context -------------------------------------------------------------------------

  /** Voice members changed (join/leave/move) in this guild: update Voxta's context, debounced. */
  voiceMembersChanged(channelIds: Array<string | undefined>): void {
    if (!this.bridging) return;
    this.voiceAttachment.membersChanged(channelIds);
  }

  private scheduleContextUpdate(): void {
    if (this.contextTimer) clearTimeout(this.contextTimer);
    this.contextTimer = setTimeout(() => {
      this.contextTimer = undefined;
      const voxta = this.voxta;
      if (!voxta || !this.bridging || !this.boundTextChannelId) return;
      void voxta.updateContext(this.contexts(this.boundTextChannelId, this.voiceAttachment.channelId));
    }, this.deps.contextDebounceMs ?? CONTEXT_DEBOUNCE_MS);
    this.contextTimer.unref();
  }

  /** Where the character is: the guild, the channels and who is present. */
  contexts(textChannelId: string, voiceChannelId: string | undefined): ContextItem[] {
    const guild = this.deps.guild();
    if (!guild) return [];
    const lines = [`You are talking with people on the Discord server "${guild.name}", in the text channel #${guild.channelName(textChannelId) ?? 'unknown'}.`];
    if (voiceChannelId && this.voiceAttachment.connection) {
      const present = this.voiceAttachment.present(voiceChannelId);
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
    if (channelId === this.voiceAttachment.channelId) {
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
      voice: this.voiceStatus(),
      latency: { p50: this.latency.percentile(50), p95: this.latency.percentile(95), samples: this.latency.count },
      pendingMessages: this.pending.count,
    };
  }

  private voiceStatus(): SessionStatus['voice'] {
    const voice = this.voiceAttachment.connection;
    return voice ? { channelId: voice.channelId, state: voice.state } : undefined;
  }

  /** Completes owed by the live session, and sent over this guild's whole run (closed sessions too). */
  playbackStats(): { owed: number; sent: number } {
    const st = this.voxta?.playback.stats;
    return { owed: st?.owed ?? 0, sent: this.completesSentBefore + (st?.completesSent ?? 0) };
  }
}

