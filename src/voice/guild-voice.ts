/**
 * The voice side of one guild session: the bot in a voice channel, listening to members and
 * speaking the character's replies.
 *
 *   members ── receiver → decode 16 kHz → VAD → floor arbiter → held input → Voxta audio input
 *                                                              (uplink.ts, held-input.ts: no utterance lost while Voxta does not record)
 *   Voxta speechRecognitionEnd → attributed to the floor holder → voxta.send          (here)
 *   replyChunk.audioUrl → prefetch → parseWav → encode Opus → AudioPlayer              (speech-queue.ts, downlink.ts)
 *   interruptSpeech / a member talking over the character → stop within a frame       (barge-in.ts)
 *   connection kept alive, rejoined, or ended cleanly on 4014                          (connection.ts)
 *
 * Playback acknowledgements: while voice is up the Voxta session's PlaybackContract is switched
 * to manual (`setAutoAcknowledge(false)`) and this module reports every chunk when it really
 * starts playing, with its true duration; on leave it aborts what is still owed and hands the
 * contract back to auto mode, so every reply still gets exactly one `speechPlaybackComplete`.
 *
 * Not heard: an utterance that could not be delivered to Voxta (held past its bound or age, or
 * its session gone) is counted (`utterancesUnheard` in `stats()`) and reported with
 * `mirror('unheard', name, NOT_HEARD_TEXT)` in place of the transcript that will never come.
 *
 * Transcript mirroring: members' recognised speech is reported with `mirror('member', …)` (the
 * bot core posts it when mirroring is on, and counts the voice turn either way). The character's
 * replies are already posted by the text bridge from the reply stream, so `mirror('character', …)`
 * does NOT carry a new message to post: it reports, once per reply, the text that was actually
 * SPOKEN (the chunks that started playing; cut short with "…" when interrupted) so the core can
 * mark or annotate the reply it already posted. Posting it again would show every reply twice.
 *
 * Ending: when Discord removes the bot (close code 4014) or recovery gives up, voice ends and
 * 'ended' is emitted with the reason; the bot core posts the one sentence about it in the text
 * channel (it owns that wording, so it is not said twice).
 */
import { EventEmitter } from 'node:events';
import type { DiscordGatewayAdapterCreator } from '@discordjs/voice';
import type { BargeInMode, Config } from '../config.js';
import { errorInfo, logger, type Logger } from '../log.js';
import { attachAudioInput, type VoxtaAudioInput } from '../voxta/audio-input.js';
import type { VoxtaChatSession, VoxtaChatSessionEvents } from '../voxta/chat-session.js';
import type {
  InterruptSpeechMessage,
  ReplyCancelledMessage,
  ReplyChunkMessage,
  ReplyEndMessage,
  SpeechRecognitionEndMessage,
} from '../voxta/messages.js';
import type { ChunkInfo } from '../voxta/playback-contract.js';
import { attributeSpeaker, capText, sanitizeUserText, MAX_USER_TEXT_CHARS } from '../voxta/user-text.js';
import { Attribution } from './attribution.js';
import { BargeInDetector } from './barge-in.js';
import { HeldInput, type UnheardUtterance } from './held-input.js';
import { VoiceLink, type VoiceLinkEndReason } from './connection.js';
import { DiscordPlayerSink, warmUpDownlink } from './downlink.js';
import { LatencyRecorder } from './latency.js';
import { SpeechQueue, type PlaybackPort, type SpeechChunk } from './speech-queue.js';
import { openSpeech, progressivePackets, type ProgressiveClip } from './tts-stream.js';
import { Uplink } from './uplink.js';

export interface GuildVoiceOptions {
  guildId: string;
  channelId: string;
  adapterCreator: DiscordGatewayAdapterCreator;
  botUserId: string;
  voxta: VoxtaChatSession;
  config: Config['voice'];
  /** false for bots, the bot itself, opted-out members. */
  isListenable(userId: string): boolean;
  /**
   * False while the bot may not be heard in the channel (a Stage channel's audience): replies are
   * then not fetched nor played, and acknowledged as unplayed (duration 0) — never as heard.
   */
  canSpeak?(): boolean;
  /** A fresh check when a member starts speaking (see `UplinkOptions.verifyListenable`). */
  verifyListenable?(userId: string): Promise<boolean>;
  displayName(userId: string): string;
  /** One plain sentence for the bound text channel. */
  notify(text: string): void;
  /**
   * `member`: a voice turn (the recognised text); `character`: what of a reply was spoken (see the
   * module comment); `unheard`: a member's utterance that could not be delivered to Voxta, with a
   * short plain text to show in place of a transcript (when transcripts are mirrored).
   */
  mirror(kind: VoiceMirrorKind, name: string, text: string): void;
  /**
   * Ids of the humans in the voice channel now (optional). A transcript is sent plain only when its
   * speaker is the one person there; otherwise in the attributed form `Name: text`. Without this,
   * the number of distinct members heard so far decides.
   */
  humansInChannel?(): readonly string[];
  /** Forward @discordjs/voice debug output (incl. DAVE) to the debug log. */
  debug?: boolean;
  /** When the bot's main-gateway session began (epoch ms); tells a 4014 after a session reset from a kick. */
  gatewaySessionStartedAt?(): number | undefined;
  /** Join timeout (default 20 s). */
  readyTimeoutMs?: number;
  /** Cancels the join (the connection is destroyed at once; `join` rejects with the signal's reason). */
  signal?: AbortSignal;
}

export type GuildVoiceState = 'connecting' | 'ready' | 'recovering' | 'ended';

export type VoiceMirrorKind = 'member' | 'character' | 'unheard';

/** Shown in place of a transcript for an utterance Voxta never got (mirror kind `unheard`). */
export const NOT_HEARD_TEXT = '(not heard; please say it again)';

type Events = { ended: [reason: string] };

/** Audio the Voxta input may hold: the arbiter can release up to 30 s of buffered speech at once. */
const AUDIO_INPUT_BUFFER_MS = 35_000;
/** A reply whose playback stayed paused (no connection) this long is given up. */
const MAX_PAUSED_MS = 10_000;
/** The same transcript twice within this window is one transcript (protocol §4a: it may arrive twice). */
const DEDUPE_MS = 3000;
/** At most one "could not play the voice" notice in this long. */
const SPEECH_FAILURE_NOTICE_MS = 5 * 60_000;

export class GuildVoice extends EventEmitter<Events> {
  readonly channelId: string;
  readonly guildId: string;
  private readonly log: Logger;
  private readonly voxta: VoxtaChatSession;
  private readonly link: VoiceLink;
  private readonly input: VoxtaAudioInput & { detach(): void };
  /** The input as the uplink sees it: holds utterances while Voxta is not recording (held-input.ts). */
  private readonly heldInput: HeldInput;
  /** A reply has come in this chat: before its first recordingRequest, Voxta is then not listening. */
  private replySeen = false;
  private readonly uplink: Uplink;
  private readonly sink: DiscordPlayerSink;
  private readonly queue: SpeechQueue<ProgressiveClip>;
  private readonly bargeIn: BargeInDetector;
  private readonly attribution = new Attribution();
  private readonly downlinkLatency = new LatencyRecorder();
  /** replyChunk received → its audio downloaded and parsed. */
  private readonly fetchLatency = new LatencyRecorder();
  private ended = false;
  private readonly watchdog: NodeJS.Timeout;
  private pausedSince: number | undefined;
  private lastTranscript: { text: string; at: number } | undefined;
  private lastSpeechFailure: { messageId: string; at: number } | undefined;
  /** The member whose transcript we sent last: the one the next reply answers. */
  private lastSpeaker: string | undefined;
  private lastSentText: string | undefined;
  private readonly replies = new Map<string, { senderId?: string; spoken: string[]; interrupted: boolean }>();
  private readonly counters = {
    transcriptsSent: 0,
    transcriptsDeduped: 0,
    transcriptsEmpty: 0,
    bargeIns: 0,
    voxtaInterrupts: 0,
    pausedAborts: 0,
    chunksInaudible: 0,
  };
  private readonly voxtaListeners: Array<[string, (...args: never[]) => void]> = [];

  private constructor(
    private readonly opts: GuildVoiceOptions,
    link: VoiceLink,
  ) {
    super();
    this.channelId = opts.channelId;
    this.guildId = opts.guildId;
    this.voxta = opts.voxta;
    this.link = link;
    this.log = logger().child({ mod: 'voice', guildId: opts.guildId, channelId: opts.channelId });

    this.bargeIn = new BargeInDetector({ mode: opts.config.bargeIn, minMs: opts.config.bargeInMinMs, graceMs: opts.config.bargeInGraceMs });

    // Voxta speech input: our own socket on the chat's session, bounded but large enough for a
    // released backlog of buffered speech.
    this.input = attachAudioInput(this.voxta, { maxBufferMs: AUDIO_INPUT_BUFFER_MS, log: this.log });
    this.enableInputIfListening();
    const input = this.input;
    this.heldInput = new HeldInput({
      input: {
        write: (pcm) => input.write(pcm),
        get bufferedBytes() {
          return input.bufferedBytes;
        },
        get speechBytesSent() {
          return input.speechBytesSent;
        },
        streamingSince: () => input.streamingSince,
      },
      listening: () => this.voxtaListening(),
      // The recogniser must hear a pause between two delivered utterances: the floor's own.
      separatorMs: opts.config.endOfUtteranceMs,
      onAir: (u) => {
        if (u.held) this.log.debug({ utteranceId: u.utteranceId, speakerId: u.speakerId }, 'voice: a held utterance goes to Voxta now');
        this.attribution.utteranceStarted({ utteranceId: u.utteranceId, speakerId: u.speakerId, startAt: u.at });
      },
      onUnheard: (u) => this.onUnheard(u),
    });

    this.uplink = new Uplink({
      log: this.log,
      botUserId: opts.botUserId,
      isListenable: (id) => opts.isListenable(id),
      verifyListenable: opts.verifyListenable ? (id) => opts.verifyListenable!(id) : undefined,
      input: this.heldInput,
      floor: { endOfUtteranceMs: opts.config.endOfUtteranceMs, floorHangoverMs: opts.config.floorHangoverMs },
      onVoice: (userId, voiced) => this.onMemberVoice(userId, voiced),
      onFloor: (e) => {
        // Attribution follows the audio as it reaches Voxta (HeldInput's onAir), which for a held
        // utterance is later than the floor handed it over.
        if (e.type === 'utteranceStart') this.heldInput.utteranceStarted({ utteranceId: e.utteranceId, speakerId: e.speakerId, liveAt: e.liveAt });
        else if (e.type === 'utteranceEnd') this.heldInput.utteranceEnded(e.utteranceId);
      },
      onDeaf: (reason) => this.link.rejoin(reason),
    });

    this.sink = new DiscordPlayerSink({ log: this.log, connection: () => this.link.connection });
    try {
      warmUpDownlink();
    } catch (err) {
      this.log.debug({ err: errorInfo(err) }, 'voice: downlink warm-up failed (harmless)');
    }
    this.queue = new SpeechQueue<ProgressiveClip>({
      playback: this.playbackPort(),
      sink: this.sink,
      log: this.log,
      logContext: () => ({ sessionId: this.voxta.sessionId }),
      // Progressive: a clip starts playing once its header and first samples are in (tts-stream.ts).
      open: (url, signal) =>
        openSpeech(this.voxta.endpoint, url, signal, {
          onLateError: (err) =>
            this.log.warn({ sessionId: this.voxta.sessionId, err: errorInfo(err) }, 'voice: TTS download broke off part-way; the sentence ends early'),
        }),
      packets: progressivePackets,
      onPlaybackChange: (since) => this.heldInput.setPlayback(since),
      onFirstPacketLatency: (ms) => this.downlinkLatency.add(ms),
      onReadyLatency: (ms) => this.fetchLatency.add(ms),
      onClipFailed: (messageId) => this.tellSpeechFailed(messageId),
    });

    this.bindConnection();
    this.bindVoxta();
    this.watchdog = setInterval(() => this.checkPaused(), 1000);
    this.watchdog.unref?.();
  }

  /**
   * Joins the voice channel and starts listening and speaking. Rejects if the connection never gets
   * ready, or at once when `signal` fires (leaving nothing behind).
   */
  static async join(opts: GuildVoiceOptions): Promise<GuildVoice> {
    const log = logger().child({ mod: 'voice', guildId: opts.guildId, channelId: opts.channelId });
    const link = await VoiceLink.open({
      guildId: opts.guildId,
      channelId: opts.channelId,
      adapterCreator: opts.adapterCreator,
      log,
      // @discordjs/voice's own debug stream (every voice-gateway packet, DAVE steps) at LOG_LEVEL=trace.
      debug: opts.debug ?? log.isLevelEnabled('trace'),
      readyTimeoutMs: opts.readyTimeoutMs,
      gatewaySessionStartedAt: opts.gatewaySessionStartedAt,
      signal: opts.signal,
    });
    let voice: GuildVoice;
    try {
      voice = new GuildVoice(opts, link);
    } catch (err) {
      link.close();
      throw err;
    }
    log.info({ bargeIn: opts.config.bargeIn }, 'voice: joined and listening');
    // The caller announces that it listens once the whole operation that joined has succeeded.
    return voice;
  }

  /** The barge-in mode from now on (a server changed its setting while the bot is in voice). */
  setBargeInMode(mode: BargeInMode): void {
    if (mode === this.bargeIn.mode) return;
    this.bargeIn.setMode(mode);
    this.log.info({ bargeIn: mode }, 'voice: barge-in mode changed');
  }

    get state(): GuildVoiceState {
    return this.ended ? 'ended' : this.link.state;
  }

  /** Leaves the channel: stops playback, hands the playback acknowledgements back, closes everything. */
  async leave(reason = 'leave'): Promise<void> {
    if (this.ended) return;
    this.log.info({ reason, stats: this.stats() }, 'voice: leaving');
    this.shutdown();
    this.link.close();
  }

  stats(): Record<string, number> {
    const up = this.uplink.stats();
    const q = this.queue.stats();
    const link = this.link.stats();
    const sink = this.sink.stats();
    const input = this.input.stats;
    return {
      packetsReceived: up.packetsReceived,
      decodeErrors: up.decodeErrors,
      invalidChunks: up.invalidChunks,
      framesDecoded: up.framesDecoded,
      framesForwarded: up.framesForwarded,
      floorOverflowFrames: up.floorOverflowFrames,
      floorOverflows: up.floorOverflows,
      utterances: up.utterances,
      ignoredSpeakers: up.ignoredSpeakers,
      streamErrors: up.streamErrors,
      resubscribes: up.resubscribes,
      deafEvents: up.deafEvents,
      activeMembers: up.activeMembers,
      chunksReceived: q.chunksReceived,
      chunksPlayed: q.chunksPlayed,
      chunksWithoutAudio: q.chunksWithoutAudio,
      downloadFailures: q.downloadFailures,
      audioDecodeFailures: q.decodeFailures,
      lateDownloadsDropped: q.lateDownloadsDropped,
      playbackInterrupts: q.interrupts,
      abandonedClips: sink.abandonedClips,
      playerErrors: sink.playerErrors,
      ...this.counters,
      rejoins: link.rejoins,
      libraryRejoins: link.libraryRejoins,
      disconnects: link.disconnects,
      connectionErrors: link.connectionErrors,
      daveErrorsContained: link.daveErrorsContained,
      inputFramesSent: input.framesSent,
      inputSpeechFrames: input.speechFrames,
      inputOverflowDrops: input.overflowDrops,
      ...this.heldInput.stats(),
      uplinkLatencySamples: this.uplink.latency.count,
      uplinkLatencyP50Ms: this.uplink.latency.percentile(50),
      uplinkLatencyP95Ms: this.uplink.latency.percentile(95),
      downlinkLatencySamples: this.downlinkLatency.count,
      downlinkLatencyP50Ms: this.downlinkLatency.percentile(50),
      downlinkLatencyP95Ms: this.downlinkLatency.percentile(95),
      fetchLatencyP50Ms: this.fetchLatency.percentile(50),
      fetchLatencyP95Ms: this.fetchLatency.percentile(95),
    };
  }

  /**
   * Raw latency samples (ms) for the benchmarks: `downlinkFirstPacket` = replyChunk received →
   * its first Opus packet taken by the AudioPlayer (it goes on the wire at the player's next
   * 20 ms tick), for chunks that did not wait behind another; `uplinkPacketToInput` = RTP packet
   * delivered by the receiver → its PCM written to the Voxta audio input (live frames only).
   */
  latencySamples(): { downlinkFirstPacket: number[]; uplinkPacketToInput: number[] } {
    return { downlinkFirstPacket: this.downlinkLatency.values(), uplinkPacketToInput: this.uplink.latency.values() };
  }

  // ---- wiring ----------------------------------------------------------------------------

  private bindConnection(): void {
    this.uplink.attach(this.link.connection.receiver);
    this.sink.attach(this.link.connection);
    this.link.on('connection', (conn) => {
      // A rejoin created a new connection: new receiver, and the player must be subscribed again.
      this.uplink.attach(conn.receiver);
      this.sink.attach(conn);
    });
    this.link.on('ended', (reason, detail) => this.onLinkEnded(reason, detail));
  }

  private bindVoxta(): void {
    const on = (event: keyof VoxtaChatSessionEvents, fn: (...args: never[]) => void): void => {
      (this.voxta.on as (e: string, f: (...a: never[]) => void) => unknown)(event, fn);
      this.voxtaListeners.push([event, fn]);
    };
    on('replyChunk', (m: ReplyChunkMessage) => this.onReplyChunk(m));
    on('replyEnd', (m: ReplyEndMessage) => this.queue.replyEnded(m.messageId));
    on('replyCancelled', (m: ReplyCancelledMessage) => {
      this.markInterrupted(m.messageId);
      this.queue.cancel(m.messageId);
    });
    on('interruptSpeech', (m: InterruptSpeechMessage) => {
      // Voxta decided (a member's voice, or our own `interrupt`): stop now, nothing is sent back.
      this.counters.voxtaInterrupts++;
      for (const id of this.queue.pendingMessages) this.markInterrupted(id);
      this.queue.interrupt(m.messageId);
    });
    on('speechRecognitionStart', () => this.attribution.recognitionStarted(performance.now()));
    // A user message that is not our last transcript (typed in the text channel, /say) means the
    // next reply answers no voice speaker: nobody holds the floor for BARGE_IN=floor.
    on('sent', (info: { text: string }) => {
      if (info.text !== this.lastSentText) this.lastSpeaker = undefined;
    });
    on('speechRecognitionEnd', (m: SpeechRecognitionEndMessage) => this.onTranscript(m));
    on('reconnected', () => {
      // New Voxta session: whatever was owed to the dead one is gone (the contract was reset by
      // the session itself); the audio input follows the new sessionId on its own. Utterances
      // held for the dead session cannot be delivered any more (counted, shown as not heard).
      this.heldInput.dropAll('session');
      this.queue.reset();
      this.replies.clear();
      this.attribution.clear();
      this.replySeen = false;
      this.enableInputIfListening();
    });
    on('chatStarted', () => {
      this.replySeen = false;
      this.enableInputIfListening();
    });
    const chatGone = (): void => this.heldInput.dropAll('session');
    on('chatClosed', chatGone);
    on('chatLost', chatGone);
    // Registered after attachAudioInput's own listener, so the input already follows it here:
    // on true, held utterances go out; on false, what Voxta did not get in full is rewound.
    on('recordingRequest', () => this.heldInput.pump());
    this.voxta.playback.setAutoAcknowledge(false);
  }

  /**
   * Voxta requests our microphone with `recordingRequest`, which may have been sent before voice
   * was joined (the chat starts first). When the chat has speech-to-text we start streaming at
   * once; the next `recordingRequest` (false or true) takes over from there. Frames sent while
   * Voxta is not listening are ignored by it (protocol §4a).
   */
  private enableInputIfListening(): void {
    const sessionId = this.voxta.sessionId;
    const recording = this.voxta.recording;
    const hasStt = this.voxta.chat?.services.hasStt ?? true;
    if (sessionId && (recording ?? hasStt)) this.input.enable(sessionId);
  }

  /** The session's contract, plus bookkeeping of what was spoken (for the character mirror). */
  private playbackPort(): PlaybackPort {
    const contract = this.voxta.playback;
    return {
      chunkStarted: (messageId: string, chunk: ChunkInfo, durationSec: number) => {
        const text = (chunk as SpeechChunk).text;
        if (durationSec > 0 && text) this.reply(messageId).spoken.push(text);
        return contract.chunkStarted(messageId, chunk, durationSec);
      },
      drained: (messageId: string) => {
        contract.drained(messageId);
        this.mirrorSpoken(messageId);
      },
      abort: (messageId: string) => {
        this.markInterrupted(messageId);
        contract.abort(messageId);
        this.mirrorSpoken(messageId);
      },
    };
  }

  private reply(messageId: string): { senderId?: string; spoken: string[]; interrupted: boolean } {
    let r = this.replies.get(messageId);
    if (!r) {
      r = { spoken: [], interrupted: false };
      this.replies.set(messageId, r);
      if (this.replies.size > 64) this.replies.delete(this.replies.keys().next().value!);
    }
    return r;
  }

  private markInterrupted(messageId: string): void {
    const r = this.replies.get(messageId);
    if (r) r.interrupted = true;
  }

  private mirrorSpoken(messageId: string): void {
    const r = this.replies.get(messageId);
    this.replies.delete(messageId);
    if (!r || r.spoken.length === 0) return;
    const name = this.voxta.chat?.characters.find((c) => c.id === r.senderId)?.name ?? this.voxta.chat?.characters[0]?.name ?? 'Character';
    const text = r.spoken.join(' ') + (r.interrupted ? ' …' : '');
    this.safeMirror('character', name, text);
  }

  private onReplyChunk(m: ReplyChunkMessage): void {
    this.replySeen = true;
    const isNew = !this.replies.has(m.messageId) && !this.queue.pendingMessages.includes(m.messageId);
    const r = this.reply(m.messageId);
    r.senderId ??= m.senderId;
    if (isNew) this.bargeIn.setAnswering(this.lastSpeaker);
    // Not heard in the channel (a Stage audience): no audio, acknowledged as such, in order.
    const audible = this.opts.canSpeak?.() ?? true;
    if (!audible) this.counters.chunksInaudible++;
    this.queue.push({
      messageId: m.messageId,
      audioUrl: audible ? m.audioUrl : '',
      text: m.text,
      startIndex: m.startIndex,
      endIndex: m.endIndex,
      isNarration: m.isNarration,
      ...(m.audioGapMs !== undefined ? { audioGapMs: m.audioGapMs } : {}),
    });
  }

  private onMemberVoice(userId: string, voiced: boolean): void {
    this.bargeIn.setPlayback(this.queue.playbackStartedAt);
    if (!this.bargeIn.frame(userId, voiced)) return;
    this.counters.bargeIns++;
    const ids = this.queue.pendingMessages;
    this.log.info({ userId, messageIds: ids }, 'voice: barge-in — a member spoke over the character; stopping playback');
    for (const id of ids) this.markInterrupted(id);
    // Before the interrupt: the utterance that barged in is to be delivered in full.
    this.heldInput.bargeIn(userId);
    this.queue.interrupt();
    this.voxta.interrupt().catch(() => undefined);
  }

  /**
   * People waiting to hear the character are told, once per reply and at most every few minutes,
   * that its voice could not be played (the text is in the channel anyway): silence otherwise
   * looks like the bot hung.
   */
  private tellSpeechFailed(messageId: string): void {
    const now = Date.now();
    if (this.lastSpeechFailure && (this.lastSpeechFailure.messageId === messageId || now - this.lastSpeechFailure.at < SPEECH_FAILURE_NOTICE_MS)) return;
    this.lastSpeechFailure = { messageId, at: now };
    this.opts.notify('I could not play the character\'s voice for that reply (its speech audio could not be loaded from Voxta); the text is here in the channel.');
  }

  /**
   * Whether a transcript can go without a name: its speaker is the only human there. Presence is
   * read when the transcript arrives, so a speaker who left before Voxta finished recognising is
   * still named rather than taken for whoever stayed.
   */
  private speakerIsAlone(speakerId: string | undefined): boolean {
    const present = this.opts.humansInChannel?.();
    if (!present) return this.attribution.distinctSpeakers <= 1;
    if (present.length === 0) return true;
    return present.length === 1 && (speakerId === undefined || present[0] === speakerId);
  }

  private onTranscript(m: SpeechRecognitionEndMessage): void {
    const now = performance.now();
    const utterance = this.attribution.recognitionEnded(now);
    const raw = (m.text ?? '').trim();
    if (raw === '') {
      this.counters.transcriptsEmpty++;
      return;
    }
    this.heldInput.recognised();
    if (this.lastTranscript && this.lastTranscript.text === raw && now - this.lastTranscript.at < DEDUPE_MS) {
      this.counters.transcriptsDeduped++;
      return;
    }
    this.lastTranscript = { text: raw, at: now };
    const speakerId = utterance?.speakerId ?? this.uplink.floorHolder;
    const name = speakerId ? this.opts.displayName(speakerId) : 'Someone';
    const text = this.speakerIsAlone(speakerId) ? capText(sanitizeUserText(raw), MAX_USER_TEXT_CHARS).text : attributeSpeaker(name, raw);
    if (text === '') return;
    this.lastSpeaker = speakerId;
    this.lastSentText = text;
    this.counters.transcriptsSent++;
    this.log.debug({ speakerId, chars: raw.length }, 'voice: transcript sent');
    this.voxta.send(text);
    this.safeMirror('member', name, raw);
  }

  /**
   * Voxta listens when it asked for our microphone. Before its first `recordingRequest` of a chat
   * it is assumed to listen (servers that never send one still work), unless the character has
   * spoken first: a new chat's greeting is answered only after its playback completed, when Voxta
   * starts transcribing and says so (protocol §5.1).
   */
  private voxtaListening(): boolean {
    if (!this.input.enabled) return false;
    return this.voxta.recording !== undefined || !this.replySeen;
  }

  /** A member's utterance could not be delivered: counted (stats) and shown as not heard. */
  private onUnheard(u: UnheardUtterance): void {
    this.log.warn({ speakerId: u.speakerId, reason: u.reason, ms: u.ms }, 'voice: an utterance could not be delivered to Voxta');
    const name = this.opts.displayName(u.speakerId);
    this.safeMirror('unheard', name, NOT_HEARD_TEXT);
  }

  /** Reports to the mirror; a throwing mirror is logged and voice goes on. */
  private safeMirror(kind: VoiceMirrorKind, name: string, text: string): void {
    try {
      this.opts.mirror(kind, name, text);
    } catch (err) {
      this.log.warn({ err: errorInfo(err) }, 'voice: mirror failed');
    }
  }

  /** Playback paused because the connection is down: after a while the reply is given up so Voxta is not held. */
  private checkPaused(): void {
    this.heldInput.tick();
    if (!this.sink.paused || this.queue.pendingMessages.length === 0) {
      this.pausedSince = undefined;
      return;
    }
    const now = performance.now();
    this.pausedSince ??= now;
    if (now - this.pausedSince < MAX_PAUSED_MS) return;
    this.pausedSince = undefined;
    this.counters.pausedAborts++;
    this.log.warn('voice: playback stayed paused (no voice connection) for 10 s; giving up on the reply');
    this.queue.interrupt();
  }

  private onLinkEnded(reason: VoiceLinkEndReason, detail: string): void {
    if (this.ended) return;
    this.log.warn({ reason, detail, stats: this.stats() }, 'voice: voice ended');
    this.shutdown();
    this.emit('ended', `${reason}: ${detail}`);
  }

  /** Everything but the connection: stop playback (owed completes go out), stop listening. */
  private shutdown(): void {
    this.ended = true;
    clearInterval(this.watchdog);
    for (const [event, fn] of this.voxtaListeners) (this.voxta.off as (e: string, f: (...a: never[]) => void) => unknown)(event, fn);
    this.voxtaListeners.length = 0;
    // Abort what is still owed: ended replies complete now, streaming ones when their replyEnd comes.
    this.queue.interrupt();
    this.heldInput.dropAll('session');
    this.heldInput.close();
    this.voxta.playback.setAutoAcknowledge(true);
    this.uplink.close();
    this.sink.destroy();
    this.input.detach();
    this.input.close();
  }
}
