/**
 * What a {@link VoxtaChatSession} can be told: construction options (with their defaults) and the
 * options of `startChat` / `resumeChat`.
 */
import type { Logger } from '../log.js';
import type { VoxtaEndpoint } from './endpoint.js';
import type { AudioInputCapability, ContextItem } from './messages.js';
import type { VisionOptions } from './vision.js';

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
  /**
   * A chat without voice input (a text channel). It declares `audioInput: WebSocketStream` but
   * never streams, and starts/resumes its chats with `disableServices: ["SpeechToText"]`, so that
   * Voxta neither switches on the Voxta PC's microphone for it (what `audioInput: None` does for a
   * local connection) nor runs a second speech-to-text that would overhear the voice chat through
   * Voxta's process-wide audio pipeline. See README "Text-only sessions".
   */
  textOnly?: boolean;
  /**
   * Low-level override of the declared audio input capability (default `WebSocketStream`).
   * Prefer `textOnly`: `None` makes a local Voxta use its own microphone when STT is on.
   */
  audioInput?: AudioInputCapability;
  acceptedAudioContentTypes?: string[];
  /** Declare that we answer Voxta's vision capture requests (vision.ts). Off when absent. */
  vision?: VisionOptions;
  /** API versions that log no warning (default: KNOWN_API_VERSIONS, 2025-08 and 2025-11). */
  expectedApiVersion?: string | readonly string[];
  /** How long `appTrigger` listeners may take (async ones) before `appTriggerComplete` is sent anyway (default 10 s). */
  appTriggerTimeoutMs?: number;
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

/**
 * What to start: one character (`characterId`), a group (`characterIds`, the first one is the
 * main character), a scenario (`scenarioId`, with `roles` role name → characterId; without any
 * character the scenario's default role characters are asked for, since Voxta requires one), or
 * an existing chat (`chatId`). At least one of them.
 */
export interface StartChatOptions {
  characterId?: string;
  characterIds?: string[];
  scenarioId?: string;
  roles?: Record<string, string>;
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

export type SessionTimeout = keyof NonNullable<VoxtaChatSessionOptions['timeouts']>;

const DEFAULT_TIMEOUTS: Record<SessionTimeout, number> = { connectMs: 15_000, welcomeMs: 10_000, chatStartMs: 30_000, stopMs: 10_000, requestMs: 10_000 };

/** The configured timeout, or its default. */
export function timeoutOf(opts: VoxtaChatSessionOptions, k: SessionTimeout): number {
  return opts.timeouts?.[k] ?? DEFAULT_TIMEOUTS[k];
}
