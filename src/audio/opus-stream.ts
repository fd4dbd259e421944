/**
 * An object-mode Readable of 20 ms Opus packets for `createAudioResource(stream, { inputType:
 * StreamType.Opus })`, fed with PCM as it arrives (one TTS chunk after another, any rate).
 *
 * Encoding is lazy: `write()` only queues PCM; packets are encoded when the consumer reads
 * (the audio player reads one per 20 ms, and the stream keeps `highWaterMark` packets ready).
 * So a long chunk never blocks the event loop in one go, and `abort()` throws away queued PCM
 * without having paid for encoding it.
 */
import { Readable } from 'node:stream';
import { SpeechEncoder, type SpeechEncoderOptions } from './speech-encoder.js';

export interface OpusPacketStreamOptions extends SpeechEncoderOptions {
  /** Packets kept encoded ahead of the reader. Default 5 (100 ms). */
  highWaterMark?: number;
}

interface PendingPcm {
  pcm: Int16Array;
  rate: number;
  channels: number;
}

export class OpusPacketStream extends Readable {
  private readonly encoder: SpeechEncoder;
  private readonly pending: PendingPcm[] = [];
  private readonly ready: Buffer[] = [];
  private finishing = false;
  private finished = false;
  private wanted = false;
  private aborted = false;
  private rate: number;
  private channels: number;
  /** Seconds of PCM accepted by write(). */
  writtenSec = 0;

  constructor(opts: OpusPacketStreamOptions) {
    super({ objectMode: true, highWaterMark: opts.highWaterMark ?? 5 });
    this.encoder = new SpeechEncoder(opts);
    this.rate = opts.inputRate;
    this.channels = opts.inputChannels ?? 1;
  }

  /** Seconds of audio encoded so far. */
  get encodedSec(): number {
    return this.encoder.durationSec;
  }

  get isAborted(): boolean {
    return this.aborted;
  }

  /**
   * Queues interleaved PCM. `rate`/`channels` default to the previous write's (or the
   * constructor's). Ignored after finish() or abort().
   */
  write(pcm: Int16Array, rate = this.rate, channels = this.channels): void {
    if (this.finishing || this.aborted || this.destroyed) return;
    if (!Number.isInteger(channels) || channels < 1 || channels > 32) throw new RangeError(`channels must be 1..32, got ${channels}`);
    if (!Number.isInteger(rate) || rate < 1000 || rate > 768_000) throw new RangeError(`sample rate out of range: ${rate}`);
    if (pcm.length % channels !== 0) throw new RangeError(`PCM length ${pcm.length} is not a multiple of ${channels} channels`);
    this.rate = rate;
    this.channels = channels;
    if (pcm.length === 0) return;
    this.writtenSec += pcm.length / channels / rate;
    this.pending.push({ pcm, rate, channels });
    if (this.wanted) this.pump();
  }

  /** No more PCM: the stream ends after the last packet (padded, encoder look-ahead flushed). */
  finish(): void {
    if (this.finishing || this.aborted || this.destroyed) return;
    this.finishing = true;
    if (this.wanted) this.pump();
  }

  /** Stops at once: queued PCM and packets are discarded and the stream is destroyed. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.pending.length = 0;
    this.ready.length = 0;
    this.encoder.destroy();
    this.destroy();
  }

  /** After abort() nothing more comes out, not even a packet already buffered by the Readable. */
  override read(size?: number): unknown {
    if (this.aborted) return null;
    return super.read(size);
  }

  override _read(): void {
    this.wanted = true;
    this.pump();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Normal end or destroy() by the consumer: free the codec (idempotent) and drop leftovers.
    this.pending.length = 0;
    this.ready.length = 0;
    this.encoder.destroy();
    callback(err);
  }

  /** Encodes just enough to satisfy the reader. */
  private pump(): void {
    while (this.wanted && !this.aborted) {
      const packet = this.ready.shift();
      if (packet) {
        this.wanted = this.push(packet);
        continue;
      }
      const next = this.pending[0];
      if (next) {
        this.ready.push(...this.encoder.setInputFormat(next.rate, next.channels));
        // At most ~20 ms of input per step, so one read never encodes a whole chunk.
        const step = Math.max(1, Math.round(next.rate / 50)) * next.channels;
        if (next.pcm.length <= step) {
          this.pending.shift();
          this.ready.push(...this.encoder.push(next.pcm));
        } else {
          this.ready.push(...this.encoder.push(next.pcm.subarray(0, step)));
          next.pcm = next.pcm.subarray(step);
        }
        continue;
      }
      if (this.finishing && !this.finished) {
        this.finished = true;
        this.ready.push(...this.encoder.end());
        continue;
      }
      if (this.finished) {
        this.wanted = false;
        this.encoder.destroy();
        this.push(null);
      }
      return;
    }
  }
}

/** Convenience: an Opus packet stream for one utterance. */
export function createOpusPacketStream(opts: OpusPacketStreamOptions): OpusPacketStream {
  return new OpusPacketStream(opts);
}
