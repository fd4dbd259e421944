/**
 * Keeps a barge-in's first words.
 *
 * While the character speaks, Voxta may pause its speech recognition (`recordingRequest:false`,
 * the "pause speech recognition during playback" setting) and our audio input then drops what it
 * is given. When a member talks over the character and we stop playback (local barge-in), the
 * recogniser only comes back after our `interrupt` → `speechPlaybackComplete` →
 * `recordingRequest:true` round trip — by then the start of "wait, stop, tell me instead…" is
 * gone. So frames that arrive while the input is not recording are kept in a short rolling window;
 * on a barge-in that window is held (bounded) and replayed, in order, as soon as recording is
 * requested again. Without a barge-in the window is simply discarded: speech made during playback
 * that did not interrupt stays unheard, as Voxta intends.
 */
export interface RecordingInput {
  write(pcm: Int16Array): void;
  readonly enabled: boolean;
}

export interface HeldInputOptions {
  /** Audio kept while not recording, before any barge-in (covers the run that triggered it). Default 1500 ms. */
  recentMs?: number;
  /** Most audio held after a barge-in. Default 10 s. */
  maxHoldMs?: number;
  /** A hold older than this when recording resumes is dropped (the moment has passed). Default 8 s. */
  holdTimeoutMs?: number;
  sampleRate?: number;
  now?: () => number;
}

export class HeldInput {
  private readonly frames: Int16Array[] = [];
  private bufferedSamples = 0;
  private holdingSince: number | undefined;
  private readonly recentSamples: number;
  private readonly maxHoldSamples: number;
  private readonly holdTimeoutMs: number;
  private readonly now: () => number;
  /** Frames replayed after a barge-in (stats). */
  replayedFrames = 0;

  constructor(
    private readonly input: RecordingInput,
    opts: HeldInputOptions = {},
  ) {
    const rate = opts.sampleRate ?? 16000;
    this.recentSamples = Math.round(((opts.recentMs ?? 1500) * rate) / 1000);
    this.maxHoldSamples = Math.round(((opts.maxHoldMs ?? 10_000) * rate) / 1000);
    this.holdTimeoutMs = opts.holdTimeoutMs ?? 8000;
    this.now = opts.now ?? (() => performance.now());
  }

  get holding(): boolean {
    return this.holdingSince !== undefined;
  }

  write(pcm: Int16Array): void {
    if (this.input.enabled) {
      if (this.frames.length > 0) this.resumed();
      this.input.write(pcm);
      return;
    }
    this.frames.push(pcm);
    this.bufferedSamples += pcm.length;
    const cap = this.holdingSince !== undefined ? this.maxHoldSamples : this.recentSamples;
    while (this.bufferedSamples > cap && this.frames.length > 1) {
      if (this.holdingSince !== undefined) {
        // Holding: keep the beginning (the words that interrupted), drop what comes after the cap.
        this.bufferedSamples -= this.frames.pop()!.length;
        break;
      }
      this.bufferedSamples -= this.frames.shift()!.length;
    }
  }

  /** A barge-in happened: keep what was said (from the recent window on) until recording resumes. */
  hold(): void {
    this.holdingSince = this.now();
  }

  /** Recording was requested again: replay a fresh hold into the input, forget anything else. */
  resumed(): void {
    const fresh = this.holdingSince !== undefined && this.now() - this.holdingSince < this.holdTimeoutMs;
    const frames = this.frames.splice(0);
    this.bufferedSamples = 0;
    this.holdingSince = undefined;
    if (!fresh || !this.input.enabled) return;
    for (const f of frames) this.input.write(f);
    this.replayedFrames += frames.length;
  }
}
