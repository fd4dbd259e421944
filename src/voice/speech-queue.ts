/**
 * The character's speech, chunk by chunk: prefetch every `replyChunk.audioUrl` as soon as it
 * arrives, play strictly in arrival order, and report playback to Voxta through the session's
 * {@link PlaybackContract} (one `speechPlaybackStart` per chunk with its true duration, and
 * `drained` once a reply that has ended has nothing left playing, queued or downloading — the
 * contract turns that into exactly one `speechPlaybackComplete`).
 *
 * It knows nothing about Discord: audio goes to a {@link PlayerSink} (the real one wraps an
 * @discordjs/voice AudioPlayer, tests use a fake), bytes come from an injected fetcher, and
 * decoding/encoding are injected too. That keeps ordering, epochs and acknowledgements testable
 * without sockets.
 *
 * Interrupts use an EPOCH counter (as the official Voxta Minecraft companion does): every entry
 * remembers the epoch it was created in, and a download finishing after an interrupt (epoch
 * bumped) is dropped instead of being played.
 */
import type { Logger } from '../log.js';
import { errorInfo } from '../log.js';
import type { ChunkInfo } from '../voxta/playback-contract.js';
import { classifyAudioUrl } from '../voxta/tts.js';

/** A lazily produced sequence of 20 ms Opus packets (encoding happens as the player pulls). */
export interface PacketSource {
  /**
   * The next packet; null when the clip is finished; undefined when the next one is not there
   * yet (a clip still downloading) — then `wait` says when to ask again.
   */
  next(): Buffer | null | undefined;
  /** Calls `cb` once when `next()` may have more (only for sources that can return undefined). */
  wait?(cb: () => void): void;
  /** Releases encoder resources (called once, also when playback is stopped early). */
  close(): void;
}

/** What the queue hands to the player, in order. */
export interface SinkItem {
  readonly id: number;
  readonly messageId: string;
  /** True length of the clip in seconds (from its samples). */
  readonly durationSec: number;
  /**
   * `replyChunk.audioGapMs`: at least this long since the previous clip ended before this one
   * plays (a minimum, not an extra delay; the game-engine SDK's reading). Clips with audio only.
   */
  readonly gapMs?: number;
  readonly source: PacketSource;
  /**
   * The sink calls this when the clip's first packet is taken by the player (for a clip without
   * packets: when its turn comes, immediately followed by `finished`).
   */
  started(): void;
  /** The sink calls this after the clip's last packet was taken. Not called after `stop()`. */
  finished(): void;
}

export interface PlayerSink {
  /** Appends a clip; clips play back to back in the order given. */
  enqueue(item: SinkItem): void;
  /** Stops playback at once and forgets every clip it was given (barge-in, reset). */
  stop(): void;
  /**
   * The sink has every clip there is for now: when it runs dry it may end its stream (and start
   * a new one on the next `enqueue`) instead of waiting with silence. `enqueue` cancels it.
   */
  idle(): void;
}

/** The subset of the session's PlaybackContract the queue uses. */
export interface PlaybackPort {
  chunkStarted(messageId: string, chunk: ChunkInfo, durationSec: number): boolean;
  drained(messageId: string): void;
  abort(messageId: string): void;
}

/** A decoded clip, before encoding. */
export interface DecodedSpeech {
  durationSec: number;
}

export interface SpeechChunk extends ChunkInfo {
  messageId: string;
  audioUrl: string;
  text?: string;
  audioGapMs?: number;
}

export interface SpeechQueueDeps<A extends DecodedSpeech = DecodedSpeech> {
  playback: PlaybackPort;
  sink: PlayerSink;
  /** Downloads the whole clip (auth, retries are the fetcher's business). Used with `decode`. */
  fetchAudio?(url: string, signal: AbortSignal): Promise<Uint8Array>;
  /** Parses the bytes (WAV); throws for non-audio. */
  decode?(bytes: Uint8Array): A;
  /**
   * Instead of fetchAudio + decode: opens the clip and resolves as soon as it can start playing
   * (its samples may still be arriving). Errors named `WavError` count as "not audio".
   */
  open?(url: string, signal: AbortSignal): Promise<A>;
  /** Opens the packet source for a decoded clip. */
  packets(audio: A): PacketSource;
  log: Logger;
  /** Extra log fields for errors, read when logging (e.g. the current Voxta sessionId). */
  logContext?(): Record<string, unknown>;
  now?: () => number;
  /** Downloads running at once. Default 4. */
  maxInFlight?: number;
  /** Called when a clip's first packet is taken, with ms since its replyChunk arrived (only when nothing was playing before it). */
  onFirstPacketLatency?(ms: number): void;
  /** Called when a chunk's audio could not be played (download failed, or not audio). */
  onClipFailed?(messageId: string, why: 'download' | 'notAudio'): void;
  /** Called when a clip is downloaded and parsed, with ms since its replyChunk arrived. */
  onReadyLatency?(ms: number): void;
  /** The character became audible (since when) or silent (undefined): see `playbackStartedAt`. */
  onPlaybackChange?(since: number | undefined): void;
}

export interface SpeechQueueStats {
  chunksReceived: number;
  chunksPlayed: number;
  chunksWithoutAudio: number;
  downloadFailures: number;
  decodeFailures: number;
  lateDownloadsDropped: number;
  interrupts: number;
}

/** The source of a chunk without audio. */
const EMPTY_SOURCE: PacketSource = { next: () => null, close: () => {} };

type EntryState = 'waiting' | 'fetching' | 'ready' | 'failed' | 'none' | 'handed' | 'playing';

interface Entry<A> {
  id: number;
  epoch: number;
  chunk: SpeechChunk;
  state: EntryState;
  url?: string;
  audio?: A;
  controller?: AbortController;
  arrivedAt: number;
  /** Nothing was queued or playing when this chunk arrived: its start latency is meaningful. */
  headOfLine: boolean;
}

export class SpeechQueue<A extends DecodedSpeech = DecodedSpeech> {
  private epoch = 0;
  private nextId = 1;
  private entries: Entry<A>[] = [];
  private readonly ended = new Set<string>();
  private readonly now: () => number;
  private readonly maxInFlight: number;
  private playingSince: number | undefined;
  private readonly counters: SpeechQueueStats = {
    chunksReceived: 0,
    chunksPlayed: 0,
    chunksWithoutAudio: 0,
    downloadFailures: 0,
    decodeFailures: 0,
    lateDownloadsDropped: 0,
    interrupts: 0,
  };

  constructor(private readonly deps: SpeechQueueDeps<A>) {
    this.now = deps.now ?? (() => performance.now());
    this.maxInFlight = Math.max(1, deps.maxInFlight ?? 4);
  }

  /** True while a clip is being played (its first packet was taken and it has not finished). */
  get playing(): boolean {
    return this.entries.some((e) => e.state === 'playing');
  }

  /** When the current run of playback started (ms, injected clock), undefined when silent. */
  get playbackStartedAt(): number | undefined {
    return this.playingSince;
  }

  /** Message ids with something queued, downloading or playing. */
  get pendingMessages(): string[] {
    return [...new Set(this.entries.map((e) => e.chunk.messageId))];
  }

  get currentEpoch(): number {
    return this.epoch;
  }

  stats(): SpeechQueueStats {
    return { ...this.counters };
  }

  /** A `replyChunk` arrived. */
  push(chunk: SpeechChunk): void {
    this.counters.chunksReceived++;
    const kind = classifyAudioUrl(chunk.audioUrl);
    // `silence:<ms>` (TTS off for this chunk) is no audio: acknowledged with 0 in its turn, with
    // no dead air played for it, as the official Minecraft companion does (it never fetches it).
    const entry: Entry<A> = {
      id: this.nextId++,
      epoch: this.epoch,
      chunk,
      state: kind.kind === 'fetch' ? 'waiting' : 'none',
      arrivedAt: this.now(),
      headOfLine: this.entries.length === 0 && !this.playing,
    };
    if (kind.kind === 'fetch') entry.url = kind.url;
    this.ended.delete(chunk.messageId);
    this.entries.push(entry);
    this.startDownloads();
    this.pump();
  }

  /** `replyEnd`: once nothing of this message is left, it is drained. */
  replyEnded(messageId: string): void {
    this.ended.add(messageId);
    this.checkDrained(messageId);
    this.maybeIdle();
  }

  /**
   * Stops playback now and discards everything queued or downloading (epoch++). Every reply that
   * had something pending, plus `messageId` if given, is aborted in the playback contract so its
   * single complete goes out. Returns the aborted message ids.
   */
  interrupt(messageId?: string): string[] {
    const ids = new Set(this.pendingMessages);
    if (messageId) ids.add(messageId);
    if (ids.size === 0) return [];
    this.counters.interrupts++;
    this.discardAll();
    for (const id of ids) {
      this.ended.delete(id);
      this.deps.playback.abort(id);
    }
    return [...ids];
  }

  /**
   * `replyCancelled`: the reply's remaining audio is dropped (playback stops if it was playing),
   * and it is aborted in the contract (its complete goes out once `replyEnd` has come).
   */
  cancel(messageId: string): void {
    const mine = this.entries.filter((e) => e.chunk.messageId === messageId);
    if (mine.some((e) => e.state === 'handed' || e.state === 'playing')) {
      // The player holds clips of this reply: stop everything (replies do not overlap in
      // practice, and a later reply's clips cannot be pulled out of the player's stream).
      this.interrupt(messageId);
      return;
    }
    for (const e of mine) this.drop(e);
    this.entries = this.entries.filter((e) => e.chunk.messageId !== messageId);
    this.ended.delete(messageId);
    this.deps.playback.abort(messageId);
    this.pump();
  }

  /** The Voxta session changed: whatever was owed to the dead session is dropped without acknowledgements. */
  reset(): void {
    this.discardAll();
    this.ended.clear();
  }

  private discardAll(): void {
    this.epoch++;
    for (const e of this.entries) this.drop(e);
    this.entries = [];
    this.setPlayingSince(undefined);
    this.deps.sink.stop();
  }

  private setPlayingSince(since: number | undefined): void {
    if (this.playingSince === since) return;
    this.playingSince = since;
    this.deps.onPlaybackChange?.(since);
  }

  private drop(e: Entry<A>): void {
    e.controller?.abort();
    e.epoch = -1;
  }

  private startDownloads(): void {
    let inFlight = this.entries.filter((e) => e.state === 'fetching').length;
    for (const e of this.entries) {
      if (inFlight >= this.maxInFlight) return;
      if (e.state !== 'waiting') continue;
      inFlight++;
      this.download(e);
    }
  }

  private download(e: Entry<A>): void {
    e.state = 'fetching';
    const controller = new AbortController();
    e.controller = controller;
    const epoch = e.epoch;
    const ctx = { ...this.deps.logContext?.(), messageId: e.chunk.messageId, startIndex: e.chunk.startIndex };
    const load = this.deps.open
      ? this.deps.open(e.url!, controller.signal)
      : this.deps.fetchAudio!(e.url!, controller.signal).then((bytes) => {
          try {
            return this.deps.decode!(bytes);
          } catch (err) {
            throw Object.assign(err instanceof Error ? err : new Error(String(err)), { notAudio: true, bytes: bytes.length });
          }
        });
    load
      .then(
        (audio) => {
          if (e.epoch !== epoch || epoch !== this.epoch) {
            this.counters.lateDownloadsDropped++;
            return;
          }
          e.audio = audio;
          e.state = 'ready';
          this.deps.onReadyLatency?.(this.now() - e.arrivedAt);
        },
        (err: unknown) => {
          if (e.epoch !== epoch || epoch !== this.epoch) {
            this.counters.lateDownloadsDropped++;
            return;
          }
          const notAudio = (err as { notAudio?: boolean })?.notAudio === true || (err as { name?: string })?.name === 'WavError';
          if (notAudio) {
            this.counters.decodeFailures++;
            this.deps.log.error({ ...ctx, err: errorInfo(err) }, 'TTS audio is not playable audio: acknowledged with duration 0');
          } else {
            this.counters.downloadFailures++;
            this.deps.log.error({ ...ctx, err: errorInfo(err) }, 'TTS download failed: acknowledged with duration 0');
          }
          e.state = 'failed';
          this.deps.onClipFailed?.(e.chunk.messageId, notAudio ? 'notAudio' : 'download');
        },
      )
      .finally(() => {
        if (epoch !== this.epoch) return;
        this.startDownloads();
        this.pump();
      });
  }

  /** Hands everything that is resolved, in order, to the sink or acknowledges it. */
  private pump(): void {
    for (const e of [...this.entries]) {
      if (e.state === 'handed' || e.state === 'playing') continue;
      if (e.state === 'waiting' || e.state === 'fetching') break;
      if (e.state === 'none' || e.state === 'failed') {
        // No audio: acknowledged with duration 0 (which keeps the server's flow from hanging) in
        // order. With nothing before it, at once and without touching the player (no stream, no
        // padding frames: no dead air); otherwise as an empty clip, when the clips before it
        // have played.
        this.counters.chunksWithoutAudio++;
        if (this.entries[0] === e) {
          this.deps.playback.chunkStarted(e.chunk.messageId, e.chunk, 0);
          this.remove(e);
          continue;
        }
        this.hand(e, 0, EMPTY_SOURCE, false);
        continue;
      }
      if (e.state === 'ready') this.hand(e, e.audio!.durationSec, this.deps.packets(e.audio!), true);
    }
    this.maybeIdle();
  }

  private hand(e: Entry<A>, durationSec: number, source: PacketSource, speech: boolean): void {
    e.state = 'handed';
    e.audio = undefined; // the source owns the samples now
    const epoch = e.epoch;
    let startedOnce = false;
    let finishedOnce = false;
    const gap = speech && e.chunk.audioGapMs !== undefined && e.chunk.audioGapMs > 0 ? e.chunk.audioGapMs : undefined;
    this.deps.sink.enqueue({
      id: e.id,
      messageId: e.chunk.messageId,
      durationSec,
      ...(gap !== undefined ? { gapMs: gap } : {}),
      source,
      started: () => {
        if (startedOnce || e.epoch !== epoch) return;
        startedOnce = true;
        e.state = 'playing';
        const at = this.now();
        if (durationSec > 0 && this.playingSince === undefined) this.setPlayingSince(at);
        if (speech) {
          this.counters.chunksPlayed++;
          if (e.headOfLine) this.deps.onFirstPacketLatency?.(at - e.arrivedAt);
        }
        this.deps.playback.chunkStarted(e.chunk.messageId, e.chunk, durationSec);
      },
      finished: () => {
        if (finishedOnce || e.epoch !== epoch) return;
        finishedOnce = true;
        this.remove(e);
        if (!this.entries.some((x) => x.state === 'playing' || x.state === 'handed')) this.setPlayingSince(undefined);
        this.pump();
      },
    });
  }

  private remove(e: Entry<A>): void {
    const i = this.entries.indexOf(e);
    if (i >= 0) this.entries.splice(i, 1);
    this.checkDrained(e.chunk.messageId);
  }

  private checkDrained(messageId: string): void {
    if (!this.ended.has(messageId)) return;
    if (this.entries.some((e) => e.chunk.messageId === messageId)) return;
    this.ended.delete(messageId);
    this.deps.playback.drained(messageId);
  }

  /** Tells the sink it has everything there is for now: it may end its stream when it runs dry. */
  private maybeIdle(): void {
    if (this.entries.some((e) => e.state !== 'handed' && e.state !== 'playing')) return;
    this.deps.sink.idle();
  }
}
