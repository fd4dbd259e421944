/**
 * A simulated speech recogniser for one session: an energy VAD over 16 kHz mono s16le audio.
 *
 * Time is counted in 30 ms windows of *received* audio, never by the wall clock, like Voxta's
 * pipeline (which advances per frame): a client that stops sending frames never finalises an
 * utterance. `{"type":"silence","milliseconds":N}` markers count as N ms of silent windows.
 */

export const WINDOW_MS = 30;
export const WINDOW_SAMPLES = 480; // 30 ms at 16 kHz
const WINDOW_BYTES = WINDOW_SAMPLES * 2;
const FIRST_PARTIAL_MS = 300;
const PARTIAL_EVERY_MS = 600;

export interface RecognizerConfig {
  /** RMS in int16 units at or above which a window counts as voice. */
  vadThreshold: number;
  /** Silence after voice that ends an utterance. */
  endSilenceMs: number;
}

export interface RecognizerHandlers {
  /** Voice onset. */
  start(): void;
  /** Voice continues; `voicedMs` so far. */
  partial(voicedMs: number): void;
  /** Enough trailing silence: the utterance spans `voicedMs` (onset to last voiced window). */
  end(voicedMs: number, partials: number): void;
}

export class Recognizer {
  private carry = Buffer.alloc(0);
  private silenceCarryMs = 0;
  private window = 0;
  private onset = -1;
  private lastVoiced = -1;
  private silentRun = 0;
  private nextPartialMs = FIRST_PARTIAL_MS;
  private partials = 0;

  constructor(
    private readonly config: () => RecognizerConfig,
    private readonly handlers: RecognizerHandlers,
  ) {}

  get inUtterance(): boolean {
    return this.onset >= 0;
  }

  /** Feeds raw PCM bytes (any length; odd bytes wait for the next call). */
  pushPcm(bytes: Buffer): void {
    const buf = this.carry.length ? Buffer.concat([this.carry, bytes]) : bytes;
    let offset = 0;
    while (buf.length - offset >= WINDOW_BYTES) {
      this.processWindow(rms(buf, offset, WINDOW_SAMPLES));
      offset += WINDOW_BYTES;
    }
    this.carry = Buffer.from(buf.subarray(offset));
  }

  /** Counts `ms` of silence, as a `silence` marker frame means. */
  pushSilence(ms: number): void {
    this.silenceCarryMs += ms;
    while (this.silenceCarryMs >= WINDOW_MS) {
      this.silenceCarryMs -= WINDOW_MS;
      this.processWindow(0);
    }
  }

  /** Forgets any utterance in progress (transcription paused or session gone). */
  reset(): void {
    this.carry = Buffer.alloc(0);
    this.silenceCarryMs = 0;
    this.endUtterance();
  }

  private processWindow(level: number): void {
    const index = this.window++;
    const { vadThreshold, endSilenceMs } = this.config();
    if (level >= vadThreshold) {
      if (this.onset < 0) {
        this.onset = index;
        this.handlers.start();
      }
      this.lastVoiced = index;
      this.silentRun = 0;
      const voicedMs = this.voicedMs();
      if (voicedMs >= this.nextPartialMs) {
        this.nextPartialMs += PARTIAL_EVERY_MS;
        this.partials++;
        this.handlers.partial(voicedMs);
      }
      return;
    }
    if (this.onset < 0) return;
    this.silentRun++;
    if (this.silentRun * WINDOW_MS >= endSilenceMs) {
      const voicedMs = this.voicedMs();
      const partials = this.partials;
      this.endUtterance();
      this.handlers.end(voicedMs, partials);
    }
  }

  private voicedMs(): number {
    return (this.lastVoiced - this.onset + 1) * WINDOW_MS;
  }

  private endUtterance(): void {
    this.onset = -1;
    this.lastVoiced = -1;
    this.silentRun = 0;
    this.nextPartialMs = FIRST_PARTIAL_MS;
    this.partials = 0;
  }
}

/** Root mean square of `samples` int16 LE samples starting at byte `offset`. */
export function rms(buf: Buffer, offset: number, samples: number): number {
  let sum = 0;
  for (let i = 0; i < samples; i++) {
    const s = buf.readInt16LE(offset + i * 2);
    sum += s * s;
  }
  return Math.sqrt(sum / samples);
}
