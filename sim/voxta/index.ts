/**
 * The simulated Voxta server: an HTTP server with the SignalR hub, the audio input socket, TTS
 * downloads and the REST helpers, plus recorded traffic and fault switches for tests.
 * See README.md in this folder for the full API.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { errorInfo, logger } from '../../src/log.js';
import { AudioSockets, type AudioRecord } from './audio-socket.js';
import { authenticateRequest } from './auth.js';
import { ChatStore, type ChatRecord } from './chat-store.js';
import type { SessionInfo } from './chat-session.js';
import {
  TranscriptCursor,
  findCharacter,
  findScenario,
  profileNarrator,
  resolveFaults,
  resolveOptions,
  type ResolvedOptions,
  type SimContext,
  type SimFaults,
  type VoxtaSimOptions,
} from './context.js';
import { SimHubConnection } from './hub-connection.js';
import type { SimAppTrigger } from './context.js';
import {
  SimRecorder,
  type AppTriggerRecord,
  type ServerMicrophoneRecord,
  type MessageFilter,
  type PlaybackRecord,
  type ReceivedMessage,
  type RecognitionRecord,
  type SentMessage,
  type SimEvents,
  type TtsRequest,
} from './recorder.js';
import { handleHttp, sendJson } from './rest.js';
import { SessionRegistry } from './session-registry.js';
import { TtsRegistry, type TtsServed } from './tts.js';
import { UserConnection, type HubConnectionInfo } from './user-connection.js';
import { SimVision, type VisionRequestRecord, type VisionUpload } from './vision.js';

export type { VoxtaSimOptions, ResolvedOptions, SimFaults, TranscriptSource, SimAppTrigger, FinishedReplyInfo, SttSource } from './context.js';
export type { SimCharacter, ReplyContext, SimReply, ReplyScript, SimScenario, SimScenarioRole } from './characters.js';
export {
  DEFAULT_CHARACTERS,
  DEFAULT_NARRATORS,
  DEFAULT_SCENARIOS,
  ARIA_ID,
  HOLT_ID,
  MIRA_ID,
  VEX_ID,
  NARRATOR_ID,
  CHRONICLER_ID,
  BRIDGE_SCENARIO_ID,
  defaultReply,
  splitSentences,
} from './characters.js';
export type {
  ReceivedMessage,
  SentMessage,
  PlaybackRecord,
  RecognitionRecord,
  MessageFilter,
  TtsRequest,
  AppTriggerRecord,
  ServerMicrophoneRecord,
} from './recorder.js';
export type { AudioRecord } from './audio-socket.js';
export type { ChatRecord, ChatMessageRecord } from './chat-store.js';
export type { SessionInfo } from './chat-session.js';
export type { HubConnectionInfo } from './user-connection.js';
export type { TtsServed } from './tts.js';
export type { SimVisionOptions, VisionUpload, VisionRequestRecord } from './vision.js';
export type { ClientPayload, ServerMessage } from './messages.js';
export { speechDurationMs, toneFrequencyFor } from './tts.js';
export { decodeWav, encodeWav } from './wav.js';

const HUB_PATH = '/hub';
const NEGOTIATE_PATH = '/hub/negotiate';
const AUDIO_PATH = '/ws/audio/input/stream';

export class VoxtaSim {
  /** Live options: change them at run time (e.g. `sim.options.tts.status = 502`). */
  readonly options: ResolvedOptions;
  /** Live fault switches. */
  readonly faults: SimFaults;
  private readonly recorder = new SimRecorder();
  private readonly chatStore = new ChatStore();
  private readonly registry = new SessionRegistry();
  private readonly ctx: SimContext;
  private readonly audioSockets: AudioSockets;
  private readonly hubWss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  private readonly connectionsById = new Map<string, UserConnection>();
  private readonly hubsById = new Map<string, SimHubConnection>();
  /** Negotiated connection tokens not yet used by a WebSocket, → connection id. */
  private readonly negotiated = new Map<string, string>();
  private server: Server | undefined;
  private boundPort = 0;
  private closed = false;

  constructor(opts: VoxtaSimOptions = {}) {
    this.options = resolveOptions(opts);
    this.faults = resolveFaults(opts.faults);
    let espeakWarned = false;
    const log = logger().child({ component: 'voxta-sim' }, this.options.log ? {} : { level: 'error' });
    const tts = new TtsRegistry(() => {
      if (!espeakWarned) log.warn('espeak-ng is not installed: speaking with tones instead');
      espeakWarned = true;
    });
    this.ctx = {
      options: this.options,
      faults: this.faults,
      recorder: this.recorder,
      chats: this.chatStore,
      tts,
      registry: this.registry,
      log,
      transcripts: new TranscriptCursor(),
      vision: new SimVision({ options: this.options, log, changed: () => this.recorder.emit('changed') }),
    };
    this.audioSockets = new AudioSockets(this.ctx);
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `http://${host}:${this.boundPort}`;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Starts listening (on the same port again after {@link stop}). */
  async start(): Promise<void> {
    if (this.closed) throw new Error('voxta-sim: closed for good; start a new simulator');
    if (this.server) return;
    const server = createServer((req, res) => this.onRequest(req, res));
    server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort || this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    this.boundPort = typeof address === 'object' && address ? address.port : this.boundPort;
    this.server = server;
    this.ctx.log.info({ url: this.url }, 'simulated Voxta server listening');
  }

  /**
   * Simulates Voxta going down: every socket is cut without a close frame, every session and
   * pending TTS job is lost. Saved chats survive. {@link start} brings it back on the same port.
   */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const hub of this.hubsById.values()) hub.terminate();
    this.audioSockets.dropAll();
    for (const s of this.registry.all()) s.dispose('crash');
    this.registry.clear();
    for (const c of this.connectionsById.values()) c.session = null;
    this.ctx.tts.clear();
    this.ctx.vision.clear();
    this.negotiated.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.ctx.log.info('simulated Voxta server stopped');
  }

  /** Stops for good. */
  async close(): Promise<void> {
    await this.stop();
    this.closed = true;
    this.recorder.removeAllListeners();
  }

  // ---------------------------------------------------------------- faults

  /** Cuts every hub socket without a close frame (network loss / crash of the connection). */
  dropHubConnections(): void {
    for (const hub of this.hubsById.values()) hub.terminate();
  }

  /** Closes every hub connection with a SignalR close message (type 7). */
  closeHubConnections(opts: { allowReconnect?: boolean; error?: string } = {}): void {
    for (const hub of this.hubsById.values()) hub.closeWithMessage(opts);
  }

  /**
   * Every hub connection gets a WebSocket close frame but its TCP connection is held open and no
   * longer read (see SimHubConnection.halfClose): writes fail while SignalR still says Connected.
   */
  halfCloseHubConnections(): void {
    for (const hub of this.hubsById.values()) hub.halfClose();
  }

  /** The held TCP connections of half-closed hubs are finally dropped (the proxy gives up). */
  dropHalfClosedHubConnections(): void {
    for (const hub of this.hubsById.values()) if (hub.halfClosed) hub.terminate();
  }

  dropAudioSockets(): void {
    this.audioSockets.dropAll();
  }

  /** speechRecognitionStart / Partial / End for `text` now, on the session's connection. */
  injectTranscript(sessionId: string, text: string | null): void {
    const session = this.registry.get(sessionId);
    if (!session || session.state !== 'active') throw new Error(`voxta-sim: no active session ${sessionId}`);
    session.injectTranscript(text);
  }

  // ---------------------------------------------------------------- observability

  get received(): ReceivedMessage[] {
    return this.recorder.received;
  }
  get sent(): SentMessage[] {
    return this.recorder.sent;
  }
  get ttsServed(): TtsServed[] {
    return this.recorder.ttsServed;
  }
  get ttsRequests(): TtsRequest[] {
    return this.recorder.ttsRequests;
  }
  get recognitions(): RecognitionRecord[] {
    return this.recorder.recognitions;
  }
  /** Every picture received (capture uploads and send attachments), oldest first. */
  get visionUploads(): VisionUpload[] {
    return this.ctx.vision.uploads;
  }
  /** Every capture request the server sent, with its outcome. */
  get visionRequests(): VisionRequestRecord[] {
    return this.ctx.vision.requests;
  }

  /** Every appTrigger sent, with the appTriggerComplete count of each. */
  get appTriggers(): AppTriggerRecord[] {
    return this.recorder.appTriggers;
  }
  /** appTriggerComplete messages that matched no trigger. */
  get strayTriggerCompletes(): Array<{ sessionId: string; triggerId: string; at: number }> {
    return this.recorder.strayTriggerCompletes;
  }

  /**
   * When Voxta would have switched the server PC's microphone on (and off) for a session: a LOCAL
   * connection (see `localClients`) whose chat has STT but that does not stream its own audio.
   */
  serverMicrophone(): ServerMicrophoneRecord[] {
    return [...this.recorder.serverMicrophone];
  }

  /** Fault injection: sends `payload` as a ReceiveMessage on the connection that owns the session (e.g. a repeated frame). */
  sendRaw(sessionId: string, payload: unknown): void {
    const session = this.registry.get(sessionId);
    if (!session || session.state !== 'active') throw new Error(`voxta-sim: no active session ${sessionId}`);
    session.owner.sendUnchecked(payload);
  }

  /** Sends an appTrigger on a live session now (test hook); returns its triggerId when `queued`. */
  emitAppTrigger(sessionId: string, trigger: SimAppTrigger): string | undefined {
    const session = this.registry.get(sessionId);
    if (!session || session.state !== 'active') throw new Error(`voxta-sim: no active session ${sessionId}`);
    return session.sendAppTrigger(trigger);
  }

  seq(): number {
    return this.recorder.seq();
  }

  connections(): HubConnectionInfo[] {
    return [...this.connectionsById.values()].map((c) => c.info());
  }

  sessions(): SessionInfo[] {
    return this.registry.all().map((s) => s.info());
  }

  heldSessions(): SessionInfo[] {
    return this.sessions().filter((s) => s.held);
  }

  chats(): ChatRecord[] {
    return this.chatStore.all();
  }

  /**
   * Seeds a saved chat (e.g. to test resume); `messages` become its history (assistant messages
   * from `senderId`, default the first character). Several characters make a group chat.
   */
  createChat(
    characterId: string | string[],
    opts: { title?: string; scenarioId?: string; messages?: { role: 'User' | 'Assistant'; text: string; senderId?: string }[] } = {},
  ): ChatRecord {
    const ids = typeof characterId === 'string' ? [characterId] : characterId;
    const names = ids.map((id) => {
      const character = findCharacter(this.options, id);
      if (!character) throw new Error(`voxta-sim: unknown character ${id}`);
      return character.name;
    });
    const scenario = opts.scenarioId ? findScenario(this.options, opts.scenarioId) : undefined;
    if (opts.scenarioId && !scenario) throw new Error(`voxta-sim: unknown scenario ${opts.scenarioId}`);
    const roles: Record<string, string | null> = {};
    for (const r of scenario?.roles ?? []) roles[r.name] = r.defaultCharacterId && ids.includes(r.defaultCharacterId) ? r.defaultCharacterId : null;
    const chat = this.chatStore.create(ids, opts.title ?? `Chat with ${names.join(' and ')}`, {
      scenarioId: scenario?.id ?? null,
      roles,
      narratorId: scenario?.narratorId ?? profileNarrator(this.options).id,
    });
    for (const m of opts.messages ?? []) {
      this.chatStore.append(chat, m.role, m.role === 'User' ? 'user' : (m.senderId ?? ids[0]!), m.text);
    }
    return chat;
  }

  /**
   * Dead hub connections keep their chat locked (and their slot taken) until
   * {@link releaseDeadChatLocks}, instead of for `chatLockReleaseDelayMs`.
   */
  holdDeadChatLocks(): void {
    this.registry.holdDeadSessions();
  }

  releaseDeadChatLocks(): void {
    this.registry.releaseHeld();
  }

  /**
   * Deletes a chat as an admin would in Voxta's app: a session already open on it goes on, but
   * resuming it afterwards fails with "Chat <id> not found".
   */
  deleteChat(chatId: string): boolean {
    return this.chatStore.delete(chatId);
  }

  audio(sessionId: string): AudioRecord | undefined {
    return this.audioSockets.record(sessionId);
  }

  playback(messageId: string): PlaybackRecord {
    return this.recorder.playbackSnapshot(messageId);
  }

  waitFor<T>(predicate: () => T | undefined | null | false, timeoutMs?: number, description?: string): Promise<T> {
    return this.recorder.waitFor(predicate, timeoutMs, description);
  }

  waitForClientMessage(type: string, filter?: MessageFilter, timeoutMs?: number): Promise<ReceivedMessage> {
    return this.recorder.waitForClientMessage(type, filter, timeoutMs);
  }

  waitForServerMessage(type: string, filter?: MessageFilter, timeoutMs?: number): Promise<SentMessage> {
    return this.recorder.waitForServerMessage(type, filter, timeoutMs);
  }

  on<K extends keyof SimEvents>(event: K, listener: (...args: SimEvents[K]) => void): this {
    this.recorder.on(event, listener as never);
    return this;
  }

  off<K extends keyof SimEvents>(event: K, listener: (...args: SimEvents[K]) => void): this {
    this.recorder.off(event, listener as never);
    return this;
  }

  once<K extends keyof SimEvents>(event: K, listener: (...args: SimEvents[K]) => void): this {
    this.recorder.once(event, listener as never);
    return this;
  }

  private forgetOldConnections(): void {
    for (const [id, conn] of this.connectionsById) {
      if (this.connectionsById.size <= MAX_LISTED_CONNECTIONS) break;
      if (!this.hubsById.has(id) && !conn.session) this.connectionsById.delete(id);
    }
  }

  // ---------------------------------------------------------------- HTTP

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://sim.invalid');
    try {
      const auth = authenticateRequest(req, url, this.options);
      if (!auth.ok) {
        res.setHeader('WWW-Authenticate', auth.challenge);
        sendJson(res, 401, { error: 'Unauthorized' });
        return;
      }
      if (url.pathname === NEGOTIATE_PATH) return this.onNegotiate(req, res);
      if (this.ctx.vision.handleHttp(req, res, url, auth.userKey)) return;
      if (handleHttp(this.ctx, req, res, url)) return;
      sendJson(res, 404, { error: `Not found: ${url.pathname}` });
    } catch (err) {
      this.ctx.log.error({ path: url.pathname, err: errorInfo(err, true) }, 'request failed');
      sendJson(res, 500, { error: 'Internal simulator error' });
    }
  }

  private onNegotiate(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'POST') {
      sendJson(res, 405, { error: 'negotiate expects POST' });
      return;
    }
    req.resume(); // the body is empty; drain it anyway
    const connectionId = randomUUID();
    const connectionToken = randomUUID();
    this.negotiated.set(connectionToken, connectionId);
    sendJson(res, 200, {
      negotiateVersion: 1,
      connectionId,
      connectionToken,
      availableTransports: [{ transport: 'WebSockets', transferFormats: ['Text', 'Binary'] }],
    });
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://sim.invalid');
    const auth = authenticateRequest(req, url, this.options);
    if (!auth.ok) return rejectUpgrade(socket, 401, 'Unauthorized', { 'WWW-Authenticate': auth.challenge });
    if (url.pathname === HUB_PATH) {
      const token = url.searchParams.get('id');
      let connectionId: string = randomUUID();
      if (token !== null) {
        const id = this.negotiated.get(token);
        if (!id) return rejectUpgrade(socket, 404, 'No Connection with that ID');
        this.negotiated.delete(token);
        connectionId = id;
      }
      this.hubWss.handleUpgrade(req, socket, head, (ws) => {
        const hub = new SimHubConnection(
          connectionId,
          ws,
          { pingIntervalMs: this.options.pingIntervalMs, clientTimeoutMs: this.options.clientTimeoutMs },
          this.ctx.log,
        );
        const conn = new UserConnection(this.ctx, hub, auth.userKey, req.socket.remoteAddress);
        this.hubsById.set(connectionId, hub);
        this.connectionsById.set(connectionId, conn);
        hub.on('closed', (code) => {
          this.hubsById.delete(connectionId);
          this.ctx.log.info({ connectionId, code }, 'hub connection closed');
          conn.onClosed();
          this.forgetOldConnections();
          this.recorder.emit('hubDisconnected', { connectionId, code });
          this.recorder.emit('changed');
        });
        this.ctx.log.info({ connectionId, negotiated: token !== null }, 'hub connection opened');
        this.recorder.emit('hubConnected', { connectionId });
        this.recorder.emit('changed');
      });
      return;
    }
    if (url.pathname === AUDIO_PATH) {
      this.audioSockets.handleUpgrade(req, socket, head, url.searchParams.get('sessionId'), auth.userKey);
      return;
    }
    rejectUpgrade(socket, 404, 'Not Found');
  }
}

/** Closed connections stay listed for inspection, up to this many connections in total. */
const MAX_LISTED_CONNECTIONS = 1000;

function rejectUpgrade(socket: Duplex, status: number, text: string, headers: Record<string, string> = {}): void {
  const lines = [`HTTP/1.1 ${status} ${text}`, 'Connection: close', 'Content-Length: 0'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  socket.end(lines.join('\r\n') + '\r\n\r\n');
  socket.once('finish', () => socket.destroy());
}

/** Creates and starts a simulator. */
export async function startVoxtaSim(opts: VoxtaSimOptions = {}): Promise<VoxtaSim> {
  const sim = new VoxtaSim(opts);
  await sim.start();
  return sim;
}
