/**
 * The object-mode stream of Opus packets the AudioPlayer reads (`StreamType.Opus`), fed clip
 * after clip by the speech queue.
 *
 * Why one stream per run of clips rather than one AudioResource per clip: a resource per clip
 * makes the player go idle between sentences (speaking flag off/on, five padding frames each
 * time), while one continuous stream plays back-to-back sentences without a seam. The stream
 * ends itself only when it runs dry after the queue said `idle()` (nothing else to come for now);
 * the next clip then opens a new stream.
 *
 * Encoding is pulled: `_read` asks the current clip's {@link PacketSource} for a few packets at a
 * time (highWaterMark), so a long sentence is never encoded in one blocking go and an interrupt
 * throws away nothing that was paid for.
 *
 * Clip boundaries are tracked on the READ side (the player takes one packet per 20 ms): the
 * first packet of a clip leaving the stream is "the clip started playing" (→ speechPlaybackStart
 * with its true duration) and its last packet leaving is "finished". A clip without packets
 * starts and finishes when the reader reaches it.
 *
 * Gaps (`replyChunk.audioGapMs`, the item's `gapMs`): a minimum time since the previous clip
 * ended, not an added delay. When a clip with a gap gets its first packet, the time since the
 * previous clip's last packet was taken is measured (zero when that clip is still in the buffer,
 * i.e. back to back) and the missing part is played as Opus silence frames before it. Its start
 * (speechPlaybackStart) is the first real packet, after the gap.
 */
import { Readable } from 'node:stream';
import { OPUS_SILENCE_FRAME } from '../audio/opus.js';
import type { SinkItem } from './speech-queue.js';

/** Duration of one packet. */
const PACKET_MS = 20;

/**
 * Per buffered packet: which clip it belongs to and whether it opens/closes it. A clip without
 * packets gets a mark of its own (`empty`) at its place in the order.
 */
interface Mark {
  item: SinkItem;
  first: boolean;
  last: boolean;
  empty?: boolean;
  /** A silence packet of the gap before `item` (neither its start nor its end). */
  gap?: boolean;
}

export interface ClipStreamOptions {
  /** Packets encoded ahead of the reader. Default 3 (60 ms): enough slack, little to throw away. */
  highWaterMark?: number;
  /** Called when the reader takes the first packet of the stream (latency measurement). */
  onFirstPacket?(): void;
  /** When the previous stream's last clip ended (for the gap of this stream's first clip). */
  lastEndedAt?: number;
  now?: () => number;
}

export class ClipStream extends Readable {
  private readonly clips: SinkItem[] = [];
  /** Clip currently being pulled from (already removed from `clips`). */
  private current: { item: SinkItem; packets: number; waiting: boolean; gapLeft: number; stash: Buffer | undefined } | undefined;
  /** Marks of packets pushed but not yet taken by the reader, in order. */
  private readonly marks: Mark[] = [];
  private wanted = false;
  private endWhenDry = false;
  private ended = false;
  private firstPacketSeen = false;
  private readonly started = new WeakSet<SinkItem>();
  private readonly onFirstPacket: (() => void) | undefined;
  private readonly now: () => number;
  /** When the last clip's last packet finished playing (taken + one packet). */
  private finishedAt: number | undefined;
  /** A clip has started and not finished (its audio is going out now). */
  private midClip = false;
  private gapPackets = 0;

  constructor(opts: ClipStreamOptions = {}) {
    super({ objectMode: true, highWaterMark: opts.highWaterMark ?? 3 });
    this.onFirstPacket = opts.onFirstPacket;
    this.finishedAt = opts.lastEndedAt;
    this.now = opts.now ?? (() => performance.now());
  }

  /** When the audio of this stream last ended: now if a clip is being played, else its last clip's end. */
  lastEndedAt(): number | undefined {
    return this.midClip ? this.now() : this.finishedAt;
  }

  /** Silence packets played for gaps so far. */
  get gapPacketsPlayed(): number {
    return this.gapPackets;
  }

  /** Clips given to the stream and not yet finished (fully taken by the reader), in order. */
  private unfinished(): SinkItem[] {
    const items = new Set<SinkItem>(this.marks.map((m) => m.item));
    if (this.current) items.add(this.current.item);
    for (const c of this.clips) items.add(c);
    return [...items];
  }

  /** Number of clips given to the stream and not yet finished. */
  get pendingClips(): number {
    return this.unfinished().length;
  }

  /** True once `push(null)` happened or the stream was destroyed: no more clips can be added. */
  get isClosed(): boolean {
    return this.ended || this.destroyed;
  }

  /** Appends a clip. Returns false if the stream is already closed (the caller opens a new one). */
  add(item: SinkItem): boolean {
    if (this.isClosed) return false;
    this.endWhenDry = false;
    this.clips.push(item);
    if (this.wanted) this.pump();
    return true;
  }

  /** Nothing more for now: end once everything given has been read. */
  endWhenEmpty(): void {
    if (this.isClosed) return;
    this.endWhenDry = true;
    if (this.wanted) this.pump();
  }

  /** Drops every clip not yet finished (their sources are closed, no callback). Used on stop. */
  discard(): void {
    const items = this.unfinished();
    this.clips.length = 0;
    this.marks.length = 0;
    this.current = undefined;
    for (const item of items) item.source.close();
    if (!this.destroyed) this.destroy();
  }

  /**
   * Playback ended early (player error): every clip not yet finished is reported started and
   * finished, in order, so the replies they belong to can complete; then the stream is destroyed.
   */
  releaseAll(): void {
    const items = this.unfinished();
    this.clips.length = 0;
    this.marks.length = 0;
    this.current = undefined;
    for (const item of items) {
      item.source.close();
      this.start(item);
      item.finished();
    }
    if (this.midClip) this.finishedAt = this.now();
    this.midClip = false;
    if (!this.destroyed) this.destroy();
  }

  override read(size?: number): Buffer | null {
    this.announceEmptyClips();
    const packet = super.read(size) as Buffer | null;
    if (packet) {
      if (!this.firstPacketSeen) {
        this.firstPacketSeen = true;
        this.onFirstPacket?.();
      }
      const mark = this.marks.shift();
      if (mark) {
        if (mark.gap) this.gapPackets++;
        if (mark.first) {
          this.midClip = true;
          this.start(mark.item);
        }
        if (mark.last) {
          this.midClip = false;
          this.finishedAt = this.now() + PACKET_MS;
          mark.item.finished();
        }
      }
      this.announceEmptyClips();
      // Readable asked for more (inside super.read) before this mark was consumed: with nothing
      // left it could not end the stream then, so it is given the chance now.
      if (this.wanted && this.endWhenDry) this.pump();
    }
    return packet;
  }

  private start(item: SinkItem): void {
    if (this.started.has(item)) return;
    this.started.add(item);
    item.started();
  }

  override _read(): void {
    this.wanted = true;
    this.pump();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.wanted = false;
    callback(err);
  }

  /**
   * Empty clips (no audio) whose turn has come — everything before them was taken — are
   * started and finished now, in order.
   */
  private announceEmptyClips(): void {
    while (this.marks[0]?.empty) {
      const { item } = this.marks.shift()!;
      this.start(item);
      item.finished();
    }
  }

  /** How much of `gapMs` has not passed since the previous clip ended (all of it when back to back). */
  private missingGapMs(gapMs: number): number {
    // The previous clip's packets still in the buffer: this one would follow it without a pause.
    if (this.marks.some((m) => !m.gap && !m.empty)) return gapMs;
    if (this.midClip) return gapMs;
    if (this.finishedAt === undefined) return 0;
    return Math.max(0, gapMs - Math.max(0, this.now() - this.finishedAt));
  }

  /** Pulls packets from the clips until the reader has enough. */
  private pump(): void {
    while (this.wanted && !this.isClosed) {
      if (!this.current) {
        const next = this.clips.shift();
        if (!next) {
          this.announceEmptyClips();
          if (this.endWhenDry && this.marks.length === 0) {
            this.ended = true;
            this.wanted = false;
            this.push(null);
          }
          return;
        }
        this.current = { item: next, packets: 0, waiting: false, gapLeft: 0, stash: undefined };
      }
      const cur = this.current;
      if (cur.waiting) return;
      if (cur.gapLeft > 0) {
        cur.gapLeft--;
        this.marks.push({ item: cur.item, first: false, last: false, gap: true });
        this.wanted = this.push(Buffer.from(OPUS_SILENCE_FRAME));
        continue;
      }
      let packet: Buffer | null | undefined;
      if (cur.stash) {
        packet = cur.stash;
        cur.stash = undefined;
      } else {
        try {
          packet = cur.item.source.next();
        } catch {
          // An encoder failure must not kill playback: the clip ends here.
          packet = null;
        }
        if (packet && cur.packets === 0 && (cur.item.gapMs ?? 0) > 0) {
          // Its first packet is here: the gap since the previous clip is what is still missing.
          const missing = this.missingGapMs(cur.item.gapMs!);
          cur.gapLeft = Math.round(missing / PACKET_MS);
          if (cur.gapLeft > 0) {
            cur.stash = packet;
            continue;
          }
        }
      }
      if (packet === undefined) {
        // The clip is still downloading: the player sends silence frames meanwhile (its
        // maxMissedFrames is raised for this); come back when samples arrive.
        if (!cur.item.source.wait) packet = null;
        else {
          cur.waiting = true;
          cur.item.source.wait(() => {
            cur.waiting = false;
            if (this.current === cur && this.wanted) this.pump();
          });
          return;
        }
      }
      if (packet) {
        const mark: Mark = { item: cur.item, first: cur.packets === 0, last: false };
        cur.packets++;
        this.marks.push(mark);
        this.wanted = this.push(packet);
        continue;
      }
      // The clip is exhausted.
      cur.item.source.close();
      this.current = undefined;
      if (cur.packets === 0) {
        // Nothing to play: its turn comes when everything before it was read.
        this.marks.push({ item: cur.item, first: true, last: true, empty: true });
        this.announceEmptyClips();
        continue;
      }
      const lastMark = this.marks.findLast((m) => m.item === cur.item && !m.empty);
      if (lastMark) lastMark.last = true;
      else cur.item.finished();
    }
  }
}
