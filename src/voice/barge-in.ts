/**
 * Local barge-in detection: a member talking over the character.
 *
 * While the character's speech is playing, each member's voiced frames (from the uplink's VAD)
 * are accumulated into a continuous run; a run of at least `bargeInMinMs` that happens after
 * `bargeInGraceMs` since playback started is a barge-in (once per run of playback). Short
 * noises, a cough, or the tail of the member's own previous sentence right as the reply starts
 * (the grace period) do not count.
 *
 * Modes (`BARGE_IN`): `off` never fires (Voxta's own `interruptSpeech` is still obeyed),
 * `anyone` fires for any listened-to member, `floor` only for the member being answered (the one
 * whose utterance triggered this reply).
 *
 * Pure: the clock is injected; GuildVoice does the stopping.
 */
import type { BargeInMode } from '../config.js';

export interface BargeInOptions {
  mode: BargeInMode;
  /** Continuous voice needed to interrupt. */
  minMs: number;
  /** Voice in the first `graceMs` of playback is ignored. */
  graceMs: number;
  now?: () => number;
}

export class BargeInDetector {
  private playingSince: number | undefined;
  private fired = false;
  private answering: string | undefined;
  private readonly runs = new Map<string, { since: number; last: number }>();
  private readonly now: () => number;

  constructor(private opts: BargeInOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  get mode(): BargeInMode {
    return this.opts.mode;
  }

  /** Another mode from now on (the server's setting changed); a run in progress starts over. */
  setMode(mode: BargeInMode): void {
    this.opts = { ...this.opts, mode };
    this.runs.clear();
  }

    /** The member the current reply answers (for `floor` mode); undefined when unknown (text turn). */
  setAnswering(userId: string | undefined): void {
    this.answering = userId;
  }

  /** Playback of the character's speech started (or goes on) since `at`; undefined = silent. */
  setPlayback(since: number | undefined): void {
    if (since === undefined) {
      this.playingSince = undefined;
      this.fired = false;
      this.runs.clear();
      return;
    }
    if (this.playingSince !== since) {
      this.playingSince = since;
      this.fired = false;
      this.runs.clear();
    }
  }

  /**
   * One VAD decision for a member's frame. Returns true exactly when this frame completes a
   * barge-in (the caller stops playback and sends `interrupt`).
   */
  frame(userId: string, voiced: boolean): boolean {
    const now = this.now();
    if (this.opts.mode === 'off' || this.playingSince === undefined || this.fired) return false;
    if (this.opts.mode === 'floor' && userId !== this.answering) return false;
    if (!voiced) {
      this.runs.delete(userId);
      return false;
    }
    if (now - this.playingSince < this.opts.graceMs) return false;
    let run = this.runs.get(userId);
    // A gap of more than 100 ms between voiced frames (lost packets aside) starts a new run.
    if (!run || now - run.last > 100) {
      run = { since: now, last: now };
      this.runs.set(userId, run);
    }
    run.last = now;
    // The frame itself lasts 20 ms: a run covering minMs of audio is reached at since + minMs - 20.
    if (now - run.since + 20 >= this.opts.minMs) {
      this.fired = true;
      return true;
    }
    return false;
  }
}
