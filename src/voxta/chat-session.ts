/**
 * One Voxta hub connection holding at most one chat (protocol §5.5), with its own reconnect logic.
 *
 * Lifecycle (state): idle → connecting → ready ⇄ reconnecting → closed.
 * - `connect()` opens the SignalR connection (WebSockets), sends `authenticate` and waits for
 *   `welcome`. `ready` means authenticated; `chat` says whether a chat is running on it.
 * - When the connection drops unexpectedly we do NOT use SignalR's automatic reconnect: a new
 *   SignalR connection is a new Voxta user connection whose chat is gone (protocol §5.6), so every
 *   reconnect must re-authenticate, wait for `welcome`, re-`resumeChat` the chat we owned (retrying
 *   "Chat session already exists" while the server has not noticed the dead socket yet), emit
 *   `reconnected` with the new sessionId, and forget the playback completes owed to the dead session.
 *   Back-off is capped exponential with jitter; after `giveUpAfterMs` we emit `failed` and close.
 *
 * User messages (`send`) are delivered EXACTLY ONCE, in order, across reconnects: see
 * user-message-queue.ts (queue → written on a live connection → in flight until the server's echo →
 * reconciled with the stored history after a resume).
 * Ephemeral commands (typing, interrupt, playback acks, context) are not queued: they only make
 * sense for the live session and are dropped while disconnected.
 *
 * The parts: `HubLink` (hub-connection.ts) holds the SignalR connection; `PendingReplies` the
 * requests waiting for their answer; `UserMessageQueue` the user messages; `reconnectWithBackoff`
 * (reconnect-policy.ts) when to try again. This class ties them to the chat lifecycle.
 *
 * Events are typed; a listener that throws is caught and logged and never breaks the client.
 * This module knows nothing of Discord.
 */
import { EventEmitter } from 'node:events';
import { errorInfo, logger, type Logger } from '../log.js';
import { chatInfoFromStarted, withCast, type ChatInfo } from './chat-info.js';
import type { VoxtaEndpoint } from './endpoint.js';
import {
  classifyServerError,
  VoxtaDisconnectedError,
  VoxtaError,
  VoxtaInputError,
  VoxtaNotFoundError,
  VoxtaServerError,
  VoxtaStateError,
  VoxtaTimeoutError,
} from './errors.js';
import { authenticateMessage, isKnownApiVersion, KNOWN_API_VERSIONS, pickWelcome } from './handshake.js';
import { HubLink } from './hub-connection.js';
import {
  clientMessage,
  parseServerMessage,
  type AppTriggerMessage,
  type CharacterRef,
  type ChatsListLoadedMessage,
  type ClientMessage,
  type ConfigurationMessage,
  type ContextItem,
  type DisableableService,
  type ScenarioInfo,
  type SendOptions,
  type ServerMessage,
  type WelcomeMessage,
} from './messages.js';
import { PendingReplies } from './pending-replies.js';
import { PlaybackContract } from './playback-contract.js';
import { reconnectWithBackoff } from './reconnect-policy.js';
import type { SessionState, SessionStats, VoxtaChatSessionEvents } from './session-events.js';
import { timeoutOf, type ResumeChatOptions, type SessionTimeout, type StartChatOptions, type VoxtaChatSessionOptions } from './session-options.js';
import { classifyAudioUrl, unfetchedDurationSec } from './tts.js';
import { UserMessageQueue } from './user-message-queue.js';

// The session's vocabulary lives in small modules; it stays importable from here.
export type { CastMember, ChatInfo } from './chat-info.js';
export { senderOf } from './chat-info.js';
export { CLIENT_NAME, EXPECTED_API_VERSION, KNOWN_API_VERSIONS } from './handshake.js';
export type { ReconnectedInfo, ReconnectingInfo, SessionState, SessionStats, VoxtaChatSessionEvents } from './session-events.js';
export type { ReconnectOptions, ResumeChatOptions, StartChatOptions, VoxtaChatSessionOptions } from './session-options.js';

export interface CloseOutcome {
  chatStopConfirmed: boolean;
}

type StartOrResume = ClientMessage & { $type: 'startChat' | 'resumeChat' };

/** What a text-only session switches off in every chat it starts or resumes (see `textOnly`). */
const TEXT_ONLY_DISABLED: DisableableService[] = ['SpeechToText'];

export class VoxtaChatSession extends EventEmitter<VoxtaChatSessionEvents> {
  readonly endpoint: VoxtaEndpoint;
  /** Owns the `speechPlaybackStart`/`Complete` acknowledgements of the current chat. */
  readonly playback: PlaybackContract;

  #state: SessionState = 'idle';
  readonly #link: HubLink;
  readonly #replies = new PendingReplies();
  readonly #sends: UserMessageQueue;
  #welcome: WelcomeMessage | undefined;
  #configuration: ConfigurationMessage | undefined;
  #chat: ChatInfo | undefined;
  /** The last `recordingRequest` of the live chat (undefined before the first one). */
  #recording: boolean | undefined;
  /** The chat this session should hold (survives reconnects until stopChat/close/chatClosed). */
  #owned: { chatId: string; contexts?: ContextItem[]; contextKey?: string } | undefined;
  /** sessionId learned from chatStarting while a start/resume is pending. */
  #pendingSessionId: string | undefined;
  #starting = false;
  /** start/resume calls not finished yet (a send made meanwhile waits for their chat). */
  #pendingStarts = 0;
  #closing = false;
  #connectPromise: Promise<WelcomeMessage> | undefined;
  #reconnectAbort: AbortController | undefined;
  #lifecycle: Promise<unknown> = Promise.resolve();
  #apiWarned = false;
  /** Characters seen in lists (charactersListLoaded), for the cast's explicitContent. */
  readonly #directory = new Map<string, CharacterRef>();
  /** triggerIds already answered in the live chat (each is completed exactly once). */
  readonly #completedTriggers = new Set<string>();
  /** The session's logger without chat ids; {@link #log} adds them while a chat is live. */
  readonly #baseLog: Logger;
  #log: Logger;
  readonly #opts: VoxtaChatSessionOptions;
  readonly #counts = { connects: 0, reconnects: 0, droppedMessages: 0, listenerErrors: 0 };

  constructor(opts: VoxtaChatSessionOptions) {
    super();
    // The guild session, the voice pipeline and the audio input all listen: more than Node's default 10.
    this.setMaxListeners(50);
    this.#opts = opts;
    this.endpoint = opts.endpoint;
    this.#baseLog = (opts.log ?? logger()).child({ mod: 'voxta-session', ...opts.logBindings });
    this.#log = this.#baseLog;
    this.playback = new PlaybackContract(
      {
        send: (m) => {
          this.#sendNow(m).catch(() => undefined);
        },
        sessionId: () => this.#chat?.sessionId,
      },
      { autoAcknowledge: opts.autoAcknowledge ?? true, safetyTimeoutMs: opts.playbackSafetyTimeoutMs, log: this.#log },
    );
    this.#link = new HubLink(
      {
        endpoint: opts.endpoint,
        connectTimeoutMs: this.#timeout('connectMs'),
        serverTimeoutMs: opts.serverTimeoutMs,
        keepAliveMs: opts.keepAliveMs,
        skipNegotiation: opts.skipNegotiation,
        log: this.#log,
      },
      {
        message: (raw) => this.#onRaw(raw),
        closed: (gen, err) => this.#onConnectionClosed(gen, err),
      },
    );
    this.#sends = new UserMessageQueue(
      {
        liveSessionId: () => (this.#state === 'ready' ? this.#chat?.sessionId : undefined),
        write: (sessionId, text, sendOpts) => this.#link.write(clientMessage.send(sessionId, text, sendOpts), this.#link.generation),
        sent: (info) => this.#safeEmit('sent', info),
      },
      { maxQueued: opts.maxQueuedSends ?? 100, log: this.#log },
    );
  }

  // ------------------------------------------------------------------------------------------
  // Read-only state
  // ------------------------------------------------------------------------------------------

  get state(): SessionState {
    return this.#state;
  }
  /** Current chat (undefined when none is live, e.g. while reconnecting). */
  get chat(): ChatInfo | undefined {
    return this.#chat;
  }
  get sessionId(): string | undefined {
    return this.#chat?.sessionId;
  }
  /** The chat this session holds or is re-resuming. */
  get chatId(): string | undefined {
    return this.#chat?.chatId ?? this.#owned?.chatId;
  }
  /**
   * Whether Voxta currently asks for microphone audio (its last `recordingRequest` for the live
   * chat), or undefined before it has said. A voice pipeline that attaches after the chat started
   * missed the request and reads it here.
   */
  get recording(): boolean | undefined {
    return this.#recording;
  }
  get welcome(): WelcomeMessage | undefined {
    return this.#welcome;
  }
  get configuration(): ConfigurationMessage | undefined {
    return this.#configuration;
  }
  get stats(): SessionStats {
    const { connects, reconnects, droppedMessages, listenerErrors } = this.#counts;
    return { connects, reconnects, ...this.#sends.stats, droppedMessages, listenerErrors };
  }

  // ------------------------------------------------------------------------------------------
  // Connection
  // ------------------------------------------------------------------------------------------

  /** Connects and authenticates; resolves with `welcome`. Idempotent while connecting/ready. */
  async connect(): Promise<WelcomeMessage> {
    if (this.#state === 'closed') throw new VoxtaStateError('This Voxta session is closed');
    if (this.#state === 'ready' && this.#welcome) return this.#welcome;
    if (this.#connectPromise) return this.#connectPromise;
    if (this.#state === 'reconnecting') throw new VoxtaStateError('The Voxta session is reconnecting');
    this.#setState('connecting');
    this.#connectPromise = (async () => {
      try {
        const welcome = await this.#openAndAuthenticate();
        this.#setState('ready');
        return welcome;
      } catch (err) {
        await this.#link.drop();
        if (this.#state === 'connecting') this.#setState('idle');
        throw err;
      } finally {
        this.#connectPromise = undefined;
      }
    })();
    return this.#connectPromise;
  }

  /**
   * Closes for good: stops the chat (best effort, short timeout), closes the connection, drops
   * queued messages. State `closed`; idempotent. `chatStopConfirmed`: Voxta confirmed the stop
   * (`chatClosed`), so every message it stored before arrived before that; a user message written
   * but never echoed was not stored (Voxta drops the commands it had queued when it disposes).
   */
  async close(opts: { stopChat?: boolean } = {}): Promise<CloseOutcome> {
    if (this.#state === 'closed') return { chatStopConfirmed: false };
    this.#closing = true;
    this.#reconnectAbort?.abort();
    let chatStopConfirmed = false;
    if ((opts.stopChat ?? true) && this.#chat && this.#link.connected) {
      try {
        await this.#stopChatNow(Math.min(this.#timeout('stopMs'), 3000));
        chatStopConfirmed = true;
      } catch (err) {
        this.#log.debug({ err: errorInfo(err) }, 'stopChat during close failed');
      }
    }
    this.#sends.dropAll('the session was closed');
    this.#owned = undefined;
    this.#clearChat();
    this.#replies.rejectAll(new VoxtaStateError('The Voxta session was closed'));
    await this.#link.drop();
    this.#setState('closed');
    return { chatStopConfirmed };
  }

  // ------------------------------------------------------------------------------------------
  // Chat lifecycle
  // ------------------------------------------------------------------------------------------

  /**
   * Starts a new chat (or loads `chatId`): one character, a group, or a scenario (see
   * {@link StartChatOptions}); resolves on `chatStarted`.
   */
  async startChat(o: StartChatOptions): Promise<ChatInfo> {
    let characterIds = o.characterIds ?? (o.characterId !== undefined ? [o.characterId] : undefined);
    if (characterIds?.length === 0) characterIds = undefined;
    if (!characterIds && !o.chatId && !o.scenarioId) throw new VoxtaInputError('startChat needs a characterId, characterIds, a scenarioId or a chatId');
    if (!characterIds && !o.chatId && o.scenarioId) characterIds = await this.#scenarioDefaults(o.scenarioId, o.roles);
    return this.#openChat(
      clientMessage.startChat({
        characterIds,
        chatId: o.chatId,
        scenarioId: o.scenarioId,
        roles: o.roles,
        contextKey: contextKeyOf(o),
        contexts: o.contexts,
        disableServices: this.#disabledServices(),
      }),
      o.contexts,
    );
  }

  /** Resumes an existing chat; resolves on `chatStarted`. */
  async resumeChat(o: ResumeChatOptions): Promise<ChatInfo> {
    return this.#openChat(clientMessage.resumeChat({ chatId: o.chatId, contextKey: contextKeyOf(o), contexts: o.contexts, disableServices: this.#disabledServices() }), o.contexts);
  }

  /**
   * Voxta requires a character to start a scenario (HandleStartChatAsync: "CharacterId is
   * required"): the characters filling the scenario's roles by default (or as `roles` says).
   */
  async #scenarioDefaults(scenarioId: string, roles: Record<string, string> | undefined): Promise<string[]> {
    const scenario = (await this.loadScenarios()).find((s) => s.id === scenarioId);
    if (!scenario) throw new VoxtaNotFoundError(`Scenario ${scenarioId} was not found`);
    const ids: string[] = [];
    for (const role of scenario.roles) {
      const id = roles?.[role.name] ?? role.defaultCharacterId ?? undefined;
      if (id && !ids.includes(id)) ids.push(id);
    }
    if (ids.length === 0) throw new VoxtaInputError(`Scenario "${scenario.name}" names no default characters: pass characterIds or roles`);
    return ids;
  }

  #disabledServices(): DisableableService[] | undefined {
    return this.#opts.textOnly ? [...TEXT_ONLY_DISABLED] : undefined;
  }

  /**
   * Stops the current chat and waits for `chatClosed`. Queued user messages are dropped (they
   * belonged to that chat). On timeout the connection is recycled, which disposes the chat on the
   * server too (protocol §5.4).
   */
  async stopChat(): Promise<void> {
    return this.#serialised(async () => {
      this.#owned = undefined;
      this.#sends.dropAll('the chat was stopped');
      if (!this.#chat) return;
      if (!this.#link.connected) {
        this.#clearChat();
        return;
      }
      try {
        await this.#stopChatNow(this.#timeout('stopMs'));
      } catch (err) {
        if (err instanceof VoxtaTimeoutError) {
          this.#log.warn('Voxta did not confirm stopChat: recycling the connection so the server disposes the chat');
          this.#clearChat();
          this.#link.recycle();
          return;
        }
        throw err;
      }
    });
  }

  // ------------------------------------------------------------------------------------------
  // Messages into the chat
  // ------------------------------------------------------------------------------------------

  /**
   * Queues a user message; delivered once, in order, to the live chat (see user-message-queue.ts).
   * Throws {@link VoxtaInputError} for empty text (use {@link requestReply}) and
   * {@link VoxtaStateError} when there is no chat to deliver to.
   */
  send(text: string, opts: SendOptions = {}): void {
    if (this.#state === 'closed') throw new VoxtaStateError('This Voxta session is closed');
    // With attachments an empty text is still a user message (the picture alone), not a trigger-reply.
    if (text.trim() === '' && !opts.attachments?.length) throw new VoxtaInputError('Cannot send an empty message (an empty send asks Voxta for a reply; use requestReply())');
    if (!this.#chat && !this.#owned && this.#pendingStarts === 0) throw new VoxtaStateError('No Voxta chat is running');
    this.#sends.enqueue(text, opts);
  }

  /** Asks the character to reply without a user message (`send` with empty text). Not queued. */
  requestReply(): Promise<boolean> {
    return this.#sendToLiveChat((s) => clientMessage.send(s, ''));
  }

  /** The character says exactly this text (with TTS). Sent now or dropped (returns false). */
  characterSpeechRequest(text: string, characterId?: string): Promise<boolean> {
    return this.#sendToLiveChat((s) => clientMessage.characterSpeechRequest(s, text, characterId));
  }

  /** Aborts the reply being generated (the server may answer `interruptSpeech`). */
  interrupt(): Promise<boolean> {
    return this.#sendToLiveChat((s) => clientMessage.interrupt(s));
  }

  pauseChat(pause: boolean): Promise<boolean> {
    return this.#sendToLiveChat((s) => clientMessage.pauseChat(s, pause));
  }

  /**
   * Replaces the contexts under `contextKey`. Remembered, so a reconnect re-applies the latest
   * contexts with `resumeChat`. `extra.setFlags` / `extra.enableRoles` (scenario role name →
   * on/off) go with it (not remembered: flags and roles are stored in the chat by Voxta).
   */
  updateContext(contexts: ContextItem[], contextKey = 'discord', extra: { setFlags?: string[]; enableRoles?: Record<string, boolean> } = {}): Promise<boolean> {
    if (this.#owned) this.#owned = { ...this.#owned, contexts: contexts.map((c) => ({ ...c })), contextKey };
    return this.#sendToLiveChat((s) => clientMessage.updateContext(s, contexts, contextKey, extra));
  }

  typingStart(): Promise<boolean> {
    return this.#sendToLiveChat((s) => clientMessage.typingStart(s));
  }

  typingEnd(sent = true): Promise<boolean> {
    return this.#sendToLiveChat((s) => clientMessage.typingEnd(s, sent));
  }

  updateMessage(messageId: string, text: string): Promise<boolean> {
    return this.#sendToLiveChat((s) => clientMessage.update(s, messageId, text));
  }

  /** Deletes a stored message; Voxta echoes it as a deletion (`messageDeleted` event). */
  deleteMessage(messageId: string): Promise<boolean> {
    return this.#sendToLiveChat((s) => clientMessage.deleteMessage(s, messageId));
  }

  /**
   * Regenerate: Voxta deletes the last reply (`messageDeleted`) and generates a new one with a NEW
   * messageId (replyGenerating…replyEnd, `update`); if the last message is the user's, that one is
   * deleted and received again (a new id) before the reply. Waits for the speech hold like a user
   * message. Sent now or dropped (false).
   */
  retry(): Promise<boolean> {
    return this.#sendToLiveChat((s) => clientMessage.retry(s));
  }

  /**
   * Undo. Without `messageId`: the last user message and everything after it are deleted. With it:
   * everything AFTER that message (it stays). Each deletion comes back as `messageDeleted`; if the
   * history then ends with a user message, Voxta answers it again. Sent now or dropped (false).
   */
  revert(messageId?: string): Promise<boolean> {
    return this.#sendToLiveChat((s) => clientMessage.revert(s, messageId));
  }

  /**
   * Adds a character to the live chat (optionally into a scenario `role`); resolves with the chat
   * once Voxta's `chatParticipantsUpdated` lists it. Voxta's `error` rejects it.
   */
  async addParticipant(characterId: string, role?: string): Promise<ChatInfo> {
    return this.#changeCast((s, id, r) => clientMessage.addChatParticipant(s, id, r), characterId, role, (chat) => chat.characters.some((c) => c.id === characterId), 'addChatParticipant');
  }

  /** Removes a character from the live chat; resolves with the chat once the cast no longer lists it. */
  async removeParticipant(characterId: string): Promise<ChatInfo> {
    const chat = this.#chat;
    // Voxta answers nothing for a character that is not in the chat.
    if (chat && !chat.characters.some((c) => c.id === characterId)) return chat;
    return this.#changeCast((s, id) => clientMessage.removeChatParticipant(s, id), characterId, undefined, (c) => !c.characters.some((x) => x.id === characterId), 'removeChatParticipant');
  }

  async #changeCast(
    build: (sessionId: string, characterId: string, role?: string) => ClientMessage,
    characterId: string,
    role: string | undefined,
    done: (chat: ChatInfo) => boolean,
    what: string,
  ): Promise<ChatInfo> {
    const chat = this.#chat;
    if (!chat || this.#state !== 'ready') throw new VoxtaStateError('No Voxta chat is running');
    const sessionId = chat.sessionId;
    return this.#writeAndWait(build(sessionId, characterId, role), (m) => {
      if (m.$type === 'chatParticipantsUpdated' && m.sessionId === sessionId && this.#chat && done(this.#chat)) return this.#chat;
      if (m.$type === 'error') return classifyServerError(m.message, m.code);
      if (m.$type === 'chatSessionError' && m.sessionId === sessionId) return classifyServerError(m.message, m.code);
      if (m.$type === 'chatClosed' && m.sessionId === sessionId) return new VoxtaStateError('The chat closed');
      return undefined;
    }, this.#timeout('requestMs'), what);
  }

  /**
   * Characters over the hub (`loadCharactersList`), with `explicitContent`. Connects first when
   * idle. Also remembered, so later chats' casts carry `explicitContent`.
   */
  async loadCharacters(): Promise<CharacterRef[]> {
    return this.#request(clientMessage.loadCharactersList(), (m) => (m.$type === 'charactersListLoaded' ? m.characters : undefined), 'the character list');
  }

  /**
   * Chats of a character over the hub (`loadChatsList`), newest created first. Voxta lists only
   * chats WITHOUT a scenario unless `scenarioId` is given, and then only that scenario's.
   */
  async loadChats(characterId: string, scenarioId?: string): Promise<ChatsListLoadedMessage['chats']> {
    return this.#request(clientMessage.loadChatsList(characterId, scenarioId), (m) => (m.$type === 'chatsListLoaded' ? m.chats : undefined), 'the chat list');
  }

  /** Scenarios over the hub (`loadScenariosList`): those of no client or of ours, by name. */
  async loadScenarios(): Promise<ScenarioInfo[]> {
    return this.#request(clientMessage.loadScenariosList(), (m) => (m.$type === 'scenariosListLoaded' ? m.scenarios : undefined), 'the scenario list');
  }

  // ------------------------------------------------------------------------------------------
  // Internals: connection
  // ------------------------------------------------------------------------------------------

  async #openAndAuthenticate(): Promise<WelcomeMessage> {
    const gen = await this.#link.open();
    this.#counts.connects++;
    const welcome = await this.#writeAndWait(authenticateMessage(this.#opts), pickWelcome, this.#timeout('welcomeMs'), 'authenticate (welcome)', gen);
    this.#welcome = welcome;
    this.#warnOnApiVersion(welcome);
    this.#log.info({ server: welcome.voxtaServerVersion, apiVersion: welcome.apiVersion }, 'connected to Voxta');
    this.#safeEmit('welcome', welcome);
    return welcome;
  }

  #warnOnApiVersion(welcome: WelcomeMessage): void {
    const expected = this.#opts.expectedApiVersion ?? KNOWN_API_VERSIONS;
    if (isKnownApiVersion(welcome.apiVersion, expected) || this.#apiWarned) return;
    this.#apiWarned = true;
    this.#log.warn(
      { apiVersion: welcome.apiVersion, expected, server: welcome.voxtaServerVersion },
      'Voxta speaks a different API version than this bot was built for; continuing, but some features may misbehave',
    );
  }

  async #ensureConnected(): Promise<void> {
    if (this.#state === 'closed') throw new VoxtaStateError('This Voxta session is closed');
    if (this.#state === 'reconnecting') throw new VoxtaDisconnectedError('Voxta is reconnecting; try again in a moment');
    if (this.#state !== 'ready') await this.connect();
  }

  async #ensureReadyForChat(): Promise<void> {
    await this.#ensureConnected();
    if (this.#chat) throw new VoxtaStateError('This connection already holds a chat: stop it first (one chat per connection)');
  }

  #onConnectionClosed(gen: number, err: Error | undefined): void {
    this.#replies.rejectAll(new VoxtaDisconnectedError(), gen);
    if (this.#closing || this.#state === 'closed' || this.#state === 'connecting' || this.#state === 'idle') return;
    if (this.#state === 'reconnecting') return; // the loop notices by itself
    this.#log.warn({ err: err ? errorInfo(err) : undefined, chatId: this.chatId }, 'lost the connection to Voxta; reconnecting');
    this.#reconnectLoop(err).catch((e: unknown) => this.#log.error({ err: errorInfo(e, true) }, 'the reconnect loop failed unexpectedly'));
  }

  async #reconnectLoop(cause: Error | undefined): Promise<void> {
    this.#setState('reconnecting');
    this.#clearChat(); // the dead session's chat and owed completes are gone with it
    const abort = new AbortController();
    this.#reconnectAbort = abort;
    this.#safeEmit('reconnecting', { attempt: 0, error: cause ? errorInfo(cause).message : undefined });

    const outcome = await reconnectWithBackoff(this.#opts.reconnect ?? {}, abort.signal, cause, {
      attempt: () => this.#reconnectOnce(),
      retrying: (attempt, err) => {
        this.#log.info({ attempt, err: errorInfo(err) }, 'reconnect attempt failed; retrying');
        this.#safeEmit('reconnecting', { attempt, error: errorInfo(err).message });
      },
    });

    switch (outcome.kind) {
      case 'aborted':
        // An attempt may have opened a connection after close() dropped the last one.
        if (!outcome.duringWait && this.#closing) await this.#link.drop();
        return;
      case 'reconnected': {
        const chat = outcome.value;
        this.#counts.reconnects++;
        this.#reconnectAbort = undefined;
        this.#setState('ready');
        this.#log.info({ attempt: outcome.attempt, sessionId: chat?.sessionId, chatId: chat?.chatId }, 'reconnected to Voxta');
        this.#safeEmit('reconnected', { sessionId: chat?.sessionId, chatId: chat?.chatId, chat });
        this.#sends.flushInBackground();
        return;
      }
      case 'gaveUp': {
        const { lastError } = outcome;
        const error = new VoxtaError(`Gave up reconnecting to Voxta: ${lastError ? errorInfo(lastError).message : 'unknown error'}`, { cause: lastError });
        this.#log.error({ err: errorInfo(error) }, 'gave up reconnecting to Voxta');
        this.#closing = true;
        this.#sends.dropAll('reconnecting failed');
        this.#owned = undefined;
        await this.#link.drop();
        this.#setState('closed');
        this.#safeEmit('failed', error);
        return;
      }
    }
  }

  /** One reconnect attempt: a fresh authenticated connection, then the owned chat resumed on it. */
  async #reconnectOnce(): Promise<ChatInfo | undefined> {
    if (!this.#link.connected) await this.#openAndAuthenticate();
    const owned = this.#owned;
    if (!owned) return undefined;
    try {
      return await this.#serialised(async () => {
        if (!this.#owned || this.#chat) return this.#chat; // stopped or resumed meanwhile
        return this.#startOrResume(
          clientMessage.resumeChat({ chatId: owned.chatId, contextKey: this.#owned.contextKey, contexts: this.#owned.contexts, disableServices: this.#disabledServices() }),
        );
      });
    } catch (err) {
      if (!(err instanceof VoxtaNotFoundError)) throw err;
      this.#log.warn({ chatId: owned.chatId, err: errorInfo(err) }, 'the chat could not be resumed after reconnecting');
      this.#owned = undefined;
      this.#sends.dropAll('the chat no longer exists');
      this.#safeEmit('chatLost', { chatId: owned.chatId, error: err.message });
      return undefined;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Internals: chat
  // ------------------------------------------------------------------------------------------

  /** startChat/resumeChat: one at a time, on a connection without a chat; the chat becomes ours. */
  #openChat(payload: StartOrResume, contexts: ContextItem[] | undefined): Promise<ChatInfo> {
    this.#pendingStarts++;
    return this.#serialised(async () => {
      try {
        await this.#ensureReadyForChat();
        const info = await this.#startOrResume(payload);
        this.#owned = { chatId: info.chatId, contexts, contextKey: payload.contextKey };
        return info;
      } catch (err) {
        if (!this.#chat && !this.#owned && this.#pendingStarts === 1) this.#sends.dropAll('the chat could not be started');
        throw err;
      } finally {
        this.#pendingStarts--;
      }
    });
  }

  async #startOrResume(payload: StartOrResume): Promise<ChatInfo> {
    this.#starting = true;
    this.#pendingSessionId = undefined;
    try {
      return await this.#writeAndWait<ChatInfo>(
        payload,
        (m) => {
          switch (m.$type) {
            case 'chatStarted':
              if (this.#pendingSessionId && m.sessionId !== this.#pendingSessionId) return undefined;
              return this.#chat?.sessionId === m.sessionId ? this.#chat : undefined;
            case 'error':
              return classifyServerError(m.message, m.code);
            case 'chatSessionError':
              return this.#pendingSessionId === undefined || m.sessionId === this.#pendingSessionId ? classifyServerError(m.message, m.code) : undefined;
            case 'missingResourcesError':
              return new VoxtaServerError(`the chat needs resources that are missing on the server (${m.resources.length})`);
            case 'chatClosed':
              return this.#pendingSessionId !== undefined && m.sessionId === this.#pendingSessionId ? new VoxtaServerError('the chat closed while starting') : undefined;
            default:
              return undefined;
          }
        },
        this.#timeout('chatStartMs'),
        payload.$type === 'startChat' ? 'startChat' : 'resumeChat',
      );
    } finally {
      this.#starting = false;
      this.#pendingSessionId = undefined;
    }
  }

  async #stopChatNow(timeoutMs: number): Promise<void> {
    const chat = this.#chat;
    if (!chat) return;
    await this.#writeAndWait<true>(
      clientMessage.stopChat(chat.sessionId),
      (m) => {
        if (m.$type === 'chatClosed' && m.sessionId === chat.sessionId) return true;
        // Only an error about this stop fails it: `error` carries no correlation, and a late
        // message for the chat being disposed (a playback ack crossing the stop) is answered with
        // "Chat session … not found" before `chatClosed` arrives.
        if (m.$type === 'error' && /cannot stop chat session|another (chat|session) is (still|in progress)/i.test(m.message)) return classifyServerError(m.message, m.code);
        return undefined;
      },
      timeoutMs,
      'stopChat',
    );
    // #onMessage cleared the chat on chatClosed.
  }

  #adoptChat(m: ServerMessage & { $type: 'chatStarted' }): void {
    const info = chatInfoFromStarted(m, this.#directory);
    this.playback.reset();
    this.#completedTriggers.clear();
    this.#chat = info;
    // Every later line of this session names its chat (JSON logs are searched by these ids).
    this.#log = this.#baseLog.child({ sessionId: info.sessionId, chatId: info.chatId });
    this.#sends.chatStarted(m.messages);
    this.#log.info({ sessionId: info.sessionId, chatId: info.chatId, tts: info.services.hasTts, stt: info.services.hasStt }, 'chat started');
    // Flush after the current message is fully dispatched (listeners learn about the chat first).
    queueMicrotask(() => this.#sends.flushInBackground());
  }

  #clearChat(): void {
    if (this.#chat || this.playback.stats.owed > 0) this.playback.reset();
    this.#chat = undefined;
    this.#log = this.#baseLog;
    this.#recording = undefined;
    this.#sends.chatEnded();
  }

  /** Runs chat lifecycle operations one at a time (Voxta refuses overlapping start/stop). */
  #serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lifecycle.then(fn, fn);
    this.#lifecycle = run.catch(() => undefined);
    return run;
  }

  // ------------------------------------------------------------------------------------------
  // Internals: sending
  // ------------------------------------------------------------------------------------------

  /** Fire-and-forget on the live connection; false when there is none (never throws). */
  async #sendNow(message: ClientMessage): Promise<boolean> {
    try {
      await this.#link.write(message, this.#link.generation);
      return true;
    } catch {
      this.#log.debug({ type: message.$type }, 'not connected: message dropped');
      return false;
    }
  }

  /** An ephemeral command for the live chat: sent now, or dropped (false) when no chat is live. */
  #sendToLiveChat(build: (sessionId: string) => ClientMessage): Promise<boolean> {
    const s = this.#chat?.sessionId;
    return s ? this.#sendNow(build(s)) : Promise.resolve(false);
  }

  /** A list request over the hub: connects first when idle; Voxta's `error` rejects it. */
  async #request<T>(message: ClientMessage, pick: (m: ServerMessage) => T | undefined, what: string): Promise<T> {
    await this.#ensureConnected();
    return this.#writeAndWait<T>(message, (m) => pick(m) ?? (m.$type === 'error' ? classifyServerError(m.message, m.code) : undefined), this.#timeout('requestMs'), what);
  }

  /**
   * Writes a request and waits for what answers it. The waiter is registered before the write (an
   * answer can arrive before `send` resolves) and removed if the write fails, so a failed write
   * never leaves a waiter (or an unawaited rejection) behind.
   */
  async #writeAndWait<T>(message: ClientMessage, pick: (m: ServerMessage) => T | Error | undefined, timeoutMs: number, what: string, gen = this.#link.generation): Promise<T> {
    return this.#replies.ask<T>(gen, pick, timeoutMs, what, () => this.#link.write(message, gen));
  }

  // ------------------------------------------------------------------------------------------
  // Internals: receiving
  // ------------------------------------------------------------------------------------------

  #onRaw(raw: unknown): void {
    const m = parseServerMessage(raw);
    if (!m) {
      this.#counts.droppedMessages++;
      return;
    }
    try {
      this.#onMessage(m);
    } catch (err) {
      // Our own handling must never take the connection down.
      this.#log.error({ err: errorInfo(err, true), type: m.$type }, 'error while handling a Voxta message');
    }
  }

  #onMessage(m: ServerMessage): void {
    // Lifecycle bookkeeping first, so listeners see consistent state.
    if (m.$type === 'chatStarting' && this.#starting) this.#pendingSessionId = m.sessionId;
    if (m.$type === 'chatStarted' && this.#starting && (!this.#pendingSessionId || this.#pendingSessionId === m.sessionId)) {
      this.#adoptChat(m);
    }
    if (m.$type === 'configuration') this.#configuration = m;
    if (m.$type === 'charactersListLoaded') for (const c of m.characters) this.#directory.set(c.id, c);
    if (m.$type === 'chatParticipantsUpdated' && this.#chat?.sessionId === m.sessionId) this.#chat = withCast(this.#chat, m.characters, this.#directory);

    this.#safeEmit('message', m);
    this.#replies.offer(m, this.#link.generation);

    const sid = 'sessionId' in m && typeof m.sessionId === 'string' ? m.sessionId : undefined;
    const mine = sid === undefined || (this.#chat !== undefined && sid === this.#chat.sessionId);
    if (!mine) {
      this.#log.trace({ type: m.$type, sessionId: sid }, 'message for another session ignored');
      return;
    }

    switch (m.$type) {
      case 'chatStarted':
        if (this.#chat?.sessionId === m.sessionId) this.#safeEmit('chatStarted', this.#chat);
        break;
      case 'chatClosed':
        this.#log.info({ sessionId: m.sessionId, chatId: m.chatId }, 'chat closed');
        this.#clearChat();
        if (!this.#starting) {
          this.#owned = undefined;
          this.#sends.dropAll('the chat was closed');
        }
        this.#safeEmit('chatClosed', m);
        break;
      case 'chatFlow':
        this.#safeEmit('chatFlow', m);
        break;
      case 'chatSessionError':
        this.#log.warn({ message: m.message, code: m.code }, 'Voxta reported a chat error');
        this.#safeEmit('chatSessionError', m);
        break;
      case 'replyGenerating':
        this.#safeEmit('replyGenerating', m);
        break;
      case 'replyStart':
        this.#safeEmit('replyStart', m);
        break;
      case 'replyChunk':
        if (this.playback.autoAcknowledge) {
          this.playback.chunkStarted(m.messageId, m, unfetchedDurationSec(classifyAudioUrl(m.audioUrl)));
        }
        this.#safeEmit('replyChunk', m);
        break;
      case 'replyEnd':
        this.playback.replyEnded(m.messageId);
        if (this.playback.autoAcknowledge) this.playback.drained(m.messageId);
        this.#safeEmit('replyEnd', m);
        break;
      case 'replyCancelled':
        this.playback.abort(m.messageId);
        this.#safeEmit('replyCancelled', m);
        break;
      case 'interruptSpeech':
        if (m.messageId) this.playback.abort(m.messageId);
        else this.playback.abortAll();
        this.#safeEmit('interruptSpeech', m);
        break;
      case 'update':
        this.#sends.stored(m);
        this.#safeEmit('update', m);
        break;
      case 'messageDeleted':
        this.#safeEmit('messageDeleted', m);
        break;
      case 'chatParticipantsUpdated':
        if (this.#chat) this.#safeEmit('participantsUpdated', this.#chat);
        break;
      case 'appTrigger':
        this.#onAppTrigger(m);
        break;
      case 'recordingRequest':
        this.#recording = m.enabled;
        this.#safeEmit('recordingRequest', m);
        break;
      case 'recordingStatus':
        this.#safeEmit('recordingStatus', m);
        break;
      case 'speechRecognitionStart':
        this.#safeEmit('speechRecognitionStart', m);
        break;
      case 'speechRecognitionPartial':
        this.#safeEmit('speechRecognitionPartial', m);
        break;
      case 'speechRecognitionEnd':
        this.#safeEmit('speechRecognitionEnd', m);
        break;
      case 'visionCaptureRequest':
        this.#safeEmit('visionCaptureRequest', m);
        break;
      case 'error':
        if (this.#replies.size === 0) this.#log.warn({ message: m.message }, 'Voxta reported an error');
        break;
      default:
        break;
    }
  }

  /**
   * Emits `appTrigger`; for a queued trigger (with a triggerId) sends `appTriggerComplete` exactly
   * once, after every listener returned (async listeners: settled, or `appTriggerTimeoutMs`). A
   * listener that throws does not prevent it: the chat's foreground queue waits for this answer,
   * so a broken listener must not stall the chat. (GE's Unity SDK does not acknowledge when a
   * subscriber throws; we prefer a chat that goes on.)
   */
  #onAppTrigger(m: AppTriggerMessage): void {
    const pending = this.#safeEmitCollect('appTrigger', m);
    const { triggerId, sessionId } = m;
    if (!triggerId || this.#completedTriggers.has(triggerId)) return;
    this.#completedTriggers.add(triggerId);
    const complete = (): void => {
      // Only for the chat that asked: a trigger of a chat that ended meanwhile is moot.
      if (this.#chat?.sessionId !== sessionId) return;
      this.#sendNow(clientMessage.appTriggerComplete(sessionId, triggerId)).catch(() => undefined);
    };
    if (pending.length === 0) {
      complete();
      return;
    }
    const timeoutMs = this.#opts.appTriggerTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    Promise.race([Promise.allSettled(pending).then(() => 'done' as const), timedOut])
      .then((how) => {
        clearTimeout(timer);
        if (how === 'timeout') this.#log.warn({ triggerId, name: m.name, timeoutMs }, 'appTrigger listeners still running; completing the trigger anyway');
        complete();
      })
      .catch(() => undefined);
  }

  // ------------------------------------------------------------------------------------------
  // Internals: events, state
  // ------------------------------------------------------------------------------------------

  #setState(next: SessionState): void {
    const prev = this.#state;
    if (prev === next) return;
    this.#state = next;
    this.#log.debug({ from: prev, to: next }, 'state');
    this.#safeEmit('state', next, prev);
  }

  /** Emits to each listener separately; a throwing listener is logged and the others still run. */
  #safeEmit<K extends keyof VoxtaChatSessionEvents>(event: K, ...args: VoxtaChatSessionEvents[K]): void {
    // The async listeners' promises each carry their own catch: nobody waits for them here.
    Promise.allSettled(this.#safeEmitCollect(event, ...args)).catch(() => undefined);
  }

  /** {@link #safeEmit}, returning the promises of async listeners (each already guarded by a catch). */
  #safeEmitCollect<K extends keyof VoxtaChatSessionEvents>(event: K, ...args: VoxtaChatSessionEvents[K]): Promise<void>[] {
    const listeners = this.rawListeners(event as never) as Array<(...a: unknown[]) => unknown>;
    const pending: Promise<void>[] = [];
    for (const l of listeners) {
      try {
        const r = l.apply(this, args);
        if (r instanceof Promise) {
          pending.push(
            r.then(
              () => undefined,
              (err: unknown) => {
                this.#counts.listenerErrors++;
                this.#log.error({ event, err: errorInfo(err, true) }, 'an async listener of a Voxta event failed');
              },
            ),
          );
        }
      } catch (err) {
        this.#counts.listenerErrors++;
        this.#log.error({ event, err: errorInfo(err, true) }, 'a listener of a Voxta event threw');
      }
    }
    return pending;
  }

  #timeout(k: SessionTimeout): number {
    return timeoutOf(this.#opts, k);
  }
}

/** Contexts need a key to be replaced later; ours is 'discord' unless told otherwise. */
function contextKeyOf(o: { contexts?: ContextItem[]; contextKey?: string }): string | undefined {
  return o.contextKey ?? (o.contexts ? 'discord' : undefined);
}
