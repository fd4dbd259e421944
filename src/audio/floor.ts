/**
 * Floor arbitration: many Discord speakers, one Voxta audio input.
 *
 * Voxta has a single speech-input stream per session, so the voices of several members cannot be
 * sent at once without the recogniser hearing a mix it cannot transcribe or attribute. The
 * arbiter gives the floor to one speaker at a time: a member takes it with their first voiced
 * frame and keeps it until their end of utterance (`endOfUtteranceMs` without voice) plus
 * `floorHangoverMs`. Anyone who speaks meanwhile is buffered (bounded, counted when the bound is
 * hit) and forwarded afterwards, utterance by utterance, in the order they started.
 *
 * Time: the arbiter keeps an "output timeline" — forwarded audio is assumed to be played out to
 * the recogniser at real time, one frame after another (that is what the Voxta audio input does).
 * A buffered utterance forwarded in one burst therefore occupies the output for its length, and
 * the next speaker only gets the floor once that audio and `endOfUtteranceMs` of silence after it
 * have gone out, so the recogniser sees a clean pause between speakers.
 *
 * Pure: speaker ids are opaque strings, the clock is injected, output goes to one callback.
 */

export interface FloorOptions {
  /** No voice for this long ends an utterance. Default 700 ms. */
  endOfUtteranceMs?: number;
  /** The floor stays reserved for the last speaker this much longer. Default 200 ms. */
  floorHangoverMs?: number;
  /** Duration of one frame. Default 20 ms. */
  frameMs?: number;
  /** Buffered audio kept per waiting speaker. Default 15 s. */
  maxBufferedMsPerSpeaker?: number;
  /** Buffered audio kept across all waiting speakers. Default 30 s. */
  maxBufferedMsTotal?: number;
  /** Unvoiced frames kept before an utterance so its onset is not clipped. Default 3. */
  preRollFrames?: number;
  /** Milliseconds since an arbitrary origin. Default `performance.now()`. */
  now?: () => number;
}

export type FloorEvent =
  /**
   * `speakerId` now holds the floor; the frames that follow are theirs. `at` is on the output
   * timeline; `liveAt` is when the speaker actually began (earlier than `at` for a buffered one).
   */
  | { type: 'utteranceStart'; speakerId: string; utteranceId: number; at: number; liveAt: number; buffered: boolean }
  /** Forward this frame to the recogniser. */
  | { type: 'frame'; speakerId: string; utteranceId: number; pcm: Int16Array; voiced: boolean }
  /** The utterance ended (its audio has been forwarded, followed by `endOfUtteranceMs` of silence). */
  | { type: 'utteranceEnd'; speakerId: string; utteranceId: number; at: number; voicedMs: number; frames: number }
  /** A waiting speaker's buffer hit its bound; this frame was dropped (first drop of an utterance only). */
  | { type: 'overflow'; speakerId: string; utteranceId: number };

export interface FloorStats {
  framesIn: number;
  framesForwarded: number;
  framesBuffered: number;
  /** Frames dropped because a buffer bound was hit. */
  overflowFrames: number;
  /** Utterances whose buffer hit a bound at least once. */
  overflows: number;
  utterances: number;
  bufferedUtterances: number;
}

interface Frame {
  pcm: Int16Array;
  voiced: boolean;
}

/** An utterance waiting for the floor. */
interface Pending {
  utteranceId: number;
  speakerId: string;
  /** Live time of its first voiced frame. */
  startedAt: number;
  frames: Frame[];
  /** Live time of the last voiced frame received. */
  lastVoiceAt: number;
  /** The speaker stopped talking (live) — the utterance will get no more frames. */
  closed: boolean;
  overflowed: boolean;
}

interface Holder {
  utteranceId: number;
  speakerId: string;
  /** Output-timeline time at which the last voiced frame finished playing out. */
  lastVoicedOut: number;
  voicedFrames: number;
  frames: number;
  /** `utteranceEnd` was emitted; the floor is in hangover until `releaseAt`. */
  ended: boolean;
  releaseAt: number;
}

export class FloorArbiter {
  private readonly eouMs: number;
  private readonly hangoverMs: number;
  private readonly frameMs: number;
  private readonly maxPerSpeaker: number;
  private readonly maxTotal: number;
  private readonly preRollFrames: number;
  private readonly now: () => number;

  private holder: Holder | undefined;
  private readonly waiting: Pending[] = [];
  /** Recent unvoiced frames per speaker, with their arrival time (stale ones are not used). */
  private readonly preRoll = new Map<string, { frame: Frame; at: number }[]>();
  private bufferedFrames = 0;
  private outputBusyUntil = -Infinity;
  private nextUtteranceId = 1;
  private readonly counters: FloorStats = {
    framesIn: 0,
    framesForwarded: 0,
    framesBuffered: 0,
    overflowFrames: 0,
    overflows: 0,
    utterances: 0,
    bufferedUtterances: 0,
  };

  constructor(
    private readonly emit: (event: FloorEvent) => void,
    opts: FloorOptions = {},
  ) {
    this.eouMs = opts.endOfUtteranceMs ?? 700;
    this.hangoverMs = opts.floorHangoverMs ?? 200;
    this.frameMs = opts.frameMs ?? 20;
    this.maxPerSpeaker = Math.max(1, Math.floor((opts.maxBufferedMsPerSpeaker ?? 15_000) / this.frameMs));
    this.maxTotal = Math.max(1, Math.floor((opts.maxBufferedMsTotal ?? 30_000) / this.frameMs));
    this.preRollFrames = Math.max(0, opts.preRollFrames ?? 3);
    this.now = opts.now ?? (() => performance.now());
  }

  /** The speaker holding the floor (also during the hangover), if any. */
  get floorHolder(): string | undefined {
    return this.holder?.speakerId;
  }

  /** True while the holder's utterance is running (not in hangover). */
  get speaking(): boolean {
    return this.holder !== undefined && !this.holder.ended;
  }

  /** Speakers with buffered utterances, in the order they will get the floor. */
  get queue(): string[] {
    return this.waiting.map((p) => p.speakerId);
  }

  stats(): FloorStats {
    return { ...this.counters, framesBuffered: this.bufferedFrames };
  }

  /** One decoded frame from a speaker, with its VAD decision. */
  push(speakerId: string, pcm: Int16Array, voiced: boolean): void {
    const now = this.now();
    this.counters.framesIn++;
    this.advance(now);
    const frame: Frame = { pcm, voiced };
    const holder = this.holder;

    if (holder && holder.speakerId === speakerId && !holder.ended) {
      this.forward(holder, frame, now);
      return;
    }

    const open = this.openPendingOf(speakerId);
    if (open) {
      this.buffer(open, frame, now);
      return;
    }

    if (!voiced) {
      this.rememberPreRoll(speakerId, frame, now);
      return;
    }

    // A new utterance begins.
    const preRoll = this.takePreRoll(speakerId, now);
    const floorFree = !this.holder || (this.holder.speakerId === speakerId && this.holder.ended);
    if (floorFree && this.waiting.length === 0) {
      const h = this.grant(speakerId, this.nextUtteranceId++, now, now, false);
      for (const f of preRoll) this.forward(h, f, now);
      this.forward(h, frame, now);
      return;
    }
    const pending: Pending = {
      utteranceId: this.nextUtteranceId++,
      speakerId,
      startedAt: now,
      frames: [],
      lastVoiceAt: now,
      closed: false,
      overflowed: false,
    };
    this.waiting.push(pending);
    this.counters.bufferedUtterances++;
    for (const f of preRoll) this.buffer(pending, f, now);
    this.buffer(pending, frame, now);
  }

  /** Advances time: ends utterances, releases the floor, hands it to the next waiting speaker. Call every frame or so. */
  tick(): void {
    this.advance(this.now());
  }

  /** Forgets a speaker (they left): their waiting audio is dropped, the floor is released if theirs. */
  removeSpeaker(speakerId: string): void {
    this.preRoll.delete(speakerId);
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const p = this.waiting[i]!;
      if (p.speakerId === speakerId) {
        this.bufferedFrames -= p.frames.length;
        this.waiting.splice(i, 1);
      }
    }
    const h = this.holder;
    if (h?.speakerId === speakerId && !h.ended) {
      this.endHolder(h, this.now());
      // A speaker who leaves mid-sentence has not been silent for an end of utterance yet: keep the
      // floor until they would have been, or the next speaker's words join theirs in one recognition.
      h.releaseAt = Math.max(h.releaseAt, h.lastVoicedOut + this.eouMs + this.hangoverMs);
    }
    this.advance(this.now());
  }

  private advance(now: number): void {
    // Waiting speakers who went quiet (live) have finished their utterance.
    for (const p of this.waiting) {
      if (!p.closed && now - p.lastVoiceAt >= this.eouMs) p.closed = true;
    }
    // Loop: several hand-overs can become due at once after a long gap between ticks.
    for (;;) {
      const h = this.holder;
      if (h && !h.ended && now >= h.lastVoicedOut + this.eouMs) this.endHolder(h, now);
      if (this.holder && this.holder.ended && now >= this.holder.releaseAt) this.holder = undefined;
      if (this.holder || this.waiting.length === 0) return;
      const next = this.waiting.shift()!;
      this.bufferedFrames -= next.frames.length;
      const holder = this.grant(next.speakerId, next.utteranceId, now, next.startedAt, true);
      for (const f of next.frames) this.forward(holder, f, now);
      // A closed utterance whose voice ended long ago (live) still ends by the output timeline.
      if (holder.voicedFrames === 0) holder.lastVoicedOut = Math.max(now, this.outputBusyUntil);
    }
  }

  private grant(speakerId: string, utteranceId: number, now: number, liveAt: number, buffered: boolean): Holder {
    const holder: Holder = {
      utteranceId,
      speakerId,
      lastVoicedOut: now,
      voicedFrames: 0,
      frames: 0,
      ended: false,
      releaseAt: Infinity,
    };
    this.holder = holder;
    this.counters.utterances++;
    this.emit({ type: 'utteranceStart', speakerId, utteranceId, at: Math.max(now, this.outputBusyUntil), liveAt, buffered });
    return holder;
  }

  private endHolder(h: Holder, now: number): void {
    h.ended = true;
    h.releaseAt = now + this.hangoverMs;
    this.emit({
      type: 'utteranceEnd',
      speakerId: h.speakerId,
      utteranceId: h.utteranceId,
      at: now,
      voicedMs: h.voicedFrames * this.frameMs,
      frames: h.frames,
    });
  }

  private forward(h: Holder, frame: Frame, now: number): void {
    this.outputBusyUntil = Math.max(this.outputBusyUntil, now) + this.frameMs;
    h.frames++;
    if (frame.voiced) {
      h.voicedFrames++;
      h.lastVoicedOut = this.outputBusyUntil;
    }
    this.counters.framesForwarded++;
    this.emit({ type: 'frame', speakerId: h.speakerId, utteranceId: h.utteranceId, pcm: frame.pcm, voiced: frame.voiced });
  }

  private buffer(p: Pending, frame: Frame, now: number): void {
    if (frame.voiced) p.lastVoiceAt = now;
    const mine = this.bufferedOf(p.speakerId);
    if (mine >= this.maxPerSpeaker || this.bufferedFrames >= this.maxTotal) {
      this.counters.overflowFrames++;
      if (!p.overflowed) {
        p.overflowed = true;
        this.counters.overflows++;
        this.emit({ type: 'overflow', speakerId: p.speakerId, utteranceId: p.utteranceId });
      }
      return;
    }
    p.frames.push(frame);
    this.bufferedFrames++;
  }

  private bufferedOf(speakerId: string): number {
    let n = 0;
    for (const p of this.waiting) if (p.speakerId === speakerId) n += p.frames.length;
    return n;
  }

  private openPendingOf(speakerId: string): Pending | undefined {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const p = this.waiting[i]!;
      if (p.speakerId === speakerId) return p.closed ? undefined : p;
    }
    return undefined;
  }

  private rememberPreRoll(speakerId: string, frame: Frame, now: number): void {
    if (this.preRollFrames === 0) return;
    let ring = this.preRoll.get(speakerId);
    if (!ring) {
      ring = [];
      this.preRoll.set(speakerId, ring);
    }
    ring.push({ frame, at: now });
    if (ring.length > this.preRollFrames) ring.shift();
  }

  /** The pre-roll frames that immediately precede `now` (older ones belong to an earlier sound). */
  private takePreRoll(speakerId: string, now: number): Frame[] {
    const ring = this.preRoll.get(speakerId) ?? [];
    this.preRoll.delete(speakerId);
    const oldest = now - (this.preRollFrames + 2) * this.frameMs;
    return ring.filter((e) => e.at >= oldest).map((e) => e.frame);
  }
}
