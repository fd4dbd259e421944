/**
 * The Voxta side of one hub connection (Voxta's `UserConnection`): authentication, connection
 * level messages, and at most one chat session (protocol §5.5). Session messages are checked
 * against the owned session and handed to it.
 */
import type { SimHubConnection } from './hub-connection.js';
import { ChatSession, SimRejection, type SessionOwner } from './chat-session.js';
import { humanizeAgo } from './chat-store.js';
import { characterListItem, scenarioInfo, thumbnailUrlOf } from './characters.js';
import type { ChatRecord } from './chat-store.js';
import { SERVER_VERSION, findCharacter, findScenario, profileNarrator, userRefFor, type SimContext } from './context.js';
import { EMPTY_GUID, stringField, type ClientPayload, type ServerMessage } from './messages.js';
import { isObject } from './signalr.js';
import { errorInfo } from '../../src/log.js';

/** Messages that act on the connection's chat session and must carry its `sessionId`. */
const SESSION_MESSAGES = new Set([
  'send',
  'characterSpeechRequest',
  'interrupt',
  'pauseChat',
  'speechPlaybackStart',
  'speechPlaybackComplete',
  'updateContext',
  'typingStart',
  'typingEnd',
  'inspect',
  'retry',
  'revert',
  'deleteMessage',
  'update',
  'addChatParticipant',
  'removeChatParticipant',
  'appTriggerComplete',
]);

/** What a startChat/resumeChat asks for, after validation. */
interface StartTarget {
  /** An existing chat to load; undefined: create one from the fields below. */
  chat: ChatRecord | undefined;
  characterIds: string[];
  scenarioId: string | null;
  roles: Record<string, string | null>;
  narratorId: string;
  title: string;
}

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

export interface HubConnectionInfo {
  connectionId: string;
  open: boolean;
  authenticated: boolean;
  client?: string;
  capabilities?: Record<string, unknown>;
  sessionId?: string;
  userKey: string;
  /** Voxta would treat it as a local connection (see options.localClients). */
  local?: boolean;
}

export class UserConnection implements SessionOwner {
  authenticated = false;
  session: ChatSession | null = null;
  audioInput = 'None';
  audioOutput = 'None';
  private client: string | undefined;
  private capabilities: Record<string, unknown> | undefined;
  /** A startChat/resumeChat waiting for a slot; `cancelled` when stopChat or a disconnect comes first. */
  private pendingStart: { cancelled: boolean } | null = null;

  constructor(
    private readonly ctx: SimContext,
    private readonly hub: SimHubConnection,
    readonly userKey: string,
    /** The TCP peer of the hub socket: Voxta treats loopback peers as local (AuthenticationContext.Remote false). */
    readonly remoteAddress?: string,
  ) {
    hub.on('invocation', (arg, invocationId) => this.onInvocation(arg, invocationId));
  }

  get connectionId(): string {
    return this.hub.id;
  }

  /** Whether Voxta would treat this connection as local (a client running on the Voxta PC). */
  get local(): boolean {
    return this.ctx.options.localClients === 'loopback' && isLoopback(this.remoteAddress);
  }

  info(): HubConnectionInfo {
    const info: HubConnectionInfo = {
      connectionId: this.connectionId,
      open: this.hub.open,
      authenticated: this.authenticated,
      userKey: this.userKey,
    };
    if (this.client !== undefined) info.client = this.client;
    if (this.capabilities !== undefined) info.capabilities = this.capabilities;
    if (this.session) info.sessionId = this.session.sessionId;
    info.local = this.local;
    return info;
  }

  send(message: ServerMessage): void {
    this.sendUnchecked(message);
  }

  sendUnchecked(payload: unknown): void {
    if (this.hub.sendEvent(payload)) this.ctx.recorder.recordSent(this.connectionId, payload);
  }

  sendRecord(record: object): void {
    this.hub.sendRecord(record);
  }

  /** The hub connection is gone: its session is disposed (no chatClosed can be delivered). */
  onClosed(): void {
    if (this.pendingStart) this.pendingStart.cancelled = true;
    const session = this.session;
    if (!session) return;
    this.session = null;
    if (session.state === 'disposing') return;
    session.dispose('disconnect');
    this.ctx.log.info({ connectionId: this.connectionId, sessionId: session.sessionId }, 'connection gone: chat session disposed');
    this.ctx.registry.removeLater(session, this.ctx.options.chatLockReleaseDelayMs);
  }

  // ---------------------------------------------------------------- dispatch

  private onInvocation(arg: unknown, invocationId: string | undefined): void {
    let error: string | undefined;
    if (!isObject(arg) || typeof arg.$type !== 'string') {
      this.ctx.recorder.recordReceived(this.connectionId, { $type: '<invalid>', value: arg }, invocationId);
      error = 'Invalid message: SendMessage expects one object with a string "$type"';
      this.ctx.log.warn({ connectionId: this.connectionId }, error);
      this.send({ $type: 'error', message: error });
    } else {
      const payload = arg as ClientPayload;
      this.ctx.recorder.recordReceived(this.connectionId, payload, invocationId);
      this.ctx.log.debug({ connectionId: this.connectionId, $type: payload.$type }, 'client message');
      try {
        this.dispatch(payload);
      } catch (err) {
        error = err instanceof SimRejection ? err.message : `Internal error: ${errorInfo(err).message}`;
        if (!(err instanceof SimRejection)) this.ctx.log.error({ err: errorInfo(err, true), $type: payload.$type }, 'handler failed');
        else this.ctx.log.info({ connectionId: this.connectionId, $type: payload.$type, error }, 'message rejected');
        this.send({ $type: 'error', message: error });
      }
    }
    if (invocationId !== undefined) this.hub.complete(invocationId, error ?? this.ctx.faults.invocationError ?? undefined);
  }

  private dispatch(p: ClientPayload): void {
    if (p.$type === 'authenticate') return this.onAuthenticate(p);
    if (!this.authenticated) throw new SimRejection(`Not authenticated: send "authenticate" before "${p.$type}"`);
    if (SESSION_MESSAGES.has(p.$type)) return this.ownSession(p).handle(p);
    switch (p.$type) {
      case 'registerApp':
        return;
      case 'loadCharactersList':
        return this.send({ $type: 'charactersListLoaded', characters: this.ctx.options.characters.map(characterListItem) });
      case 'loadChatsList':
        return this.onLoadChatsList(p);
      case 'loadScenariosList':
        return this.onLoadScenariosList();
      case 'startChat':
      case 'resumeChat':
        return this.onStart(p);
      case 'stopChat':
        return this.onStop(p);
      case 'subscribeToChat':
        return this.onSubscribe(p);
      default:
        throw new SimRejection(`Unknown message type: ${p.$type}`);
    }
  }

  private ownSession(p: ClientPayload): ChatSession {
    const sessionId = stringField(p, 'sessionId');
    if (!sessionId) throw new SimRejection(`Missing SessionId on message ${p.$type}`);
    if (this.session?.sessionId === sessionId) return this.session;
    const other = this.ctx.registry.get(sessionId);
    if (other && other.state !== 'disposing') {
      throw new SimRejection(`Chat session ${sessionId} belongs to another connection; this simulator does not forward messages`);
    }
    throw new SimRejection(`Chat session ${sessionId} not found`);
  }

  private onAuthenticate(p: ClientPayload): void {
    const caps = isObject(p.capabilities) ? p.capabilities : {};
    this.capabilities = caps;
    this.client = typeof p.client === 'string' ? p.client : undefined;
    this.audioInput = typeof caps.audioInput === 'string' ? caps.audioInput : 'None';
    this.audioOutput = typeof caps.audioOutput === 'string' ? caps.audioOutput : 'None';
    if (this.ctx.faults.authenticationRequired) {
      this.authenticated = false;
      this.send({ $type: 'authenticationRequired' });
      return;
    }
    this.authenticated = true;
    const assistant = this.ctx.options.characters[0];
    this.send({
      $type: 'welcome',
      apiVersion: this.ctx.options.apiVersion,
      voxtaServerVersion: SERVER_VERSION,
      registeredClientVersion: typeof p.clientVersion === 'string' ? p.clientVersion : null,
      user: { ...userRefFor(this.userKey), thumbnailUrl: null },
      favorite: null,
      assistant: assistant ? { id: assistant.id, name: assistant.name, thumbnailUrl: thumbnailUrlOf(assistant) } : null,
    });
    this.send({
      $type: 'configuration',
      configurations: [],
      services: {
        TextGen: [{ serviceName: 'SimTextGen' }],
        TextToSpeech: this.ctx.options.tts.enabled ? [{ serviceName: 'SimToneTTS' }] : [],
        SpeechToText: this.ctx.options.stt.enabled ? [{ serviceName: 'SimVadSTT' }] : [],
        // The service that describes pictures (Voxta's ServiceTypes.ComputerVision, e.g. Florence-2).
        ComputerVision: this.ctx.options.vision.enabled ? [{ serviceName: 'SimVision' }] : [],
      },
      featureFlags: [],
    });
    const sessions = this.userSessions();
    if (sessions.length > 0) this.send({ $type: 'chatsSessionsUpdated', sessions });
  }

  /** UserConnection.LoadChatsListAsync: without scenarioId only chats without a scenario, with it only that scenario's. */
  private onLoadChatsList(p: ClientPayload): void {
    const characterId = stringField(p, 'characterId');
    if (!characterId) throw new SimRejection('loadChatsList needs a string "characterId"');
    const scenarioId = stringField(p, 'scenarioId');
    if (scenarioId === null) throw new SimRejection('loadChatsList "scenarioId" must be a string');
    const chats = this.ctx.chats
      .forCharacter(characterId)
      .filter((c) => (scenarioId ? c.scenarioId === scenarioId : c.scenarioId === null))
      .sort((a, b) => b.created.getTime() - a.created.getTime())
      .map((c) => ({ id: c.id, created: humanizeAgo(c.created) }));
    this.send({ $type: 'chatsListLoaded', chats });
  }

  /** UserConnection.LoadScenariosListAsync: scenarios of no client or of this client, by name. */
  private onLoadScenariosList(): void {
    const scenarios = this.ctx.options.scenarios
      .filter((s) => !s.client || s.client === this.client)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((s) => scenarioInfo(s));
    this.send({ $type: 'scenariosListLoaded', scenarios });
  }

  // ---------------------------------------------------------------- start / stop

  private onStart(p: ClientPayload): void {
    if (this.pendingStart) throw new SimRejection('Another chat is still trying to start or close, try again later.');
    if (this.session) {
      // A real server would orphan the first session (still counted, unreachable); flag it instead.
      throw new SimRejection(
        `This connection already has chat session ${this.session.sessionId}; send stopChat before starting another chat`,
      );
    }
    const target = this.resolveStartTarget(p);
    const { chat } = target;
    const disableServices = this.disableServicesOf(p);
    const contextKey = typeof p.contextKey === 'string' ? p.contextKey : 'Main';
    if (p.contexts !== undefined && !Array.isArray(p.contexts)) throw new SimRejection(`${p.$type} "contexts" must be an array`);
    const contexts = p.contexts as unknown[] | undefined;
    const pending = { cancelled: false };
    this.pendingStart = pending;
    const o = this.ctx.options;
    void this.ctx.registry
      .acquireSlot(this.userKey, () => o.maxChats, o.capacityDelayMs, () => pending.cancelled || !this.hub.open)
      .then((gotSlot) => {
        if (this.pendingStart === pending) this.pendingStart = null;
        if (pending.cancelled || !this.hub.open) return;
        if (!gotSlot) {
          this.ctx.log.info({ connectionId: this.connectionId, maxChats: o.maxChats }, 'chat start refused: concurrent chat cap');
          this.send({ $type: 'error', message: `Cannot start more than ${o.maxChats} concurrent chats.` });
          return;
        }
        if (chat && this.ctx.registry.holderOf(chat.id)) {
          this.send({ $type: 'error', message: 'Chat session already exists for this chat' });
          return;
        }
        const record =
          chat ?? this.ctx.chats.create(target.characterIds, target.title, { scenarioId: target.scenarioId, roles: target.roles, narratorId: target.narratorId });
        const session = new ChatSession(this.ctx, this, record, this.userKey, { disableServices });
        this.ctx.registry.add(session);
        this.session = session;
        this.ctx.log.info(
          { connectionId: this.connectionId, sessionId: session.sessionId, chatId: record.id, characters: record.characterIds, scenarioId: record.scenarioId, resumed: Boolean(chat) },
          'chat started',
        );
        session.begin({ isNew: !chat, contextKey, contexts, sessions: () => this.userSessions() });
      })
      .catch((err: unknown) => {
        this.ctx.log.error({ err: errorInfo(err, true) }, 'chat start failed');
        this.send({ $type: 'error', message: `Chat start failed: ${errorInfo(err).message}` });
      });
  }

  /** `disableServices` (API 2025-11, GE M1Messages): service type names to switch off for this chat. */
  private disableServicesOf(p: ClientPayload): string[] {
    const v = p.disableServices;
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new SimRejection(`${p.$type} "disableServices" must be an array of strings`);
    return v as string[];
  }

  /**
   * What a start asks for (UserConnection.HandleStartChatAsync): an existing chat (`chatId`, whose
   * scenario and characters must match what else was given), or a new chat of `characterIds` /
   * `characterId` (required, as on Voxta: a scenario start names its character(s) too), with an
   * optional `scenarioId` and `roles` (role name → characterId). Scenario roles not given in
   * `roles` are filled by their `defaultCharacterId`; characters filling roles join the cast.
   */
  private resolveStartTarget(p: ClientPayload): StartTarget {
    const chatId = stringField(p, 'chatId');
    if (chatId === null) throw new SimRejection(`${p.$type} "chatId" must be a string`);
    const characterId = stringField(p, 'characterId');
    if (characterId === null) throw new SimRejection(`${p.$type} "characterId" must be a string`);
    const scenarioId = stringField(p, 'scenarioId');
    if (scenarioId === null) throw new SimRejection(`${p.$type} "scenarioId" must be a string`);
    let characterIds: string[] | undefined;
    if (p.characterIds !== undefined && p.characterIds !== null) {
      if (!Array.isArray(p.characterIds) || p.characterIds.some((x) => typeof x !== 'string')) throw new SimRejection(`${p.$type} "characterIds" must be an array of strings`);
      characterIds = p.characterIds as string[];
    }
    const roles: Record<string, string> = {};
    if (p.roles !== undefined && p.roles !== null) {
      if (!isObject(p.roles) || Object.values(p.roles).some((x) => typeof x !== 'string')) throw new SimRejection(`${p.$type} "roles" must map role names to character ids`);
      Object.assign(roles, p.roles);
    }
    if (p.$type === 'resumeChat' && !chatId) throw new SimRejection('resumeChat needs a "chatId"');
    if (chatId) {
      const chat = this.ctx.chats.get(chatId);
      if (!chat) throw new SimRejection(`Chat ${chatId} not found`);
      if (scenarioId && chat.scenarioId !== scenarioId) throw new SimRejection("ScenarioId does not match the chat's scenario");
      const requested = characterId ?? characterIds?.[0];
      if (requested && !chat.characterIds.includes(requested)) throw new SimRejection(`Character ${requested} is not part of chat ${chatId}`);
      if (chat.characterIds.length === 0) throw new SimRejection('Chat has no characters.');
      for (const id of chat.characterIds) if (!findCharacter(this.ctx.options, id)) throw new SimRejection(`Character ${id} was not found`);
      return { chat, characterIds: chat.characterIds, scenarioId: chat.scenarioId, roles: chat.roles, narratorId: chat.narratorId, title: chat.title };
    }
    const cast = [...new Set(characterIds ?? (characterId ? [characterId] : []))];
    if (cast.length === 0) throw new SimRejection('startChat needs a "characterId" or a "chatId"');
    const scenario = scenarioId ? findScenario(this.ctx.options, scenarioId) : undefined;
    if (scenarioId && !scenario) throw new SimRejection(`Scenario ${scenarioId} was not found`);
    const chatRoles: Record<string, string | null> = {};
    for (const role of scenario?.roles ?? []) {
      const filler = roles[role.name] ?? role.defaultCharacterId ?? null;
      chatRoles[role.name] = filler;
      if (filler && !cast.includes(filler)) cast.push(filler);
    }
    const names: string[] = [];
    for (const id of cast) {
      const c = findCharacter(this.ctx.options, id);
      if (!c) throw new SimRejection(`Character ${id} was not found`);
      names.push(c.name);
    }
    const narratorId = scenario?.narratorId ?? profileNarrator(this.ctx.options).id;
    const title = scenario ? scenario.name : `Chat with ${names.join(' and ')}`;
    return { chat: undefined, characterIds: cast, scenarioId: scenario?.id ?? null, roles: chatRoles, narratorId, title };
  }

  private onStop(p: ClientPayload): void {
    const sessionId = stringField(p, 'sessionId');
    if (sessionId === null) throw new SimRejection('stopChat "sessionId" must be a string');
    if (this.pendingStart) this.pendingStart.cancelled = true;
    const session = this.session;
    if (!session) {
      this.ctx.log.debug({ connectionId: this.connectionId }, 'stopChat without a session: nothing to stop');
      return;
    }
    if (sessionId && sessionId !== session.sessionId) {
      throw new SimRejection(`Cannot stop chat session ${sessionId}, another session is in progress.`);
    }
    session.dispose('stop');
    this.ctx.registry.remove(session);
    this.ctx.log.info({ connectionId: this.connectionId, sessionId: session.sessionId }, 'chat stopped');
    this.session = null;
    this.send({ $type: 'chatClosed', sessionId: session.sessionId, chatId: session.chat.id });
    this.send({ $type: 'chatsSessionsUpdated', sessions: this.userSessions() });
  }

  private onSubscribe(p: ClientPayload): void {
    const sessionId = stringField(p, 'sessionId');
    if (!sessionId) throw new SimRejection('subscribeToChat needs a "sessionId"');
    const session = this.ctx.registry.get(sessionId);
    if (!session || session.state !== 'active' || session.userKey !== this.userKey) {
      this.send({ $type: 'chatClosed', sessionId, chatId: EMPTY_GUID });
      return;
    }
    this.send(session.chatStartedMessage());
    this.send(session.contextUpdatedMessage());
  }

  private userSessions() {
    return this.ctx.registry
      .forUser(this.userKey)
      .filter((s) => s.state !== 'disposing')
      .map((s) => s.summary());
  }
}
