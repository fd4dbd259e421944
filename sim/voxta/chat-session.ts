/**
 * One running chat session: the start sequence, reply streaming, the speech hold, the foreground
 * queue, recording toggles and the simulated recogniser. Protocol §4, §5 and §7.2.
 *
 * The hold: every replyEnd puts the session on hold until the client sends
 * speechPlaybackComplete for *that* messageId. User messages, speech requests and trigger replies
 * queue meanwhile, so a client that forgets the complete sees a chat that never answers again,
 * as on a real server.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ChatMessageRecord, ChatRecord } from './chat-store.js';
import { estimateTokens, toStoredMessage } from './chat-store.js';
import { splitSentences, thumbnailUrlOf, type SimCharacter } from './characters.js';
import { userRefFor, type SimContext } from './context.js';
import type { CharacterRef, ChatSessionSummary, ClientPayload, ContextState, ServerMessage, ServiceInfo } from './messages.js';
import { Recognizer, partialTranscript, type UtteranceInfo } from './recognizer.js';
import type { Logger } from '../../src/log.js';
import { speechDurationMs } from './tts.js';

/** Thrown by handlers for a message the server refuses: reported as `error` and as a completion error. */
export class SimRejection extends Error {
  override name = 'SimRejection';
}

/** The hub connection that owns a session, as the session needs it. */
export interface SessionOwner {
  readonly connectionId: string;
  /** What the client declared in `authenticate.capabilities`. */
  readonly audioInput: string;
  readonly audioOutput: string;
  send(message: ServerMessage): void;
  /** Fault injection: `ReceiveMessage(payload)` with anything as payload. */
  sendUnchecked(payload: unknown): void;
  /** Fault injection: any hub record. */
  sendRecord(record: object): void;
}

export type SessionState = 'starting' | 'active' | 'disposing';

export interface SessionInfo {
  sessionId: string;
  chatId: string;
  characterId: string;
  connectionId: string;
  userKey: string;
  state: SessionState;
  held: boolean;
  heldMessageId: string | null;
  generating: boolean;
  recording: boolean;
  voice: boolean;
  queued: number;
  paused: boolean;
  turn: number;
}

type ForegroundCommand =
  | { kind: 'user'; text: string; doReply: boolean }
  | { kind: 'trigger' }
  | { kind: 'speech'; text: string }
  /** Resume of a chat whose last message is the user's: answer it. */
  | { kind: 'continue'; text: string };

interface ActiveReply {
  messageId: string;
  chunks: string[];
  next: number;
  text: string;
  audio: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class ChatSession {
  readonly sessionId = randomUUID();
  state: SessionState = 'starting';
  /** Client streams its microphone and STT is on: recording toggles and recognition apply. */
  readonly voice: boolean;
  recording = false;
  paused = false;
  turn = 0;
  heldMessageId: string | null = null;
  private reply: ActiveReply | null = null;
  private readonly queue: ForegroundCommand[] = [];
  /** Messages with a speechPlaybackStart (duration > 0) and no complete yet. */
  private readonly playing = new Set<string>();
  /** Messages an interruptSpeech was already sent for. */
  private readonly interrupted = new Set<string>();
  private readonly contexts = new Map<string, unknown[]>();
  private readonly flags = new Set<string>();
  private inspect = false;
  private utterances = 0;
  private readonly startedAt = new Date();
  private readonly recognizer: Recognizer;

  constructor(
    private readonly ctx: SimContext,
    readonly owner: SessionOwner,
    readonly chat: ChatRecord,
    readonly character: SimCharacter,
    readonly userKey: string,
  ) {
    this.voice = owner.audioInput === 'WebSocketStream' && ctx.options.stt.enabled;
    this.recognizer = new Recognizer(
      () => ({ vadThreshold: ctx.options.stt.vadThreshold, endSilenceMs: ctx.options.stt.endSilenceMs }),
      {
        start: () => this.emit({ $type: 'speechRecognitionStart' }),
        partial: (voicedMs) => this.onPartial(this.partialText(voicedMs)),
        end: (info) => this.onUtteranceEnd(info),
        stopped: (info) => this.onUtteranceStopped(info),
      },
    );
  }

  private logger: Logger | undefined;
  private get log(): Logger {
    this.logger ??= this.ctx.log.child({ sessionId: this.sessionId });
    return this.logger;
  }

  info(): SessionInfo {
    return {
      sessionId: this.sessionId,
      chatId: this.chat.id,
      characterId: this.character.id,
      connectionId: this.owner.connectionId,
      userKey: this.userKey,
      state: this.state,
      held: this.heldMessageId !== null,
      heldMessageId: this.heldMessageId,
      generating: this.reply !== null,
      recording: this.recording,
      voice: this.voice,
      queued: this.queue.length,
      paused: this.paused,
      turn: this.turn,
    };
  }

  summary(): ChatSessionSummary {
    return { sessionId: this.sessionId, chatId: this.chat.id, user: userRefFor(this.userKey), characters: [this.characterRef()] };
  }

  // ---------------------------------------------------------------- start

  /** The start sequence (protocol §5.1); `isNew` for a chat created by this start. */
  begin(opts: { isNew: boolean; contextKey: string; contexts: unknown[] | undefined; sessions: () => ChatSessionSummary[] }): void {
    const { sessionId } = this;
    this.emit({ $type: 'chatStarting', sessionId, chatId: this.chat.id, title: this.chat.title, chatStyle: 'Default' });
    this.emit({ $type: 'chatLoadingMessage', sessionId, text: 'Chat session ready!', progress: 100 });
    this.state = 'active';
    this.chat.lastSession = new Date();
    this.emit({ $type: 'chatsSessionsUpdated', sessions: opts.sessions() });
    this.emit(this.chatStartedMessage());
    if (opts.contexts) {
      this.contexts.set(opts.contextKey, opts.contexts);
      this.emit(this.contextUpdatedMessage());
    }
    const last = this.chat.messages.at(-1);
    if (opts.isNew && this.ctx.options.greeting && this.character.greeting) {
      this.enqueue({ kind: 'speech', text: this.character.greeting });
    } else if (!opts.isNew && last?.role === 'User') {
      this.enqueue({ kind: 'continue', text: last.text });
    } else {
      this.setRecording(true);
      this.emit({ $type: 'chatFlow', sessionId, state: 'WaitingForUserInput' });
    }
  }

  chatStartedMessage(): ServerMessage {
    const { tts, stt } = this.ctx.options;
    return {
      $type: 'chatStarted',
      sessionId: this.sessionId,
      chatId: this.chat.id,
      title: this.chat.title,
      chatStyle: 'Default',
      user: userRefFor(this.userKey),
      characters: [this.characterRef()],
      services: {
        textGen: serviceInfo('SimTextGen'),
        textToSpeech: tts.enabled ? serviceInfo(tts.voice === 'espeak' ? 'SimEspeak' : 'SimToneTTS') : null,
        speechToText: stt.enabled ? serviceInfo('SimVadSTT') : null,
        actionInference: null,
        summarization: null,
        imageGen: null,
      },
      messages: this.chat.messages.map((m) => toStoredMessage(m, this.senderName(m), this.chat.created)),
      context: this.contextState(),
    };
  }

  contextUpdatedMessage(): ServerMessage {
    return { $type: 'contextUpdated', ...this.contextState() };
  }

  // ---------------------------------------------------------------- client messages

  /** Handles a session message already checked to target this session. */
  handle(p: ClientPayload): void {
    switch (p.$type) {
      case 'send':
        return this.onSend(p);
      case 'characterSpeechRequest': {
        const text = p.text;
        if (typeof text !== 'string' || !text.trim()) throw new SimRejection('characterSpeechRequest needs a non-empty "text"');
        return this.enqueue({ kind: 'speech', text });
      }
      case 'interrupt':
        return this.interrupt();
      case 'pauseChat': {
        if (typeof p.pause !== 'boolean') throw new SimRejection('pauseChat needs a boolean "pause"');
        this.paused = p.pause;
        return this.emit({ $type: 'chatPaused', sessionId: this.sessionId, paused: p.pause });
      }
      case 'speechPlaybackStart':
        return this.onPlaybackStart(p);
      case 'speechPlaybackComplete':
        return this.onPlaybackComplete(p);
      case 'updateContext':
        return this.onUpdateContext(p);
      case 'inspect':
        this.inspect = p.enabled !== false;
        return;
      case 'typingStart':
      case 'typingEnd':
        return;
      default:
        throw new SimRejection(`Unknown message type: ${p.$type}`);
    }
  }

  private onSend(p: ClientPayload): void {
    const text = p.text ?? '';
    if (typeof text !== 'string') throw new SimRejection('send "text" must be a string');
    if (text.startsWith('/')) {
      const command = text.slice(1).split(/[\s:]/, 1)[0] ?? '';
      this.emit({ $type: 'chatSessionError', sessionId: this.sessionId, message: `Command ${command} is not supported`, retry: false });
      return;
    }
    if (text === '' || text === '*') {
      // A trigger reply is dropped while anything is in progress, as Voxta does.
      if (this.busy()) {
        this.log.debug('dropped trigger reply: a reply or speech is in progress');
        return;
      }
      return this.enqueue({ kind: 'trigger' });
    }
    if (this.paused) {
      this.paused = false;
      this.emit({ $type: 'chatPaused', sessionId: this.sessionId, paused: false });
    }
    // Non-empty user text aborts the reply being generated and interrupts speech first.
    this.interrupt();
    this.enqueue({ kind: 'user', text, doReply: p.doReply !== false });
  }

  private onPlaybackStart(p: ClientPayload): void {
    const { messageId, duration, startIndex, endIndex } = p;
    if (typeof messageId !== 'string') throw new SimRejection('speechPlaybackStart needs a string "messageId"');
    if (typeof duration !== 'number' || !Number.isFinite(duration) || duration < 0) {
      throw new SimRejection('speechPlaybackStart needs "duration" in seconds (a finite number ≥ 0)');
    }
    const start = typeof startIndex === 'number' ? startIndex : 0;
    this.ctx.recorder.playback(messageId).starts.push({
      startIndex: start,
      endIndex: typeof endIndex === 'number' ? endIndex : undefined,
      duration,
      at: Date.now(),
    });
    if (duration > 0) this.playing.add(messageId);
    this.emit({ $type: 'speechPlaybackStart', sessionId: this.sessionId, messageId, startIndex: start, duration });
  }

  private onPlaybackComplete(p: ClientPayload): void {
    const { messageId } = p;
    if (typeof messageId !== 'string') throw new SimRejection('speechPlaybackComplete needs a string "messageId"');
    const record = this.ctx.recorder.playback(messageId);
    record.completes++;
    this.playing.delete(messageId);
    this.emit({ $type: 'speechPlaybackComplete', sessionId: this.sessionId, messageId });
    if (this.heldMessageId !== messageId) {
      this.log.debug({ messageId, held: this.heldMessageId }, 'speechPlaybackComplete does not match the hold');
      return;
    }
    record.released = true;
    this.heldMessageId = null;
    this.interrupted.delete(messageId);
    if (this.queue.length === 0) this.emit({ $type: 'chatFlow', sessionId: this.sessionId, state: 'WaitingForUserInput' });
    this.setRecording(true);
    this.runQueue();
  }

  private onUpdateContext(p: ClientPayload): void {
    const key = typeof p.contextKey === 'string' ? p.contextKey : 'Main';
    if (p.contexts !== undefined) {
      if (!Array.isArray(p.contexts)) throw new SimRejection('updateContext "contexts" must be an array');
      this.contexts.set(key, p.contexts);
    }
    if (Array.isArray(p.setFlags)) {
      for (const f of p.setFlags) {
        if (typeof f !== 'string') continue;
        if (f.startsWith('!')) this.flags.delete(f.slice(1));
        else this.flags.add(f);
      }
    }
    this.emit(this.contextUpdatedMessage());
  }

  /** `interrupt`: abort generation, and tell the client to stop the speech it reported playing. */
  interrupt(): void {
    if (this.reply) this.finishReply(this.reply, true);
    const target = this.heldMessageId;
    if (target && this.playing.has(target) && !this.interrupted.has(target)) {
      this.interrupted.add(target);
      this.emit({ $type: 'interruptSpeech', sessionId: this.sessionId, messageId: target });
    }
  }

  // ---------------------------------------------------------------- foreground queue and replies

  private busy(): boolean {
    return this.reply !== null || this.heldMessageId !== null || this.queue.length > 0;
  }

  private enqueue(cmd: ForegroundCommand): void {
    this.queue.push(cmd);
    this.runQueue();
  }

  private runQueue(): void {
    while (this.state === 'active' && !this.reply && !this.heldMessageId && this.queue.length > 0) {
      this.run(this.queue.shift()!);
    }
  }

  private run(cmd: ForegroundCommand): void {
    const turn = ++this.turn;
    if (cmd.kind === 'user') {
      const m = this.ctx.chats.append(this.chat, 'User', userRefFor(this.userKey).id, cmd.text);
      this.emit(this.updateMessage(m));
      this.emit({ $type: 'chatFlow', sessionId: this.sessionId, state: 'ProcessingUserMessage' });
      if (!cmd.doReply) {
        this.emit({ $type: 'chatFlow', sessionId: this.sessionId, state: 'WaitingForUserInput' });
        return;
      }
    }
    let chunks: string[];
    if (cmd.kind === 'speech') {
      chunks = splitSentences(cmd.text);
    } else {
      const userText = cmd.kind === 'trigger' ? '' : cmd.text;
      try {
        chunks = this.ctx.options.reply(userText, {
          sessionId: this.sessionId,
          chatId: this.chat.id,
          characterName: this.character.name,
          turn,
        });
        if (!Array.isArray(chunks) || chunks.some((c) => typeof c !== 'string')) {
          throw new Error('the reply function must return an array of strings');
        }
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'reply function failed');
        this.emit({ $type: 'chatSessionError', sessionId: this.sessionId, message: `Reply generation failed: ${(err as Error).message}`, retry: true });
        this.setRecording(true);
        this.emit({ $type: 'chatFlow', sessionId: this.sessionId, state: 'WaitingForUserInput' });
        return;
      }
    }
    this.startReply(chunks.filter((c) => c.length > 0));
  }

  private startReply(chunks: string[]): void {
    const { sessionId } = this;
    const o = this.ctx.options;
    const reply: ActiveReply = {
      messageId: randomUUID(),
      chunks,
      next: 0,
      text: '',
      audio: o.tts.enabled && this.owner.audioOutput === 'Url',
      timer: undefined,
    };
    this.reply = reply;
    const senderId = this.character.id;
    this.emit({ $type: 'replyGenerating', sessionId, messageId: reply.messageId, senderId, role: 'Assistant', isNarration: false });
    // Speech will start: transcription pauses unless barge-in (PauseSpeechRecognitionDuringPlayback off).
    if (reply.audio && !o.stt.bargeIn) this.setRecording(false);
    this.emit({ $type: 'replyStart', sessionId, messageId: reply.messageId, senderId, chatTime: Date.now() - this.startedAt.getTime() });
    if (this.ctx.faults.unknownTypes) {
      this.emit({ $type: 'futureThing', sessionId, note: 'an event type from a newer Voxta server' });
    }
    if (this.ctx.faults.malformedPayloads) this.sendMalformed(reply);
    this.scheduleChunk(reply);
  }

  private scheduleChunk(reply: ActiveReply): void {
    if (reply.next >= reply.chunks.length) {
      this.finishReply(reply, false);
      return;
    }
    reply.timer = setTimeout(() => this.emitChunk(reply), this.ctx.options.chunkDelayMs);
  }

  private emitChunk(reply: ActiveReply): void {
    if (this.reply !== reply) return;
    const text = reply.chunks[reply.next++] ?? '';
    // Offsets into the full message, whose chunks are joined with single spaces.
    const startIndex = reply.text.length === 0 ? 0 : reply.text.length + 1;
    reply.text = reply.text.length === 0 ? text : `${reply.text} ${text}`;
    this.emit({
      $type: 'replyChunk',
      sessionId: this.sessionId,
      messageId: reply.messageId,
      senderId: this.character.id,
      text,
      startIndex,
      endIndex: startIndex + text.length,
      audioUrl: reply.audio ? this.audioUrlFor(reply.messageId, text) : '',
      isNarration: false,
      ...(reply.audio && this.ctx.options.tts.audioGapMs > 0 ? { audioGapMs: this.ctx.options.tts.audioGapMs } : {}),
    });
    if (this.ctx.faults.errorMidReply && reply.next === 1 && reply.next < reply.chunks.length) {
      this.emit({
        $type: 'chatSessionError',
        sessionId: this.sessionId,
        message: 'Simulated failure: the text generation service stopped responding.',
        retry: true,
      });
      this.finishReply(reply, true);
      return;
    }
    this.scheduleChunk(reply);
  }

  private audioUrlFor(messageId: string, text: string): string {
    if (this.ctx.options.tts.silenceUrls) return `silence:${speechDurationMs(text)}`;
    const job = this.ctx.tts.create({ sessionId: this.sessionId, messageId, text });
    return `/api/tts/gens/${job.id}`;
  }

  /** replyEnd (after replyCancelled when aborted), the stored record, then the hold. */
  private finishReply(reply: ActiveReply, cancelled: boolean): void {
    clearTimeout(reply.timer);
    if (this.reply === reply) this.reply = null;
    const { sessionId } = this;
    const { messageId } = reply;
    if (cancelled) this.emit({ $type: 'replyCancelled', sessionId, messageId });
    const messageIndex = this.chat.messages.length;
    this.emit({
      $type: 'replyEnd',
      sessionId,
      messageId,
      senderId: this.character.id,
      tokens: estimateTokens(reply.text),
      messageIndex,
      conversationIndex: 0,
    });
    if (reply.text) {
      const m = this.ctx.chats.append(this.chat, 'Assistant', this.character.id, reply.text);
      m.messageId = messageId;
      this.emit(this.updateMessage(m));
    }
    this.heldMessageId = messageId;
  }

  /** Fault injection: payloads a robust client must survive (and drop). */
  private sendMalformed(reply: ActiveReply): void {
    const malformed: unknown[] = [
      { $type: 'replyChunk', sessionId: this.sessionId, text: 'chunk without a messageId', startIndex: 0, endIndex: 25, audioUrl: '' },
      'not an object',
      42,
      { $type: 42, messageId: reply.messageId },
    ];
    for (const payload of malformed) this.owner.sendUnchecked(payload);
    this.owner.sendRecord({ type: 1, target: 'ReceiveMessage', arguments: [] });
    this.owner.sendRecord({ type: 1, target: 'SomethingNew', arguments: [{ $type: 'futureThing' }] });
  }

  // ---------------------------------------------------------------- recording and recognition

  /** Sends recordingRequest + recordingStatus when the state changes (voice sessions only). */
  setRecording(enabled: boolean): void {
    if (!this.voice || this.recording === enabled) return;
    this.recording = enabled;
    // An utterance still going on is lost to the recogniser (reported as cut at its end).
    if (!enabled) this.recognizer.stop();
    this.emit({ $type: 'recordingRequest', sessionId: this.sessionId, enabled });
    this.emit({ $type: 'recordingStatus', sessionId: this.sessionId, enabled });
  }

  /** PCM from the audio socket; only heard while the session is recording. */
  feedAudio(pcm: Buffer): void {
    if (this.state === 'active' && this.recording) this.recognizer.pushPcm(pcm);
  }

  feedSilence(ms: number): void {
    if (this.state === 'active' && this.recording) this.recognizer.pushSilence(ms);
  }

  /** Test hook: a recognised utterance right now, regardless of audio. */
  injectTranscript(text: string | null): void {
    const index = this.utterances++;
    this.emit({ $type: 'speechRecognitionStart' });
    if (text) this.onPartial(text);
    this.finishRecognition(index, { voicedMs: 0, partials: 0, leadSilenceMs: 0, cut: null }, text, true);
  }

  private partialText(voicedMs: number): string {
    const upcoming = this.ctx.transcripts.peek(this.ctx.options.stt.transcripts);
    if (upcoming) {
      const words = upcoming.split(/\s+/);
      return words.slice(0, Math.max(1, Math.ceil(words.length * Math.min(1, voicedMs / 1500)))).join(' ');
    }
    return `utterance ${this.utterances + 1}`;
  }

  private onPartial(text: string): void {
    this.emit({ $type: 'speechRecognitionPartial', text });
    if (!this.ctx.options.stt.bargeIn) return;
    // Barge-in: the user talks over a reply that is streaming or playing.
    if (this.reply || this.heldMessageId) {
      const target = this.reply?.messageId ?? this.heldMessageId!;
      if (this.reply) this.finishReply(this.reply, true);
      if (!this.interrupted.has(target)) {
        this.interrupted.add(target);
        this.emit({ $type: 'interruptSpeech', sessionId: this.sessionId, messageId: target });
      }
    }
  }

  private onUtteranceEnd(info: UtteranceInfo): void {
    const index = this.utterances++;
    if (info.voicedMs < this.ctx.options.stt.minVoicedMs) {
      this.finishRecognition(index, info, null, false);
      return;
    }
    let text: string | null;
    try {
      text = this.ctx.transcripts.take(this.ctx.options.stt.transcripts, {
        sessionId: this.sessionId,
        index,
        voicedMs: info.voicedMs,
        whole: info.cut === null,
        cut: info.cut,
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'transcript function failed');
      text = null;
    }
    // Heard from mid-word on: the recogniser only has the rest of the sentence.
    if (text && info.cut) text = partialTranscript(text, info.cut);
    if (text && info.partials === 0) this.onPartial(text);
    this.finishRecognition(index, info, text, false);
  }

  /** Recording stopped mid-utterance: the recognition is cancelled (no text), recorded as cut. */
  private onUtteranceStopped(info: UtteranceInfo): void {
    const index = this.utterances++;
    this.finishRecognition(index, info, null, false, 'Incomplete');
  }

  private finishRecognition(index: number, info: UtteranceInfo, text: string | null, injected: boolean, why?: 'Incomplete'): void {
    const reason = why ?? (text ? 'Complete' : 'Empty');
    const { voicedMs, cut, leadSilenceMs } = info;
    this.log.info({ index, voicedMs, cut, leadSilenceMs, text, injected }, 'speech recognised');
    this.emit({ $type: 'speechRecognitionEnd', text: text || null, reason });
    this.ctx.recorder.recordRecognition({
      sessionId: this.sessionId,
      connectionId: this.owner.connectionId,
      index,
      voicedMs,
      whole: cut === null,
      cut,
      leadSilenceMs,
      text: text || null,
      reason,
      injected,
      at: Date.now(),
    });
  }

  // ---------------------------------------------------------------- teardown

  /**
   * Ends the session. `stop` (stopChat) tells the client; `disconnect` and `crash` cannot
   * (the connection is gone). Removal from the registry is the caller's job.
   */
  dispose(reason: 'stop' | 'disconnect' | 'crash'): void {
    if (this.reply) clearTimeout(this.reply.timer);
    this.reply = null;
    this.queue.length = 0;
    this.recognizer.reset();
    if (reason === 'stop' && this.recording) {
      this.emit({ $type: 'recordingRequest', sessionId: this.sessionId, enabled: false });
    }
    this.recording = false;
    this.state = 'disposing';
  }

  // ---------------------------------------------------------------- helpers

  private emit(message: ServerMessage): void {
    this.owner.send(message);
  }

  private characterRef(): CharacterRef {
    return { id: this.character.id, name: this.character.name, thumbnailUrl: thumbnailUrlOf(this.character) };
  }

  private senderName(m: ChatMessageRecord): string {
    return m.role === 'User' ? userRefFor(this.userKey).name : this.character.name;
  }

  private contextState(): ContextState {
    const state: ContextState = {
      sessionId: this.sessionId,
      flags: [...this.flags].map((name) => ({ name })),
      characters: [this.characterRef()],
      roles: { main: this.character.id },
    };
    if (this.inspect) state.contexts = [...this.contexts.values()].flat();
    return state;
  }

  private updateMessage(m: ChatMessageRecord): ServerMessage {
    return {
      $type: 'update',
      sessionId: this.sessionId,
      messageId: m.messageId,
      senderId: m.senderId,
      role: m.role,
      text: m.text,
      timestamp: m.timestamp.toISOString(),
      chatTime: Math.max(0, m.timestamp.getTime() - this.chat.created.getTime()),
      index: m.index,
      conversationIndex: 0,
      tokens: estimateTokens(m.text),
    };
  }
}

/** A service description with a stable id derived from its name. */
function serviceInfo(serviceName: string): ServiceInfo {
  const hex = createHash('sha1').update(serviceName).digest('hex');
  return { serviceName, serviceId: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}` };
}
