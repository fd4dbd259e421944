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
 * User messages (`send`) are delivered EXACTLY ONCE, in order, across reconnects:
 * 1. `send()` appends to a queue. The queue is flushed only while a chat is live, one item at a
 *    time, with SignalR `send` (fire and forget: no completion to wait for). An item leaves the
 *    queue only after SignalR wrote it on a live connection; if the write fails it stays queued.
 * 2. A written item moves to "in flight" until the server's echo (`update` with role User and the
 *    same text) confirms it. Voxta processes user messages in order, so an echo also confirms every
 *    earlier in-flight item.
 * 3. If the connection dies with items in flight we cannot know whether they reached the server.
 *    After re-resuming, `chatStarted.messages` (the stored history) tells: an in-flight item whose
 *    text appears as a user message after the last message we had seen when we wrote it was
 *    delivered and is NOT sent again; the others are put back at the FRONT of the queue (keeping
 *    order) and sent on the new session. A message that reached the dead session but was still
 *    waiting behind a playback hold was never stored, so it is correctly sent again.
 *    Limit: two identical texts sent in a row around a drop could be taken as one.
 * Ephemeral commands (typing, interrupt, playback acks, context) are not queued: they only make
 * sense for the live session and are dropped while disconnected.
 *
 * Events are typed; a listener that throws is caught and logged and never breaks the client.
 * This module knows nothing of Discord.
 */
import { EventEmitter } from 'node:events';
import {
  HttpTransportType,
  HubConnectionBuilder,
  HubConnectionState,
  LogLevel,
  type HubConnection,
  type ILogger,
} from '@microsoft/signalr';
import { errorInfo, logger, type Logger } from '../log.js';
import type { VoxtaEndpoint } from './endpoint.js';
import {
  asUnreachable,
  classifyServerError,
  describeChain,
  isRetriableResumeError,
  VoxtaAuthError,
  VoxtaDisconnectedError,
  VoxtaError,
  VoxtaInputError,
  VoxtaNotFoundError,
  VoxtaServerError,
  VoxtaStateError,
  VoxtaTimeoutError,
  VoxtaUrlError,
} from './errors.js';
import {
  clientMessage,
  parseServerMessage,
  type AudioInputCapability,
  type CharacterRef,
  type ChatClosedMessage,
  type ChatFlowMessage,
  type ChatServices,
  type ChatSessionErrorMessage,
  type ChatsListLoadedMessage,
  type ClientMessage,
  type ConfigurationMessage,
  type ContextItem,
  type HistoryMessage,
  type InterruptSpeechMessage,
  type RecordingRequestMessage,
  type RecordingStatusMessage,
  type ReplyCancelledMessage,
  type ReplyChunkMessage,
  type ReplyEndMessage,
  type ReplyGeneratingMessage,
  type ReplyStartMessage,
  type SendOptions,
  type ServerMessage,
  type ServerUpdateMessage,
  type SpeechRecognitionEndMessage,
  type SpeechRecognitionPartialMessage,
  type SpeechRecognitionStartMessage,
  type WelcomeMessage,
} from './messages.js';
import { PlaybackContract } from './playback-contract.js';
import { classifyAudioUrl, unfetchedDurationSec } from './tts.js';
import { unescapeUserText } from './user-text.js';

export type SessionState = 'idle' | 'connecting' | 'ready' | 'reconnecting' | 'closed';

export const EXPECTED_API_VERSION = '2025-08';
export const CLIENT_NAME = 'Voxta.DiscordBot';

export interface ChatInfo {
  sessionId: string;
  chatId: string;
  title?: string;
  characters: CharacterRef[];
  services: { hasTts: boolean; hasStt: boolean; raw: ChatServices };
  /** Stored history at start/resume time. */
  messages: HistoryMessage[];
}

export interface ReconnectOptions {
  /** First retry delay (default 500 ms). */
  initialDelayMs?: number;
  /** Cap of the exponential back-off (default 15 s). */
  maxDelayMs?: number;
  /** Give up (emit `failed`, state `closed`) after trying for this long (default 5 min). */
  giveUpAfterMs?: number;
  /** ± fraction of random jitter on each delay (default 0.2). */
  jitter?: number;
}

export interface VoxtaChatSessionOptions {
  endpoint: VoxtaEndpoint;
  clientVersion?: string;
  /** `WebSocketStream` (default) lets the server use our microphone socket; `None` for text only. */
  audioInput?: AudioInputCapability;
  acceptedAudioContentTypes?: string[];
  expectedApiVersion?: string;
  /** Playback acks by the session itself (default true; the voice pipeline turns it off). */
  autoAcknowledge?: boolean;
  /** Safety net of the playback contract (default 30 s). */
  playbackSafetyTimeoutMs?: number;
  timeouts?: {
    /** SignalR negotiate + WebSocket open (default 15 s). */
    connectMs?: number;
    /** authenticate → welcome (default 10 s). */
    welcomeMs?: number;
    /** start/resume → chatStarted (default 30 s: a full server waits 10 s before refusing). */
    chatStartMs?: number;
    /** stopChat → chatClosed (default 10 s). */
    stopMs?: number;
    /** list requests (default 10 s). */
    requestMs?: number;
  };
  reconnect?: ReconnectOptions;
  /** SignalR: drop the connection after this long without hearing from the server (default 30 s). */
  serverTimeoutMs?: number;
  /** SignalR ping period (default 15 s). */
  keepAliveMs?: number;
  /** Skip the negotiate request (default false). */
  skipNegotiation?: boolean;
  /** Cap on queued user messages; the oldest is dropped beyond it (default 100). */
  maxQueuedSends?: number;
  log?: Logger;
  /** Extra log bindings (e.g. a guild id) for every line of this session. */
  logBindings?: Record<string, unknown>;
}

export interface StartChatOptions {
  characterId: string;
  /** Load this existing chat (startChat with chatId). */
  chatId?: string;
  contexts?: ContextItem[];
  contextKey?: string;
}

export interface ResumeChatOptions {
  chatId: string;
  contexts?: ContextItem[];
  contextKey?: string;
}

export interface ReconnectingInfo {
  attempt: number;
  error?: string;
}

export interface ReconnectedInfo {
  /** New session id of the re-resumed chat; undefined when there was no chat to resume. */
  sessionId?: string;
  chatId?: string;
  chat?: ChatInfo;
}

export interface SessionStats {
  connects: number;
  reconnects: number;
  sendsQueued: number;
  sendsWritten: number;
  sendsResent: number;
  sendsDropped: number;
  sendsConfirmedByHistory: number;
  queued: number;
  inFlight: number;
  droppedMessages: number;
  listenerErrors: number;
}

export type VoxtaChatSessionEvents = {
  state: [state: SessionState, previous: SessionState];
  /** Every parsed server message (including those of other sessions). */
  message: [message: ServerMessage];
  welcome: [message: WelcomeMessage];
  chatStarted: [chat: ChatInfo];
  chatClosed: [message: ChatClosedMessage];
  /** The chat we owned could not be resumed after a reconnect (deleted, …). */
  chatLost: [info: { chatId: string; error: string }];
  chatFlow: [message: ChatFlowMessage];
  chatSessionError: [message: ChatSessionErrorMessage];
  replyGenerating: [message: ReplyGeneratingMessage];
  replyStart: [message: ReplyStartMessage];
  replyChunk: [message: ReplyChunkMessage];
  replyEnd: [message: ReplyEndMessage];
  replyCancelled: [message: ReplyCancelledMessage];
  update: [message: ServerUpdateMessage];
  interruptSpeech: [message: InterruptSpeechMessage];
  recordingRequest: [message: RecordingRequestMessage];
  recordingStatus: [message: RecordingStatusMessage];
  speechRecognitionStart: [message: SpeechRecognitionStartMessage];
  speechRecognitionPartial: [message: SpeechRecognitionPartialMessage];
  speechRecognitionEnd: [message: SpeechRecognitionEndMessage];
  /** A queued user message was written to the live session. */
  sent: [info: { text: string; sessionId: string; resend: boolean }];
  reconnecting: [info: ReconnectingInfo];
  reconnected: [info: ReconnectedInfo];
  failed: [error: Error];
};

interface QueuedSend {
  text: string;
  opts: SendOptions;
  resend: boolean;
}
interface InFlightSend extends QueuedSend {
  sessionId: string;
  /** Last stored message id known when written: history after it is where the echo must be. */
  afterMessageId: string | undefined;
}

interface Waiter {
  gen: number;
  pick: (m: ServerMessage) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** A value, an Error (→ reject) or undefined (not for me) from a waiter's picker. */
type Picked<T> = T | Error | undefined;

export class VoxtaChatSession extends EventEmitter<VoxtaChatSessionEvents> {
  readonly endpoint: VoxtaEndpoint;
  /** Owns the `speechPlaybackStart`/`Complete` acknowledgements of the current chat. */
  readonly playback: PlaybackContract;

  #state: SessionState = 'idle';
  #conn: HubConnection | undefined;
  #gen = 0;
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
  readonly #waiters = new Set<Waiter>();
  #queue: QueuedSend[] = [];
  #inFlight: InFlightSend[] = [];
  #flushing = false;
  #lastStoredMessageId: string | undefined;
  #apiWarned = false;
  readonly #log: Logger;
  readonly #opts: VoxtaChatSessionOptions;
  readonly #stats: Omit<SessionStats, 'queued' | 'inFlight'> = {
    connects: 0,
    reconnects: 0,
    sendsQueued: 0,
    sendsWritten: 0,
    sendsResent: 0,
    sendsDropped: 0,
    sendsConfirmedByHistory: 0,
    droppedMessages: 0,
    listenerErrors: 0,
  };

  constructor(opts: VoxtaChatSessionOptions) {
    super();
    // The guild session, the voice pipeline and the audio input all listen: more than Node's default 10.
    this.setMaxListeners(50);
    this.#opts = opts;
    this.endpoint = opts.endpoint;
    this.#log = (opts.log ?? logger()).child({ mod: 'voxta-session', ...opts.logBindings });
    this.playback = new PlaybackContract(
      {
        send: (m) => void this.#sendNow(m),
        sessionId: () => this.#chat?.sessionId,
      },
      { autoAcknowledge: opts.autoAcknowledge ?? true, safetyTimeoutMs: opts.playbackSafetyTimeoutMs, log: this.#log },
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
    return { ...this.#stats, queued: this.#queue.length, inFlight: this.#inFlight.length };
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
        await this.#dropConnection();
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
   * queued messages. State `closed`; idempotent.
   */
  async close(opts: { stopChat?: boolean } = {}): Promise<void> {
    if (this.#state === 'closed') return;
    this.#closing = true;
    this.#reconnectAbort?.abort();
    if ((opts.stopChat ?? true) && this.#chat && this.#conn?.state === HubConnectionState.Connected) {
      try {
        await this.#stopChatNow(Math.min(this.#timeout('stopMs'), 3000));
      } catch (err) {
        this.#log.debug({ err: errorInfo(err) }, 'stopChat during close failed');
      }
    }
    this.#dropQueue('the session was closed');
    this.#owned = undefined;
    this.#clearChat();
    this.#rejectWaiters(new VoxtaStateError('The Voxta session was closed'));
    await this.#dropConnection();
    this.#setState('closed');
  }

  // ------------------------------------------------------------------------------------------
  // Chat lifecycle
  // ------------------------------------------------------------------------------------------

  /** Starts a new chat (or loads `chatId`) with a character; resolves on `chatStarted`. */
  async startChat(o: StartChatOptions): Promise<ChatInfo> {
    const payload = clientMessage.startChat({ characterId: o.characterId, chatId: o.chatId, contextKey: o.contextKey ?? (o.contexts ? 'discord' : undefined), contexts: o.contexts });
    this.#pendingStarts++;
    return this.#serialised(async () => {
      try {
        await this.#ensureReadyForChat();
        const info = await this.#startOrResume(payload);
        this.#owned = { chatId: info.chatId, contexts: o.contexts, contextKey: payload.contextKey };
        return info;
      } catch (err) {
        if (!this.#chat && !this.#owned && this.#pendingStarts === 1) this.#dropQueue('the chat could not be started');
        throw err;
      } finally {
        this.#pendingStarts--;
      }
    });
  }

  /** Resumes an existing chat; resolves on `chatStarted`. */
  async resumeChat(o: ResumeChatOptions): Promise<ChatInfo> {
    const payload = clientMessage.resumeChat({ chatId: o.chatId, contextKey: o.contextKey ?? (o.contexts ? 'discord' : undefined), contexts: o.contexts });
    this.#pendingStarts++;
    return this.#serialised(async () => {
      try {
        await this.#ensureReadyForChat();
        const info = await this.#startOrResume(payload);
        this.#owned = { chatId: info.chatId, contexts: o.contexts, contextKey: payload.contextKey };
        return info;
      } catch (err) {
        if (!this.#chat && !this.#owned && this.#pendingStarts === 1) this.#dropQueue('the chat could not be started');
        throw err;
      } finally {
        this.#pendingStarts--;
      }
    });
  }

  /**
   * Stops the current chat and waits for `chatClosed`. Queued user messages are dropped (they
   * belonged to that chat). On timeout the connection is recycled, which disposes the chat on the
   * server too (protocol §5.4).
   */
  async stopChat(): Promise<void> {
    return this.#serialised(async () => {
      this.#owned = undefined;
      this.#dropQueue('the chat was stopped');
      if (!this.#chat) return;
      if (this.#conn?.state !== HubConnectionState.Connected) {
        this.#clearChat();
        return;
      }
      try {
        await this.#stopChatNow(this.#timeout('stopMs'));
      } catch (err) {
        if (err instanceof VoxtaTimeoutError) {
          this.#log.warn('Voxta did not confirm stopChat: recycling the connection so the server disposes the chat');
          this.#clearChat();
          void this.#conn?.stop().catch(() => undefined);
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
   * Queues a user message; delivered once, in order, to the live chat (see the module comment).
   * Throws {@link VoxtaInputError} for empty text (use {@link requestReply}) and
   * {@link VoxtaStateError} when there is no chat to deliver to.
   */
  send(text: string, opts: SendOptions = {}): void {
    if (this.#state === 'closed') throw new VoxtaStateError('This Voxta session is closed');
    if (text.trim() === '') throw new VoxtaInputError('Cannot send an empty message (an empty send asks Voxta for a reply; use requestReply())');
    if (!this.#chat && !this.#owned && this.#pendingStarts === 0) throw new VoxtaStateError('No Voxta chat is running');
    const max = this.#opts.maxQueuedSends ?? 100;
    if (this.#queue.length >= max) {
      const dropped = this.#queue.shift();
      this.#stats.sendsDropped++;
      this.#log.warn({ queued: this.#queue.length, chars: dropped?.text.length }, 'send queue full: dropped the oldest queued message');
    }
    this.#queue.push({ text, opts: { ...opts }, resend: false });
    this.#stats.sendsQueued++;
    void this.#flush();
  }

  /** Asks the character to reply without a user message (`send` with empty text). Not queued. */
  requestReply(): Promise<boolean> {
    const s = this.#chat?.sessionId;
    return s ? this.#sendNow(clientMessage.send(s, '')) : Promise.resolve(false);
  }

  /** The character says exactly this text (with TTS). Sent now or dropped (returns false). */
  characterSpeechRequest(text: string, characterId?: string): Promise<boolean> {
    const s = this.#chat?.sessionId;
    return s ? this.#sendNow(clientMessage.characterSpeechRequest(s, text, characterId)) : Promise.resolve(false);
  }

  /** Aborts the reply being generated (the server may answer `interruptSpeech`). */
  interrupt(): Promise<boolean> {
    const s = this.#chat?.sessionId;
    return s ? this.#sendNow(clientMessage.interrupt(s)) : Promise.resolve(false);
  }

  pauseChat(pause: boolean): Promise<boolean> {
    const s = this.#chat?.sessionId;
    return s ? this.#sendNow(clientMessage.pauseChat(s, pause)) : Promise.resolve(false);
  }

  /**
   * Replaces the contexts under `contextKey`. Remembered, so a reconnect re-applies the latest
   * contexts with `resumeChat`.
   */
  updateContext(contexts: ContextItem[], contextKey = 'discord'): Promise<boolean> {
    if (this.#owned) this.#owned = { ...this.#owned, contexts: contexts.map((c) => ({ ...c })), contextKey };
    const s = this.#chat?.sessionId;
    return s ? this.#sendNow(clientMessage.updateContext(s, contexts, contextKey)) : Promise.resolve(false);
  }

  typingStart(): Promise<boolean> {
    const s = this.#chat?.sessionId;
    return s ? this.#sendNow(clientMessage.typingStart(s)) : Promise.resolve(false);
  }

  typingEnd(sent = true): Promise<boolean> {
    const s = this.#chat?.sessionId;
    return s ? this.#sendNow(clientMessage.typingEnd(s, sent)) : Promise.resolve(false);
  }

  updateMessage(messageId: string, text: string): Promise<boolean> {
    const s = this.#chat?.sessionId;
    return s ? this.#sendNow(clientMessage.update(s, messageId, text)) : Promise.resolve(false);
  }

  deleteMessage(messageId: string): Promise<boolean> {
    const s = this.#chat?.sessionId;
    return s ? this.#sendNow(clientMessage.deleteMessage(s, messageId)) : Promise.resolve(false);
  }

  /** Characters over the hub (`loadCharactersList`). Connects first when idle. */
  async loadCharacters(): Promise<CharacterRef[]> {
    await this.#ensureConnected();
    const gen = this.#gen;
    const wait = this.#waitFor<CharacterRef[]>(
      gen,
      (m) => (m.$type === 'charactersListLoaded' ? m.characters : m.$type === 'error' ? classifyServerError(m.message, m.code) : undefined),
      this.#timeout('requestMs'),
      'the character list',
    );
    await this.#write(clientMessage.loadCharactersList(), gen);
    return wait;
  }

  /** Chats of a character over the hub (`loadChatsList`), newest created first. */
  async loadChats(characterId: string): Promise<ChatsListLoadedMessage['chats']> {
    await this.#ensureConnected();
    const gen = this.#gen;
    const wait = this.#waitFor<ChatsListLoadedMessage['chats']>(
      gen,
      (m) => (m.$type === 'chatsListLoaded' ? m.chats : m.$type === 'error' ? classifyServerError(m.message, m.code) : undefined),
      this.#timeout('requestMs'),
      'the chat list',
    );
    await this.#write(clientMessage.loadChatsList(characterId), gen);
    return wait;
  }

  // ------------------------------------------------------------------------------------------
  // Internals: connection
  // ------------------------------------------------------------------------------------------

  async #openAndAuthenticate(): Promise<WelcomeMessage> {
    await this.#dropConnection();
    const gen = ++this.#gen;
    const conn = this.#buildConnection();
    this.#conn = conn;
    conn.on('ReceiveMessage', (raw: unknown) => {
      if (gen === this.#gen) this.#onRaw(raw);
    });
    conn.onclose((err) => this.#onConnectionClosed(gen, err));
    const connectMs = this.#timeout('connectMs');
    try {
      await withTimeout(conn.start(), connectMs, () => new VoxtaTimeoutError('the connection', connectMs));
    } catch (err) {
      if (gen === this.#gen) this.#conn = undefined;
      void conn.stop().catch(() => undefined);
      throw await this.#mapConnectError(err);
    }
    if (gen !== this.#gen) {
      // Closed or superseded while the socket was opening: do not leak it.
      void conn.stop().catch(() => undefined);
      throw new VoxtaDisconnectedError();
    }
    this.#stats.connects++;

    const welcomeMs = this.#timeout('welcomeMs');
    const waitWelcome = this.#waitFor<WelcomeMessage>(
      gen,
      (m) => {
        if (m.$type === 'welcome') return m;
        if (m.$type === 'authenticationRequired') return new VoxtaAuthError('Voxta asked for authentication: the API key has no user profile or is not accepted');
        if (m.$type === 'error') return classifyServerError(m.message, m.code);
        return undefined;
      },
      welcomeMs,
      'authenticate (welcome)',
    );
    await this.#write(
      clientMessage.authenticate({
        client: CLIENT_NAME,
        clientVersion: this.#opts.clientVersion ?? '0.1.0',
        scope: ['role:app'],
        capabilities: {
          audioInput: this.#opts.audioInput ?? 'WebSocketStream',
          audioOutput: 'Url',
          acceptedAudioContentTypes: this.#opts.acceptedAudioContentTypes ?? ['audio/x-wav', 'audio/wav'],
        },
      }),
      gen,
    );
    const welcome = await waitWelcome;
    this.#welcome = welcome;
    const expected = this.#opts.expectedApiVersion ?? EXPECTED_API_VERSION;
    if (welcome.apiVersion !== expected && !this.#apiWarned) {
      this.#apiWarned = true;
      this.#log.warn(
        { apiVersion: welcome.apiVersion, expected, server: welcome.voxtaServerVersion },
        'Voxta speaks a different API version than this bot was built for; continuing, but some features may misbehave',
      );
    }
    this.#log.info({ server: welcome.voxtaServerVersion, apiVersion: welcome.apiVersion }, 'connected to Voxta');
    this.#safeEmit('welcome', welcome);
    return welcome;
  }

  #buildConnection(): HubConnection {
    const ep = this.endpoint;
    const apiKey = ep.apiKey;
    const conn = new HubConnectionBuilder()
      .withUrl(ep.hubUrl, {
        transport: HttpTransportType.WebSockets,
        skipNegotiation: this.#opts.skipNegotiation ?? false,
        accessTokenFactory: apiKey ? () => apiKey : undefined,
        headers: ep.usesBasicAuth ? ep.authHeaders() : undefined,
        timeout: this.#timeout('connectMs'),
        logger: this.#signalrLogger(),
      })
      .configureLogging(this.#signalrLogger())
      .build();
    conn.serverTimeoutInMilliseconds = this.#opts.serverTimeoutMs ?? 30_000;
    conn.keepAliveIntervalInMilliseconds = this.#opts.keepAliveMs ?? 15_000;
    return conn;
  }

  /** SignalR's own log lines go to our logger at debug/trace (scrubbed by log.ts), never to the console. */
  #signalrLogger(): ILogger {
    const log = this.#log.child({ lib: 'signalr' });
    return {
      log(level: LogLevel, message: string) {
        if (level >= LogLevel.Warning) log.debug(message);
        else log.trace(message);
      },
    };
  }

  async #mapConnectError(err: unknown): Promise<VoxtaError> {
    if (err instanceof VoxtaError) return err;
    const text = describeChain(err);
    const status = /Status code '(\d{3})'|status code (\d{3})|returned from negotiate '(\d{3})'|Unexpected server response: (\d{3})/i.exec(text);
    const code = status ? Number(status[1] ?? status[2] ?? status[3] ?? status[4]) : undefined;
    if (code === 401 || code === 403) return new VoxtaAuthError(undefined, code);
    if (code === 404) return new VoxtaUrlError(`No Voxta hub at ${this.endpoint.display}/hub (HTTP 404): is VOXTA_URL the Voxta server?`);
    if (code !== undefined) return new VoxtaServerError(`the hub connection was refused with HTTP ${code}`);
    // SignalR flattens network errors into text ("fetch failed") and loses the cause (refused?
    // DNS?); one plain probe of the base URL recovers it so the user gets the right advice.
    if (/fetch failed|Failed to complete negotiation|WebSocket failed to connect|ECONN|ENOTFOUND|EAI_AGAIN/i.test(text)) {
      const probed = await this.#probe();
      if (probed) return probed;
    }
    const unreachable = asUnreachable(err, this.endpoint.display);
    if (unreachable) return unreachable;
    this.#log.debug({ err: text }, 'hub connection failed');
    return new VoxtaError(`Could not connect to Voxta at ${this.endpoint.display}`, { cause: err });
  }

  /** The network error of a plain GET of the base URL, if there is one. */
  async #probe(): Promise<VoxtaError | undefined> {
    try {
      const res = await fetch(this.endpoint.baseUrl, { method: 'GET', headers: this.endpoint.authHeaders(), signal: AbortSignal.timeout(3000) });
      void res.body?.cancel().catch(() => undefined);
      if (res.status === 401 || res.status === 403) return new VoxtaAuthError(undefined, res.status);
      return undefined;
    } catch (err) {
      return asUnreachable(err, this.endpoint.display);
    }
  }

  async #dropConnection(): Promise<void> {
    const conn = this.#conn;
    this.#conn = undefined;
    this.#gen++;
    if (conn) await conn.stop().catch(() => undefined);
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
    if (gen !== this.#gen) return;
    this.#conn = undefined;
    this.#rejectWaiters(new VoxtaDisconnectedError(), gen);
    if (this.#closing || this.#state === 'closed' || this.#state === 'connecting' || this.#state === 'idle') return;
    if (this.#state === 'reconnecting') return; // the loop notices by itself
    this.#log.warn({ err: err ? errorInfo(err) : undefined, chatId: this.chatId }, 'lost the connection to Voxta; reconnecting');
    void this.#reconnectLoop(err);
  }

  async #reconnectLoop(cause: Error | undefined): Promise<void> {
    this.#setState('reconnecting');
    this.#clearChat(); // the dead session's chat and owed completes are gone with it
    const abort = new AbortController();
    this.#reconnectAbort = abort;
    const r = this.#opts.reconnect ?? {};
    const initial = r.initialDelayMs ?? 500;
    const max = r.maxDelayMs ?? 15_000;
    const giveUpAt = Date.now() + (r.giveUpAfterMs ?? 300_000);
    const jitter = r.jitter ?? 0.2;
    let delay = initial;
    let attempt = 0;
    let lastError: Error | undefined = cause;
    this.#safeEmit('reconnecting', { attempt, error: cause ? errorInfo(cause).message : undefined });

    while (!abort.signal.aborted) {
      const wait = Math.round(delay * (1 + (Math.random() * 2 - 1) * jitter));
      await sleep(attempt === 0 ? Math.min(wait, initial) : wait, abort.signal);
      if (abort.signal.aborted) return;
      attempt++;
      try {
        if (this.#conn?.state !== HubConnectionState.Connected) await this.#openAndAuthenticate();
        const owned = this.#owned;
        let chat: ChatInfo | undefined;
        if (owned) {
          try {
            chat = await this.#serialised(async () => {
              if (!this.#owned || this.#chat) return this.#chat; // stopped or resumed meanwhile
              return this.#startOrResume(clientMessage.resumeChat({ chatId: owned.chatId, contextKey: this.#owned.contextKey, contexts: this.#owned.contexts }));
            });
          } catch (err) {
            if (err instanceof VoxtaNotFoundError) {
              this.#log.warn({ chatId: owned.chatId, err: errorInfo(err) }, 'the chat could not be resumed after reconnecting');
              this.#owned = undefined;
              this.#dropQueue('the chat no longer exists');
              this.#safeEmit('chatLost', { chatId: owned.chatId, error: err.message });
            } else {
              throw err;
            }
          }
        }
        if (abort.signal.aborted) {
          if (this.#closing) await this.#dropConnection();
          return;
        }
        this.#stats.reconnects++;
        this.#reconnectAbort = undefined;
        this.#setState('ready');
        this.#log.info({ attempt, sessionId: chat?.sessionId, chatId: chat?.chatId }, 'reconnected to Voxta');
        this.#safeEmit('reconnected', { sessionId: chat?.sessionId, chatId: chat?.chatId, chat });
        void this.#flush();
        return;
      } catch (err) {
        lastError = err instanceof Error ? err : new Error(String(err));
        const fatal = err instanceof VoxtaAuthError || err instanceof VoxtaUrlError || !(err instanceof VoxtaError) || !isRetriableOrTransport(err);
        if (fatal || Date.now() >= giveUpAt) break;
        this.#log.info({ attempt, err: errorInfo(err) }, 'reconnect attempt failed; retrying');
        this.#safeEmit('reconnecting', { attempt, error: errorInfo(err).message });
        delay = Math.min(max, Math.max(initial, delay * 2));
      }
    }
    if (abort.signal.aborted) {
      if (this.#closing) await this.#dropConnection();
      return;
    }
    // Gave up.
    const error = new VoxtaError(`Gave up reconnecting to Voxta: ${lastError ? errorInfo(lastError).message : 'unknown error'}`, { cause: lastError });
    this.#log.error({ err: errorInfo(error) }, 'gave up reconnecting to Voxta');
    this.#closing = true;
    this.#dropQueue('reconnecting failed');
    this.#owned = undefined;
    await this.#dropConnection();
    this.#setState('closed');
    this.#safeEmit('failed', error);
  }

  // ------------------------------------------------------------------------------------------
  // Internals: chat
  // ------------------------------------------------------------------------------------------

  async #startOrResume(payload: ClientMessage & { $type: 'startChat' | 'resumeChat' }): Promise<ChatInfo> {
    const gen = this.#gen;
    this.#starting = true;
    this.#pendingSessionId = undefined;
    const ms = this.#timeout('chatStartMs');
    try {
      const wait = this.#waitFor<ChatInfo>(
        gen,
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
        ms,
        payload.$type === 'startChat' ? 'startChat' : 'resumeChat',
      );
      await this.#write(payload, gen);
      return await wait;
    } finally {
      this.#starting = false;
      this.#pendingSessionId = undefined;
    }
  }

  async #stopChatNow(timeoutMs: number): Promise<void> {
    const chat = this.#chat;
    if (!chat) return;
    const gen = this.#gen;
    const wait = this.#waitFor<true>(
      gen,
      (m) => {
        if (m.$type === 'chatClosed' && m.sessionId === chat.sessionId) return true;
        if (m.$type === 'error') return classifyServerError(m.message, m.code);
        return undefined;
      },
      timeoutMs,
      'stopChat',
    );
    await this.#write(clientMessage.stopChat(chat.sessionId), gen);
    await wait;
    // #onMessage cleared the chat on chatClosed.
  }

  #clearChat(): void {
    if (this.#chat || this.playback.stats.owed > 0) this.playback.reset();
    this.#chat = undefined;
    this.#recording = undefined;
    this.#lastStoredMessageId = undefined;
  }

  #dropQueue(reason: string): void {
    const n = this.#queue.length + this.#inFlight.length;
    if (n > 0) this.#log.info({ dropped: n, reason }, 'dropped queued user messages');
    this.#stats.sendsDropped += this.#queue.length;
    this.#queue = [];
    this.#inFlight = [];
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

  /** Writes on the connection of generation `gen`; rejects with a typed error when it is gone. */
  async #write(message: ClientMessage, gen: number): Promise<void> {
    const conn = this.#conn;
    if (!conn || gen !== this.#gen || conn.state !== HubConnectionState.Connected) throw new VoxtaDisconnectedError();
    try {
      await conn.send('SendMessage', message);
    } catch (err) {
      this.#log.debug({ type: message.$type, err: errorInfo(err) }, 'write failed');
      throw new VoxtaDisconnectedError();
    }
  }

  /** Fire-and-forget on the live connection; false when there is none (never throws). */
  async #sendNow(message: ClientMessage): Promise<boolean> {
    try {
      await this.#write(message, this.#gen);
      return true;
    } catch {
      this.#log.debug({ type: message.$type }, 'not connected: message dropped');
      return false;
    }
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const chat = this.#chat;
        if (!chat || this.#state !== 'ready') return;
        const item = this.#queue[0]!;
        const gen = this.#gen;
        try {
          await this.#write(clientMessage.send(chat.sessionId, item.text, item.opts), gen);
        } catch {
          return; // stays queued; the reconnect flushes again
        }
        // Written on the live connection of this chat: it leaves the queue now, exactly once.
        if (this.#queue[0] === item) this.#queue.shift();
        this.#inFlight.push({ ...item, sessionId: chat.sessionId, afterMessageId: this.#lastStoredMessageId });
        if (this.#inFlight.length > 50) this.#inFlight.shift();
        this.#stats.sendsWritten++;
        if (item.resend) this.#stats.sendsResent++;
        this.#safeEmit('sent', { text: item.text, sessionId: chat.sessionId, resend: item.resend });
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** The server stored a user message: confirm it and every in-flight message before it. */
  #confirmEcho(update: ServerUpdateMessage): void {
    const text = normaliseForMatch(update.text);
    const i = this.#inFlight.findIndex((f) => f.sessionId === update.sessionId && normaliseForMatch(f.text) === text);
    if (i >= 0) this.#inFlight.splice(0, i + 1);
  }

  /**
   * After a resume: in-flight messages found in the stored history were delivered; the others go
   * back to the front of the queue, in order.
   */
  #reconcileInFlight(history: HistoryMessage[]): void {
    if (this.#inFlight.length === 0) return;
    const pending = this.#inFlight;
    this.#inFlight = [];
    const firstAfter = pending[0]?.afterMessageId;
    let from = 0;
    if (firstAfter) {
      const idx = history.findIndex((m) => m.messageId === firstAfter);
      if (idx >= 0) from = idx + 1;
    }
    const requeue: QueuedSend[] = [];
    for (const item of pending) {
      const want = normaliseForMatch(item.text);
      let found = -1;
      for (let k = from; k < history.length; k++) {
        const h = history[k]!;
        if (h.role.toLowerCase() === 'user' && normaliseForMatch(h.text) === want) {
          found = k;
          break;
        }
      }
      if (found >= 0) {
        from = found + 1;
        this.#stats.sendsConfirmedByHistory++;
      } else {
        requeue.push({ text: item.text, opts: item.opts, resend: true });
      }
    }
    if (requeue.length > 0) this.#log.info({ resend: requeue.length, confirmed: pending.length - requeue.length }, 'messages lost with the old connection will be sent again');
    this.#queue = [...requeue, ...this.#queue];
  }

  // ------------------------------------------------------------------------------------------
  // Internals: receiving
  // ------------------------------------------------------------------------------------------

  #onRaw(raw: unknown): void {
    const m = parseServerMessage(raw);
    if (!m) {
      this.#stats.droppedMessages++;
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

    this.#safeEmit('message', m);
    for (const w of [...this.#waiters]) this.#offer(w, m);

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
          this.#dropQueue('the chat was closed');
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
        this.#lastStoredMessageId = m.messageId;
        if (m.role.toLowerCase() === 'user') this.#confirmEcho(m);
        this.#safeEmit('update', m);
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
      case 'error':
        if (this.#waiters.size === 0) this.#log.warn({ message: m.message }, 'Voxta reported an error');
        break;
      default:
        break;
    }
  }

  #adoptChat(m: ServerMessage & { $type: 'chatStarted' }): void {
    const services = m.services;
    const info: ChatInfo = {
      sessionId: m.sessionId,
      chatId: m.chatId,
      title: m.title,
      characters: m.characters,
      services: { hasTts: isOn(services.textToSpeech), hasStt: isOn(services.speechToText), raw: services },
      messages: m.messages,
    };
    this.playback.reset();
    this.#chat = info;
    const last = m.messages.at(-1);
    this.#reconcileInFlight(m.messages);
    this.#lastStoredMessageId = last?.messageId;
    this.#log.info({ sessionId: info.sessionId, chatId: info.chatId, tts: info.services.hasTts, stt: info.services.hasStt }, 'chat started');
    // Flush after the current message is fully dispatched (listeners learn about the chat first).
    queueMicrotask(() => void this.#flush());
  }

  // ------------------------------------------------------------------------------------------
  // Internals: waiting, events, state
  // ------------------------------------------------------------------------------------------

  #waitFor<T>(gen: number, pick: (m: ServerMessage) => Picked<T>, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const w: Waiter = {
        gen,
        pick,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w);
          reject(new VoxtaTimeoutError(what, timeoutMs));
        }, timeoutMs),
      };
      this.#waiters.add(w);
    });
  }

  #offer(w: Waiter, m: ServerMessage): void {
    if (w.gen !== this.#gen) return;
    let v: unknown;
    try {
      v = w.pick(m);
    } catch (err) {
      v = err instanceof Error ? err : new Error(String(err));
    }
    if (v === undefined) return;
    this.#waiters.delete(w);
    clearTimeout(w.timer);
    if (v instanceof Error) w.reject(v);
    else w.resolve(v);
  }

  #rejectWaiters(err: Error, gen?: number): void {
    for (const w of [...this.#waiters]) {
      if (gen !== undefined && w.gen !== gen) continue;
      this.#waiters.delete(w);
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  #setState(next: SessionState): void {
    const prev = this.#state;
    if (prev === next) return;
    this.#state = next;
    this.#log.debug({ from: prev, to: next }, 'state');
    this.#safeEmit('state', next, prev);
  }

  /** Emits to each listener separately; a throwing listener is logged and the others still run. */
  #safeEmit<K extends keyof VoxtaChatSessionEvents>(event: K, ...args: VoxtaChatSessionEvents[K]): void {
    const listeners = this.rawListeners(event as never) as Array<(...a: unknown[]) => unknown>;
    for (const l of listeners) {
      try {
        const r = l.apply(this, args);
        if (r instanceof Promise) {
          r.catch((err: unknown) => {
            this.#stats.listenerErrors++;
            this.#log.error({ event, err: errorInfo(err, true) }, 'an async listener of a Voxta event failed');
          });
        }
      } catch (err) {
        this.#stats.listenerErrors++;
        this.#log.error({ event, err: errorInfo(err, true) }, 'a listener of a Voxta event threw');
      }
    }
  }

  #timeout(k: keyof NonNullable<VoxtaChatSessionOptions['timeouts']>): number {
    const d = { connectMs: 15_000, welcomeMs: 10_000, chatStartMs: 30_000, stopMs: 10_000, requestMs: 10_000 }[k];
    return this.#opts.timeouts?.[k] ?? d;
  }
}

function isOn(s: unknown): boolean {
  return typeof s === 'object' && s !== null;
}

function isRetriableOrTransport(err: VoxtaError): boolean {
  return isRetriableResumeError(err) || err.constructor === VoxtaError || err instanceof VoxtaServerError;
}

/** Text as compared between what we sent and what the server stored (escape and spacing ignored). */
function normaliseForMatch(text: string): string {
  return unescapeUserText(text).replace(/\s+/g, ' ');
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(onTimeout()), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
