/**
 * One guild's conversation: its Voxta chat session, its bound text channel and (when joined) its
 * voice connection, driven by an explicit state machine:
 *
 *   idle ──start/resume──▶ starting ──ok──▶ active ◀──resumed── reconnecting
 *    ▲                        │  ▲ reopen with voice │  Voxta lost ──▶ │
 *    └────────── stopping ◀───┴──┴── stop / failed / channel gone ────┘
 *
 * Concurrency is designed, not hoped for: every state-changing operation (start, resume, stop,
 * join, leave, the reopen with voice, and the events that stop or move a session) runs through one
 * serial queue per guild (`GuildOperations`) with an `AbortSignal`, and a stop preempts whatever
 * is in flight. An operation registers what it acquires on the session as it goes (the Voxta
 * connection, the voice connection, the admission slots), every long await in it is abortable,
 * and the one teardown (`teardown`) releases whatever is registered. So after `stop()` returns the
 * bot is not in voice, both slots are free, the state is `idle` and the record is inactive (unless
 * kept for a restart), whatever was in flight; a voice join that completes after the stop is left
 * at once, and nothing is saved or announced for it.
 *
 * Stored state follows the machine through `SessionRecord` (a failed write is retried, never
 * wedges the guild): a record is `active` from the moment a chat has started until an explicit
 * stop (so a restart resumes it), and a failed start leaves the previous record as it was.
 *
 * The session decides what happens when; the details live with their own parts:
 * `PendingMessages` (user messages until Voxta has stored them: ⏳/❌, SQLite rows, held delivery),
 * `ReplyStream` (replies streamed into the channel), `ReplyControls` (the buttons under the latest
 * reply and what Voxta's deletions do to the shown messages), `VoiceAttachment` (the voice
 * connection and its slot) and `session-notices` (the sentences for failures). Server admins'
 * rules come in through `deps.admin`: the age gate (explicit characters only in age-restricted
 * channels: checked before a chat opens, again with its real cast, before a /join, and when a
 * channel, the cast or the setting changes: then the chat stops, kept for /resume), who may be
 * listened to in voice (`TalkGate`) and the barge-in mode of the server.
 */
import { EventEmitter } from 'node:events';
import type { Config } from '../config.js';
import { errorInfo, type Logger } from '../log.js';
import type { CastEntry, GuildSessionRecord, Store } from '../store/store.js';
import { senderOf, type ChatInfo } from '../voxta/chat-info.js';
import { VoxtaNotFoundError } from '../voxta/errors.js';
import { attachVisionResponder, captureCommand, type VisionResponder } from '../voxta/vision.js';
import type { CloseOutcome } from '../voxta/chat-session.js';
import type { AppTriggerMessage, ContextItem, HistoryMessage, ReplyChunkMessage, ServerMessage, ServerUpdateMessage } from '../voxta/messages.js';
import { attributeSpeaker, capText, sanitizeUserText } from '../voxta/user-text.js';
import type { Admission } from './admission.js';
import { AgeRestrictionError, type AgeGate } from './age-gate.js';
import type { BotMetrics } from './bot-metrics.js';
import { emoteReaction } from './app-triggers.js';
import { ChannelImages, discordCdnAllow, type ImageRef } from './channel-images.js';
import { abortable, abortReason, checkNotAborted, GuildOperations, OperationCancelledError } from './guild-operations.js';
import type { GuildSettings } from './guild-settings.js';
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
import { ReplyControls, type ReplyAction } from './reply-controls.js';
import { ReplyStream } from './reply-stream.js';
import { replyTarget, type AvatarCache, type Speaker } from './reply-targets.js';
import { credentialsRefusedNotice, isAuthRefusal } from './session-notices.js';
import { SessionRecord, type RecordProblem } from './session-record.js';
import type { TalkGate } from './talk-gate.js';
import { UserFacingError } from './user-errors.js';
import { VoiceAttachment, type VoicePlan } from './voice-attachment.js';
import type { WebhookPool } from './webhook-pool.js';

// Moved into their own modules; still importable from here.
export { credentialsRefusedNotice, isAuthRefusal, notDeliveredNotice } from './session-notices.js';
export { VOICE_IDLE_LEAVE_MS } from './voice-attachment.js';

export type GuildSessionState = 'idle' | 'starting' | 'active' | 'reconnecting' | 'stopping';

const TRANSITIONS: Record<GuildSessionState, readonly GuildSessionState[]> = {
  idle: ['starting'],
  starting: ['active', 'stopping'],
  // active → starting: the chat is reopened with voice (/join on a text-only chat).
  active: ['reconnecting', 'stopping', 'starting'],
  reconnecting: ['active', 'stopping', 'starting'],
  stopping: ['idle'],
};

/** Longest user text sent as one message; see `text-bridge` notes in the README. */
export const MAX_SEND_CHARS = 6000;
const TRUNCATED_EMOJI = '✂️';
/** What a message that is only a picture says to the character. */
export const PICTURE_PLACEHOLDER = '(shows a picture)';
const NOT_DELIVERED_EMOJI = '❌';
const CONTEXT_DEBOUNCE_MS = 1500;
/** The same Voxta error is posted again only after this long. */
const ERROR_REPEAT_MS = 5 * 60_000;
/** A stop waits this long at most for Discord to take a notice or the last edits of a cut reply. */
const STOP_POST_BOUND_MS = 3000;

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
  /** Retry period for a stored record that could not be written (tests shorten it). */
  recordRetryMs?: number;
  /** The bot's channel webhooks (characters post as themselves); without it the bot posts replies itself. */
  webhooks?: WebhookPool;
  /** Characters' avatars from Voxta (for their webhooks). */
  avatars?: AvatarCache;
  /** Server admins' rules (settings, who may talk, explicit characters); absent: none applies. */
  admin?: SessionAdminDeps;
}

export interface SessionAdminDeps {
  settings: GuildSettings;
  gate: TalkGate;
  ageGate: AgeGate;
}

export interface StartRequest {
  /** The main character (the first of `cast`). */
  characterId: string;
  characterName: string;
  textChannelId: string;
  voiceChannelId: string | undefined;
  /** A group chat: every character, the main one first (`startChat {characterIds}`). */
  cast?: CastEntry[];
  /** A scenario chat (`startChat {scenarioId}`): its roles bring their default characters. */
  scenario?: { id: string; name: string };
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

export interface StopOptions {
  /** Shutdown, or Voxta gone: the record stays active (resumed later), held messages stay stored. */
  keepActive?: boolean;
  /** Send `stopChat` before closing (default: unless `keepActive`). */
  stopChat?: boolean;
  /** One sentence posted in the bound channel first. */
  notice?: string;
  /** The bot left the guild: everything stored for it is forgotten. */
  forget?: boolean;
}

export interface SessionStatus {
  state: GuildSessionState;
  record: GuildSessionRecord | undefined;
  /** Who speaks in the running chat (characters, then the narrator of a scenario), as Voxta says now. */
  cast: Array<{ id: string; name: string; role?: string; narrator?: boolean }> | undefined;
  /** Why characters cannot post under their own name and avatar here (webhooks), or undefined. */
  postingProblem: string | undefined;
  voxtaState: VoxtaSessionState | 'none';
  voice: { channelId: string; state: string } | undefined;
  latency: { p50: number | undefined; p95: number | undefined; samples: number };
  pendingMessages: number;
  /** Why the stored record is behind (a database write failed), while it is. */
  storeProblem: RecordProblem | undefined;
  /** Whether posted pictures are shown to the character ('absent': the server has no vision service). */
  pictures: 'off' | 'present' | 'absent' | 'unknown';
}

/** What a Voxta connection that is being brought up needs to open its chat. */
interface BringUp {
  kind: 'start' | 'resume';
  /** The characters the chat is expected to have (checked against the age gate before opening). */
  characterIds: readonly string[];
  textChannelId: string;
  voiceChannelId: string | undefined;
  /** The voice decision (its slot already taken when `join`). */
  plan: VoicePlan;
  begin: (voxta: VoxtaSessionPort) => Promise<Opened>;
}

/** What a chat that has just been opened is, for the stored record. */
interface Opened {
  characterId: string;
  characterName: string;
  chatId: string;
  cast?: CastEntry[];
  scenario?: { id: string; name: string };
}

type TeardownOptions = StopOptions & {
  /** A failed start: the stored record stays exactly as it was. */
  keepRecord?: boolean;
  /** Held messages stay stored (an automatic resume will try again). */
  keepPending?: boolean;
};

export class GuildSession extends EventEmitter {
  readonly guildId: string;
  private _state: GuildSessionState = 'idle';
  /** The Voxta connection of this session, registered as soon as it exists (a stop closes it). */
  private voxta: VoxtaSessionPort | undefined;
  /** Listeners bound to `voxta` (to detach exactly those). */
  private voxtaListeners: Array<[string, (...args: never[]) => void]> = [];
  /** One state-changing operation at a time; a stop preempts. */
  private readonly ops = new GuildOperations();
  /** The stop in progress, which a second stop waits for. */
  private stopInFlight: Promise<boolean> | undefined;
  /** The stop in progress keeps the record active (shutdown, Voxta gone). */
  private stoppingKeepsActive = false;
  /** The stored record as this process intends it (failed writes retried). */
  private readonly records: SessionRecord;
  /** Voice connection, its slot, and the empty-channel leave / come-back. */
  private readonly voiceAttachment: VoiceAttachment;
  /** User messages between "accepted" and "stored in the chat" (rows, ⏳/❌ marks, echoes). */
  private readonly pending: PendingMessages;
  /** Carries guildId always, and chatId while a chat runs. */
  private log: Logger;
  private readonly latency = new RecentSamples(50);
  /** Humans who have written in this session, to decide whether names are attached. */
  private readonly speakers = new Set<string>();
  /** The names of those who wrote recently, newest last (for Voxta's context: who is present). */
  private readonly recentWriters = new Map<string, string>();
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
  private boundTextChannelId: string | undefined;
  /** Pictures posted in the bound channel: the latest answers Voxta's capture requests. */
  private readonly images: ChannelImages;
  /** Answers the live Voxta connection's capture requests (vision on). */
  private visionResponder: VisionResponder | undefined;
  /** Messages carrying a picture, whose delivery first tells Voxta to look (`/capture`). */
  private readonly picturesFor = new Set<string>();
  /** The buttons under the latest reply, and what Voxta's deletions do to the shown messages. */
  private readonly controls: ReplyControls;
  /** Explicit characters of the chat (by name); undefined while Voxta could not tell. */
  private explicitNames: string[] | undefined = [];

  constructor(private readonly deps: GuildSessionDeps) {
    super();
    this.guildId = deps.guildId;
    this.log = deps.log.child({ guildId: deps.guildId });
    this.records = new SessionRecord({
      guildId: deps.guildId,
      store: deps.store,
      log: () => this.log,
      retryMs: deps.recordRetryMs,
      onWriteFailed: () => deps.metrics.storeWriteFailures.inc(),
    });
    const post = (text: string): Promise<void> => this.post(text);
    this.pending = new PendingMessages({
      guildId: deps.guildId,
      store: deps.store,
      log: () => this.log,
      channel: () => this.channel(),
      post,
      link: (discordId, voxtaId, chatId) => this.link(discordId, voxtaId, chatId),
    });
    this.controls = new ReplyControls({
      store: deps.store,
      log: () => this.log,
      channel: () => this.channel(),
      chatId: () => this.voxta?.chatId,
    });
    this.replies = new ReplyStream({
      decorate: (messageId, channel) => this.controls.decorate(messageId, channel),
      channel: () => this.channel(),
      log: () => this.log,
      // A reply to a voice turn is heard; it is shown only when transcripts are mirrored.
      showsReplies: () => !(this.lastInput === 'voice' && this.voiceAttachment.audible && !this.mirrorTranscripts()),
      editIntervalMs: deps.editIntervalMs,
      target: (channel, speaker) =>
        replyTarget(
          { guildId: deps.guildId, pool: deps.webhooks, webhooks: deps.guild()?.webhooks, avatars: deps.avatars, log: this.log },
          channel,
          speaker,
          this.severalVoices() || speaker?.narration === true,
        ),
    });
    this.images = new ChannelImages({ log: () => this.log, allowUrl: discordCdnAllow(deps.config.discord.cdnUrl) });
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
      enqueue: (kind, fn) => this.ops.run(kind, fn),
      post,
      mirror: (kind, name, text) => this.mirror(kind, name, text),
      presenceChanged: () => {
        this.scheduleContextUpdate();
        this.prefetchVoiceRoles();
      },
      // A resume after a restart does not rejoin a channel Discord put us out of.
      voiceLost: () => {
        this.records.update({ voiceChannelId: undefined });
        this.scheduleContextUpdate();
      },
      idleLeaveMs: deps.voiceIdleLeaveMs,
      voiceConfig: () => ({ ...deps.config.voice, bargeIn: deps.admin?.settings.bargeIn(deps.guildId) ?? deps.config.voice.bargeIn }),
      mayListen: (userId) => {
        const verdict = deps.admin?.gate.admitVoice(deps.guildId, userId);
        if (verdict?.notice) this.tell(verdict.notice);
        return verdict?.ok ?? true;
      },
    });
  }

  get state(): GuildSessionState {
    return this._state;
  }

  /** The stored record as this process intends it. */
  get record(): GuildSessionRecord | undefined {
    return this.records.get();
  }

  /** True while messages in the bound channel go to Voxta. */
  get bridging(): boolean {
    return this._state === 'active' || this._state === 'reconnecting';
  }

  /** An operation runs or waits (an automatic resume should not get in its way). */
  get busy(): boolean {
    return this.ops.running !== undefined || this.ops.queued.length > 0;
  }

  get textChannelId(): string | undefined {
    return this.bridging || this._state === 'starting' ? this.boundTextChannelId : undefined;
  }

  /** Messages in this channel are this session's business now (bridged, held, or refused visibly). */
  ownsChannel(channelId: string): boolean {
    return this._state !== 'idle' && channelId === this.boundTextChannelId;
  }

  get voiceChannelId(): string | undefined {
    return this.voiceAttachment.channelId;
  }

  get voxtaState(): VoxtaSessionState | 'none' {
    return this.voxta?.state ?? 'none';
  }

  /** Resolves once no operation runs or waits (tests and shutdown). */
  settled(): Promise<void> {
    return this.ops.idle();
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
  start(req: StartRequest): Promise<StartOutcome> {
    this.refuseSecondStart();
    return this.ops.run('start', (signal) =>
      this.open(signal, { chatIdToResume: undefined, keepPendingOnFailure: false }, {
        kind: 'start',
        characterIds: [req.characterId],
        textChannelId: req.textChannelId,
        voiceChannelId: req.voiceChannelId,
        plan: { join: false, note: undefined },
        begin: async (voxta) => {
          const contexts = this.contexts(req.textChannelId, req.voiceChannelId, req.cast);
          const ids = req.cast?.map((c) => c.id) ?? [req.characterId];
          const chat = req.scenario
            ? await voxta.startChat({ scenarioId: req.scenario.id, contexts })
            : ids.length > 1
              ? await voxta.startChat({ characterIds: ids, contexts })
              : await voxta.startChat({ characterId: req.characterId, contexts });
          return opened(chat, { characterId: req.characterId, characterName: req.characterName, cast: req.cast, scenario: req.scenario });
        },
      }),
    );
  }

  /** Resumes the stored chat, or the given one. */
  resume(req: ResumeRequest = {}): Promise<StartOutcome> {
    this.refuseSecondStart();
    return this.ops.run('resume', (signal) => {
      const stored = this.record;
      const chatId = req.chatId ?? stored?.chatId;
      if (!chatId || !stored) throw new UserFacingError('There is no earlier chat to resume in this server. Start one with /start.');
      const textChannelId = req.textChannelId ?? stored.textChannelId;
      const voiceChannelId = req.voiceChannelId === null ? undefined : (req.voiceChannelId ?? stored.voiceChannelId);
      return this.open(signal, { chatIdToResume: chatId, keepPendingOnFailure: req.keepPendingOnFailure ?? false }, {
        kind: 'resume',
        characterIds: [stored.characterId],
        textChannelId,
        voiceChannelId,
        plan: { join: false, note: undefined },
        begin: async (voxta) => {
          const res = await voxta.resumeChat({ chatId, contexts: this.contexts(textChannelId, voiceChannelId, stored.cast) });
          return opened(res, stored, chatId);
        },
      });
    });
  }

  /**
   * An automatic resume of `chatId` failed for good: the stored chat is marked inactive (kept for
   * /resume) and its held messages are dropped, unless something started meanwhile (an admin's
   * /start or /resume won the race: theirs stands). Resolves whether it gave up.
   */
  giveUpStoredChat(chatId: string | undefined, reason: string): Promise<boolean> {
    return this.ops.run('give up the stored chat', async () => {
      const rec = this.record;
      if (this._state !== 'idle' || !rec?.active || rec.chatId !== chatId) return false;
      await this.teardown(reason, {});
      return true;
    });
  }

  private refuseSecondStart(): void {
    if (this._state === 'starting' || this.ops.has('start') || this.ops.has('resume')) {
      throw new UserFacingError('A chat is already being started in this server. Wait a moment, then check /status.');
    }
  }

  private async open(signal: AbortSignal, o: { chatIdToResume: string | undefined; keepPendingOnFailure: boolean }, up: BringUp): Promise<StartOutcome> {
    checkNotAborted(signal);
    if (this._state !== 'idle') {
      const name = this.record?.characterName ?? 'a character';
      throw new UserFacingError(`A chat with ${name} is already running in this server. Use /stop first.`);
    }
    const guild = this.deps.guild();
    if (!guild) throw new UserFacingError('The bot is not in this server any more.');
    if (!guild.textChannel(up.textChannelId)) throw new UserFacingError('I cannot post in that text channel (it is gone, or I lack access). Pick another one.');
    if (!this.deps.admission.tryAcquireChat(this.guildId)) {
      throw new UserFacingError(
        `Voxta already runs ${this.deps.admission.maxChats} chat${this.deps.admission.maxChats === 1 ? '' : 's'}, the most it allows (VOXTA_MAX_CHATS). Try again when another server has stopped its chat.`,
      );
    }
    // From here on this operation owns the guild's chat slot; the teardown gives it back.
    this.transition('starting', up.kind);
    this.openingChatId = o.chatIdToResume;
    this.boundTextChannelId = up.textChannelId;
    this.announced.clear();
    let outcome: { chatId: string; voiceNote: string | undefined };
    try {
      // Decide about voice before connecting: the Voxta connection declares audio input only when
      // this guild will stream it (Voxta's speech pipeline is shared by all its chats).
      const plan = up.voiceChannelId ? this.voiceAttachment.plan(guild, up.voiceChannelId) : up.plan;
      outcome = await this.bringUp({ ...up, plan }, signal);
    } catch (err) {
      // Aborted by a stop: that stop tears down what is registered (nothing is saved or said here).
      if (signal.aborted) throw abortReason(signal);
      this.log.warn({ err: errorInfo(err) }, `guild session: ${up.kind} failed`);
      await this.teardown(`${up.kind} failed`, { keepRecord: true, keepPending: o.keepPendingOnFailure, stopChat: true });
      throw err;
    }
    return this.commit(up.kind, outcome.chatId, outcome.voiceNote);
  }

  /**
   * Opens a Voxta connection (registered at once), checks the age gate (explicit characters),
   * joins voice when planned, opens the chat (its real cast checked again) and stores the record.
   * Voice comes before the chat: a new chat opens with the character's greeting, which is then
   * spoken instead of being acknowledged as text-only. Every await is abortable; what it acquired
   * stays registered for the teardown.
   */
  private async bringUp(up: BringUp, signal: AbortSignal): Promise<{ chatId: string; voiceNote: string | undefined }> {
    const voxta = this.deps.createVoxta(this.guildId, { voice: up.plan.join });
    this.voxtaHasAudio = up.plan.join;
    this.adoptVoxta(voxta);
    await abortable(voxta.connect(), signal);
    // Voxta answers: may these characters run in these channels (the voice one only if joined)?
    this.explicitNames = await this.ageCheck(up.characterIds, up.textChannelId, up.plan.join ? up.voiceChannelId : undefined, signal);
    const voiceNote = up.plan.join && up.voiceChannelId ? await this.voiceAttachment.connect(up.voiceChannelId, signal) : up.plan.note;
    checkNotAborted(signal);
    const started = await abortable(up.begin(voxta), signal);
    // The cast Voxta opened may hold more characters than asked for (a resumed group chat).
    const cast = voxta.chat?.characters.map((c) => c.id) ?? [];
    if (cast.some((id) => !up.characterIds.includes(id))) {
      this.explicitNames = await this.ageCheck(cast, up.textChannelId, this.voiceAttachment.channelId, signal);
    }
    // Stored before the session counts as running: a chat we could not record would not be
    // resumed after a restart, so it is better refused now.
    const saved = this.records.trySave({
      guildId: this.guildId,
      characterId: started.characterId,
      characterName: started.characterName,
      chatId: started.chatId,
      textChannelId: up.textChannelId,
      voiceChannelId: this.voiceAttachment.channelId ?? (up.plan.join ? up.voiceChannelId : undefined),
      active: true,
      ...(started.cast ? { cast: started.cast } : {}),
      ...(started.scenario ? { scenario: started.scenario } : {}),
    });
    if (!saved.ok) {
      throw new UserFacingError(`I could not save this chat in my database (${saved.error}), so I did not keep it running. Check the disk and DATA_DIR, then try again.`);
    }
    return { chatId: started.chatId, voiceNote };
  }

  /** The chat runs: state, announcements, the held messages. Nothing here can fail half-way. */
  private commit(kind: 'start' | 'resume', chatId: string, voiceNote: string | undefined): StartOutcome {
    const voxta = this.voxta!;
    // Messages typed from now until the held ones are delivered queue behind them.
    this.pending.holding = true;
    const history = voxta.chat?.messages ?? [];
    this.pending.lastStoredMessageId = history.at(-1)?.messageId;
    // (A new chat's greeting may have come in already: it is the latest then.)
    this.controls.latestMessageId ??= history.at(-1)?.messageId;
    this.log = this.deps.log.child({ guildId: this.guildId, chatId });
    this.log.info({ chatId, sessionId: voxta.sessionId }, `guild session: chat ${kind === 'start' ? 'started' : 'resumed'}`);
    this.transition('active', `${kind} ok`);
    this.deps.metrics.sessionsStarted.inc({ kind });
    // Joined while starting (presence changes were not acted on then): an empty channel is left
    // after its grace period from now on, as any other.
    this.voiceAttachment.checkOccupancy();
    const listening = this.voiceAttachment.listeningNotice();
    if (listening) this.tell(listening);
    this.deliverHeld(voxta, chatId, history);
    return { record: this.record!, voiceNote, resumed: kind === 'resume' };
  }

  /**
   * Stops the chat and leaves voice, cancelling whatever operation is in flight. `keepActive`
   * (shutdown, Voxta gone) leaves the stored record active so it is resumed later; otherwise it
   * is marked inactive, kept for `/resume`. Resolves true when a chat was running or starting.
   * Never rejects: every step is guarded and the session always ends `idle` with its slots free.
   */
  stop(reason: string, opts: StopOptions = {}): Promise<boolean> {
    // A second stop waits for the first, then applies its own wishes (e.g. /stop after a
    // shutdown-style stop still marks the record inactive).
    if (this.stopInFlight) return this.stopInFlight.then(() => this.stop(reason, opts));
    const why = reason === 'shutdown' ? 'Cancelled: the bot is shutting down.' : 'Cancelled: the chat in this server was stopped meanwhile.';
    const p = this.ops.preempt('stop', why, () => this.teardown(reason, opts)).catch((err: unknown) => {
      this.log.error({ err: errorInfo(err, true) }, 'guild session: stop failed unexpectedly');
      return false;
    });
    const tracked = p.finally(() => {
      if (this.stopInFlight === tracked) this.stopInFlight = undefined;
    });
    this.stopInFlight = tracked;
    return tracked;
  }

  /**
   * The one teardown: releases everything registered (voice, the Voxta connection, the slots),
   * settles the record and the held messages, and ends `idle`. Each step is guarded: a failure is
   * logged with context and the next step still runs.
   */
  private async teardown(reason: string, opts: TeardownOptions): Promise<boolean> {
    if (this._state === 'idle') {
      // Nothing runs; the stored chat may still be waiting for an automatic resume.
      if (opts.forget) this.records.forget();
      else if (!opts.keepActive && !opts.keepRecord && this.record?.active) {
        this.records.setActive(false);
        if (!opts.keepPending) this.guard('dropping held messages', () => this.pending.abandon());
      }
      return false;
    }
    this.stoppingKeepsActive = opts.keepActive === true;
    this.transition('stopping', reason);
    try {
      this.voiceAttachment.forgetAway();
      if (opts.notice) await this.bounded(this.post(opts.notice));
      this.replies.stopTyping();
      await this.guardAsync('removing the reply buttons', () => this.bounded(this.controls.clear()));
      if (this.contextTimer) clearTimeout(this.contextTimer);
      this.contextTimer = undefined;
      await this.guardAsync('leaving voice', () => this.voiceAttachment.leave(reason));
      // A reply still streaming is cut here: it says so.
      await this.guardAsync('cutting the streaming replies', () => this.bounded(this.replies.cutAll()));
      const voxta = this.voxta;
      const closed = voxta ? await this.closeVoxta(voxta, { stopChat: opts.stopChat ?? !opts.keepActive }) : { chatStopConfirmed: false };
      if (opts.forget) this.records.forget();
      else if (!opts.keepActive && !opts.keepRecord) this.records.setActive(false);
      // Kept active (shutdown, Voxta gone) or a failed automatic resume: the held messages stay
      // stored and are delivered when the chat is resumed. Stopped for good: they will not be
      // delivered, and the channel is told.
      if (!opts.keepActive && !opts.keepPending) this.guard('dropping held messages', () => this.pending.abandon({ unconfirmedLost: closed.chatStopConfirmed }));
      this.pending.holding = false;
      this.pending.clearEchoes();
      this.speakers.clear();
      this.images.clear();
      this.picturesFor.clear();
      this.recentWriters.clear();
    } finally {
      // Whatever failed above, the slots are free and the machine is idle (and not typing: a
      // reply that began while the teardown ran may have started the indicator again).
      this.replies.stopTyping();
      this.deps.admission.releaseChat(this.guildId);
      this.voxtaHasAudio = false;
      this.openingChatId = undefined;
      this.explicitNames = [];
      this.stoppingKeepsActive = false;
      this.transition('idle', reason);
      this.log = this.deps.log.child({ guildId: this.guildId });
    }
    return true;
  }

  /**
   * Detaches and closes a Voxta connection (bounded), settling the playback acknowledgements it
   * owes. Until Voxta confirms the stop, the echoes of user messages it stored still count (they
   * arrive before `chatClosed`): what is echoed meanwhile is delivered, not reported lost.
   */
  private async closeVoxta(voxta: VoxtaSessionPort, opts: { stopChat: boolean }): Promise<CloseOutcome> {
    if (this.voxta === voxta) this.voxta = undefined;
    this.detachVoxta(voxta);
    // Stops answering at once (in-flight uploads are aborted); not waited for.
    this.visionResponder?.close().catch(() => undefined);
    this.visionResponder = undefined;
    const chatId = voxta.chatId;
    const onUpdate = (m: ServerUpdateMessage): void => {
      if (m.role.toLowerCase() === 'user') this.pending.echoed(m.text, m.messageId, chatId);
    };
    voxta.on('update', onUpdate);
    this.guard('acknowledging owed playback', () => {
      // Replies that ended but were never acknowledged get their complete now (protocol §4c).
      voxta.playback.abortAll();
      this.completesSentBefore += voxta.playback.stats.completesSent;
    });
    let outcome: CloseOutcome = { chatStopConfirmed: false };
    // close() stops the chat first (bounded); on shutdown closing the connection is enough, and
    // Voxta disposes the chat itself (protocol §5.4).
    await this.guardAsync('closing the Voxta connection', async () => {
      outcome = await voxta.close({ stopChat: opts.stopChat });
    });
    voxta.off('update', onUpdate);
    return outcome;
  }

  /** Waits for `p`, but not longer than a stop should wait for Discord; never rejects. */
  private async bounded(p: Promise<unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STOP_POST_BOUND_MS);
      timer.unref();
    });
    await Promise.race([p.then(() => undefined, () => undefined), limit]);
    clearTimeout(timer);
  }

  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err: errorInfo(err, true), step: what }, 'guild session: a stop step failed; going on');
    }
  }

  private async guardAsync(what: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.log.error({ err: errorInfo(err, true), step: what }, 'guild session: a stop step failed; going on');
    }
  }

  // ---- voice ---------------------------------------------------------------------------

  /** `/join`: joins (or moves to) a voice channel in a running session. */
  joinVoiceChannel(channelId: string): Promise<string | undefined> {
    return this.ops.run('join', async (signal) => {
      if (!this.bridging) throw new UserFacingError('No chat is running in this server. Start one with /start.');
      if (this.voiceAttachment.channelId === channelId) return undefined;
      this.voiceAttachment.forgetAway();
      const guild = this.deps.guild();
      if (!guild) throw new UserFacingError('The bot is not in this server any more.');
      await this.ageCheckRunning(guild, channelId, signal);
      if (!this.bridging) throw new UserFacingError('No chat is running in this server. Start one with /start.');
      if (!this.voxtaHasAudio) return this.reopenWithVoice(guild, channelId, signal);
      await this.voiceAttachment.leave('moving');
      const note = await this.voiceAttachment.planAndConnect(guild, channelId, signal);
      this.records.update({ voiceChannelId: this.voiceAttachment.connection ? channelId : undefined });
      const listening = this.voiceAttachment.listeningNotice();
      if (listening) this.tell(listening);
      return note;
    });
  }

  /**
   * The Voxta connection was opened text-only: reopen the same chat with audio input, keeping the
   * chat slot all along (another guild cannot take it in between). When the reopen fails the chat
   * is not left half-alive: it is gone (record inactive, one notice), or it stays stored as active
   * and the bot core resumes it with back-off (`voxtaFailed`), with one notice.
   */
  private async reopenWithVoice(guild: GuildPort, channelId: string, signal: AbortSignal): Promise<string | undefined> {
    const plan = this.voiceAttachment.plan(guild, channelId);
    if (!plan.join) return plan.note;
    const rec = this.record;
    const chatId = this.voxta?.chatId ?? rec?.chatId;
    const textChannelId = this.boundTextChannelId;
    // Read before the old connection is closed (it holds the cast).
    const castIds = this.castIds();
    if (!rec || !chatId || !textChannelId) {
      this.deps.admission.releaseVoice(this.guildId);
      throw new UserFacingError('The running chat cannot be reopened with voice right now; try /stop and /resume.');
    }
    this.transition('starting', 'reopening with voice');
    this.openingChatId = chatId;
    // Messages typed from now on wait for the reopened chat.
    this.pending.holding = true;
    const old = this.voxta;
    if (old) await this.closeVoxta(old, { stopChat: true });
    // What the old connection was streaming never ends now: shown as cut, and not typing. Its
    // reconnect notices belong to it too.
    this.replies.cutAllNow();
    this.replies.stopTyping();
    this.announced.clear();
    checkNotAborted(signal);
    let outcome: { chatId: string; voiceNote: string | undefined };
    try {
      outcome = await this.bringUp(
        {
          kind: 'resume',
          characterIds: castIds,
          textChannelId,
          voiceChannelId: channelId,
          plan,
          begin: async (voxta) => {
            const res = await voxta.resumeChat({ chatId, contexts: this.contexts(textChannelId, channelId, rec.cast) });
            return opened(res, rec, chatId);
          },
        },
        signal,
      );
    } catch (err) {
      if (signal.aborted) throw abortReason(signal);
      this.log.warn({ err: errorInfo(err) }, 'guild session: reopening the chat with voice failed');
      if (err instanceof VoxtaNotFoundError) {
        await this.teardown('reopen failed: the chat is gone', {
          notice: `I could not bring the chat with ${rec.characterName} into voice: it no longer exists on Voxta, so I stopped. Start a new one with /start.`,
        });
        throw new UserFacingError('The chat no longer exists on Voxta; start a new one with /start.');
      }
      // Resumed later with voice (the record names the channel), like after a restart.
      this.records.update({ voiceChannelId: channelId });
      const authRefused = isAuthRefusal(err);
      await this.teardown('reopen failed', {
        keepActive: true,
        keepPending: true,
        notice: authRefused
          ? credentialsRefusedNotice(rec.characterName)
          : `I could not reopen the chat with ${rec.characterName} with voice just now. I will keep trying to resume it; /stop cancels that.`,
      });
      this.emit('voxtaFailed', { authRefused });
      throw new UserFacingError('Reopening the chat with voice failed; I will keep trying to resume it (see the channel).');
    }
    return this.commit('resume', outcome.chatId, outcome.voiceNote).voiceNote;
  }

  /** `/leave`: leaves voice and goes on text-only. */
  leaveVoiceChannel(): Promise<boolean> {
    return this.ops.run('leave', async () => {
      const wasAway = this.voiceAttachment.isAway;
      this.voiceAttachment.forgetAway();
      if (!this.voiceAttachment.connection) {
        // Away (waiting to rejoin): not any more, and a resume after a restart does not rejoin either.
        if (wasAway) this.records.update({ voiceChannelId: undefined });
        return wasAway;
      }
      await this.voiceAttachment.leave('asked to leave');
      this.records.update({ voiceChannelId: undefined });
      return true;
    });
  }

  voiceStats(): Record<string, number> | undefined {
    return this.voiceAttachment.stats();
  }

  /** Opus packets that failed to decode, over this guild's whole run (earlier joins too). */
  decodeErrorsTotal(): number {
    return this.voiceAttachment.total('decodeErrors');
  }

  /** Members' utterances Voxta never got (held past their bound, session gone), over this guild's run. */
  unheardUtterancesTotal(): number {
    return this.voiceAttachment.total('utterancesUnheard');
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
    this.tell(`🎙️ **${name}**: ${text}`);
  }

  mirrorTranscripts(): boolean {
    try {
      return this.deps.store.getBooleanSetting(this.guildId, 'mirrorTranscripts', this.deps.config.voice.mirrorTranscripts);
    } catch (err) {
      this.log.warn({ err: errorInfo(err) }, 'guild session: reading the transcripts setting failed; using the default');
      return this.deps.config.voice.mirrorTranscripts;
    }
  }

  // ---- text bridge ---------------------------------------------------------------------

  /**
   * A human's message in the bound channel. With `resumePending` (the stored chat of this guild is
   * about to be resumed automatically) it is queued, marked ⏳, and delivered once the chat is back.
   * Every message this session owns is delivered once or visibly marked: while the chat is being
   * stopped for good it gets ❌; while it is stopped to be resumed later it is held (⏳).
   */
  async handleHumanMessage(msg: IncomingTextMessage, opts: { resumePending?: boolean } = {}): Promise<void> {
    const waitingForResume = (opts.resumePending === true && this._state === 'idle') || (this._state === 'stopping' && this.stoppingKeepsActive);
    if (this._state === 'stopping' && !waitingForResume) {
      if (msg.channelId === this.boundTextChannelId) msg.react(NOT_DELIVERED_EMOJI).catch(() => undefined);
      return;
    }
    if (!waitingForResume && (msg.channelId !== this.boundTextChannelId || !(this.bridging || this._state === 'starting'))) return;
    this.speakers.add(msg.authorId);
    this.noteWriter(msg.authorId, msg.authorName);
    // A proxied name (PluralKit, Tupperbox) is always said: it is who is speaking.
    const multi = this.speakers.size > 1 || msg.proxied !== undefined;
    const pictures = msg.images?.length && this.looksAtPicturesOf(msg.authorId) ? msg.images : undefined;
    // A picture without words still tells the character something was shown.
    const content = msg.content.trim() === '' && pictures ? PICTURE_PLACEHOLDER : msg.content;
    const composed = multi ? attributeSpeaker(msg.authorName, content, { maxChars: MAX_SEND_CHARS }) : this.capped(content);
    if (composed === '') return; // only a file or whitespace: nothing to say
    if (pictures && this.images.add(pictures, msg.authorName)) this.picturesFor.add(msg.id);
    // capText marks a cut with " […]" (a message that itself ends so is not a cut).
    const truncated = composed.endsWith(' […]') && !msg.content.trimEnd().endsWith(' […]');
    if (truncated) {
      msg.react(TRUNCATED_EMOJI).catch(() => undefined);
      this.tell(`Your message was longer than ${MAX_SEND_CHARS} characters; the character only got the first part.`);
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

  /**
   * Whether a member's pictures are offered to Voxta: vision is on, the server did not say it has
   * no vision service, and the member has not opted out of being listened to (their pictures are
   * never looked at either).
   */
  private looksAtPicturesOf(userId: string): boolean {
    if (!this.deps.config.voxta.vision || this.visionService() === 'absent') return false;
    try {
      return !this.deps.store.isVoiceOptedOut(this.guildId, userId);
    } catch (err) {
      this.log.warn({ err: errorInfo(err) }, 'guild session: reading opt-outs failed; not looking at this picture');
      return false;
    }
  }

  /**
   * Whether the Voxta server has a vision service, from its `configuration` (service types it has
   * configured): 'absent' when it lists services but none for vision; 'unknown' before it said.
   */
  visionService(): 'present' | 'absent' | 'unknown' {
    const services = this.voxta?.configuration?.services;
    if (!services || typeof services !== 'object') return 'unknown';
    const entries = Object.entries(services as Record<string, unknown>);
    if (entries.length === 0) return 'unknown';
    return entries.some(([type, list]) => /vision/i.test(type) && (!Array.isArray(list) || list.length > 0)) ? 'present' : 'absent';
  }

  /**
   * Discord resolved an image link of a message in the bound channel (an embed added after it was
   * posted): the picture becomes the channel's latest, and Voxta is asked to look at it.
   */
  imagesResolved(channelId: string, authorId: string, authorName: string, refs: ImageRef[]): void {
    if (!this.bridging || channelId !== this.boundTextChannelId || refs.length === 0 || !this.looksAtPicturesOf(authorId)) return;
    const voxta = this.voxta;
    if (!voxta || !this.images.add(refs, authorName)) return;
    try {
      voxta.send(captureCommand('Screen'));
    } catch (err) {
      this.log.debug({ err: errorInfo(err) }, 'guild session: asking Voxta to look at a resolved picture failed');
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
    if (discordId) this.pending.expectEcho(discordId, text, rowId);
    try {
      // The message carries a picture: Voxta is asked to look first (it then requests the image,
      // which the vision responder uploads), and the text lands on that same user message.
      if (discordId && this.picturesFor.delete(discordId)) voxta.send(captureCommand('Screen'));
      voxta.send(text);
    } catch (err) {
      // No chat to deliver to (closed under us): say so instead of dropping it silently.
      this.log.warn({ err: errorInfo(err) }, 'guild session: a message could not be queued for Voxta');
      this.pending.forget([rowId]);
      this.tell('That message could not reach the character: no chat is running. Start one with /start.');
    }
  }

  /** The chat is (back) up: the held messages go out now, before any new one (see PendingMessages). */
  private deliverHeld(voxta: VoxtaSessionPort, chatId: string, history: readonly HistoryMessage[]): void {
    this.pending.holding = false;
    // Stopped while joining voice: the rows were kept or abandoned by stop() already.
    if (this.voxta !== voxta || !this.bridging) return;
    this.pending.deliverHeld(chatId, history, (discordId, text, rowId) => this.deliver(voxta, discordId, text, 'text', rowId));
  }

  /** A bridged message was edited: edit the Voxta message it created. `named`: a proxied message. */
  handleMessageEdit(discordMessageId: string, authorName: string, newContent: string, named = false): boolean {
    const link = this.findLink(discordMessageId);
    if (!link || !this.voxta || link.chatId !== this.voxta.chatId) return false;
    const text = this.speakers.size > 1 || named ? attributeSpeaker(authorName, newContent, { maxChars: MAX_SEND_CHARS }) : this.capped(newContent);
    if (!text) return false;
    this.voxta.updateMessage(link.voxtaMessageId, text).catch(() => undefined);
    return true;
  }

  /**
   * A proxy bot's repost came after its original had been sent (see proxy-gate.ts): the Voxta
   * message now says who spoke, and it belongs to the repost (the original is about to be deleted).
   */
  supersede(originalDiscordId: string, repost: IncomingTextMessage): void {
    const link = this.findLink(originalDiscordId);
    if (!link || !this.voxta || link.chatId !== this.voxta.chatId) return;
    const text = attributeSpeaker(repost.authorName, repost.content, { maxChars: MAX_SEND_CHARS });
    if (text) this.voxta.updateMessage(link.voxtaMessageId, text).catch(() => undefined);
    this.guard('moving a message link to a proxied repost', () => this.deps.store.unlinkMessage(originalDiscordId));
    this.link(repost.id, link.voxtaMessageId, link.chatId);
  }

  /** A bridged message was deleted: delete the Voxta message it created. */
  handleMessageDelete(discordMessageId: string): boolean {
    const link = this.findLink(discordMessageId);
    if (!link) return false;
    this.guard('forgetting a message link', () => this.deps.store.unlinkMessage(discordMessageId));
    if (!this.voxta || link.chatId !== this.voxta.chatId) return false;
    this.voxta.deleteMessage(link.voxtaMessageId).catch(() => undefined);
    return true;
  }

  private findLink(discordMessageId: string): ReturnType<Store['findMessageLink']> {
    try {
      return this.deps.store.findMessageLink(discordMessageId);
    } catch (err) {
      this.log.warn({ err: errorInfo(err) }, 'guild session: reading a message link failed');
      return undefined;
    }
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

  /**
   * A reply button. Stop works on whatever plays; Regenerate and Undo only on the chat's latest
   * message (a click that raced a newer message is refused). Resolves with a sentence for the
   * member who pressed it, or undefined when what happens in the channel says it all.
   */
  async pressReplyButton(action: ReplyAction, voxtaMessageId: string): Promise<string | undefined> {
    const voxta = this.requireRunning();
    if (action === 'stop') {
      await this.interrupt();
      return undefined;
    }
    if (voxtaMessageId !== this.controls.latestMessageId) {
      throw new UserFacingError(`That is no longer the latest reply; only the latest one can be ${action === 'undo' ? 'undone' : 'regenerated'}.`);
    }
    if (action === 'regenerate') {
      this.controls.regenerate(voxtaMessageId);
      if (!(await voxta.retry())) throw new UserFacingError('Voxta is reconnecting right now; try again in a moment.');
      return undefined;
    }
    const deleted = this.controls.nextDeletion(2500);
    if (!(await voxta.revert())) throw new UserFacingError('Voxta is reconnecting right now; try again in a moment.');
    return (await deleted) ? undefined : 'There was nothing to undo.';
  }

  /** Turns waiting for the character (accepted, not yet stored by Voxta): for the per-server bound. */
  get queuedTurns(): number {
    return this.pending.count;
  }

  /** Members in our voice channel: their roles are fetched before they speak (when chat roles apply). */
  prefetchVoiceRoles(): void {
    const channelId = this.voiceAttachment.channelId;
    const guild = this.deps.guild();
    if (!channelId || !guild || !this.deps.admin) return;
    const humans = guild.voiceMembers(channelId).filter((m) => !m.bot && m.id !== guild.botUserId);
    this.deps.admin.gate.prefetchRoles(this.guildId, humans.map((m) => m.id));
  }

  /** The server's barge-in setting changed: the voice connection uses it from now on. */
  applyBargeIn(): void {
    const mode = this.deps.admin?.settings.bargeIn(this.guildId);
    if (mode) this.voiceAttachment.setBargeIn(mode);
  }

  /**
   * The explicit characters among these (their names), refusing with {@link AgeRestrictionError}
   * when they may not run in these channels. Undefined: Voxta could not tell, and the channels
   * would allow an explicit chat anyway.
   */
  private async ageCheck(characterIds: readonly string[], textChannelId: string, voiceChannelId: string | undefined, signal: AbortSignal): Promise<string[] | undefined> {
    const gate = this.deps.admin?.ageGate;
    const guild = this.deps.guild();
    if (!gate || !guild) return [];
    let names: string[];
    try {
      names = await abortable(gate.explicitAmong(characterIds), signal);
    } catch (err) {
      checkNotAborted(signal);
      if (gate.channelsAllow(guild, textChannelId, voiceChannelId)) return undefined;
      throw err;
    }
    const refusal = gate.refusal(guild, names, textChannelId, voiceChannelId);
    if (refusal) throw new AgeRestrictionError(refusal);
    return names;
  }

  /** Before the running chat goes into this voice channel: an explicit chat needs it age-restricted. */
  private async ageCheckRunning(guild: GuildPort, voiceChannelId: string, signal: AbortSignal): Promise<void> {
    const gate = this.deps.admin?.ageGate;
    const text = this.boundTextChannelId;
    if (!gate || !text || this.explicitNames?.length === 0) return;
    const names = this.explicitNames ?? (await this.ageCheck(this.castIds(), text, voiceChannelId, signal));
    const refusal = names && gate.refusal(guild, names, text, voiceChannelId);
    if (refusal) throw new AgeRestrictionError(refusal);
  }

  private castIds(): string[] {
    return this.voxta?.chat?.characters.map((c) => c.id) ?? (this.record ? [this.record.characterId] : []);
  }

  /**
   * A channel changed (its age-restricted flag), the cast changed, or the server's setting did: an
   * explicit chat that may no longer run in its channels is stopped (kept for /resume), with one
   * notice. Runs as an operation of the guild's queue; never throws.
   */
  recheckAgeRestriction(why: string, opts: { castChanged?: boolean } = {}): void {
    const gate = this.deps.admin?.ageGate;
    if (!gate || !this.bridging || (this.explicitNames?.length === 0 && !opts.castChanged)) return;
    this.ops
      .run('age check', async (signal) => {
        const guild = this.deps.guild();
        const text = this.boundTextChannelId;
        if (!this.bridging || !guild || !text) return;
        const voice = this.voiceAttachment.channelId ?? (this.voiceAttachment.isAway ? this.record?.voiceChannelId : undefined);
        let names = opts.castChanged ? undefined : this.explicitNames;
        if (names === undefined) {
          try {
            names = await abortable(gate.explicitAmong(this.castIds()), signal);
            this.explicitNames = names;
          } catch (err) {
            checkNotAborted(signal);
            // Voxta cannot tell: fine where an explicit chat could run anyway, stopped elsewhere.
            if (gate.channelsAllow(guild, text, voice)) return;
            this.log.warn({ err: errorInfo(err), why }, 'guild session: cannot tell whether the chat is explicit; stopping it');
          }
        }
        if (!this.bridging) return;
        if (names?.length === 0 || !gate.refusal(guild, names ?? [this.record?.characterName ?? 'the character'], text, voice)) return;
        this.log.info({ why, explicit: names }, 'guild session: an explicit chat may no longer run in its channels; stopping');
        await this.teardown(`age restriction: ${why}`, { notice: gate.stoppedNotice(guild, names ?? [this.record?.characterName ?? 'the character'], text, voice) });
      })
      .catch((err: unknown) => this.log.debug({ err: errorInfo(err) }, 'guild session: the age check did not run (the session stopped)'));
  }

  private requireRunning(): VoxtaSessionPort {
    if (!this.bridging || !this.voxta) throw new UserFacingError('No chat is running in this server. Start one with /start.');
    return this.voxta;
  }

  // ---- Voxta events --------------------------------------------------------------------
  // Bound per connection (see adoptVoxta): a late event of a connection that is no longer this
  // session's is never acted on.

  private adoptVoxta(v: VoxtaSessionPort): void {
    this.voxta = v;
    if (this.deps.config.voxta.vision) {
      this.visionResponder = attachVisionResponder(v, (_req, signal) => this.images.latest(signal), { log: this.log });
    }
    this.controls.activate();
    // While stopping, the teardown has already cut the replies and cleared the buttons: a late
    // reply would start a message nothing cuts any more. Only what settles the held messages
    // (what was written, what Voxta stored) is still taken.
    const mine = (duringStop: boolean): boolean => this.voxta === v && (duringStop || this._state !== 'stopping');
    const on = <A extends unknown[]>(event: string, fn: (...args: A) => void, opts: { duringStop?: boolean } = {}): void => {
      const l = (...args: A): void => {
        if (mine(opts.duringStop === true)) fn(...args);
      };
      v.on(event as never, l as never);
      this.voxtaListeners.push([event, l as unknown as (...args: never[]) => void]);
    };
    on(
      'message',
      (m: ServerMessage) => {
        if (this._state === 'stopping' && !(m.$type === 'update' && m.role.toLowerCase() === 'user')) return;
        try {
          this.handleVoxtaMessage(m);
        } catch (err) {
          this.log.error({ err: errorInfo(err, true), type: m.$type }, 'guild session: handling a Voxta message failed');
        }
      },
      { duringStop: true },
    );
    on('state', (s: VoxtaSessionState) => {
      if (s === 'reconnecting' && this._state === 'active') {
        this.transition('reconnecting', 'Voxta connection lost');
        this.deps.metrics.reconnects.inc();
        this.announceOnce('reconnecting', 'I lost the connection to Voxta and am reconnecting. Messages you send meanwhile will be delivered once it is back.');
      }
    });
    on('sent', (info: { text: string }) => this.pending.written(info.text), { duringStop: true });
    on('chatLost', (info: { chatId: string }) => {
      this.log.warn({ chatId: info.chatId }, 'guild session: the chat could not be resumed after reconnecting');
      if (!this.bridging) return;
      this.stopInBackground('chat lost', { notice: 'The chat no longer exists on Voxta (it may have been deleted there), so I stopped. Start a new one with /start.' });
    });
    on('reconnected', () => {
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
    });
    on('failed', (err: Error) => {
      this.log.warn({ err: errorInfo(err) }, 'guild session: Voxta connection failed for good');
      if (!this.bridging) return;
      // The record stays active: the bot core tries again to resume it (and so does the next start).
      // Refused credentials get their own notice: "keep trying" would promise what a wrong key
      // cannot give, and the admin has something to fix.
      const authRefused = isAuthRefusal(err);
      this.stop('Voxta failed', {
        keepActive: true,
        notice: authRefused
          ? credentialsRefusedNotice(this.record?.characterName ?? 'the character')
          : 'I could not get the connection to Voxta back. I will keep trying to resume this chat; /stop cancels that.',
      })
        .then(() => this.emit('voxtaFailed', { authRefused }))
        .catch((e: unknown) => this.log.error({ err: errorInfo(e, true) }, 'guild session: after Voxta failed'));
    });
    on('appTrigger', (t: AppTriggerMessage) => this.onAppTrigger(t));
    on('participantsUpdated', (chat: ChatInfo) => {
      // The cast changed (here by /cast, or in the Voxta app): the record and the context follow,
      // and an explicit character joining may end the chat where explicit characters may not run.
      this.noteCast(chat);
      this.scheduleContextUpdate();
      this.recheckAgeRestriction('the cast changed', { castChanged: true });
    });
    on('chatClosed', () => {
      if (!this.bridging) return;
      // Closed on the Voxta side (its app, or an admin): nothing to talk to any more.
      this.stopInBackground('chat closed by Voxta', { notice: 'The chat was closed on the Voxta side. /resume opens it again.' });
    });
  }

  /**
   * A scenario's app trigger: an emote becomes the character's reaction on its reply (the message
   * the trigger names, else the latest shown reply); anything else needs nothing here. The Voxta
   * client acknowledges every trigger once this returns.
   */
  private onAppTrigger(t: AppTriggerMessage): void {
    const emoji = emoteReaction(t);
    this.log.debug({ name: t.name, triggerId: t.triggerId, emoji }, 'guild session: app trigger');
    if (!emoji) return;
    const replyId = t.messageId && this.replies.discordMessagesOf(t.messageId).length ? t.messageId : this.replies.lastShownReply();
    const discordId = replyId ? this.replies.discordMessagesOf(replyId).at(-1) : undefined;
    const channel = this.channel();
    if (!discordId || !channel) return;
    channel
      .markable(discordId)
      .react(emoji)
      .catch((err: unknown) => this.log.debug({ err: errorInfo(err), emoji }, 'guild session: reacting for an emote failed'));
  }

  private detachVoxta(v: VoxtaSessionPort): void {
    for (const [event, l] of this.voxtaListeners.splice(0)) v.off(event as never, l as never);
  }

  /** A stop started by an event (nobody waits for it): its outcome is logged. */
  private stopInBackground(reason: string, opts: StopOptions = {}): void {
    this.stop(reason, opts).catch((err: unknown) => this.log.error({ err: errorInfo(err, true), reason }, 'guild session: stop failed'));
  }

  private handleVoxtaMessage(m: ServerMessage): void {
    switch (m.$type) {
      case 'replyGenerating':
        this.replies.generating();
        break;
      case 'replyChunk': {
        this.controls.noteMessage(m.messageId, 'reply');
        if (this.turnStartedAt !== undefined) {
          const ms = Date.now() - this.turnStartedAt;
          this.turnStartedAt = undefined;
          this.latency.add(ms);
          this.deps.metrics.turnLatency.observe(ms / 1000);
        }
        this.replies.chunk(m.messageId, m.text, this.speakerOf(m));
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
        this.controls.noteMessage(m.messageId, 'user');
        this.pending.echoed(m.text, m.messageId, this.voxta?.chatId);
        break;
      }
      case 'messageDeleted':
        // Regenerate, Undo, or a deletion elsewhere: the shown messages follow.
        this.controls.deleted(m.messageId, this.replies.shown(m.messageId));
        break;
      case 'chatSessionError':
        // The same error every turn (a dead LLM service) is repeated at most every few minutes.
        if (Date.now() - (this.errorAnnouncedAt.get(m.message) ?? -Infinity) >= ERROR_REPEAT_MS) {
          this.errorAnnouncedAt.set(m.message, Date.now());
          this.tell(`Voxta reported a problem: ${m.message.slice(0, 300)}`);
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

  /** The bot's own voice state changed (e.g. on a Stage: invited to speak, or moved to the audience). */
  botVoiceChanged(): void {
    if (!this.bridging) return;
    this.voiceAttachment.botVoiceChanged();
  }

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
      voxta.updateContext(this.contexts(this.boundTextChannelId, this.voiceAttachment.channelId)).catch(() => undefined);
    }, this.deps.contextDebounceMs ?? CONTEXT_DEBOUNCE_MS);
    this.contextTimer.unref();
  }

  /**
   * Where the characters are and who is there: the guild, the channels, the cast and the people
   * present (those in the voice channel, those who wrote lately). Voxta has one user persona per
   * chat and no field for the people of a Discord channel, so, like the official clients, the bot
   * describes its surroundings in contexts under its own contextKey ("discord").
   */
  contexts(textChannelId: string, voiceChannelId: string | undefined, cast?: readonly CastEntry[]): ContextItem[] {
    const guild = this.deps.guild();
    if (!guild) return [];
    const lines = [`You are talking with people on the Discord server "${guild.name}", in the text channel #${guild.channelName(textChannelId) ?? 'unknown'}.`];
    const characters = this.voxta?.chat?.characters ?? cast ?? [];
    if (characters.length > 1) lines.push(`The characters in this conversation: ${characters.map((c) => c.name).join(', ')}.`);
    const writers = [...this.recentWriters.values()];
    if (writers.length) lines.push(`People who have written in the channel lately: ${writers.join(', ')}.`);
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

  /** Posts without waiting (for notices whose order with what follows does not matter). */
  private tell(text: string): void {
    this.post(text).catch(() => undefined);
  }

  private announceOnce(key: string, text: string): void {
    if (this.announced.has(key)) return;
    this.announced.add(key);
    this.tell(text);
  }

  /** The bound text channel or the voice channel was deleted. */
  async channelDeleted(channelId: string): Promise<void> {
    if (channelId === this.boundTextChannelId && this._state !== 'idle' && this._state !== 'stopping') {
      this.log.info({ channelId }, 'guild session: bound text channel deleted; stopping');
      await this.stop('text channel deleted');
      return;
    }
    if (channelId === this.voiceAttachment.channelId) {
      await this.ops.run('voice channel deleted', async () => {
        if (channelId !== this.voiceAttachment.channelId) return;
        this.voiceAttachment.forgetAway();
        await this.voiceAttachment.leave('voice channel deleted');
        this.records.update({ voiceChannelId: undefined });
        // Not awaited: a slow Discord does not hold the next operation (post never rejects).
        this.post('The voice channel was deleted; the chat goes on here in text.').catch(() => undefined);
      });
    }
  }

  status(): SessionStatus {
    return {
      state: this._state,
      record: this.record,
      cast: this.castNow(),
      postingProblem: this.postingProblem(),
      voxtaState: this.voxtaState,
      voice: this.voiceStatus(),
      latency: { p50: this.latency.percentile(50), p95: this.latency.percentile(95), samples: this.latency.count },
      pendingMessages: this.pending.count,
      storeProblem: this.records.problem,
      pictures: !this.deps.config.voxta.vision ? 'off' : this.visionService(),
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

  // ---- the cast ------------------------------------------------------------------------------

  /** `/cast add`: a character joins the running chat. Resolves with the new cast. */
  addCastMember(characterId: string, characterName: string): Promise<CastEntry[]> {
    return this.ops.run('cast add', async (signal) => {
      const voxta = this.requireReady();
      if (voxta.chat?.characters.some((c) => c.id === characterId)) throw new UserFacingError(`${characterName} is already in this chat.`);
      const chat = await abortable(voxta.addParticipant(characterId), signal);
      if (this.voxta !== voxta || !this.bridging) throw new UserFacingError('The chat stopped meanwhile.');
      this.noteCast(chat);
      this.scheduleContextUpdate();
      return castOf(chat);
    });
  }

  /** `/cast remove`: a character leaves the running chat (not the last one). */
  removeCastMember(characterId: string): Promise<CastEntry[]> {
    return this.ops.run('cast remove', async (signal) => {
      const voxta = this.requireReady();
      const cast = voxta.chat?.characters ?? [];
      const who = cast.find((c) => c.id === characterId);
      if (!who) throw new UserFacingError('That character is not in this chat. Pick one from the list as you type.');
      if (cast.length <= 1) throw new UserFacingError(`${who.name} is the only character in this chat; a chat needs one. Use /stop to end it.`);
      const chat = await abortable(voxta.removeParticipant(characterId), signal);
      if (this.voxta !== voxta || !this.bridging) throw new UserFacingError('The chat stopped meanwhile.');
      this.noteCast(chat);
      this.scheduleContextUpdate();
      return castOf(chat);
    });
  }

  /** Who speaks in the running chat now (undefined when none runs). */
  castNow(): SessionStatus['cast'] {
    const chat = this.bridging ? this.voxta?.chat : undefined;
    if (!chat) return undefined;
    const out: NonNullable<SessionStatus['cast']> = chat.characters.map((c) => ({ id: c.id, name: c.name, ...(c.scenarioRole ? { role: c.scenarioRole } : {}) }));
    if (chat.scenario && chat.narrator) out.push({ id: chat.narrator.id, name: chat.narrator.name, narrator: true });
    return out;
  }

  /** Why replies are not posted under the characters' own names and avatars in the bound channel. */
  postingProblem(): string | undefined {
    const channelId = this.boundTextChannelId ?? this.record?.textChannelId;
    const guild = this.deps.guild();
    // A port without webhooks (a test double) has nothing to explain.
    if (!channelId || !guild?.webhooks || !this.deps.webhooks) return undefined;
    const channel = guild.textChannel(channelId);
    return this.deps.webhooks.problem(guild.webhooks, channel?.parentId ?? channelId);
  }

  private requireReady(): VoxtaSessionPort {
    const voxta = this.requireRunning();
    if (voxta.state !== 'ready' || !voxta.chat) throw new UserFacingError('Voxta is reconnecting right now; try again in a moment.');
    return voxta;
  }

  /** The stored record follows the cast (the main character is the first one). */
  private noteCast(chat: ChatInfo): void {
    const cast = castOf(chat);
    const main = cast[0];
    if (!main) return;
    this.records.update({ cast, characterId: main.id, characterName: main.name });
  }

  /** More than one voice speaks in this chat (names are then shown on the bot's own posts). */
  private severalVoices(): boolean {
    const chat = this.voxta?.chat;
    return (chat?.characters.length ?? 0) > 1 || chat?.scenario !== undefined;
  }

  /** Who says this reply chunk: its sender (a character or the narrator), as Voxta names it. */
  private speakerOf(m: ReplyChunkMessage): Speaker | undefined {
    const chat = this.voxta?.chat;
    if (!chat) return undefined;
    const who = (m.isNarration ? chat.narrator : undefined) ?? senderOf(chat, m.senderId) ?? (m.senderId ? undefined : chat.characters[0]);
    if (!who) {
      return m.isNarration ? { key: `narrator:${chat.scenario?.id ?? chat.chatId}`, name: chat.scenario?.name || 'Narrator', narration: true } : undefined;
    }
    const name = who.name || (m.isNarration ? chat.scenario?.name || 'Narrator' : 'Character');
    return { key: who.id, name, ...(who.thumbnailUrl ? { thumbnailUrl: who.thumbnailUrl } : {}), narration: m.isNarration === true };
  }

  /** Someone wrote in the bound channel: Voxta's context learns who is around (debounced). */
  private noteWriter(authorId: string, name: string): void {
    const known = this.recentWriters.get(authorId);
    this.recentWriters.delete(authorId);
    this.recentWriters.set(authorId, name);
    if (this.recentWriters.size > 12) this.recentWriters.delete(this.recentWriters.keys().next().value!);
    if (known !== name && this.bridging) this.scheduleContextUpdate();
  }

  /** Stops retrying record writes (the process is stopping, or the guild is forgotten). */
  dispose(): void {
    this.records.dispose();
    this.images.close();
  }
}

export { OperationCancelledError };

/** The cast of a chat as stored (characters only, the main one first). */
function castOf(chat: ChatInfo): CastEntry[] {
  return chat.characters.map((c) => ({ id: c.id, name: c.name }));
}

/** What was opened, for the record: Voxta's chat is the truth; `fallback` fills what it lacks. */
function opened(
  chat: ChatInfo,
  fallback: { characterId: string; characterName: string; cast?: CastEntry[]; scenario?: { id: string; name: string } },
  chatId?: string,
): Opened {
  const cast = chat.characters.length ? castOf(chat) : fallback.cast;
  const main = cast?.[0];
  const scenario = chat.scenario ? { id: chat.scenario.id, name: chat.scenario.name } : fallback.scenario;
  return {
    characterId: main?.id ?? fallback.characterId,
    characterName: main?.name ?? fallback.characterName,
    chatId: chat.chatId || chatId || '',
    ...(cast ? { cast } : {}),
    ...(scenario ? { scenario } : {}),
  };
}
