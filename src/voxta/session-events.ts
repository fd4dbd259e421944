/**
 * The public vocabulary of a {@link VoxtaChatSession}: its states, its typed events and its stats.
 */
import type { ChatInfo } from './chat-info.js';
import type {
  AppTriggerMessage,
  ChatClosedMessage,
  ChatFlowMessage,
  ChatSessionErrorMessage,
  InterruptSpeechMessage,
  MessageDeletedMessage,
  RecordingRequestMessage,
  RecordingStatusMessage,
  ReplyCancelledMessage,
  ReplyChunkMessage,
  ReplyEndMessage,
  ReplyGeneratingMessage,
  ReplyStartMessage,
  ServerMessage,
  ServerUpdateMessage,
  SpeechRecognitionEndMessage,
  SpeechRecognitionPartialMessage,
  SpeechRecognitionStartMessage,
  VisionCaptureRequestMessage,
  WelcomeMessage,
} from './messages.js';

export type SessionState = 'idle' | 'connecting' | 'ready' | 'reconnecting' | 'closed';

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

/** A queued user message was written to the live session. */
export interface SentInfo {
  text: string;
  sessionId: string;
  resend: boolean;
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
  /** A stored message was deleted (Voxta's `update` with `text: null`: deleteMessage, retry, revert). */
  messageDeleted: [message: MessageDeletedMessage];
  /** The cast changed (`chatParticipantsUpdated`); `session.chat` already holds the new cast. */
  participantsUpdated: [chat: ChatInfo];
  /**
   * A scenario app trigger. When it carries a `triggerId`, the session answers
   * `appTriggerComplete` once every listener returned (async ones: settled, or the timeout).
   */
  appTrigger: [message: AppTriggerMessage];
  interruptSpeech: [message: InterruptSpeechMessage];
  recordingRequest: [message: RecordingRequestMessage];
  recordingStatus: [message: RecordingStatusMessage];
  speechRecognitionStart: [message: SpeechRecognitionStartMessage];
  speechRecognitionPartial: [message: SpeechRecognitionPartialMessage];
  speechRecognitionEnd: [message: SpeechRecognitionEndMessage];
  /** Voxta asks for a picture (only with the `vision` option); see vision.ts `attachVisionResponder`. */
  visionCaptureRequest: [message: VisionCaptureRequestMessage];
  /** A queued user message was written to the live session. */
  sent: [info: SentInfo];
  reconnecting: [info: ReconnectingInfo];
  reconnected: [info: ReconnectedInfo];
  failed: [error: Error];
};
