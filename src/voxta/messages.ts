/**
 * Voxta hub messages, both directions, as discriminated unions on `$type` (protocol §2, §3).
 *
 * Client payloads are built only by the constructor functions in {@link clientMessage}: each
 * writes `$type` as the FIRST key (the server deserialises polymorphically and needs it first,
 * protocol §1.4) and never spreads another object before it.
 *
 * Server payloads go through {@link parseServerMessage}, which checks the types of the fields the
 * bot relies on and fills a few defaults, so code downstream can trust the shapes. Unknown fields
 * are kept (servers add fields between versions); unknown `$type`s and malformed payloads are
 * dropped with a debug log, never thrown.
 */
import { logger } from '../log.js';
import type { ComputerVisionSource, SendAttachment, VisionCaptureCapability, VisionSource } from './vision.js';

// ---------------------------------------------------------------------------------------------
// Shared shapes
// ---------------------------------------------------------------------------------------------

export interface ContextItem {
  name?: string;
  text: string;
  disabled?: boolean;
  /** Only while these flags are set (Voxta flag expression). */
  flagsFilter?: string;
  /** Only for the character in this scenario role. */
  roleFilter?: string;
}

export type AudioInputCapability = 'None' | 'WebSocketStream';

/**
 * Service types a chat can switch off with `startChat.disableServices` (API 2025-11, GE
 * M1Messages.g.cs: `string[] DisableServices`). The values are Voxta's ServiceTypes names (NJ
 * shared.ts); which ones a server honours is not documented: we only send `SpeechToText`.
 */
export type DisableableService = 'SpeechToText' | 'TextToSpeech' | 'ActionInference' | 'Summarization' | 'ImageGen';
export type AudioOutputCapability = 'None' | 'Url';

export interface Capabilities {
  audioInput: AudioInputCapability;
  audioOutput: AudioOutputCapability;
  acceptedAudioContentTypes: string[];
  /** Vision (vision.ts): omitted unless the session declares sources. */
  visionCapture?: VisionCaptureCapability;
  visionSources?: VisionSource[];
}

export interface CharacterRef {
  id: string;
  name: string;
  thumbnailUrl?: string;
  /** In a chat's cast: the scenario role this character fills (ChatParticipantInfo.scenarioRole). */
  scenarioRole?: string;
  /** In character lists (CharactersListItem.explicitContent); absent from a chat's cast on real servers. */
  explicitContent?: boolean;
  [k: string]: unknown;
}

/** A scenario role (ScenarioInfoRole). */
export interface ScenarioRoleInfo {
  name: string;
  description?: string | null;
  /** Only in scenario lists (scenariosListLoaded, GET /api/scenarios), not in chatStarted.scenario. */
  defaultCharacterId?: string | null;
  [k: string]: unknown;
}

/** Voxta's ScenarioInfo: scenariosListLoaded items, GET /api/scenarios items, chatStarted.scenario. */
export interface ScenarioInfo {
  id: string;
  name: string;
  roles: ScenarioRoleInfo[];
  chatFlow?: string;
  chatStyle?: string;
  client?: string | null;
  thumbnailUrl?: string | null;
  [k: string]: unknown;
}

export interface ServiceInfo {
  serviceName?: string;
  serviceId?: string;
  [k: string]: unknown;
}

export interface ChatServices {
  textGen?: ServiceInfo | null;
  textToSpeech?: ServiceInfo | null;
  speechToText?: ServiceInfo | null;
  [k: string]: unknown;
}

export interface HistoryMessage {
  messageId?: string;
  role: string;
  text: string;
  senderId?: string;
  name?: string;
  [k: string]: unknown;
}

// ---------------------------------------------------------------------------------------------
// Client → server
// ---------------------------------------------------------------------------------------------

export interface AuthenticateMessage {
  $type: 'authenticate';
  client: string;
  clientVersion: string;
  scope: string[];
  capabilities: Capabilities;
}
export interface RegisterAppMessage {
  $type: 'registerApp';
  clientVersion: string;
  label: string;
}
export interface LoadCharactersListMessage {
  $type: 'loadCharactersList';
}
export interface LoadChatsListMessage {
  $type: 'loadChatsList';
  characterId: string;
  /** Without it Voxta lists only chats without a scenario; with it only that scenario's (§2.4). */
  scenarioId?: string;
}
export interface LoadScenariosListMessage {
  $type: 'loadScenariosList';
}
interface ContextFields {
  contextKey?: string;
  contexts?: ContextItem[];
  /** API 2025-11; older servers ignore it. */
  disableServices?: DisableableService[];
}
/** NJ ClientStartChatMessage; `characterIds` for a group chat (MC client.ts sends it when >1). */
export interface StartChatMessage extends ContextFields {
  $type: 'startChat';
  characterId?: string;
  characterIds?: string[];
  chatId?: string;
  scenarioId?: string;
  /** Scenario role name → characterId. */
  roles?: Record<string, string>;
}
export interface ResumeChatMessage extends ContextFields {
  $type: 'resumeChat';
  chatId: string;
}
export interface StopChatMessage {
  $type: 'stopChat';
  sessionId?: string;
}
export interface SendOptions {
  doReply?: boolean;
  doCharacterActionInference?: boolean;
  doUserActionInference?: boolean;
  characterId?: string;
  /** Inline images (vision.ts `imageAttachment`). */
  attachments?: SendAttachment[];
}
export interface SendMessage extends SendOptions {
  $type: 'send';
  sessionId: string;
  text: string;
}
export interface CharacterSpeechRequestMessage {
  $type: 'characterSpeechRequest';
  sessionId: string;
  text: string;
  characterId?: string;
}
export interface InterruptMessage {
  $type: 'interrupt';
  sessionId: string;
}
export interface PauseChatMessage {
  $type: 'pauseChat';
  sessionId: string;
  pause: boolean;
}
export interface ClientSpeechPlaybackStartMessage {
  $type: 'speechPlaybackStart';
  sessionId: string;
  messageId: string;
  startIndex: number;
  endIndex: number;
  /** Seconds, the real length of the clip (protocol §4c). */
  duration: number;
  isNarration: boolean;
}
export interface ClientSpeechPlaybackCompleteMessage {
  $type: 'speechPlaybackComplete';
  sessionId: string;
  messageId: string;
}
export interface UpdateContextMessage {
  $type: 'updateContext';
  sessionId: string;
  contextKey: string;
  contexts: ContextItem[];
  /** Flags to set (`!name` clears one). */
  setFlags?: string[];
  /** Scenario role name → enabled (a character leaves/joins the scene without changing the cast). */
  enableRoles?: Record<string, boolean>;
}
export interface TypingStartMessage {
  $type: 'typingStart';
  sessionId: string;
}
export interface TypingEndMessage {
  $type: 'typingEnd';
  sessionId: string;
  sent: boolean;
}
export interface ClientUpdateMessage {
  $type: 'update';
  sessionId: string;
  messageId: string;
  text: string;
}
export interface DeleteMessageMessage {
  $type: 'deleteMessage';
  sessionId: string;
  messageId: string;
}
/** Regenerate: Voxta deletes the last reply (or user message) and generates again (RetryCommand). */
export interface RetryMessage {
  $type: 'retry';
  sessionId: string;
}
/** Undo: delete after `messageId`, or the last user message and everything after it (RevertMessageCommand). */
export interface RevertMessage {
  $type: 'revert';
  sessionId: string;
  messageId?: string;
}
export interface AddChatParticipantMessage {
  $type: 'addChatParticipant';
  sessionId: string;
  characterId: string;
  /** Scenario role to put the character in (NJ; VD-core ParticipantsCommandBase). */
  role?: string;
}
export interface RemoveChatParticipantMessage {
  $type: 'removeChatParticipant';
  sessionId: string;
  characterId: string;
}
/** Answers an `appTrigger` that carried a triggerId (GE ClientAppTriggerCompleteMessage). */
export interface AppTriggerCompleteMessage {
  $type: 'appTriggerComplete';
  sessionId: string;
  triggerId: string;
}

export type ClientMessage =
  | AuthenticateMessage
  | RegisterAppMessage
  | LoadCharactersListMessage
  | LoadChatsListMessage
  | LoadScenariosListMessage
  | StartChatMessage
  | ResumeChatMessage
  | StopChatMessage
  | SendMessage
  | CharacterSpeechRequestMessage
  | InterruptMessage
  | PauseChatMessage
  | ClientSpeechPlaybackStartMessage
  | ClientSpeechPlaybackCompleteMessage
  | UpdateContextMessage
  | TypingStartMessage
  | TypingEndMessage
  | ClientUpdateMessage
  | DeleteMessageMessage
  | RetryMessage
  | RevertMessage
  | AddChatParticipantMessage
  | RemoveChatParticipantMessage
  | AppTriggerCompleteMessage;

/** Adds optional fields after `$type` without ever putting anything before it. */
function withOptional<T extends { $type: string }>(base: T, extra: Record<string, unknown>): T {
  const out = base as Record<string, unknown>;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
  return base;
}

/** Constructors for every client payload. `$type` is always written first. */
export const clientMessage = {
  authenticate(a: { client: string; clientVersion: string; scope: string[]; capabilities: Capabilities }): AuthenticateMessage {
    return { $type: 'authenticate', client: a.client, clientVersion: a.clientVersion, scope: [...a.scope], capabilities: { ...a.capabilities } };
  },
  registerApp(clientVersion: string, label: string): RegisterAppMessage {
    return { $type: 'registerApp', clientVersion, label };
  },
  loadCharactersList(): LoadCharactersListMessage {
    return { $type: 'loadCharactersList' };
  },
  loadChatsList(characterId: string, scenarioId?: string): LoadChatsListMessage {
    return withOptional<LoadChatsListMessage>({ $type: 'loadChatsList', characterId }, { scenarioId });
  },
  loadScenariosList(): LoadScenariosListMessage {
    return { $type: 'loadScenariosList' };
  },
  /**
   * One character → `characterId` (what every client sends); several → `characterIds` (MC
   * client.ts: "array form for multi-char sessions, single-char form for backward compat").
   */
  startChat(a: {
    characterId?: string;
    characterIds?: string[];
    chatId?: string;
    scenarioId?: string;
    roles?: Record<string, string>;
    contextKey?: string;
    contexts?: ContextItem[];
    disableServices?: DisableableService[];
  }): StartChatMessage {
    const ids = a.characterIds ?? (a.characterId !== undefined ? [a.characterId] : []);
    const cast = ids.length === 1 ? { characterId: ids[0] } : ids.length > 1 ? { characterIds: [...ids] } : {};
    return withOptional<StartChatMessage>(
      { $type: 'startChat' },
      {
        ...cast,
        chatId: a.chatId,
        scenarioId: a.scenarioId,
        roles: a.roles ? { ...a.roles } : undefined,
        contextKey: a.contextKey,
        contexts: a.contexts,
        disableServices: a.disableServices ? [...a.disableServices] : undefined,
      },
    );
  },
  resumeChat(a: { chatId: string; contextKey?: string; contexts?: ContextItem[]; disableServices?: DisableableService[] }): ResumeChatMessage {
    return withOptional<ResumeChatMessage>(
      { $type: 'resumeChat', chatId: a.chatId },
      { contextKey: a.contextKey, contexts: a.contexts, disableServices: a.disableServices ? [...a.disableServices] : undefined },
    );
  },
  stopChat(sessionId?: string): StopChatMessage {
    return withOptional<StopChatMessage>({ $type: 'stopChat' }, { sessionId });
  },
  send(sessionId: string, text: string, opts: SendOptions = {}): SendMessage {
    return withOptional<SendMessage>(
      { $type: 'send', sessionId, text, doReply: opts.doReply ?? true, doCharacterActionInference: opts.doCharacterActionInference ?? true },
      { doUserActionInference: opts.doUserActionInference, characterId: opts.characterId, attachments: opts.attachments?.map((a) => ({ ...a })) },
    );
  },
  characterSpeechRequest(sessionId: string, text: string, characterId?: string): CharacterSpeechRequestMessage {
    return withOptional<CharacterSpeechRequestMessage>({ $type: 'characterSpeechRequest', sessionId, text }, { characterId });
  },
  interrupt(sessionId: string): InterruptMessage {
    return { $type: 'interrupt', sessionId };
  },
  pauseChat(sessionId: string, pause: boolean): PauseChatMessage {
    return { $type: 'pauseChat', sessionId, pause };
  },
  speechPlaybackStart(
    sessionId: string,
    messageId: string,
    chunk: { startIndex: number; endIndex: number; isNarration: boolean },
    durationSec: number,
  ): ClientSpeechPlaybackStartMessage {
    return {
      $type: 'speechPlaybackStart',
      sessionId,
      messageId,
      startIndex: chunk.startIndex,
      endIndex: chunk.endIndex,
      duration: durationSec,
      isNarration: chunk.isNarration,
    };
  },
  speechPlaybackComplete(sessionId: string, messageId: string): ClientSpeechPlaybackCompleteMessage {
    return { $type: 'speechPlaybackComplete', sessionId, messageId };
  },
  updateContext(
    sessionId: string,
    contexts: ContextItem[],
    contextKey: string,
    extra: { setFlags?: string[]; enableRoles?: Record<string, boolean> } = {},
  ): UpdateContextMessage {
    return withOptional<UpdateContextMessage>(
      { $type: 'updateContext', sessionId, contextKey, contexts: contexts.map((c) => ({ ...c })) },
      { setFlags: extra.setFlags ? [...extra.setFlags] : undefined, enableRoles: extra.enableRoles ? { ...extra.enableRoles } : undefined },
    );
  },
  typingStart(sessionId: string): TypingStartMessage {
    return { $type: 'typingStart', sessionId };
  },
  typingEnd(sessionId: string, sent = true): TypingEndMessage {
    return { $type: 'typingEnd', sessionId, sent };
  },
  update(sessionId: string, messageId: string, text: string): ClientUpdateMessage {
    return { $type: 'update', sessionId, messageId, text };
  },
  deleteMessage(sessionId: string, messageId: string): DeleteMessageMessage {
    return { $type: 'deleteMessage', sessionId, messageId };
  },
  retry(sessionId: string): RetryMessage {
    return { $type: 'retry', sessionId };
  },
  revert(sessionId: string, messageId?: string): RevertMessage {
    return withOptional<RevertMessage>({ $type: 'revert', sessionId }, { messageId });
  },
  addChatParticipant(sessionId: string, characterId: string, role?: string): AddChatParticipantMessage {
    return withOptional<AddChatParticipantMessage>({ $type: 'addChatParticipant', sessionId, characterId }, { role });
  },
  removeChatParticipant(sessionId: string, characterId: string): RemoveChatParticipantMessage {
    return { $type: 'removeChatParticipant', sessionId, characterId };
  },
  appTriggerComplete(sessionId: string, triggerId: string): AppTriggerCompleteMessage {
    return { $type: 'appTriggerComplete', sessionId, triggerId };
  },
} as const;

// ---------------------------------------------------------------------------------------------
// Server → client
// ---------------------------------------------------------------------------------------------

interface S<T extends string> {
  $type: T;
  [k: string]: unknown;
}
interface InSession {
  sessionId: string;
}

export interface WelcomeMessage extends S<'welcome'> {
  apiVersion: string;
  voxtaServerVersion: string;
  user?: { id?: string; name?: string } | null;
  assistant?: { id?: string; name?: string } | null;
}
export type AuthenticationRequiredMessage = S<'authenticationRequired'>;
export interface ErrorMessage extends S<'error'> {
  message: string;
  code?: string;
}
export interface ConfigurationMessage extends S<'configuration'> {
  configurations?: unknown[];
  services?: Record<string, unknown>;
}
export interface ChatsSessionsUpdatedMessage extends S<'chatsSessionsUpdated'> {
  sessions: Array<{ sessionId: string; chatId: string; [k: string]: unknown }>;
}
export interface CharactersListLoadedMessage extends S<'charactersListLoaded'> {
  characters: CharacterRef[];
}
export interface ChatsListLoadedMessage extends S<'chatsListLoaded'> {
  chats: Array<{ id: string; created?: string; [k: string]: unknown }>;
}
export interface ScenariosListLoadedMessage extends S<'scenariosListLoaded'> {
  scenarios: ScenarioInfo[];
}
export interface ChatStartingMessage extends S<'chatStarting'>, InSession {
  chatId?: string;
  title?: string;
}
export interface ChatLoadingMessageMessage extends S<'chatLoadingMessage'>, InSession {
  text?: string;
  progress?: number;
}
export interface ChatStartedMessage extends S<'chatStarted'>, InSession {
  chatId: string;
  title?: string;
  characters: CharacterRef[];
  /** The chat's narrator (ChatStartedMessageBuilderService always sets it). */
  narrator?: CharacterRef;
  /** Only for a chat started from a scenario. */
  scenario?: ScenarioInfo;
  services: ChatServices;
  messages: HistoryMessage[];
}
/** The cast changed (add/removeChatParticipant): the whole new list (ParticipantsCommandBase). */
export interface ChatParticipantsUpdatedMessage extends S<'chatParticipantsUpdated'>, InSession {
  characters: CharacterRef[];
}
export interface ContextUpdatedMessage extends S<'contextUpdated'>, InSession {}
export interface ChatFlowMessage extends S<'chatFlow'>, InSession {
  state: string;
}
export interface ChatPausedMessage extends S<'chatPaused'>, InSession {
  paused: boolean;
}
export interface ChatClosedMessage extends S<'chatClosed'>, InSession {
  chatId?: string;
}
export interface ChatSessionErrorMessage extends S<'chatSessionError'>, InSession {
  message: string;
  code?: string;
  retry?: boolean;
}
export interface ReplyGeneratingMessage extends S<'replyGenerating'>, InSession {
  messageId: string;
  senderId?: string;
  role?: string;
  isNarration: boolean;
  thinkingSpeechUrl?: string;
}
export interface ReplyStartMessage extends S<'replyStart'>, InSession {
  messageId: string;
  senderId?: string;
}
export interface ReplyChunkMessage extends S<'replyChunk'>, InSession {
  messageId: string;
  senderId?: string;
  text: string;
  startIndex: number;
  endIndex: number;
  /** `""` when the chunk has no audio; may be `silence:<ms>` on newer servers. */
  audioUrl: string;
  isNarration: boolean;
  audioGapMs?: number;
}
export interface ReplyEndMessage extends S<'replyEnd'>, InSession {
  messageId: string;
  senderId?: string;
}
export interface ReplyCancelledMessage extends S<'replyCancelled'>, InSession {
  messageId: string;
}
export interface ServerUpdateMessage extends S<'update'>, InSession {
  messageId: string;
  role: string;
  text: string;
  senderId?: string;
}
/**
 * Voxta's echo of a deleted message is an `update` whose `text` is null
 * (TunnelMessagesService.SendMessageDeleted, VD-core). The parser gives it this client-side type
 * so that code reading `update.text` never meets a null; it never comes as such on the wire.
 */
export interface MessageDeletedMessage extends S<'messageDeleted'>, InSession {
  messageId: string;
  role?: string;
  senderId?: string;
}
/**
 * A scenario script's app trigger (GE ServerActionAppTriggerMessage, NJ). With a `triggerId` it is
 * a queued foreground trigger: the server waits for `appTriggerComplete` before going on.
 */
export interface AppTriggerMessage extends S<'appTrigger'>, InSession {
  name: string;
  arguments: unknown[];
  messageId?: string;
  triggerId?: string;
  senderId?: string;
  scenarioRole?: string;
}
export interface ServerSpeechPlaybackStartMessage extends S<'speechPlaybackStart'>, InSession {
  messageId: string;
  duration?: number;
}
export interface ServerSpeechPlaybackCompleteMessage extends S<'speechPlaybackComplete'>, InSession {
  messageId: string;
}
export interface InterruptSpeechMessage extends S<'interruptSpeech'>, InSession {
  messageId?: string;
}
export interface RecordingRequestMessage extends S<'recordingRequest'>, InSession {
  enabled: boolean;
}
export interface RecordingStatusMessage extends S<'recordingStatus'>, InSession {
  enabled: boolean;
}
/** No sessionId: attributed through the connection that received it (protocol §3.4). */
export type SpeechRecognitionStartMessage = S<'speechRecognitionStart'>;
export interface SpeechRecognitionPartialMessage extends S<'speechRecognitionPartial'> {
  text: string;
}
export interface SpeechRecognitionEndMessage extends S<'speechRecognitionEnd'> {
  /** null when cancelled, empty or rejected. */
  text: string | null;
  reason?: string;
}
export interface MissingResourcesErrorMessage extends S<'missingResourcesError'> {
  resources: unknown[];
}
/** Voxta asks this client for a picture of `source`; answer within 30 s (vision.ts). */
export interface VisionCaptureRequestMessage extends S<'visionCaptureRequest'>, InSession {
  visionCaptureRequestId: string;
  source: ComputerVisionSource;
}

export type ServerMessage =
  | WelcomeMessage
  | AuthenticationRequiredMessage
  | ErrorMessage
  | ConfigurationMessage
  | ChatsSessionsUpdatedMessage
  | CharactersListLoadedMessage
  | ChatsListLoadedMessage
  | ScenariosListLoadedMessage
  | ChatStartingMessage
  | ChatLoadingMessageMessage
  | ChatStartedMessage
  | ChatParticipantsUpdatedMessage
  | ContextUpdatedMessage
  | ChatFlowMessage
  | ChatPausedMessage
  | ChatClosedMessage
  | ChatSessionErrorMessage
  | ReplyGeneratingMessage
  | ReplyStartMessage
  | ReplyChunkMessage
  | ReplyEndMessage
  | ReplyCancelledMessage
  | ServerUpdateMessage
  | MessageDeletedMessage
  | AppTriggerMessage
  | ServerSpeechPlaybackStartMessage
  | ServerSpeechPlaybackCompleteMessage
  | InterruptSpeechMessage
  | RecordingRequestMessage
  | RecordingStatusMessage
  | SpeechRecognitionStartMessage
  | SpeechRecognitionPartialMessage
  | SpeechRecognitionEndMessage
  | MissingResourcesErrorMessage
  | VisionCaptureRequestMessage;

export type ServerMessageType = ServerMessage['$type'];
export type ServerMessageOf<T extends ServerMessageType> = Extract<ServerMessage, { $type: T }>;

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/**
 * Field rules: `string`, `number`, `boolean`, `array`, `object` (non-null, non-array); a trailing
 * `?` makes the field optional (absent or null accepted); `string|null` accepts a null too.
 * Defaults fill optional fields the bot reads unconditionally.
 */
type Rule = 'string' | 'number' | 'boolean' | 'array' | 'object' | 'string|null';
interface Spec {
  required?: Record<string, Rule>;
  optional?: Record<string, Rule>;
  defaults?: Record<string, unknown>;
}

const session: Record<string, Rule> = { sessionId: 'string' };
const inMessage: Record<string, Rule> = { sessionId: 'string', messageId: 'string' };

const SPECS: Record<ServerMessageType, Spec> = {
  welcome: { required: { apiVersion: 'string', voxtaServerVersion: 'string' }, optional: { user: 'object', assistant: 'object' } },
  authenticationRequired: {},
  error: { required: { message: 'string' }, optional: { code: 'string' } },
  configuration: { optional: { configurations: 'array', services: 'object' } },
  chatsSessionsUpdated: { required: { sessions: 'array' } },
  charactersListLoaded: { required: { characters: 'array' } },
  chatsListLoaded: { required: { chats: 'array' } },
  scenariosListLoaded: { required: { scenarios: 'array' } },
  chatStarting: { required: session, optional: { chatId: 'string', title: 'string' } },
  chatLoadingMessage: { required: session, optional: { text: 'string', progress: 'number' } },
  chatStarted: {
    required: { sessionId: 'string', chatId: 'string' },
    optional: { characters: 'array', services: 'object', messages: 'array', title: 'string', narrator: 'object', scenario: 'object' },
    defaults: { characters: [], services: {}, messages: [] },
  },
  chatParticipantsUpdated: { required: { sessionId: 'string', characters: 'array' } },
  contextUpdated: { required: session },
  chatFlow: { required: { sessionId: 'string', state: 'string' } },
  chatPaused: { required: { sessionId: 'string', paused: 'boolean' } },
  chatClosed: { required: session, optional: { chatId: 'string' } },
  chatSessionError: { required: { sessionId: 'string', message: 'string' }, optional: { code: 'string', retry: 'boolean' } },
  replyGenerating: {
    required: inMessage,
    optional: { senderId: 'string', role: 'string', isNarration: 'boolean', thinkingSpeechUrl: 'string' },
    defaults: { isNarration: false },
  },
  replyStart: { required: inMessage, optional: { senderId: 'string' } },
  replyChunk: {
    required: { ...inMessage, text: 'string' },
    optional: { senderId: 'string', startIndex: 'number', endIndex: 'number', audioUrl: 'string', isNarration: 'boolean', audioGapMs: 'number' },
    defaults: { startIndex: 0, endIndex: 0, audioUrl: '', isNarration: false },
  },
  replyEnd: { required: inMessage, optional: { senderId: 'string' } },
  replyCancelled: { required: inMessage },
  // text is null for a deleted message (parsed into `messageDeleted`).
  update: { required: { ...inMessage, text: 'string|null' }, optional: { role: 'string', senderId: 'string' }, defaults: { role: 'Unknown' } },
  messageDeleted: { required: inMessage, optional: { role: 'string', senderId: 'string' } },
  appTrigger: {
    required: { sessionId: 'string', name: 'string' },
    optional: { arguments: 'array', messageId: 'string', triggerId: 'string', senderId: 'string', scenarioRole: 'string' },
    defaults: { arguments: [] },
  },
  speechPlaybackStart: { required: inMessage, optional: { duration: 'number' } },
  speechPlaybackComplete: { required: inMessage },
  interruptSpeech: { required: session, optional: { messageId: 'string' } },
  recordingRequest: { required: { sessionId: 'string', enabled: 'boolean' } },
  recordingStatus: { required: { sessionId: 'string', enabled: 'boolean' } },
  speechRecognitionStart: {},
  speechRecognitionPartial: { required: { text: 'string' } },
  speechRecognitionEnd: { optional: { text: 'string|null', reason: 'string' }, defaults: { text: null } },
  missingResourcesError: { optional: { resources: 'array' }, defaults: { resources: [] } },
  visionCaptureRequest: { required: { sessionId: 'string', visionCaptureRequestId: 'string', source: 'string' } },
};

/**
 * Types the server sends that the bot deliberately ignores (protocol §3): dropped quietly at trace
 * level, so the debug log only shows the truly unknown ones.
 */
const IGNORED_TYPES = new Set([
  'moduleRuntimeInstances',
  'downloadProgress',
  'replyThink',
  'replyThinking',
  'action',
  'memoryUpdated',
  'chatUpdated',
  'chatConfiguration',
  'documentUpdated',
  'suggestions',
  'userInteractionRequest',
  'closeUserInteractionRequest',
  'wakeWordStatus',
  'audioFrame',
  'animationPlay',
]);

function matches(value: unknown, rule: Rule): boolean {
  switch (rule) {
    case 'string':
      return typeof value === 'string';
    case 'string|null':
      return value === null || typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
  }
}

export function isServerMessageType(t: string): t is ServerMessageType {
  return Object.prototype.hasOwnProperty.call(SPECS, t);
}

/** Why a payload was refused; undefined when it is fine. Exposed for tests and logs. */
export function validateServerMessage(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'payload is not an object';
  const type = (raw as Record<string, unknown>).$type;
  if (typeof type !== 'string') return 'missing $type';
  if (!isServerMessageType(type)) return `unknown $type "${type.slice(0, 64)}"`;
  const spec = SPECS[type];
  const o = raw as Record<string, unknown>;
  for (const [field, rule] of Object.entries(spec.required ?? {})) {
    if (!matches(o[field], rule)) return `${type}.${field} must be ${rule} (got ${describe(o[field])})`;
  }
  for (const [field, rule] of Object.entries(spec.optional ?? {})) {
    const v = o[field];
    if (v === undefined || v === null) continue;
    if (!matches(v, rule)) return `${type}.${field} must be ${rule} (got ${describe(v)})`;
  }
  return undefined;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/**
 * Validates a raw `ReceiveMessage` argument. Returns a typed copy (with defaults filled and
 * null optionals removed), or undefined for unknown or malformed payloads. Never throws.
 */
export function parseServerMessage(raw: unknown): ServerMessage | undefined {
  try {
    const type = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>).$type : undefined;
    if (typeof type === 'string' && IGNORED_TYPES.has(type)) {
      logger().trace({ type }, 'voxta: ignored server message');
      return undefined;
    }
    if (type === CLIENT_SIDE_TYPE) {
      // Our own name for a deletion; a server sending it means something else.
      logger().debug({ type }, 'voxta: dropped server message (client-side type name)');
      return undefined;
    }
    const problem = validateServerMessage(raw);
    if (problem) {
      logger().debug({ problem }, 'voxta: dropped server message');
      return undefined;
    }
    const spec = SPECS[type as ServerMessageType];
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
      // Null optionals become absent so consumers only have to handle `undefined`.
      if (v === null && spec.optional?.[k] !== undefined && spec.optional[k] !== 'string|null') continue;
      out[k] = v;
    }
    for (const [k, v] of Object.entries(spec.defaults ?? {})) {
      if (out[k] === undefined) out[k] = Array.isArray(v) ? [] : typeof v === 'object' && v !== null ? {} : v;
    }
    if (type === 'chatStarted') normaliseChatStarted(out);
    if (type === 'charactersListLoaded' || type === 'chatParticipantsUpdated') out.characters = (out.characters as unknown[]).filter(isCharacterRef);
    if (type === 'chatsListLoaded') out.chats = (out.chats as unknown[]).filter((c) => typeof (c as { id?: unknown })?.id === 'string');
    if (type === 'scenariosListLoaded') out.scenarios = (out.scenarios as unknown[]).filter(isScenarioInfo).map(normaliseScenario);
    if (type === 'update' && out.text === null) return deletion(out);
    return out as ServerMessage;
  } catch (err) {
    // Defensive: a getter or exotic object must not escape the client.
    logger().debug({ err: String(err) }, 'voxta: server message could not be parsed');
    return undefined;
  }
}

/** The client-side `$type` of a deletion (see {@link MessageDeletedMessage}). */
const CLIENT_SIDE_TYPE = 'messageDeleted';

function deletion(update: Record<string, unknown>): MessageDeletedMessage {
  const d: MessageDeletedMessage = { $type: 'messageDeleted', sessionId: update.sessionId as string, messageId: update.messageId as string };
  if (typeof update.role === 'string' && update.role !== 'Unknown') d.role = update.role;
  if (typeof update.senderId === 'string') d.senderId = update.senderId;
  return d;
}

/** An object with a string `id` and `name` (a character reference, a scenario). */
function hasIdAndName(v: unknown): v is { id: string; name: string } {
  const o = v as { id?: unknown; name?: unknown } | null;
  return typeof o === 'object' && o !== null && typeof o.id === 'string' && typeof o.name === 'string';
}

export function isScenarioInfo(s: unknown): s is ScenarioInfo {
  return hasIdAndName(s);
}

/** `roles` always an array of named roles. */
export function normaliseScenario(s: ScenarioInfo): ScenarioInfo {
  const roles = Array.isArray(s.roles) ? s.roles.filter((r): r is ScenarioRoleInfo => typeof (r as { name?: unknown } | null)?.name === 'string') : [];
  return { ...s, roles };
}

function isCharacterRef(c: unknown): c is CharacterRef {
  return hasIdAndName(c);
}

function normaliseChatStarted(out: Record<string, unknown>): void {
  out.characters = (out.characters as unknown[]).filter(isCharacterRef);
  if (out.narrator !== undefined && !isCharacterRef(out.narrator)) delete out.narrator;
  if (out.scenario !== undefined) {
    if (isScenarioInfo(out.scenario)) out.scenario = normaliseScenario(out.scenario);
    else delete out.scenario;
  }
  out.messages = (out.messages as unknown[]).filter((m): m is HistoryMessage => {
    const o = m as Record<string, unknown> | null;
    return typeof o === 'object' && o !== null && typeof o.text === 'string' && typeof o.role === 'string';
  });
}
