/**
 * Voxta hub payloads as the simulator sees them. Client payloads are checked field by field by
 * the handlers (bad input must be reported, not trusted); server payloads are a discriminated
 * union on `$type`, always built with `$type` as the first property, as Voxta writes them.
 */

/** Any client `SendMessage` argument that is at least an object with a string `$type`. */
export interface ClientPayload {
  $type: string;
  [key: string]: unknown;
}

/** Roles of stored messages the simulator writes (Voxta's ChatMessageRole, by name). */
export type Role = 'User' | 'Assistant' | 'Event';

export interface UserRef {
  id: string;
  name: string;
}
export interface CharacterRef {
  id: string;
  name: string;
  thumbnailUrl: string;
}

/** Voxta's ChatParticipantInfo: a member of a chat's cast. */
export interface ParticipantInfo extends CharacterRef {
  scenarioRole?: string;
}

/** Voxta's ScenarioInfo (scenariosListLoaded, GET /api/scenarios, chatStarted.scenario). */
export interface ScenarioInfo {
  id: string;
  name: string;
  chatFlow: string;
  chatStyle: string;
  client: string | null;
  roles: Array<{ name: string; description: string | null; defaultCharacterId?: string | null }>;
  thumbnailUrl: string | null;
  packageId: string | null;
  packageName: string | null;
  packageVersion: string | null;
}

export interface ServiceInfo {
  serviceName: string;
  serviceId: string;
}

export interface StoredMessage {
  messageId: string;
  role: Role;
  senderId: string;
  name: string;
  text: string;
  timestamp: string;
  tokens: number;
  index: number;
  conversationIndex: number;
  chatTime: number;
  attachments: unknown[];
}

export interface ContextState {
  sessionId: string;
  flags: { name: string }[];
  characters: ParticipantInfo[];
  /** Role name → the character filling it, as GE's generated RoleEntry {characterId?, enabled}. */
  roles: Record<string, { characterId: string | null; enabled: boolean }>;
  contexts?: unknown[];
  actions?: unknown[];
}

export interface ChatSessionSummary {
  sessionId: string;
  chatId: string;
  user: UserRef;
  characters: CharacterRef[];
}

/** Every message the simulator sends, by `$type`. */
export type ServerMessage =
  | {
      $type: 'welcome';
      apiVersion: string;
      voxtaServerVersion: string;
      registeredClientVersion: string | null;
      user: UserRef & { thumbnailUrl: string | null };
      favorite: null;
      assistant: CharacterRef | null;
    }
  | { $type: 'authenticationRequired' }
  | { $type: 'error'; message: string; code?: string }
  | { $type: 'configuration'; configurations: unknown[]; services: Record<string, unknown>; featureFlags: string[] }
  | { $type: 'charactersListLoaded'; characters: CharacterListItem[] }
  | { $type: 'chatsListLoaded'; chats: { id: string; created: string }[] }
  | { $type: 'scenariosListLoaded'; scenarios: ScenarioInfo[] }
  | { $type: 'chatsSessionsUpdated'; sessions: ChatSessionSummary[] }
  | { $type: 'chatStarting'; sessionId: string; chatId: string; title: string; chatStyle: string }
  | { $type: 'chatLoadingMessage'; sessionId: string; text: string; progress: number }
  | {
      $type: 'chatStarted';
      sessionId: string;
      chatId: string;
      title: string;
      chatStyle: string;
      user: UserRef;
      characters: ParticipantInfo[];
      narrator: CharacterRef;
      scenario: ScenarioInfo | null;
      services: Record<'textGen' | 'textToSpeech' | 'speechToText' | 'actionInference' | 'summarization' | 'imageGen', ServiceInfo | null>;
      messages: StoredMessage[];
      context: ContextState;
    }
  | ({ $type: 'contextUpdated' } & ContextState)
  | { $type: 'chatFlow'; sessionId: string; state: 'WaitingForUserInput' | 'ProcessingUserMessage' | 'ProcessingAssistantReply' }
  | { $type: 'chatPaused'; sessionId: string; paused: boolean }
  | { $type: 'chatClosed'; sessionId: string; chatId: string }
  | { $type: 'chatSessionError'; sessionId: string; message: string; retry: boolean }
  | { $type: 'chatParticipantsUpdated'; sessionId: string; characters: ParticipantInfo[] }
  | { $type: 'replyGenerating'; sessionId: string; messageId: string; senderId: string; role: Role; isNarration: boolean }
  | { $type: 'replyStart'; sessionId: string; messageId: string; senderId: string; chatTime: number }
  | {
      $type: 'replyChunk';
      sessionId: string;
      messageId: string;
      senderId: string;
      text: string;
      startIndex: number;
      endIndex: number;
      audioUrl: string;
      isNarration: boolean;
      /** Minimum time since the previous clip ended before this one plays (only when `tts.audioGapMs` is set). */
      audioGapMs?: number;
    }
  | {
      $type: 'replyEnd';
      sessionId: string;
      messageId: string;
      senderId: string;
      tokens: number;
      messageIndex: number;
      conversationIndex: number;
    }
  | { $type: 'replyCancelled'; sessionId: string; messageId: string }
  | ({ $type: 'update'; sessionId: string } & Omit<StoredMessage, 'name' | 'attachments'>)
  /** Voxta's echo of a deleted message (TunnelMessagesService.SendMessageDeleted): text null, indexes 0. */
  | { $type: 'update'; sessionId: string; messageId: string; senderId: string; text: null; role: Role; timestamp: string; index: 0; conversationIndex: 0; chatTime: 0 }
  | {
      $type: 'appTrigger';
      sessionId: string;
      messageId?: string;
      triggerId?: string;
      name: string;
      arguments: unknown[];
      senderId: string;
      scenarioRole?: string;
    }
  | { $type: 'speechPlaybackStart'; sessionId: string; messageId: string; startIndex: number; duration: number }
  | { $type: 'speechPlaybackComplete'; sessionId: string; messageId: string }
  | { $type: 'interruptSpeech'; sessionId: string; messageId: string }
  | { $type: 'recordingRequest'; sessionId: string; enabled: boolean }
  | { $type: 'recordingStatus'; sessionId: string; enabled: boolean }
  | { $type: 'speechRecognitionStart' }
  | { $type: 'speechRecognitionPartial'; text: string }
  | { $type: 'speechRecognitionEnd'; text: string | null; reason: 'Complete' | 'Empty' | 'Incomplete' }
  | { $type: 'visionCaptureRequest'; sessionId: string; visionCaptureRequestId: string; source: string }
  | { $type: 'futureThing'; sessionId: string; note: string };

export type ServerMessageType = ServerMessage['$type'];

export interface CharacterListItem {
  id: string;
  name: string;
  version: string;
  creatorNotes: string;
  culture: string;
  explicitContent: boolean;
  thumbnailUrl: string;
  favorite: boolean;
  hidden: boolean;
  scenarioOnly: boolean;
  appControlled: boolean;
  tags: string[];
}

export const EMPTY_GUID = '00000000-0000-0000-0000-000000000000';

/** Reads an optional string field; undefined when absent, null when present but not a string. */
export function stringField(p: ClientPayload, key: string): string | undefined | null {
  const v = p[key];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : null;
}
