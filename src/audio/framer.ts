/**
 * Cuts a stream of arbitrary-size PCM chunks into fixed-size frames: 960-byte frames for Voxta's
 * audio socket (30 ms at 16 kHz mono), 3840-byte frames for 20 ms of 48 kHz stereo, etc.
 *
 * Only the partial frame is buffered (a fixed `frameBytes` scratch); whole frames are returned
 * as fresh copies, so the caller may keep them.
 */

export interface PcmFramerOptions {
  /**
   * Bound on the frames kept by {@link PcmFramer.pushQueued} (the oldest is dropped and counted in
   * `droppedFrames`). {@link PcmFramer.push} itself never keeps more than one partial frame.
   */
  maxQueuedFrames?: number;
}

export class PcmFramer {
  readonly frameBytes: number;
  private readonly partial: Uint8Array;
  private partialLen = 0;
  private readonly queue: Buffer[] = [];
  private readonly maxQueued: number;
  /** Frames dropped because the queue bound was hit. */
  droppedFrames = 0;

  constructor(frameBytes: number, opts: PcmFramerOptions = {}) {
    if (!Number.isInteger(frameBytes) || frameBytes <= 0) throw new RangeError(`frameBytes must be a positive integer, got ${frameBytes}`);
    this.frameBytes = frameBytes;
    this.partial = new Uint8Array(frameBytes);
    this.maxQueued = opts.maxQueuedFrames ?? Infinity;
  }

  /** Bytes waiting for a frame to complete. */
  get pendingBytes(): number {
    return this.partialLen;
  }

  /** Adds a chunk; returns the frames it completed (possibly none). */
  push(chunk: Uint8Array | Int16Array): Buffer[] {
    const bytes = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const fb = this.frameBytes;
    const frames: Buffer[] = [];
    let at = 0;
    const n = bytes.length;
    if (this.partialLen > 0) {
      const take = Math.min(fb - this.partialLen, n);
      this.partial.set(bytes.subarray(0, take), this.partialLen);
      this.partialLen += take;
      at = take;
      if (this.partialLen === fb) {
        frames.push(Buffer.from(this.partial));
        this.partialLen = 0;
      }
    }
    while (n - at >= fb) {
      frames.push(Buffer.from(bytes.subarray(at, at + fb)));
      at += fb;
    }
    if (at < n) {
      this.partial.set(bytes.subarray(at), this.partialLen);
      this.partialLen += n - at;
    }
    return frames;
  }

  /** Like push, but keeps the frames in an internal bounded queue read with {@link shift}. */
  pushQueued(chunk: Uint8Array | Int16Array): void {
    for (const f of this.push(chunk)) {
      this.queue.push(f);
      if (this.queue.length > this.maxQueued) {
        this.queue.shift();
        this.droppedFrames++;
      }
    }
  }

  /** Next queued frame, if any. */
  shift(): Buffer | undefined {
    return this.queue.shift();
  }

  get queuedFrames(): number {
    return this.queue.length;
  }

  /**
   * Ends the stream: returns the last partial frame, zero-padded to a whole frame when
   * `padWithZeros` (else as it is), or undefined when nothing is pending. Clears the partial frame.
   */
  flush(padWithZeros = true): Buffer | undefined {
    if (this.partialLen === 0) return undefined;
    const len = this.partialLen;
    this.partialLen = 0;
    if (!padWithZeros) return Buffer.from(this.partial.subarray(0, len));
    const out = Buffer.alloc(this.frameBytes);
    out.set(this.partial.subarray(0, len));
    return out;
  }

  /** Drops everything pending (partial frame and queue). */
  clear(): void {
    this.partialLen = 0;
    this.queue.length = 0;
  }
}

/** Frame size in bytes for `ms` milliseconds of 16-bit PCM. */
export function frameBytesFor(sampleRate: number, channels: number, ms: number): number {
  const samples = (sampleRate * ms) / 1000;
  if (!Number.isInteger(samples)) throw new RangeError(`${ms} ms at ${sampleRate} Hz is not a whole number of samples`);
  return samples * channels * 2;
}

/** Voxta audio socket frame: 30 ms of 16 kHz mono s16le. */
export const VOXTA_FRAME_BYTES = 960;
/** One 20 ms Opus frame of 48 kHz stereo s16le. */
export const OPUS_FRAME_BYTES_48K_STEREO = 3840;
