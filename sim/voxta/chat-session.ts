/**
 * One running chat session: the start sequence, reply streaming, the speech hold, the foreground
 * queue, recording toggles and the simulated recogniser. Protocol §4, §5 and §7.2.
 *
 * The hold: every replyEnd puts the session on hold until the client sends
 * speechPlaybackComplete for *that* messageId. User messages, speech requests and trigger replies
 * queue meanwhile, so a client that forgets the complete sees a chat that never answers again,
 * as on a real server. A queued app trigger (one with a `triggerId`) holds the queue the same way
 * until `appTriggerComplete`.
 *
 * Group chats: the cast is the chat record's `characterIds` (changed by add/removeChatParticipant).
 * A turn may be several replies in a row (Voxta's continuation): the next one starts only after
 * the previous one's speechPlaybackComplete, and a new user message cancels the rest.
 *
 * Reply controls follow Voxta's RetryCommand / RevertMessageCommand / DeleteMessageCommand
 * (VD-core §Voxta.Core.Chats.Commands.*): a deleted message is echoed as `update` with
 * `text: null` (TunnelMessagesService.SendMessageDeleted), a regenerated reply gets a new messageId.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ChatMessageRecord, ChatRecord } from './chat-store.js';
import { estimateTokens, toStoredMessage } from './chat-store.js';
import { participantInfo, scenarioInfo, splitSentences, thumbnailUrlOf, type ReplyContext, type SimCharacter, type SimReply } from './characters.js';
import { findCharacter, findParticipant, findScenario, profileNarrator, userRefFor, type SimAppTrigger, type SimContext, type SttSource } from './context.js';
import type { CharacterRef, ChatSessionSummary, ClientPayload, ContextState, ParticipantInfo, ServerMessage, ServiceInfo } from './messages.js';
import { Recognizer, partialTranscript, type UtteranceInfo } from './recognizer.js';
import type { Logger } from '../../src/log.js';
import { speechDurationMs } from './tts.js';
import { SessionVision, type VisionTicket } from './vision.js';

/** Thrown by handlers for a message the server refuses: reported as `error` and as a completion error. */
export class SimRejection extends Error {
  override name = 'SimRejection';
}

/** The hub connection that owns a session, as the session needs it. */
export interface SessionOwner {
  readonly connectionId: string;
  /** Voxta's AuthenticationContext.Remote is false for this connection (a client on the Voxta PC). */
  readonly local: boolean;
  /** What the client declared in `authenticate.capabilities`. */
  readonly audioInput: string;
  readonly audioOutput: string;
  send(message: ServerMessage): void;
  /** Fault injection: `ReceiveMessage(payload)` with anything as payload. */
  sendUnchecked(payload: unknown): void;
  /** Fault injection: any hub record. */
  sendRecord(record: object): void;
  /** What the client declared (vision reads `capabilities`). */
  info?(): { capabilities?: Record<string, unknown> };
}

export type SessionState = 'starting' | 'active' | 'disposing';

export interface SessionInfo {
  sessionId: string;
  chatId: string;
  /** The main (first) character. */
  characterId: string;
  /** The cast now, in order. */
  characterIds: string[];
  narratorId: string;
  scenarioId: string | null;
  connectionId: string;
  userKey: string;
  state: SessionState;
  held: boolean;
  heldMessageId: string | null;
  generating: boolean;
  recording: boolean;
  voice: boolean;
  /** Where this session's speech-to-text listens; `serverMicrophone` = the Voxta PC's own mic. */
  sttSource: SttSource;
  /** Transcription is running now (client or server microphone). */
  listening: boolean;
  /** Audio bytes of *other* sessions this session's STT heard through Voxta's process-wide pipeline (§4a). */
  overheardBytes: number;
  /** The sessions it heard. */
  overheardFrom: string[];
  /** `startChat.disableServices` as received. */
  disableServices: string[];
  queued: number;
  /** Scripted replies still to come in this turn (continuation). */
  continuation: number;
  /** Queued app triggers waiting for `appTriggerComplete`. */
  pendingTriggers: string[];
  paused: boolean;
  turn: number;
}

type ForegroundCommand =
  | { kind: 'user'; text: string; doReply: boolean; characterId?: string; vision?: VisionTicket | undefined }
  | { kind: 'trigger'; characterId?: string }
  | { kind: 'speech'; text: string; characterId?: string }
  /** Resume of a chat whose last message is the user's: answer it. */
  | { kind: 'continue'; text: string }
  /** `retry`: delete the last reply (or user message) and generate again. */
  | { kind: 'retry' }
  /** A narrator event message (a participant joined or left). */
  | { kind: 'event'; text: string };

/** A reply ready to stream: its sender resolved. */
interface PlannedReply {
  senderId: string;
  chunks: string[];
  isNarration: boolean;
}

interface ActiveReply extends PlannedReply {
  messageId: string;
  next: number;
  text: string;
  audio: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** The service names `startChat.disableServices` can switch off here (Voxta's ServiceTypes names). */
const STT_SERVICE = 'SpeechToText';
const TTS_SERVICE = 'TextToSpeech';

export class ChatSession {
  readonly sessionId = randomUUID();
  state: SessionState = 'starting';
  /** Where speech-to-text listens (decided at start, like Voxta's SpeechToTextManager). */
  readonly sttSource: SttSource;
  /** Client streams its microphone and STT is on: recording toggles and recognition apply. */
  readonly voice: boolean;
  readonly disableServices: string[];
  /** Transcription running (the last recordingStatus sent was enabled:true). */
  recording = false;
  paused = false;
  turn = 0;
  heldMessageId: string | null = null;
  private reply: ActiveReply | null = null;
  private readonly queue: ForegroundCommand[] = [];
  /** The rest of a scripted turn: replies that start after the current one's playback completes. */
  private continuation: PlannedReply[] = [];
  /** Queued app triggers (triggerId → name) holding the foreground queue. */
  private readonly pendingTriggers = new Map<string, string>();
  /** A reply finished: the next release returns to WaitingForUserInput (unless a continuation runs). */
  private idleOwed = false;
  /** Messages with a speechPlaybackStart (duration > 0) and no complete yet. */
  private readonly playing = new Set<string>();
  /** Messages an interruptSpeech was already sent for. */
  private readonly interrupted = new Set<string>();
  private readonly contexts = new Map<string, unknown[]>();
  private readonly flags = new Set<string>();
  private inspect = false;
  private utterances = 0;
  private overheardBytes = 0;
  private readonly overheardFrom = new Set<string>();
  private readonly ttsDisabled: boolean;
  private readonly startedAt = new Date();
  private readonly recognizer: Recognizer;
  private readonly vision: SessionVision;

  constructor(
    private readonly ctx: SimContext,
    readonly owner: SessionOwner,
    readonly chat: ChatRecord,
    readonly userKey: string,
    opts: { disableServices?: string[] } = {},
  ) {
    this.disableServices = [...(opts.disableServices ?? [])];
    // Servers before API 2025-11 do not know `disableServices` and ignore it.
    const honoured = ctx.options.disableServicesSupported ? new Set(this.disableServices) : new Set<string>();
    this.ttsDisabled = honoured.has(TTS_SERVICE);
    this.sttSource = this.decideSttSource(honoured.has(STT_SERVICE));
    this.voice = this.sttSource === 'client';
    this.recognizer = new Recognizer(
      () => ({ vadThreshold: ctx.options.stt.vadThreshold, endSilenceMs: ctx.options.stt.endSilenceMs }),
      {
        start: () => this.emit({ $type: 'speechRecognitionStart' }),
        partial: (voicedMs) => this.onPartial(this.partialText(voicedMs)),
        end: (info) => this.onUtteranceEnd(info),
        stopped: (info) => this.onUtteranceStopped(info),
      },
    );
    this.vision = new SessionVision(ctx.vision, () => ctx.options.vision, {
      sessionId: this.sessionId,
      userKey,
      chat,
      capabilities: () => owner.info?.().capabilities,
      emit: (m) => this.emit(m),
      storeUserMessage: (text) => {
        const m = ctx.chats.append(chat, 'User', userRefFor(userKey).id, text);
        this.emit(this.updateMessage(m));
        return m;
      },
      wake: () => this.runQueue(),
      log: ctx.log.child({ sessionId: this.sessionId, mod: 'vision' }),
    });
  }

  /**
   * Voxta's SpeechToTextManager.InitializeInternalAsync (VD-core §Voxta.Core.Runtime): the client's
   * audio socket is used when the client declared `WebSocketStream` and (the "AudioInput" service
   * prefers client capability, or the connection is remote); otherwise a LOCAL connection gets the
   * server's own microphone, and a remote one gets no transcription.
   */
  private decideSttSource(sttDisabledByClient: boolean): SttSource {
    const o = this.ctx.options;
    if (!o.stt.enabled || sttDisabledByClient) return null;
    const clientCanStream = this.owner.audioInput === 'WebSocketStream';
    const forcedServerSide = !o.audioInputService.preferClientCapability && this.owner.local;
    if (forcedServerSide || !clientCanStream) return this.owner.local && o.audioInputService.serverMicrophone ? 'serverMicrophone' : null;
    return 'client';
  }

  private logger: Logger | undefined;
  private get log(): Logger {
    this.logger ??= this.ctx.log.child({ sessionId: this.sessionId });
    return this.logger;
  }

  /** The main character (the first of the cast). */
  get character(): SimCharacter {
    return this.cast()[0] ?? { id: this.chat.characterId, name: 'Unknown' };
  }

  info(): SessionInfo {
    return {
      sessionId: this.sessionId,
      chatId: this.chat.id,
      characterId: this.chat.characterId,
      characterIds: [...this.chat.characterIds],
      narratorId: this.chat.narratorId,
      scenarioId: this.chat.scenarioId,
      connectionId: this.owner.connectionId,
      userKey: this.userKey,
      state: this.state,
      held: this.heldMessageId !== null,
      heldMessageId: this.heldMessageId,
      generating: this.reply !== null,
      recording: this.recording,
      voice: this.voice,
      sttSource: this.sttSource,
      listening: this.recording,
      overheardBytes: this.overheardBytes,
      overheardFrom: [...this.overheardFrom],
      disableServices: [...this.disableServices],
      queued: this.queue.length,
      continuation: this.continuation.length,
      pendingTriggers: [...this.pendingTriggers.keys()],
      paused: this.paused,
      turn: this.turn,
    };
  }

  summary(): ChatSessionSummary {
    return { sessionId: this.sessionId, chatId: this.chat.id, user: userRefFor(this.userKey), characters: this.castInfo().map(({ id, name, thumbnailUrl }) => ({ id, name, thumbnailUrl })) };
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
    const greeting = this.character.greeting;
    if (opts.isNew && this.ctx.options.greeting && greeting) {
      this.enqueue({ kind: 'speech', text: greeting, characterId: this.character.id });
    } else if (!opts.isNew && last?.role === 'User') {
      this.enqueue({ kind: 'continue', text: last.text });
    } else {
      this.setRecording(true);
      this.emit({ $type: 'chatFlow', sessionId, state: 'WaitingForUserInput' });
    }
  }

  chatStartedMessage(): ServerMessage {
    const { tts, stt } = this.ctx.options;
    const scenario = this.chat.scenarioId ? findScenario(this.ctx.options, this.chat.scenarioId) : undefined;
    return {
      $type: 'chatStarted',
      sessionId: this.sessionId,
      chatId: this.chat.id,
      title: this.chat.title,
      chatStyle: 'Default',
      user: userRefFor(this.userKey),
      characters: this.castInfo(),
      narrator: this.narratorRef(),
      // ChatStartedMessageBuilderService: scenario roles carry name and description only.
      scenario: scenario ? scenarioInfo(scenario, { withDefaults: false }) : null,
      services: {
        textGen: serviceInfo('SimTextGen'),
        textToSpeech: tts.enabled && !this.ttsDisabled ? serviceInfo(tts.voice === 'espeak' ? 'SimEspeak' : 'SimToneTTS') : null,
        speechToText: stt.enabled && this.sttEnabledForChat() ? serviceInfo('SimVadSTT') : null,
        actionInference: null,
        summarization: null,
        imageGen: null,
      },
      messages: this.chat.messages.map((m) => toStoredMessage(m, this.senderName(m), this.chat.created)),
      context: this.contextState(),
    };
  }

  /** STT is a service of this chat unless the client disabled it (and the server understood). */
  private sttEnabledForChat(): boolean {
    return !(this.ctx.options.disableServicesSupported && this.disableServices.includes(STT_SERVICE));
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
        return this.enqueue({ kind: 'speech', text, characterId: this.castMemberOrUndefined(p.characterId) });
      }
      case 'interrupt':
        this.cancelContinuation();
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
      case 'retry':
        // RetryCommand is a foreground command: it waits for the hold like a user message.
        this.cancelContinuation();
        return this.enqueue({ kind: 'retry' });
      case 'revert':
        return this.onRevert(p);
      case 'deleteMessage':
        return this.onDeleteMessage(p);
      case 'update':
        return this.onUpdateMessage(p);
      case 'addChatParticipant':
        return this.onAddParticipant(p);
      case 'removeChatParticipant':
        return this.onRemoveParticipant(p);
      case 'appTriggerComplete':
        return this.onAppTriggerComplete(p);
      default:
        throw new SimRejection(`Unknown message type: ${p.$type}`);
    }
  }

  private onSend(p: ClientPayload): void {
    const text = p.text ?? '';
    if (typeof text !== 'string') throw new SimRejection('send "text" must be a string');
    const vision = this.vision.onSend(p, text, (message) => new SimRejection(message));
    if (vision.handled) return;
    const characterId = this.castMemberOrUndefined(p.characterId);
    if (text.startsWith('/')) {
      const command = text.slice(1).split(/[\s:]/, 1)[0] ?? '';
      this.emit({ $type: 'chatSessionError', sessionId: this.sessionId, message: `Command ${command} is not supported`, retry: false });
      return;
    }
    if ((text === '' || text === '*') && !vision.hasAttachments) {
      // A trigger reply is dropped while anything is in progress, as Voxta does.
      if (this.busy()) {
        this.log.debug('dropped trigger reply: a reply or speech is in progress');
        return;
      }
      return this.enqueue({ kind: 'trigger', characterId });
    }
    if (this.paused) {
      this.paused = false;
      this.emit({ $type: 'chatPaused', sessionId: this.sessionId, paused: false });
    }
    // Non-empty user text aborts the reply being generated, cancels the continuation and interrupts speech first.
    this.cancelContinuation();
    this.interrupt();
    this.enqueue({ kind: 'user', text, doReply: p.doReply !== false, characterId, vision: vision.ticket });
  }

  private castMemberOrUndefined(id: unknown): string | undefined {
    return typeof id === 'string' && this.chat.characterIds.includes(id) ? id : undefined;
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
    this.resume();
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

  private cancelContinuation(): void {
    if (this.continuation.length > 0) this.log.debug({ dropped: this.continuation.length }, 'continuation cancelled');
    this.continuation = [];
  }

  // ---------------------------------------------------------------- reply controls (VD-core RevertMessageCommand, DeleteMessageCommand, UpdateExistingMessageCommand)

  /**
   * `revert {messageId?}`: with a messageId, everything AFTER that message is deleted (the message
   * stays); without one, the last user message and everything after it. Each deletion is echoed.
   * If the history then ends with a user message, a retry is queued (a new reply to it). An
   * unknown messageId, or no user message before the end, changes nothing (Voxta logs a warning).
   */
  private onRevert(p: ClientPayload): void {
    const messageId = p.messageId;
    if (messageId !== undefined && messageId !== null && typeof messageId !== 'string') throw new SimRejection('revert "messageId" must be a string');
    const msgs = this.chat.messages;
    const keepUpTo = typeof messageId === 'string' ? msgs.findIndex((m) => m.messageId === messageId) : lastIndexWhere(msgs, (m) => m.role === 'User') - 1;
    if (keepUpTo < 0) {
      this.log.warn({ messageId }, 'could not revert: message not found in the history');
      return;
    }
    // The sim also drops the rest of a scripted turn: its replies answered messages that are gone.
    this.cancelContinuation();
    this.deleteMessages(msgs.slice(keepUpTo + 1).map((m) => m.messageId));
    if (this.chat.messages.at(-1)?.role === 'User') this.enqueue({ kind: 'retry' });
  }

  private onDeleteMessage(p: ClientPayload): void {
    if (typeof p.messageId !== 'string') throw new SimRejection('deleteMessage needs a string "messageId"');
    if (!this.chat.messages.some((m) => m.messageId === p.messageId)) {
      this.log.warn({ messageId: p.messageId }, 'could not delete: message not found in the history');
      return;
    }
    this.deleteMessages([p.messageId]);
  }

  /** Client `update {messageId, text}`: edits a stored message; empty text deletes it (as Voxta). */
  private onUpdateMessage(p: ClientPayload): void {
    if (typeof p.messageId !== 'string') throw new SimRejection('update needs a string "messageId"');
    if (p.text !== undefined && p.text !== null && typeof p.text !== 'string') throw new SimRejection('update "text" must be a string');
    const m = this.chat.messages.find((x) => x.messageId === p.messageId);
    if (!m) {
      this.log.warn({ messageId: p.messageId }, 'could not update: message not found in the history');
      return;
    }
    if (!p.text) return this.deleteMessages([m.messageId]);
    m.text = p.text;
    this.emit(this.updateMessage(m));
  }

  private deleteMessages(ids: string[]): void {
    for (const m of this.ctx.chats.remove(this.chat, ids)) {
      this.emit({
        $type: 'update',
        sessionId: this.sessionId,
        messageId: m.messageId,
        senderId: m.senderId,
        text: null,
        role: m.role,
        timestamp: m.timestamp.toISOString(),
        index: 0,
        conversationIndex: 0,
        chatTime: 0,
      });
    }
  }

  // ---------------------------------------------------------------- participants (VD-core ParticipantsCommandBase)

  private onAddParticipant(p: ClientPayload): void {
    const characterId = p.characterId;
    if (typeof characterId !== 'string') throw new SimRejection('addChatParticipant needs a string "characterId"');
    if (p.role !== undefined && p.role !== null && typeof p.role !== 'string') throw new SimRejection('addChatParticipant "role" must be a string');
    const character = findCharacter(this.ctx.options, characterId);
    if (!character) throw new SimRejection(`Character ${characterId} was not found`);
    const role = typeof p.role === 'string' && p.role ? p.role : undefined;
    if (role) {
      const previous = this.chat.roles[role];
      if (previous && previous !== characterId) this.removeFromCast(previous);
      this.chat.roles[role] = characterId;
    }
    if (!this.chat.characterIds.includes(characterId)) this.chat.characterIds.push(characterId);
    this.syncMain();
    this.emit({ $type: 'chatParticipantsUpdated', sessionId: this.sessionId, characters: this.castInfo() });
    this.log.info({ characterId }, 'character added to the chat');
    if (!role) this.enqueue({ kind: 'event', text: `${character.name} joined the conversation.` });
  }

  private onRemoveParticipant(p: ClientPayload): void {
    const characterId = p.characterId;
    if (typeof characterId !== 'string') throw new SimRejection('removeChatParticipant needs a string "characterId"');
    // Voxta returns silently for a character that is not in the chat.
    if (!this.chat.characterIds.includes(characterId)) return;
    const hadRole = Object.values(this.chat.roles).includes(characterId);
    const name = findCharacter(this.ctx.options, characterId)?.name ?? 'A character';
    this.removeFromCast(characterId);
    this.emit({ $type: 'chatParticipantsUpdated', sessionId: this.sessionId, characters: this.castInfo() });
    this.log.info({ characterId }, 'character removed from the chat');
    if (!hadRole) this.enqueue({ kind: 'event', text: `${name} left the conversation.` });
  }

  private removeFromCast(characterId: string): void {
    this.chat.characterIds = this.chat.characterIds.filter((id) => id !== characterId);
    for (const [role, id] of Object.entries(this.chat.roles)) if (id === characterId) this.chat.roles[role] = null;
    this.syncMain();
  }

  private syncMain(): void {
    const first = this.chat.characterIds[0];
    if (first !== undefined) this.chat.characterId = first;
  }

  // ---------------------------------------------------------------- app triggers (GE protocol-v0 "App triggers")

  /** Sends an `appTrigger`; a queued one gets a triggerId and holds the foreground queue. Returns the triggerId. */
  sendAppTrigger(t: SimAppTrigger, source?: { messageId?: string; senderId?: string }): string | undefined {
    const triggerId = t.queued ? randomUUID() : undefined;
    const senderId = source?.senderId ?? this.character.id;
    const role = this.roleOf(senderId);
    const args = [...(t.arguments ?? [])];
    const payload: ServerMessage = {
      $type: 'appTrigger',
      sessionId: this.sessionId,
      ...(source?.messageId ? { messageId: source.messageId } : {}),
      ...(triggerId ? { triggerId } : {}),
      name: t.name,
      arguments: args,
      senderId,
      ...(role ? { scenarioRole: role } : {}),
    };
    if (triggerId) this.pendingTriggers.set(triggerId, t.name);
    this.ctx.recorder.recordAppTrigger({ sessionId: this.sessionId, triggerId: triggerId ?? null, name: t.name, arguments: args, at: Date.now() });
    this.emit(payload);
    return triggerId;
  }

  private onAppTriggerComplete(p: ClientPayload): void {
    if (typeof p.triggerId !== 'string') throw new SimRejection('appTriggerComplete needs a string "triggerId"');
    this.ctx.recorder.recordAppTriggerComplete(this.sessionId, p.triggerId);
    // Within a valid session an unknown or repeated triggerId is a no-op (GE protocol-v0).
    if (!this.pendingTriggers.delete(p.triggerId)) return;
    this.resume();
  }

  // ---------------------------------------------------------------- foreground queue and replies

  private busy(): boolean {
    return this.reply !== null || this.heldMessageId !== null || this.queue.length > 0 || this.continuation.length > 0 || this.pendingTriggers.size > 0;
  }

  private enqueue(cmd: ForegroundCommand): void {
    this.queue.push(cmd);
    this.runQueue();
  }

  private canRunForeground(): boolean {
    return this.state === 'active' && !this.reply && !this.heldMessageId && this.pendingTriggers.size === 0;
  }

  /** The hold or a trigger was released: continue the turn, or go back to waiting for the user. */
  private resume(): void {
    if (!this.canRunForeground()) return;
    if (this.continuation.length === 0 && this.idleOwed) {
      this.idleOwed = false;
      if (this.queue.length === 0) this.emit({ $type: 'chatFlow', sessionId: this.sessionId, state: 'WaitingForUserInput' });
      this.setRecording(true);
    }
    this.runQueue();
  }

  private runQueue(): void {
    while (this.canRunForeground()) {
      const next = this.continuation.shift();
      if (next) {
        this.startReply(next);
        continue;
      }
      // A user message waits for its pictures (capture upload, attachment decoding) first.
      const head = this.queue[0];
      if (!head || waitsForPictures(head)) return;
      this.run(this.queue.shift()!);
    }
  }

  private run(cmd: ForegroundCommand): void {
    const turn = ++this.turn;
    switch (cmd.kind) {
      case 'event': {
        const m = this.ctx.chats.append(this.chat, 'Event', this.chat.narratorId, cmd.text);
        this.emit(this.updateMessage(m));
        return;
      }
      case 'speech':
        return this.startReply({ senderId: cmd.characterId ?? this.character.id, chunks: splitSentences(cmd.text), isNarration: false });
      case 'retry':
        return this.runRetry(turn);
      case 'user': {
        // A message that carried pictures is the picture message itself, with its text merged in.
        const m = this.vision.storeUserText(cmd.text, () => this.ctx.chats.append(this.chat, 'User', userRefFor(this.userKey).id, cmd.text));
        this.emit(this.updateMessage(m));
        this.emit({ $type: 'chatFlow', sessionId: this.sessionId, state: 'ProcessingUserMessage' });
        if (!cmd.doReply) {
          this.emit({ $type: 'chatFlow', sessionId: this.sessionId, state: 'WaitingForUserInput' });
          return;
        }
        return this.generate(cmd.text, turn, 'user', this.pickSpeaker(cmd.text, cmd.characterId), this.vision.sentences(cmd.vision));
      }
      case 'trigger':
        return this.generate('', turn, 'trigger', this.pickSpeaker('', cmd.characterId));
      case 'continue':
        return this.generate(cmd.text, turn, 'continue', this.pickSpeaker(cmd.text));
    }
  }

  /**
   * RetryCommand: the last message is a reply → it is deleted and a new reply (new messageId) is
   * generated; it is the user's → it is deleted, received again (new messageId) and answered.
   * The simulator lets the same character answer again (Voxta picks through its chat flow).
   */
  private runRetry(turn: number): void {
    const last = this.chat.messages.at(-1);
    if (!last) {
      this.log.warn('no messages to retry');
      return;
    }
    if (last.role === 'User') {
      this.deleteMessages([last.messageId]);
      this.run({ kind: 'user', text: last.text, doReply: true });
      return;
    }
    let speaker = this.pickSpeaker('');
    if (last.role === 'Assistant') {
      this.deleteMessages([last.messageId]);
      if (this.chat.characterIds.includes(last.senderId)) speaker = last.senderId;
    }
    const lastUser = [...this.chat.messages].reverse().find((m) => m.role === 'User');
    this.generate(lastUser?.text ?? '', turn, 'retry', speaker);
  }

  /**
   * Who answers by default: the character the client named (`send.characterId`), else the one
   * cast member named in the text, else the cast member after the last one who spoke (round robin).
   */
  private pickSpeaker(text: string, requested?: string): string | undefined {
    const cast = this.chat.characterIds;
    if (requested && cast.includes(requested)) return requested;
    if (cast.length <= 1) return cast[0];
    const lower = text.toLowerCase();
    const named = this.cast().filter((c) => lower.includes(c.name.toLowerCase()));
    if (named.length === 1) return named[0]!.id;
    const lastSender = [...this.chat.messages].reverse().find((m) => m.role === 'Assistant' && cast.includes(m.senderId))?.senderId;
    if (!lastSender) return cast[0];
    return cast[(cast.indexOf(lastSender) + 1) % cast.length];
  }

  /** `proof`: sentences the first reply ends with (what the vision service saw of the user's pictures). */
  private generate(userText: string, turn: number, reason: ReplyContext['reason'], speakerId: string | undefined, proof: string[] = []): void {
    const speaker = speakerId ? findCharacter(this.ctx.options, speakerId) : undefined;
    if (!speaker) {
      // Voxta: "No one can reply" (every character removed).
      this.log.warn('no character in the chat can reply');
      this.emit({ $type: 'chatFlow', sessionId: this.sessionId, state: 'WaitingForUserInput' });
      return;
    }
    let planned: PlannedReply[];
    try {
      const script = this.ctx.options.reply(userText, {
        sessionId: this.sessionId,
        chatId: this.chat.id,
        characterName: speaker.name,
        characterId: speaker.id,
        turn,
        characters: this.cast().map((c) => ({ id: c.id, name: c.name })),
        narrator: { id: this.chat.narratorId, name: this.narratorRef().name },
        scenarioId: this.chat.scenarioId,
        reason,
      });
      planned = this.plan(script, speaker.id);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'reply function failed');
      this.emit({ $type: 'chatSessionError', sessionId: this.sessionId, message: `Reply generation failed: ${(err as Error).message}`, retry: true });
      this.setRecording(true);
      this.emit({ $type: 'chatFlow', sessionId: this.sessionId, state: 'WaitingForUserInput' });
      return;
    }
    const [first, ...rest] = planned;
    if (!first) {
      this.emit({ $type: 'chatFlow', sessionId: this.sessionId, state: 'WaitingForUserInput' });
      return;
    }
    if (proof.length) first.chunks = [...first.chunks, ...proof];
    this.continuation = rest;
    this.startReply(first);
  }

  /** Checks a reply script and resolves each reply's sender. */
  private plan(script: unknown, speakerId: string): PlannedReply[] {
    if (!Array.isArray(script)) throw new Error('the reply function must return an array');
    if (script.every((c) => typeof c === 'string')) {
      return [{ senderId: speakerId, chunks: (script as string[]).filter((c) => c.length > 0), isNarration: false }];
    }
    return script.map((r: unknown, i) => {
      const reply = r as SimReply;
      if (typeof reply !== 'object' || reply === null || !Array.isArray(reply.text) || reply.text.some((c) => typeof c !== 'string')) {
        throw new Error(`reply ${i} must be a string array or { senderId?, text: string[], isNarration? }`);
      }
      const isNarration = reply.isNarration === true;
      const senderId = reply.senderId ?? (isNarration ? this.chat.narratorId : speakerId);
      if (senderId !== this.chat.narratorId && !this.chat.characterIds.includes(senderId)) {
        throw new Error(`reply ${i} is from ${senderId}, who is not in this chat`);
      }
      return { senderId, chunks: reply.text.filter((c) => c.length > 0), isNarration };
    });
  }

  private startReply(planned: PlannedReply): void {
    const { sessionId } = this;
    const o = this.ctx.options;
    const reply: ActiveReply = {
      ...planned,
      messageId: randomUUID(),
      next: 0,
      text: '',
      audio: o.tts.enabled && !this.ttsDisabled && this.owner.audioOutput === 'Url',
      timer: undefined,
    };
    this.reply = reply;
    const { senderId, isNarration } = reply;
    this.emit({ $type: 'replyGenerating', sessionId, messageId: reply.messageId, senderId, role: 'Assistant', isNarration });
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
      senderId: reply.senderId,
      text,
      startIndex,
      endIndex: startIndex + text.length,
      audioUrl: reply.audio ? this.audioUrlFor(reply.messageId, text) : '',
      isNarration: reply.isNarration,
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

  /** replyEnd (after replyCancelled when aborted), the stored record, the hold, then any app triggers. */
  private finishReply(reply: ActiveReply, cancelled: boolean): void {
    clearTimeout(reply.timer);
    if (this.reply === reply) this.reply = null;
    const { sessionId } = this;
    const { messageId, senderId } = reply;
    if (cancelled) {
      this.emit({ $type: 'replyCancelled', sessionId, messageId });
      this.cancelContinuation();
    }
    const messageIndex = this.chat.messages.length;
    this.emit({
      $type: 'replyEnd',
      sessionId,
      messageId,
      senderId,
      tokens: estimateTokens(reply.text),
      messageIndex,
      conversationIndex: 0,
    });
    if (reply.text) {
      const m = this.ctx.chats.append(this.chat, 'Assistant', senderId, reply.text);
      m.messageId = messageId;
      this.emit(this.updateMessage(m));
    }
    this.heldMessageId = messageId;
    this.idleOwed = true;
    if (!cancelled && this.ctx.options.appTriggers) {
      let triggers: SimAppTrigger[] = [];
      try {
        triggers = this.ctx.options.appTriggers({ sessionId, messageId, senderId, text: reply.text, isNarration: reply.isNarration, turn: this.turn });
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'appTriggers function failed');
      }
      for (const t of triggers) this.sendAppTrigger(t, { messageId, senderId });
    }
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

  /**
   * Transcription on/off. A client-audio session sends recordingRequest + recordingStatus (the
   * client streams); a server-microphone session only recordingStatus (Voxta records from its own
   * microphone: no recordingRequest goes to the client), and the simulator notes the microphone.
   */
  setRecording(enabled: boolean): void {
    if (this.sttSource === null || this.recording === enabled) return;
    this.recording = enabled;
    // An utterance still going on is lost to the recogniser (reported as cut at its end).
    if (!enabled) this.recognizer.stop();
    if (this.sttSource === 'serverMicrophone') {
      this.ctx.recorder.recordServerMicrophone({ sessionId: this.sessionId, connectionId: this.owner.connectionId, on: enabled, at: Date.now() });
      this.log.warn({ on: enabled }, 'the Voxta PC microphone is used for this session (local client without client audio)');
    } else {
      this.emit({ $type: 'recordingRequest', sessionId: this.sessionId, enabled });
    }
    this.emit({ $type: 'recordingStatus', sessionId: this.sessionId, enabled });
  }

  /**
   * PCM from the audio socket. Recognised only while the session is recording; and because
   * Voxta's audio pipeline is process-wide (IAudioInputPipelineState singleton, §4a), every
   * other session that is transcribing at the same time hears it too: recorded as overheard.
   */
  feedAudio(pcm: Buffer): void {
    if (this.state !== 'active' || !this.recording) return;
    this.recognizer.pushPcm(pcm);
    for (const other of this.ctx.registry.all()) {
      if (other !== this && other.state === 'active' && other.recording) other.overhear(this.sessionId, pcm.length);
    }
  }

  private overhear(from: string, bytes: number): void {
    this.overheardBytes += bytes;
    this.overheardFrom.add(from);
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
    this.continuation = [];
    this.pendingTriggers.clear();
    this.recognizer.reset();
    this.vision.dispose();
    if (reason === 'stop' && this.recording && this.sttSource === 'client') {
      this.emit({ $type: 'recordingRequest', sessionId: this.sessionId, enabled: false });
    }
    if (this.recording && this.sttSource === 'serverMicrophone') {
      this.ctx.recorder.recordServerMicrophone({ sessionId: this.sessionId, connectionId: this.owner.connectionId, on: false, at: Date.now() });
    }
    this.recording = false;
    this.state = 'disposing';
  }

  // ---------------------------------------------------------------- helpers

  private emit(message: ServerMessage): void {
    this.owner.send(message);
  }

  /** The cast as characters (unknown ids skipped). */
  private cast(): SimCharacter[] {
    return this.chat.characterIds.map((id) => findCharacter(this.ctx.options, id)).filter((c): c is SimCharacter => c !== undefined);
  }

  private roleOf(characterId: string): string | undefined {
    return Object.entries(this.chat.roles).find(([, id]) => id === characterId)?.[0];
  }

  private castInfo(): ParticipantInfo[] {
    return this.cast().map((c) => participantInfo(c, this.roleOf(c.id)));
  }

  private narratorRef(): CharacterRef {
    const n = findParticipant(this.ctx.options, this.chat.narratorId) ?? profileNarrator(this.ctx.options);
    return { id: n.id, name: n.name, thumbnailUrl: thumbnailUrlOf(n) };
  }

  private senderName(m: ChatMessageRecord): string {
    if (m.role === 'User') return userRefFor(this.userKey).name;
    return findParticipant(this.ctx.options, m.senderId)?.name ?? this.character.name;
  }

  private contextState(): ContextState {
    const roles: ContextState['roles'] = {};
    if (this.chat.scenarioId) {
      for (const [name, characterId] of Object.entries(this.chat.roles)) roles[name] = { characterId, enabled: characterId !== null };
    } else {
      roles.main = { characterId: this.chat.characterId, enabled: true };
    }
    const state: ContextState = {
      sessionId: this.sessionId,
      flags: [...this.flags].map((name) => ({ name })),
      characters: this.castInfo(),
      roles,
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

/** A user message whose pictures are still arriving. */
function waitsForPictures(cmd: ForegroundCommand): boolean {
  return cmd.kind === 'user' && cmd.vision?.pending === true;
}

function lastIndexWhere<T>(list: readonly T[], pred: (x: T) => boolean): number {
  for (let i = list.length - 1; i >= 0; i--) if (pred(list[i]!)) return i;
  return -1;
}

/** A service description with a stable id derived from its name. */
function serviceInfo(serviceName: string): ServiceInfo {
  const hex = createHash('sha1').update(serviceName).digest('hex');
  return { serviceName, serviceId: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}` };
}
