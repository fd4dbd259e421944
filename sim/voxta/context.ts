/**
 * Options with their defaults, fault switches, and the shared state every part of the simulator
 * reaches through one {@link SimContext}.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../../src/log.js';
import type { ChatStore } from './chat-store.js';
import {
  DEFAULT_CHARACTERS,
  DEFAULT_NARRATORS,
  DEFAULT_SCENARIOS,
  defaultReply,
  type ReplyContext,
  type ReplyScript,
  type SimCharacter,
  type SimScenario,
} from './characters.js';
import type { UserRef } from './messages.js';
import type { SimRecorder } from './recorder.js';
import type { SessionRegistry } from './session-registry.js';
import type { TtsRegistry } from './tts.js';
import { resolveVisionOptions, type ResolvedVisionOptions, type SimVision, type SimVisionOptions } from './vision.js';

/**
 * Scripted transcripts, in order, or a function of the utterance. A cut utterance (see
 * recognizer.ts) still takes the next entry, but is reported as a visibly partial text of it.
 */
export type TranscriptSource = string[] | ((info: TranscriptInfo) => string | null);
export interface TranscriptInfo {
  sessionId: string;
  index: number;
  voicedMs: number;
  /** Heard from onset to end (see RecognitionRecord.whole); always true for injected ones. */
  whole?: boolean;
  cut?: 'start' | 'end' | 'both' | null;
}

/** An app trigger the simulator sends (protocol §3.3 `appTrigger`); `queued` gives it a triggerId. */
export interface SimAppTrigger {
  name: string;
  arguments?: unknown[];
  /** A queued foreground trigger: carries a `triggerId` and holds the chat until `appTriggerComplete`. */
  queued?: boolean;
}

/** What a finished reply looked like, for `options.appTriggers`. */
export interface FinishedReplyInfo {
  sessionId: string;
  messageId: string;
  senderId: string;
  text: string;
  isNarration: boolean;
  turn: number;
}

/**
 * Where a session's speech-to-text listens (Voxta's SpeechToTextManager.InitializeInternalAsync):
 * `client` = the client's audio socket; `serverMicrophone` = the Voxta PC's own microphone;
 * null = no transcription.
 */
export type SttSource = 'client' | 'serverMicrophone' | null;

export interface VoxtaSimOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Require `Authorization: Bearer <key>` (or `?access_token=`); each key is a distinct user. */
  apiKey?: string | string[];
  /** Require Basic auth (reverse-proxy style). With `apiKey` too, either credential is accepted. */
  basicAuth?: { username: string; password: string };
  maxChats?: number;
  characters?: SimCharacter[];
  narrators?: SimCharacter[];
  scenarios?: SimScenario[];
  reply?: (userText: string, ctx: ReplyContext) => ReplyScript;
  appTriggers?: (reply: FinishedReplyInfo) => SimAppTrigger[];
  localClients?: 'loopback' | 'none';
  audioInputService?: { preferClientCapability?: boolean; serverMicrophone?: boolean };
  disableServicesSupported?: boolean;
  chunkDelayMs?: number;
  greeting?: boolean;
  tts?: {
    enabled?: boolean;
    sampleRate?: number;
    voice?: 'tone' | 'espeak';
    silenceUrls?: boolean;
    status?: number;
    delayMs?: number;
    /** `replyChunk.audioGapMs` on every chunk with audio (0 = field not sent). */
    audioGapMs?: number;
  };
  stt?: {
    enabled?: boolean;
    endSilenceMs?: number;
    vadThreshold?: number;
    minVoicedMs?: number;
    transcripts?: TranscriptSource;
    bargeIn?: boolean;
  };
  pingIntervalMs?: number;
  clientTimeoutMs?: number;
  chatLockReleaseDelayMs?: number;
  capacityDelayMs?: number;
  apiVersion?: string;
  faults?: Partial<SimFaults>;
  maxRecordedFrames?: number;
  log?: boolean;
  /** Vision service switch, capture requests, uploads (vision.ts). Off by default. */
  vision?: SimVisionOptions;
}

/** The live options object (`sim.options`): every field present, mutable at run time. */
export interface ResolvedOptions {
  port: number;
  host: string;
  apiKey: string | string[] | undefined;
  basicAuth: { username: string; password: string } | undefined;
  maxChats: number;
  characters: SimCharacter[];
  narrators: SimCharacter[];
  scenarios: SimScenario[];
  reply: (userText: string, ctx: ReplyContext) => ReplyScript;
  appTriggers: ((reply: FinishedReplyInfo) => SimAppTrigger[]) | undefined;
  /** Which hub connections Voxta treats as local (AuthenticationContext.Remote false). */
  localClients: 'loopback' | 'none';
  /** The server's "AudioInput" service configuration (a microphone on the Voxta PC). */
  audioInputService: { preferClientCapability: boolean; serverMicrophone: boolean };
  /** false simulates a server older than API 2025-11, which ignores `startChat.disableServices`. */
  disableServicesSupported: boolean;
  chunkDelayMs: number;
  greeting: boolean;
  tts: {
    enabled: boolean;
    sampleRate: number;
    voice: 'tone' | 'espeak';
    silenceUrls: boolean;
    status: number;
    delayMs: number;
    audioGapMs: number;
  };
  stt: {
    enabled: boolean;
    endSilenceMs: number;
    vadThreshold: number;
    minVoicedMs: number;
    transcripts: TranscriptSource | undefined;
    bargeIn: boolean;
  };
  pingIntervalMs: number;
  clientTimeoutMs: number;
  chatLockReleaseDelayMs: number;
  capacityDelayMs: number;
  apiVersion: string;
  maxRecordedFrames: number;
  log: boolean;
  vision: ResolvedVisionOptions;
}

export interface SimFaults {
  /** After the first chunk of every reply: chatSessionError, replyCancelled, replyEnd (the hold stays). */
  errorMidReply: boolean;
  /** A `{"$type":"futureThing"}` event after every replyStart. */
  unknownTypes: boolean;
  /** After every replyStart: a replyChunk without messageId, non-object arguments, an unknown target. */
  malformedPayloads: boolean;
  /** Answer `authenticate` with `authenticationRequired`. */
  authenticationRequired: boolean;
  /** Every invoke's completion carries this error. */
  invocationError: string | null;
}

export function resolveOptions(o: VoxtaSimOptions = {}): ResolvedOptions {
  return {
    port: o.port ?? 0,
    host: o.host ?? '127.0.0.1',
    apiKey: o.apiKey,
    basicAuth: o.basicAuth,
    maxChats: o.maxChats ?? 2,
    characters: o.characters ?? DEFAULT_CHARACTERS.map((c) => ({ ...c })),
    narrators: o.narrators ?? DEFAULT_NARRATORS.map((c) => ({ ...c })),
    scenarios: o.scenarios ?? DEFAULT_SCENARIOS.map((s) => ({ ...s, roles: s.roles.map((r) => ({ ...r })) })),
    reply: o.reply ?? defaultReply,
    appTriggers: o.appTriggers,
    localClients: o.localClients ?? 'none',
    audioInputService: {
      preferClientCapability: o.audioInputService?.preferClientCapability ?? true,
      serverMicrophone: o.audioInputService?.serverMicrophone ?? true,
    },
    disableServicesSupported: o.disableServicesSupported ?? true,
    chunkDelayMs: o.chunkDelayMs ?? 40,
    greeting: o.greeting ?? false,
    tts: {
      enabled: o.tts?.enabled ?? true,
      sampleRate: o.tts?.sampleRate ?? 24000,
      voice: o.tts?.voice ?? 'tone',
      silenceUrls: o.tts?.silenceUrls ?? false,
      status: o.tts?.status ?? 200,
      delayMs: o.tts?.delayMs ?? 0,
      audioGapMs: o.tts?.audioGapMs ?? 0,
    },
    stt: {
      enabled: o.stt?.enabled ?? true,
      endSilenceMs: o.stt?.endSilenceMs ?? 600,
      vadThreshold: o.stt?.vadThreshold ?? 500,
      minVoicedMs: o.stt?.minVoicedMs ?? 60,
      transcripts: o.stt?.transcripts,
      bargeIn: o.stt?.bargeIn ?? false,
    },
    pingIntervalMs: o.pingIntervalMs ?? 15_000,
    clientTimeoutMs: o.clientTimeoutMs ?? 30_000,
    chatLockReleaseDelayMs: o.chatLockReleaseDelayMs ?? 0,
    capacityDelayMs: o.capacityDelayMs ?? 10_000,
    apiVersion: o.apiVersion ?? '2025-08',
    maxRecordedFrames: o.maxRecordedFrames ?? 12_000,
    log: o.log ?? false,
    vision: resolveVisionOptions(o.vision),
  };
}

export function resolveFaults(f: Partial<SimFaults> = {}): SimFaults {
  return {
    errorMidReply: f.errorMidReply ?? false,
    unknownTypes: f.unknownTypes ?? false,
    malformedPayloads: f.malformedPayloads ?? false,
    authenticationRequired: f.authenticationRequired ?? false,
    invocationError: f.invocationError ?? null,
  };
}

export const SERVER_VERSION = '1.0.0-beta.152-sim';

/** Shared state of one simulator instance. */
export interface SimContext {
  readonly options: ResolvedOptions;
  readonly faults: SimFaults;
  readonly recorder: SimRecorder;
  readonly chats: ChatStore;
  readonly tts: TtsRegistry;
  readonly registry: SessionRegistry;
  readonly log: Logger;
  readonly transcripts: TranscriptCursor;
  readonly vision: SimVision;
}

export function findCharacter(options: ResolvedOptions, id: string): SimCharacter | undefined {
  return options.characters.find((c) => c.id === id);
}

/** A character or a narrator (both can speak in a chat, both have thumbnails). */
export function findParticipant(options: ResolvedOptions, id: string): SimCharacter | undefined {
  return findCharacter(options, id) ?? options.narrators.find((c) => c.id === id);
}

export function findScenario(options: ResolvedOptions, id: string): SimScenario | undefined {
  return options.scenarios.find((s) => s.id === id);
}

/** The profile's default narrator: the first of `options.narrators` (a built-in one if the list is empty). */
export function profileNarrator(options: ResolvedOptions): SimCharacter {
  return options.narrators[0] ?? { id: '00000000-0000-0000-0000-00000000a11a', name: 'Narrator' };
}

/** A stable user id and name for a credential identity (never derived from the secret itself). */
export function userRefFor(userKey: string): UserRef {
  const h = createHash('sha256').update(`voxta-sim-user:${userKey}`).digest('hex');
  const id = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
  return { id, name: 'User' };
}

/**
 * Hands out scripted transcripts in order across the whole simulator. Replacing
 * `options.stt.transcripts` with a new array starts again from its first entry.
 */
export class TranscriptCursor {
  private source: TranscriptSource | undefined;
  private next = 0;

  /** Peeks the next scripted transcript of an array source (for partial texts). */
  peek(current: TranscriptSource | undefined): string | undefined {
    this.sync(current);
    return Array.isArray(current) ? current[this.next] : undefined;
  }

  /** The final text of utterance `index`: scripted, from the function, or a readable default. */
  take(current: TranscriptSource | undefined, info: TranscriptInfo): string | null {
    this.sync(current);
    if (typeof current === 'function') return current(info);
    if (Array.isArray(current) && this.next < current.length) return current[this.next++] ?? null;
    return `utterance ${info.index + 1} (${(info.voicedMs / 1000).toFixed(1)} s)`;
  }

  private sync(current: TranscriptSource | undefined): void {
    if (current !== this.source) {
      this.source = current;
      this.next = 0;
    }
  }
}
