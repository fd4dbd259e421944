/**
 * Who said what Voxta recognised. Voxta's `speechRecognition*` messages carry no speaker (and no
 * session id): they describe the one audio input we feed. The floor arbiter knows which member's
 * utterance was on that input when; this maps recognitions back to members.
 *
 * Rule: an utterance "is on air" from its output start time (when the held input delivers its
 * first sample to Voxta's input, which for a held utterance is later than the floor gave it). A
 * `speechRecognitionStart` is attributed to the latest utterance on air at that moment, and the
 * following `speechRecognitionEnd` to the same one. Without a Start, the End is attributed to the
 * latest utterance on air at the End. This survives Voxta splitting one long utterance into two
 * recognitions (both go to the same member) and never shifts the attribution of later utterances
 * when Voxta rejects one (no FIFO to fall out of step).
 */
export interface UtteranceRecord {
  utteranceId: number;
  speakerId: string;
  /** Output-timeline time its first frame went out. */
  startAt: number;
}

export class Attribution {
  private readonly utterances: UtteranceRecord[] = [];
  private pending: UtteranceRecord | undefined;
  private readonly speakers = new Set<string>();

  constructor(private readonly maxKept = 64) {}

  /** Distinct members whose speech was forwarded in this voice session. */
  get distinctSpeakers(): number {
    return this.speakers.size;
  }

  utteranceStarted(u: UtteranceRecord): void {
    this.utterances.push(u);
    this.speakers.add(u.speakerId);
    if (this.utterances.length > this.maxKept) this.utterances.shift();
  }

  /** `speechRecognitionStart` at time `now` (same clock as the arbiter). */
  recognitionStarted(now: number): void {
    this.pending = this.onAir(now);
  }

  /** `speechRecognitionEnd`: the utterance (and so the member) it belongs to, if any. */
  recognitionEnded(now: number): UtteranceRecord | undefined {
    const u = this.pending ?? this.onAir(now);
    this.pending = undefined;
    return u;
  }

  clear(): void {
    this.utterances.length = 0;
    this.pending = undefined;
  }

  private onAir(now: number): UtteranceRecord | undefined {
    for (let i = this.utterances.length - 1; i >= 0; i--) {
      const u = this.utterances[i]!;
      if (u.startAt <= now) return u;
    }
    return this.utterances[0];
  }
}
