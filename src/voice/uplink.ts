/**
 * Uplink: members' voices → Voxta's single speech input.
 *
 * Per member (created on their first `speaking` start, released when their stream ends):
 * - ONE receive subscription (`AfterInactivity` 5 min, so idle members are reclaimed), re-created
 *   only after it ended or errored — never a second pipeline on a new `speaking` start (the
 *   receiver would hand back the same stream and every packet would be processed twice);
 * - one `OpusDecoder(16000, 1)`: libopus band-limits properly when decoding straight to 16 kHz
 *   mono, so no resampler is needed; every packet is decoded on its own in a try/catch (an
 *   invalid packet is dropped and counted, the stream goes on);
 * - one energy VAD.
 * Frames then go through the {@link FloorArbiter} (one speaker at a time, others buffered) and
 * the forwarded ones, tagged with their utterance, are written to the input port (the held input,
 * which delivers them to the Voxta audio input when Voxta listens; that keeps the 30 ms cadence).
 *
 * Privacy: the bot itself, bots and members who opted out are never subscribed, so their audio
 * is never decrypted past the transport layer, decoded or forwarded. A member who opts out while
 * talking is dropped at the next packet.
 *
 * Receiver health: a stream destroyed with an error (transport or DAVE decrypt failure) is
 * re-subscribed at once if the member is still talking; a member the receiver says is speaking
 * (UDP packets arrive) whose stream yields nothing for `deafAfterMs` is re-subscribed once, and
 * if that does not help — or errors keep coming — `onDeaf` asks for a rejoin.
 */
import { EndBehaviorType, type AudioReceiveStream, type VoiceReceiver } from '@discordjs/voice';
import { FloorArbiter, type FloorEvent, type FloorOptions } from '../audio/floor.js';
import { OpusDecoder, OpusDecodeError } from '../audio/opus.js';
import { EnergyVad } from '../audio/vad.js';
import { errorInfo, type Logger } from '../log.js';
import { LatencyRecorder } from './latency.js';

/** Idle members' subscriptions end after this long without packets (a new `speaking` start re-creates them). */
const INACTIVITY_END_MS = 5 * 60_000;
/** Stream errors for one member within `ERROR_WINDOW_MS` before we stop re-subscribing and ask for a rejoin. */
const MAX_STREAM_ERRORS = 5;
const ERROR_WINDOW_MS = 10_000;
/** How often listenability is re-checked per member (the check may hit the database). */
const LISTENABLE_TTL_MS = 2000;
/** Packets of a member held while their fresh verification runs (1 s of 20 ms packets); older ones are dropped. */
const MAX_UNVERIFIED_PACKETS = 50;

export interface AudioInputPort {
  /** A forwarded frame, with the utterance it belongs to (the held input keeps utterances whole). */
  write(pcm: Int16Array, meta: { utteranceId: number; speakerId: string; voiced: boolean }): void;
}

export interface UplinkOptions {
  log: Logger;
  botUserId: string;
  isListenable(userId: string): boolean;
  /**
   * A fresh check when a member starts speaking (e.g. their roles fetched from Discord: without the
   * Guild Members intent the cached roles may be stale). Until it answers, the member's packets are
   * held, never decoded or forwarded; false drops them and the member. Called at most once per
   * `speaking` start; the caller caches briefly.
   */
  verifyListenable?(userId: string): Promise<boolean>;
  input: AudioInputPort;
  floor: Pick<FloorOptions, 'endOfUtteranceMs' | 'floorHangoverMs' | 'maxBufferedMsPerSpeaker' | 'maxBufferedMsTotal'>;
  /** Every VAD decision (barge-in detection). */
  onVoice?(userId: string, voiced: boolean): void;
  /** Floor events other than frames (attribution). */
  onFloor?(event: Exclude<FloorEvent, { type: 'frame' }>): void;
  /** The receiver seems deaf (see module comment): the caller rejoins. */
  onDeaf?(reason: string): void;
  /** A member was heard for the first time in this voice session. */
  onNewSpeaker?(userId: string): void;
  /** Packets for a member while the receiver says they speak, but none reach us: deaf after this long. Default 3 s. */
  deafAfterMs?: number;
  now?: () => number;
}

export interface UplinkStats {
  packetsReceived: number;
  decodeErrors: number;
  invalidChunks: number;
  framesDecoded: number;
  framesForwarded: number;
  floorOverflowFrames: number;
  floorOverflows: number;
  utterances: number;
  ignoredSpeakers: number;
  subscriptions: number;
  streamErrors: number;
  resubscribes: number;
  deafEvents: number;
  activeMembers: number;
}

interface Member {
  userId: string;
  stream: AudioReceiveStream | undefined;
  decoder: OpusDecoder;
  vad: EnergyVad;
  lastDataAt: number;
  errors: number[];
  listenableUntil: number;
  /** A deaf stream was re-subscribed at this time (a second deaf spell then means rejoin). */
  resubscribedDeafAt: number | undefined;
  /** While a fresh verification runs: the packets that arrived meanwhile (not decoded yet). */
  unverified: Uint8Array[] | undefined;
}

export class Uplink {
  private receiver: VoiceReceiver | undefined;
  private readonly members = new Map<string, Member>();
  private readonly arbiter: FloorArbiter;
  private readonly now: () => number;
  private readonly log: Logger;
  private tickTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  /** Set while a live packet is being processed: frames forwarded synchronously are timed from it. */
  private packetStartedAt: number | undefined;
  readonly latency = new LatencyRecorder();
  private readonly seen = new Set<string>();
  private readonly counters = {
    packetsReceived: 0,
    decodeErrors: 0,
    invalidChunks: 0,
    framesDecoded: 0,
    ignoredSpeakers: 0,
    subscriptions: 0,
    streamErrors: 0,
    resubscribes: 0,
    deafEvents: 0,
  };
  private readonly onSpeakingStart = (userId: string): void => this.speakingStarted(userId);
  private readonly onSsrcDelete = (data: { userId: string }): void => this.forget(data.userId);

  constructor(private readonly opts: UplinkOptions) {
    this.log = opts.log;
    this.now = opts.now ?? (() => performance.now());
    this.arbiter = new FloorArbiter((e) => this.onFloorEvent(e), { ...opts.floor, now: this.now });
  }

  /** Binds to a (new) receiver; subscriptions of a previous one are dropped. */
  attach(receiver: VoiceReceiver): void {
    this.detachReceiver();
    this.receiver = receiver;
    receiver.speaking.on('start', this.onSpeakingStart);
    receiver.ssrcMap.on('delete', this.onSsrcDelete);
    // Members already talking when we (re)attach get their subscription on the next packet.
    for (const userId of receiver.speaking.users.keys()) this.speakingStarted(userId);
    this.tickTimer ??= setInterval(() => this.arbiter.tick(), 20);
    this.tickTimer.unref?.();
    this.healthTimer ??= setInterval(() => this.checkHealth(), 500);
    this.healthTimer.unref?.();
  }

  /** Stops listening for good. */
  close(): void {
    this.detachReceiver();
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.tickTimer = undefined;
    this.healthTimer = undefined;
  }

  /** The member holding the floor (their utterance is on Voxta's input), if any. */
  get floorHolder(): string | undefined {
    return this.arbiter.floorHolder;
  }

  stats(): UplinkStats {
    const f = this.arbiter.stats();
    return {
      ...this.counters,
      framesForwarded: f.framesForwarded,
      floorOverflowFrames: f.overflowFrames,
      floorOverflows: f.overflows,
      utterances: f.utterances,
      activeMembers: this.members.size,
    };
  }

  private detachReceiver(): void {
    const r = this.receiver;
    if (!r) return;
    r.speaking.off('start', this.onSpeakingStart);
    r.ssrcMap.off('delete', this.onSsrcDelete);
    for (const userId of [...this.members.keys()]) this.forget(userId);
    this.receiver = undefined;
  }

  private speakingStarted(userId: string): void {
    if (!this.listenable(userId)) return;
    const member = this.members.get(userId) ?? this.createMember(userId);
    if (this.opts.verifyListenable && !member.unverified) this.verify(member, this.opts.verifyListenable);
    if (!member.stream) this.subscribe(member);
  }

  /** Holds the member's packets until the fresh check answers; then processes or drops them. */
  private verify(member: Member, check: (userId: string) => Promise<boolean>): void {
    member.unverified = [];
    const settle = (ok: boolean): void => {
      if (this.members.get(member.userId) !== member) return;
      const held = member.unverified ?? [];
      member.unverified = undefined;
      if (!ok) {
        this.counters.ignoredSpeakers++;
        this.log.info({ userId: member.userId, packets: held.length }, 'voice: a member may not be listened to (fresh check); their audio is dropped');
        this.forget(member.userId);
        return;
      }
      for (const packet of held) this.process(member, packet, this.now());
    };
    check(member.userId).then(settle, (err: unknown) => {
      // The fresh data could not be had: the cached check (already passed) stands.
      this.log.warn({ userId: member.userId, err: errorInfo(err) }, 'voice: fresh listenability check failed; using cached data');
      settle(true);
    });
  }

  /** Never for the bot, other bots or opted-out members (their packets are never even decrypted by DAVE for us). */
  private listenable(userId: string, member?: Member): boolean {
    if (userId === this.opts.botUserId) {
      this.counters.ignoredSpeakers++;
      return false;
    }
    const now = this.now();
    if (member && now < member.listenableUntil) return true;
    let ok = false;
    try {
      ok = this.opts.isListenable(userId);
    } catch (err) {
      this.log.warn({ userId, err: errorInfo(err) }, 'voice: listenability check failed; not listening to this member');
    }
    if (!ok) {
      this.counters.ignoredSpeakers++;
      if (member) this.forget(userId);
      return false;
    }
    if (member) member.listenableUntil = now + LISTENABLE_TTL_MS;
    return true;
  }

  private createMember(userId: string): Member {
    const member: Member = {
      userId,
      stream: undefined,
      decoder: new OpusDecoder(16000, 1),
      vad: new EnergyVad(),
      lastDataAt: this.now(),
      errors: [],
      listenableUntil: this.now() + LISTENABLE_TTL_MS,
      resubscribedDeafAt: undefined,
      unverified: undefined,
    };
    this.members.set(userId, member);
    if (!this.seen.has(userId)) {
      this.seen.add(userId);
      this.opts.onNewSpeaker?.(userId);
    }
    return member;
  }

  private subscribe(member: Member): void {
    const receiver = this.receiver;
    if (!receiver) return;
    const existing = receiver.subscriptions.get(member.userId);
    if (existing && !existing.destroyed) {
      // Someone (a previous attach) left a live stream: take it over rather than open a second.
      existing.removeAllListeners('data');
    }
    const stream = existing && !existing.destroyed ? existing : receiver.subscribe(member.userId, { end: { behavior: EndBehaviorType.AfterInactivity, duration: INACTIVITY_END_MS } });
    member.stream = stream;
    member.lastDataAt = this.now();
    this.counters.subscriptions++;
    stream.on('data', (chunk: unknown) => this.onChunk(member, stream, chunk));
    stream.once('error', (err: Error) => this.onStreamError(member, stream, err));
    stream.once('close', () => this.onStreamClosed(member, stream));
  }

  private onStreamError(member: Member, stream: AudioReceiveStream, err: Error): void {
    if (member.stream !== stream) return;
    this.counters.streamErrors++;
    const now = this.now();
    member.errors = member.errors.filter((t) => now - t < ERROR_WINDOW_MS);
    member.errors.push(now);
    this.log.warn({ userId: member.userId, err: errorInfo(err), recent: member.errors.length }, 'voice: receive stream failed (decrypt error); re-subscribing');
    if (member.errors.length >= MAX_STREAM_ERRORS) {
      member.errors = [];
      this.counters.deafEvents++;
      this.opts.onDeaf?.(`${MAX_STREAM_ERRORS} receive stream errors for one member within ${ERROR_WINDOW_MS / 1000} s`);
    }
  }

  private onStreamClosed(member: Member, stream: AudioReceiveStream): void {
    if (member.stream !== stream) return;
    member.stream = undefined;
    if (this.members.get(member.userId) !== member) return;
    const now = this.now();
    member.errors = member.errors.filter((t) => now - t < ERROR_WINDOW_MS);
    // Still talking (the subscription was destroyed by an error): subscribe again right away,
    // once the receiver has removed the dead stream (it does so on the same 'close').
    if (this.receiver?.speaking.users.has(member.userId) && member.errors.length > 0) {
      setImmediate(() => {
        if (this.members.get(member.userId) === member && !member.stream && this.receiver) {
          this.counters.resubscribes++;
          this.subscribe(member);
        }
      });
      return;
    }
    if (member.errors.length === 0) this.forget(member.userId); // ended by inactivity: reclaim
  }

  private onChunk(member: Member, stream: AudioReceiveStream, chunk: unknown): void {
    if (member.stream !== stream) return;
    const t0 = this.now();
    member.lastDataAt = t0;
    member.resubscribedDeafAt = undefined;
    this.counters.packetsReceived++;
    const packet = packetOf(chunk);
    if (!packet) {
      this.counters.invalidChunks++;
      return;
    }
    if (!this.listenable(member.userId, member)) return;
    if (member.unverified) {
      member.unverified.push(packet);
      if (member.unverified.length > MAX_UNVERIFIED_PACKETS) member.unverified.shift();
      return;
    }
    this.process(member, packet, t0);
  }

  /** Decodes one packet and hands its frame to the floor. */
  private process(member: Member, packet: Uint8Array, t0: number): void {
    let pcm: Int16Array;
    try {
      pcm = member.decoder.decode(packet);
    } catch (err) {
      this.counters.decodeErrors++;
      if (!(err instanceof OpusDecodeError)) this.log.warn({ userId: member.userId, err: errorInfo(err) }, 'voice: unexpected decoder failure');
      else if (this.counters.decodeErrors <= 5 || this.counters.decodeErrors % 100 === 0) {
        this.log.debug({ userId: member.userId, bytes: packet.length, err: errorInfo(err), total: this.counters.decodeErrors }, 'voice: invalid Opus packet dropped');
      }
      return;
    }
    if (pcm.length === 0) return;
    this.counters.framesDecoded++;
    const { voiced } = member.vad.process(pcm);
    this.opts.onVoice?.(member.userId, voiced);
    this.packetStartedAt = t0;
    try {
      this.arbiter.push(member.userId, pcm, voiced);
    } finally {
      this.packetStartedAt = undefined;
    }
  }

  private onFloorEvent(e: FloorEvent): void {
    if (e.type === 'frame') {
      try {
        this.opts.input.write(e.pcm, { utteranceId: e.utteranceId, speakerId: e.speakerId, voiced: e.voiced });
      } catch (err) {
        this.log.warn({ err: errorInfo(err) }, 'voice: writing to the Voxta audio input failed');
      }
      if (this.packetStartedAt !== undefined) this.latency.add(this.now() - this.packetStartedAt);
      return;
    }
    if (e.type === 'overflow') this.log.warn({ userId: e.speakerId }, 'voice: a waiting speaker\'s buffer is full; the rest of their utterance is dropped');
    this.opts.onFloor?.(e);
  }

  /** Receiver went deaf: UDP packets arrive for a member (speaking map) but their stream yields nothing. */
  private checkHealth(): void {
    const receiver = this.receiver;
    if (!receiver) return;
    const now = this.now();
    const deafAfter = this.opts.deafAfterMs ?? 3000;
    for (const member of this.members.values()) {
      const speakingSince = receiver.speaking.users.get(member.userId);
      if (speakingSince === undefined || !member.stream) continue;
      if (now - member.lastDataAt < deafAfter || Date.now() - speakingSince < deafAfter) continue;
      this.counters.deafEvents++;
      if (member.resubscribedDeafAt === undefined) {
        this.log.warn({ userId: member.userId }, 'voice: member is speaking but nothing reaches us; re-subscribing');
        member.resubscribedDeafAt = now;
        const old = member.stream;
        member.stream = undefined;
        old.removeAllListeners('data');
        old.destroy();
        setImmediate(() => {
          if (this.members.get(member.userId) === member && !member.stream) {
            this.counters.resubscribes++;
            this.subscribe(member);
          }
        });
      } else if (now - member.resubscribedDeafAt >= deafAfter) {
        member.resubscribedDeafAt = now;
        this.opts.onDeaf?.(`no audio from a speaking member for ${deafAfter} ms, even after re-subscribing`);
      }
    }
  }

  /** Drops a member's pipeline (left, opted out, idle). */
  private forget(userId: string): void {
    const member = this.members.get(userId);
    if (!member) return;
    this.members.delete(userId);
    const stream = member.stream;
    member.stream = undefined;
    if (stream && !stream.destroyed) {
      stream.removeAllListeners('data');
      stream.destroy();
    }
    member.decoder.destroy();
    this.arbiter.removeSpeaker(userId);
  }
}

/** Forward-compatible chunk adapter: 0.19.x pushes a Buffer, the next release an `AudioPacket { payload }`. */
export function packetOf(chunk: unknown): Uint8Array | undefined {
  if (chunk instanceof Uint8Array) return chunk;
  const payload = (chunk as { payload?: unknown } | null)?.payload;
  return payload instanceof Uint8Array ? payload : undefined;
}
