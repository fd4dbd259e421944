/**
 * A simulated speech recogniser for one session: an energy VAD over 16 kHz mono s16le audio.
 *
 * Time is counted in 30 ms windows of *received* audio, never by the wall clock, like Voxta's
 * pipeline (which advances per frame): a client that stops sending frames never finalises an
 * utterance. `{"type":"silence","milliseconds":N}` markers count as N ms of silent windows.
 *
 * Whole or cut: the recogniser only hears audio while the session records. An utterance is
 * WHOLE when its onset was preceded by at least {@link WHOLE_LEAD_SILENCE_MS} of silence received
 * while recording (the recogniser saw it begin) and it ended by trailing silence. It is CUT at
 * the start when the voice was already there as recording began (or after less silence than
 * that: the client started streaming mid-word), and CUT at the end when recording stopped while it
 * was still going. Tests use this to assert that nothing of what a member said was lost.
 */

export const WINDOW_MS = 30;
export const WINDOW_SAMPLES = 480; // 30 ms at 16 kHz
const WINDOW_BYTES = WINDOW_SAMPLES * 2;
const FIRST_PARTIAL_MS = 300;
const PARTIAL_EVERY_MS = 600;
/**
 * Silence (received while recording) an onset needs before it to count as the start of the
 * utterance. Three windows: a stream that begins mid-word has at most a frame or two of silence
 * ahead of the voice (the client's clock ticking before its buffer fills), a real onset has more.
 */
export const WHOLE_LEAD_SILENCE_MS = 90;

export type UtteranceCut = 'start' | 'end' | 'both' | null;

export interface UtteranceInfo {
  /** Onset to last voiced window. */
  voicedMs: number;
  partials: number;
  /** Silent audio received (while recording) right before the onset, capped at 10 s. */
  leadSilenceMs: number;
  /** null for a whole utterance. */
  cut: UtteranceCut;
}

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
  /** Enough trailing silence: the utterance ended (`cut` is null or 'start'). */
  end(info: UtteranceInfo): void;
  /** Recording stopped while an utterance was going on (`cut` is 'end' or 'both'). */
  stopped?(info: UtteranceInfo): void;
}

const MAX_LEAD_WINDOWS = Math.ceil(10_000 / WINDOW_MS);

export class Recognizer {
  private carry = Buffer.alloc(0);
  private silenceCarryMs = 0;
  private window = 0;
  private onset = -1;
  private lastVoiced = -1;
  private silentRun = 0;
  private nextPartialMs = FIRST_PARTIAL_MS;
  private partials = 0;
  /** Silent windows received since recording (re)started or since the last voiced window. */
  private silentWindows = 0;
  /** Lead silence of the utterance in progress. */
  private leadWindows = 0;

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

  /**
   * Recording stopped: an utterance in progress is reported as cut at its end (`stopped`), and
   * the recogniser starts afresh (what follows recording again has no lead silence yet).
   */
  stop(): void {
    if (this.onset >= 0) {
      const info = this.info(this.leadWindows * WINDOW_MS < WHOLE_LEAD_SILENCE_MS ? 'both' : 'end');
      this.reset();
      this.handlers.stopped?.(info);
      return;
    }
    this.reset();
  }

  /** Forgets any utterance in progress without reporting it (session gone). */
  reset(): void {
    this.carry = Buffer.alloc(0);
    this.silenceCarryMs = 0;
    this.silentWindows = 0;
    this.endUtterance();
  }

  private processWindow(level: number): void {
    const index = this.window++;
    const { vadThreshold, endSilenceMs } = this.config();
    if (level >= vadThreshold) {
      if (this.onset < 0) {
        this.onset = index;
        this.leadWindows = this.silentWindows;
        this.handlers.start();
      }
      this.silentWindows = 0;
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
    this.silentWindows = Math.min(MAX_LEAD_WINDOWS, this.silentWindows + 1);
    if (this.onset < 0) return;
    this.silentRun++;
    if (this.silentRun * WINDOW_MS >= endSilenceMs) {
      const info = this.info(this.leadWindows * WINDOW_MS < WHOLE_LEAD_SILENCE_MS ? 'start' : null);
      this.endUtterance();
      this.handlers.end(info);
    }
  }

  private info(cut: UtteranceCut): UtteranceInfo {
    return { voicedMs: this.voicedMs(), partials: this.partials, leadSilenceMs: this.leadWindows * WINDOW_MS, cut };
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
    this.leadWindows = 0;
  }
}

/**
 * What a recogniser makes of a sentence it heard only part of: visibly partial, never the
 * scripted sentence itself. Cut at the start → "… " and the last half of the words; at the end →
 * the first half and " …"; both → the middle, between ellipses.
 */
export function partialTranscript(text: string, cut: Exclude<UtteranceCut, null>): string {
  const words = text.trim().split(/\s+/).filter((w) => w.length > 0);
  if (words.length <= 1) {
    const w = words[0] ?? '';
    return cut === 'start' ? `… ${w}` : cut === 'end' ? `${w} …` : `… ${w} …`;
  }
  const keep = Math.ceil(words.length / 2);
  if (cut === 'start') return `… ${words.slice(words.length - keep).join(' ')}`;
  if (cut === 'end') return `${words.slice(0, keep).join(' ')} …`;
  const from = Math.floor((words.length - keep) / 2);
  return `… ${words.slice(from, from + Math.max(1, keep - 1)).join(' ')} …`;
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
