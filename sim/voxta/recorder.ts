/**
 * Everything the simulator saw and did, kept for test assertions: client messages, server
 * messages, playback reports, TTS downloads, recognised utterances. Also the `waitFor` helpers.
 */
import { EventEmitter } from 'node:events';
import type { ClientPayload } from './messages.js';
import type { TtsServed } from './tts.js';

export interface ReceivedMessage {
  seq: number;
  connectionId: string;
  /** Date.now() at arrival. */
  at: number;
  payload: ClientPayload;
  invocationId?: string;
}

export interface SentMessage {
  seq: number;
  connectionId: string;
  at: number;
  /** Normally a `{ $type, ... }` object; anything for malformed-payload faults. */
  payload: unknown;
}

export interface PlaybackStart {
  startIndex: number;
  endIndex: number | undefined;
  duration: number;
  at: number;
}

export interface PlaybackRecord {
  messageId: string;
  starts: PlaybackStart[];
  /** speechPlaybackComplete messages received for this message. */
  completes: number;
  /** Whether one of them released the session's hold. */
  released: boolean;
}

export interface RecognitionRecord {
  sessionId: string;
  connectionId: string;
  index: number;
  voicedMs: number;
  /**
   * The recogniser heard the utterance from its onset (preceded by silence received while
   * recording) to its end (trailing silence). False when it began mid-word as recording started,
   * or recording stopped while it went on (`cut`).
   */
  whole: boolean;
  cut: 'start' | 'end' | 'both' | null;
  /** Silence received while recording right before the onset (capped at 10 s). */
  leadSilenceMs: number;
  /** The scripted sentence for a whole utterance; a visibly partial text ("… the rest") for one cut at the start; null when cut at the end. */
  text: string | null;
  /** 'Incomplete': recording stopped mid-utterance (the recognition was cancelled). */
  reason: 'Complete' | 'Empty' | 'Incomplete';
  injected: boolean;
  at: number;
}

/** An `appTrigger` the simulator sent, and the `appTriggerComplete`s that answered it. */
export interface AppTriggerRecord {
  sessionId: string;
  /** null for a fire-and-forget trigger (no completion expected). */
  triggerId: string | null;
  name: string;
  arguments: unknown[];
  at: number;
  completes: number;
  completedAt: number | null;
}

/** Voxta used (on: true) or released (on: false) the server PC's own microphone for a session. */
export interface ServerMicrophoneRecord {
  sessionId: string;
  connectionId: string;
  on: boolean;
  at: number;
}

export interface TtsRequest {
  id: string;
  status: number;
  at: number;
}

export interface MessageFilter {
  connectionId?: string;
  sessionId?: string;
  messageId?: string;
  /** Only records with `seq > after` (take `sim.seq()` to mean "from now on"). */
  after?: number;
  match?: (payload: Record<string, unknown>) => boolean;
}

export interface SimEvents {
  clientMessage: [ReceivedMessage];
  serverMessage: [SentMessage];
  hubConnected: [{ connectionId: string }];
  hubDisconnected: [{ connectionId: string; code: number }];
  audioFrame: [{ sessionId: string; bytes: number }];
  ttsServed: [TtsServed];
  /** Internal: anything observable changed (wakes up waitFor). */
  changed: [];
}

/**
 * Bounds for long runs (the CLI demo may run for hours): the oldest records are dropped beyond
 * these counts. Served TTS keeps its PCM, so it is bounded much tighter.
 */
export const MAX_MESSAGE_RECORDS = 50_000;
export const MAX_TTS_RECORDS = 1_000;

function pushBounded<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}

export class SimRecorder extends EventEmitter<SimEvents> {
  readonly received: ReceivedMessage[] = [];
  readonly sent: SentMessage[] = [];
  readonly ttsServed: TtsServed[] = [];
  readonly ttsRequests: TtsRequest[] = [];
  readonly recognitions: RecognitionRecord[] = [];
  readonly appTriggers: AppTriggerRecord[] = [];
  /** appTriggerComplete messages whose triggerId matched nothing the simulator sent. */
  readonly strayTriggerCompletes: Array<{ sessionId: string; triggerId: string; at: number }> = [];
  readonly serverMicrophone: ServerMicrophoneRecord[] = [];
  private readonly playbacks = new Map<string, PlaybackRecord>();
  private lastSeq = 0;

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  seq(): number {
    return this.lastSeq;
  }

  recordReceived(connectionId: string, payload: ClientPayload, invocationId: string | undefined): ReceivedMessage {
    const m: ReceivedMessage = { seq: ++this.lastSeq, connectionId, at: Date.now(), payload };
    if (invocationId !== undefined) m.invocationId = invocationId;
    pushBounded(this.received, m, MAX_MESSAGE_RECORDS);
    this.emit('clientMessage', m);
    this.emit('changed');
    return m;
  }

  recordSent(connectionId: string, payload: unknown): void {
    const m: SentMessage = { seq: ++this.lastSeq, connectionId, at: Date.now(), payload };
    pushBounded(this.sent, m, MAX_MESSAGE_RECORDS);
    this.emit('serverMessage', m);
    this.emit('changed');
  }

  playback(messageId: string): PlaybackRecord {
    let p = this.playbacks.get(messageId);
    if (!p) {
      p = { messageId, starts: [], completes: 0, released: false };
      this.playbacks.set(messageId, p);
    }
    return p;
  }

  /** A copy, so callers cannot corrupt the record. */
  playbackSnapshot(messageId: string): PlaybackRecord {
    const p = this.playbacks.get(messageId);
    return p ? { ...p, starts: [...p.starts] } : { messageId, starts: [], completes: 0, released: false };
  }

  recordTts(served: TtsServed): void {
    pushBounded(this.ttsServed, served, MAX_TTS_RECORDS);
    this.emit('ttsServed', served);
    this.emit('changed');
  }

  recordTtsRequest(id: string, status: number): void {
    pushBounded(this.ttsRequests, { id, status, at: Date.now() }, MAX_MESSAGE_RECORDS);
    this.emit('changed');
  }

  recordRecognition(r: RecognitionRecord): void {
    pushBounded(this.recognitions, r, MAX_MESSAGE_RECORDS);
    this.emit('changed');
  }

  recordAppTrigger(t: Omit<AppTriggerRecord, 'completes' | 'completedAt'>): void {
    pushBounded(this.appTriggers, { ...t, completes: 0, completedAt: null }, MAX_MESSAGE_RECORDS);
    this.emit('changed');
  }

  recordAppTriggerComplete(sessionId: string, triggerId: string): void {
    const t = this.appTriggers.find((x) => x.triggerId === triggerId && x.sessionId === sessionId);
    if (t) {
      t.completes++;
      t.completedAt ??= Date.now();
    } else {
      pushBounded(this.strayTriggerCompletes, { sessionId, triggerId, at: Date.now() }, MAX_MESSAGE_RECORDS);
    }
    this.emit('changed');
  }

  recordServerMicrophone(r: ServerMicrophoneRecord): void {
    pushBounded(this.serverMicrophone, r, MAX_MESSAGE_RECORDS);
    this.emit('changed');
  }

  /**
   * Resolves with the first truthy value of `predicate`, re-evaluated on every recorded event and
   * every 20 ms; rejects with a message naming `description` after `timeoutMs`.
   */
  waitFor<T>(predicate: () => T | undefined | null | false, timeoutMs = 5000, description?: string): Promise<T> {
    const what = description ?? predicate.toString().replace(/\s+/g, ' ').slice(0, 160);
    return new Promise<T>((resolve, reject) => {
      const check = (): boolean => {
        let value: T | undefined | null | false;
        try {
          value = predicate();
        } catch (err) {
          finish();
          reject(err instanceof Error ? err : new Error(String(err)));
          return true;
        }
        if (value !== undefined && value !== null && value !== false) {
          finish();
          resolve(value);
          return true;
        }
        return false;
      };
      const onChange = (): void => void check();
      const poll = setInterval(onChange, 20);
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`voxta-sim: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const finish = (): void => {
        clearInterval(poll);
        clearTimeout(timer);
        this.off('changed', onChange);
      };
      if (!check()) this.on('changed', onChange);
    });
  }

  waitForClientMessage(type: string, filter: MessageFilter = {}, timeoutMs = 5000): Promise<ReceivedMessage> {
    return this.waitFor(
      () => this.received.find((m) => matches(m, m.payload, type, filter)),
      timeoutMs,
      `client message "${type}"${describeFilter(filter)}`,
    );
  }

  waitForServerMessage(type: string, filter: MessageFilter = {}, timeoutMs = 5000): Promise<SentMessage> {
    return this.waitFor(
      () => this.sent.find((m) => matches(m, m.payload, type, filter)),
      timeoutMs,
      `server message "${type}"${describeFilter(filter)}`,
    );
  }
}

function matches(
  record: { seq: number; connectionId: string },
  payload: unknown,
  type: string,
  f: MessageFilter,
): boolean {
  if (typeof payload !== 'object' || payload === null) return false;
  const p = payload as Record<string, unknown>;
  if (p.$type !== type) return false;
  if (f.after !== undefined && record.seq <= f.after) return false;
  if (f.connectionId !== undefined && record.connectionId !== f.connectionId) return false;
  if (f.sessionId !== undefined && p.sessionId !== f.sessionId) return false;
  if (f.messageId !== undefined && p.messageId !== f.messageId) return false;
  return f.match ? f.match(p) : true;
}

function describeFilter(f: MessageFilter): string {
  const parts: string[] = [];
  if (f.connectionId) parts.push(`connectionId=${f.connectionId}`);
  if (f.sessionId) parts.push(`sessionId=${f.sessionId}`);
  if (f.messageId) parts.push(`messageId=${f.messageId}`);
  if (f.after !== undefined) parts.push(`after seq ${f.after}`);
  if (f.match) parts.push('matching a predicate');
  return parts.length ? ` (${parts.join(', ')})` : '';
}
