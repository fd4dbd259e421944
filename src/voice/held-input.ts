/**
 * No utterance lost between turns: members' utterances, as the floor arbiter forwards them, on
 * their way to Voxta's audio input.
 *
 * Voxta only hears what arrives while it records. It stops recording when a reply starts
 * producing speech (`recordingRequest:false`, the "pause speech recognition during playback"
 * setting) and starts again after that reply's `speechPlaybackComplete`; before its first
 * `recordingRequest` of a chat it does not record either while the character speaks first. A
 * member who starts talking in those windows — typically right after the reply's text appeared
 * while its speech is still being synthesised — used to lose their words: streamed into a
 * recogniser that was not listening, or (after a local barge-in) replayed from a short rolling
 * window that began mid-word. So audio is kept per UTTERANCE here:
 *
 * - An utterance that starts while Voxta records is written through at once (live).
 * - One that starts while Voxta does not record and the character is NOT audibly speaking (the
 *   reply's text is out but its speech has not started, or Voxta waits for the playback to
 *   complete, or the gap between two clips) is HELD from its first frame and delivered in full,
 *   after a little silent pre-roll so the recogniser sees its onset, once Voxta records again.
 * - One that starts while the character IS audibly speaking is TENTATIVE: if it triggers a
 *   barge-in (or is still going on when Voxta records again) it is delivered in full like a held
 *   one; if it ends before either, it is dropped — speech over the character that does not
 *   interrupt it stays Voxta's decision.
 * - One that was being delivered when recording stopped (Voxta cancels what it was hearing) is
 *   delivered again from its start (or from after its last recognised part) when recording
 *   resumes.
 *
 * Delivery is paced: held audio is written only while the input has less than `leadMs` queued,
 * so what has not gone out yet stays here (and survives recording stopping again mid-replay)
 * instead of being cleared, unsent, from the input's buffer. Consecutive held utterances are
 * separated by `separatorMs` of silence so the recogniser does not join them.
 *
 * Storage: 16 kHz mono PCM in 480-sample (30 ms, 960-byte) blocks, the Voxta frame size; at most
 * `maxHeldMs` (15 s) waiting for Voxta, `hardCapMs` in all. What cannot be delivered — over the
 * bound, held longer than `maxAgeMs`, the session gone, or cut by recording stopping when it was
 * too long to keep — is reported once per utterance through `onUnheard` (counted and shown as
 * "not heard"). Pure: no Discord, no Voxta; the clock and the timer are injectable.
 */

/** The Voxta audio input as this module uses it. */
export interface HeldInputPort {
  write(pcm: Int16Array): void;
  /** Bytes written and not yet sent (dropped unsent when recording stops). */
  readonly bufferedBytes: number;
  /** Bytes of written audio sent so far (monotonic). */
  readonly speechBytesSent: number;
  /**
   * When the input's current stream began (undefined: not streaming). An utterance that starts
   * within the pre-roll of it gets the pre-roll too: the recogniser has heard too little silence
   * yet to see its onset. Without this method the stream is taken as long established.
   */
  streamingSince?(): number | undefined;
}

/** Which utterance a frame belongs to (from the floor arbiter), and whether it is voiced. */
export interface FrameMeta {
  utteranceId: number;
  speakerId: string;
  /** Default true. */
  voiced?: boolean;
}

export type UnheardReason = 'bound' | 'expired' | 'session' | 'cut';

export interface UtteranceOnAir {
  utteranceId: number;
  speakerId: string;
  /** When its first sample plays out to the recogniser (same clock as `now`). */
  at: number;
  /** It waited (held) before delivery. */
  held: boolean;
}

export interface UnheardUtterance {
  utteranceId: number;
  speakerId: string;
  reason: UnheardReason;
  /** Audio of it that was kept (ms). */
  ms: number;
}

export interface HeldInputOptions {
  input: HeldInputPort;
  /** Voxta records now: audio written to the input reaches its recogniser. */
  listening(): boolean;
  /** Audio waiting for Voxta to record again, at most. Default 15 s. */
  maxHeldMs?: number;
  /** A held utterance not delivered after this long is given up. Default 60 s. */
  maxAgeMs?: number;
  /** Silence written before a held utterance so its onset is heard. Default 150 ms. */
  preRollMs?: number;
  /** Silence between consecutive delivered utterances (the recogniser's end of utterance). Default 700 ms. */
  separatorMs?: number;
  /** Held audio is written while the input has less than this queued. Default 200 ms. */
  leadMs?: number;
  /** Everything kept (held, being delivered, kept for a re-delivery), at most. Default 45 s. */
  hardCapMs?: number;
  /** How long a barge-in marks its speaker's utterance in progress. Default 30 s. */
  bargeInMarkMs?: number;
  sampleRate?: number;
  now?: () => number;
  /** Runs `fn` after `ms`; returns a cancel function. Default: an unref'd setTimeout. */
  schedule?: (fn: () => void, ms: number) => () => void;
  onAir?(u: UtteranceOnAir): void;
  onUnheard?(u: UnheardUtterance): void;
}

export interface HeldInputStats {
  /** Utterances that had to wait for Voxta (held, promoted or re-delivered). */
  utterancesHeld: number;
  /** Of those, delivered in full. */
  utterancesDeliveredLate: number;
  /** Audio delivered after waiting (ms). */
  heldMsDelivered: number;
  /** Utterances that could not be delivered. */
  utterancesUnheard: number;
  /** Utterances over the character's speech, without barge-in, that Voxta did not hear (its decision). */
  utterancesIgnored: number;
  /** Audio kept now (ms). */
  heldMs: number;
}

const BLOCK = 480;

type ItemState = 'deliver' | 'tentative' | 'dropped';

interface Item {
  id: number;
  speakerId: string;
  state: ItemState;
  blocks: Int16Array[];
  /** Samples stored (the last block may be partly filled). Positions below are sample indexes. */
  samples: number;
  /** Up to here Voxta has recognised it: never delivered again. */
  skip: number;
  /** Where the delivery in progress began. */
  from: number;
  /** Next sample to write to the input. */
  written: number;
  /** Just after its last voiced frame (a remainder without voice is not worth delivering again). */
  voicedEnd: number;
  /** When its last written sample plays out. */
  lastOutAt: number;
  ended: boolean;
  /** Pre-roll silence goes before its first sample. */
  needsPreRoll: boolean;
  /** Since when it waits for Voxta to record (expiry); undefined while deliverable at once. */
  waitingSince: number | undefined;
  /** It had to wait at some point. */
  wasHeld: boolean;
  /** Its blocks from the start are all kept (a re-delivery is possible). */
  rewindable: boolean;
  /** Input sent-counter value at which sample `from` goes out; undefined before its delivery began. */
  startMark: number | undefined;
  /** Sent-counter value at which its last sample has gone out (set once ended and fully written). */
  endMark: number | undefined;
}

export class HeldInput {
  private readonly input: HeldInputPort;
  private readonly rate: number;
  private readonly maxHeld: number;
  private readonly hardCap: number;
  private readonly maxAgeMs: number;
  private readonly preRoll: number;
  private readonly separator: number;
  private readonly leadBytes: number;
  private readonly bargeInMarkMs: number;
  private readonly now: () => number;
  private readonly schedule: (fn: () => void, ms: number) => () => void;
  /** In delivery order. */
  private items: Item[] = [];
  /** The utterance the floor forwards now. */
  private current: Item | undefined;
  private stored = 0;
  private wasListening = false;
  /** When the last delivered utterance's last sample plays out (to size the separator). */
  private lastEndOutAt = -Infinity;
  private readonly runs: Array<{ start: number; end: number | undefined }> = [];
  private readonly bargeIns: Array<{ speakerId: string; at: number }> = [];
  private cancelTimer: (() => void) | undefined;
  private closed = false;
  private readonly counters = { utterancesHeld: 0, utterancesDeliveredLate: 0, heldSamplesDelivered: 0, utterancesUnheard: 0, utterancesIgnored: 0 };

  constructor(private readonly opts: HeldInputOptions) {
    this.input = opts.input;
    this.rate = opts.sampleRate ?? 16000;
    const samples = (ms: number): number => Math.round((ms * this.rate) / 1000);
    this.maxHeld = samples(opts.maxHeldMs ?? 15_000);
    this.hardCap = Math.max(this.maxHeld, samples(opts.hardCapMs ?? 45_000));
    this.maxAgeMs = opts.maxAgeMs ?? 60_000;
    this.preRoll = samples(opts.preRollMs ?? 150);
    this.separator = samples(opts.separatorMs ?? 700);
    this.leadBytes = samples(opts.leadMs ?? 200) * 2;
    this.bargeInMarkMs = opts.bargeInMarkMs ?? 30_000;
    this.now = opts.now ?? (() => performance.now());
    this.schedule =
      opts.schedule ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref?.();
        return () => clearTimeout(t);
      });
  }

  stats(): HeldInputStats {
    const { heldSamplesDelivered, ...rest } = this.counters;
    return { ...rest, heldMsDelivered: Math.round((heldSamplesDelivered * 1000) / this.rate), heldMs: Math.round((this.stored * 1000) / this.rate) };
  }

  // ---- what the voice pipeline tells us ---------------------------------------------------

  /** The character's speech is audible since `since` (undefined: silent). */
  setPlayback(since: number | undefined): void {
    const open = this.runs.at(-1);
    const isOpen = open !== undefined && open.end === undefined;
    if (since === undefined) {
      if (isOpen) open.end = this.now();
      return;
    }
    if (isOpen && open.start === since) return;
    if (isOpen) open.end = since;
    this.runs.push({ start: since, end: undefined });
    if (this.runs.length > 16) this.runs.shift();
  }

  /** The floor gave `speakerId` the floor; they began speaking (live) at `liveAt`. */
  utteranceStarted(u: { utteranceId: number; speakerId: string; liveAt: number }): void {
    if (this.closed) return;
    if (this.current && !this.current.ended) this.utteranceEnded(this.current.id);
    const now = this.now();
    const listening = this.checkListening();
    let state: ItemState = 'deliver';
    if (!listening && this.audibleAt(u.liveAt) && !this.bargedIn(u.speakerId, u.liveAt)) state = 'tentative';
    const item: Item = {
      id: u.utteranceId,
      speakerId: u.speakerId,
      state,
      blocks: [],
      samples: 0,
      skip: 0,
      from: 0,
      written: 0,
      voicedEnd: 0,
      lastOutAt: -Infinity,
      ended: false,
      needsPreRoll: !listening,
      waitingSince: listening ? undefined : now,
      wasHeld: false,
      rewindable: true,
      startMark: undefined,
      endMark: undefined,
    };
    if (state === 'deliver' && !listening) this.markHeld(item);
    this.current = item;
    this.items.push(item);
  }

  /** One frame of the utterance the floor forwards. */
  write(pcm: Int16Array, meta: FrameMeta): void {
    if (this.closed) return;
    // A frame whose start was not reported (the floor announces it first): it starts now.
    if (this.current?.id !== meta.utteranceId) this.utteranceStarted({ utteranceId: meta.utteranceId, speakerId: meta.speakerId, liveAt: this.now() });
    const item = this.current!;
    if (item.state !== 'dropped') this.append(item, pcm, meta.voiced ?? true);
    this.pump();
  }

  /** The floor ended the utterance (its speaker was silent for the end-of-utterance time). */
  utteranceEnded(utteranceId: number): void {
    const item = this.current?.id === utteranceId ? this.current : this.items.find((i) => i.id === utteranceId);
    if (!item) return;
    if (this.current === item) this.current = undefined;
    if (item.ended) return;
    item.ended = true;
    if (item.samples === 0) {
      this.remove(item);
      return;
    }
    if (item.state === 'tentative') {
      // Over the character's speech, no barge-in: Voxta did not listen, and that was its call.
      this.counters.utterancesIgnored++;
      this.remove(item);
      return;
    }
    if (item.state === 'deliver' && item.written === item.samples && item.startMark !== undefined) this.setEndMark(item);
    this.confirm();
    this.pump();
  }

  /** A barge-in by `speakerId`: their utterance in progress is delivered in full, whatever it started over. */
  bargeIn(speakerId: string): void {
    const now = this.now();
    this.bargeIns.push({ speakerId, at: now });
    while (this.bargeIns.length > 0 && now - this.bargeIns[0]!.at > this.bargeInMarkMs) this.bargeIns.shift();
    for (const item of this.items) {
      if (item.speakerId === speakerId && item.state === 'tentative') this.promote(item);
    }
  }

  /**
   * Voxta recognised something: the part of the utterance being delivered that it has heard is
   * not to be delivered again if recording stops before the utterance ends.
   */
  recognised(): void {
    this.confirm();
    const item = this.items.find((i) => i.state === 'deliver' && i.startMark !== undefined);
    if (!item) return;
    // Everything of it that went out was part of what Voxta just recognised (the recognition
    // ends on silence it received after it). Said again after a pause the floor did not count
    // as an end, and sent before this arrived, a continuation is not re-delivered if recording
    // stops during it: a narrow case, the price of never delivering recognised words twice.
    item.skip = Math.max(item.skip, this.sentIndex(item));
    this.freeBelow(item, item.skip);
  }

  /** Advances time: gives up on holds too old, writes held audio when Voxta records. */
  tick(): void {
    if (this.closed) return;
    const now = this.now();
    for (const item of [...this.items]) {
      if (item.state === 'deliver' && item.waitingSince !== undefined && item.startMark === undefined && now - item.waitingSince > this.maxAgeMs) {
        this.unheard(item, 'expired');
      }
    }
    this.pump();
  }

  /** The Voxta session went away (chat closed, reconnected to a new one, voice left). */
  dropAll(reason: UnheardReason = 'session'): void {
    this.confirm();
    for (const item of [...this.items]) {
      // Owed: held or being delivered with voice Voxta has not recognised yet.
      if (item.state === 'deliver' && item.voicedEnd > item.skip) this.unheard(item, reason);
      else this.remove(item);
    }
    // The rest of an utterance in progress belongs to the session that went away.
    if (this.current) this.current.state = 'dropped';
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.wasListening = false;
    this.lastEndOutAt = -Infinity;
  }

  close(): void {
    this.closed = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.items = [];
    this.current = undefined;
    this.stored = 0;
  }

  /**
   * Writes what can go to Voxta now, in order: pre-roll, held utterances with silence between,
   * then live audio. Call when Voxta may have started recording; also runs on every frame and
   * on its own timer while there is audio to write.
   */
  pump(): void {
    if (this.closed) return;
    if (!this.checkListening()) return;
    for (const item of this.items) {
      if (item.state === 'tentative') {
        // Still talking over the character's end as Voxta listens again: all of it, from the start.
        this.promote(item);
      }
      if (item.state !== 'deliver') continue;
      item.waitingSince = undefined;
      if (item.startMark === undefined && item.ended && item.voicedEnd <= item.written) {
        // What is left of it (after a rewind) is silence: nothing to deliver.
        item.written = item.samples;
        continue;
      }
      if (item.written === item.samples) {
        if (!item.ended) break; // live: more frames will come; nothing after it may go first
        continue;
      }
      if (item.startMark === undefined) {
        if (this.input.bufferedBytes >= this.leadBytes) break;
        this.begin(item);
      }
      if (!this.writeFrom(item)) break;
      if (!item.ended) break;
      this.setEndMark(item);
    }
    this.confirm();
    this.scheduleIfNeeded();
  }

  // ---- internals ----------------------------------------------------------------------------

  /** Voxta's listening state now; a change to "not listening" rewinds what it did not get. */
  private checkListening(): boolean {
    const listening = this.opts.listening();
    if (this.wasListening && !listening) this.paused();
    this.wasListening = listening;
    return listening;
  }

  /** Recording stopped: whatever was not sent in full is delivered again from its start. */
  private paused(): void {
    this.confirm();
    const now = this.now();
    for (const item of [...this.items]) {
      if (item.state !== 'deliver') continue;
      if (item.startMark !== undefined || item.written > item.skip) {
        if (!item.rewindable) {
          this.unheard(item, 'cut');
          continue;
        }
        // Voxta cancelled what it was hearing: from its start (or its last recognised point) again.
        item.written = item.skip;
        item.from = item.skip;
        item.startMark = undefined;
        item.endMark = undefined;
        if (item.voicedEnd > item.skip) this.markHeld(item);
      }
      item.waitingSince ??= now;
      item.needsPreRoll = true;
    }
    this.lastEndOutAt = -Infinity;
  }

  /** Starts delivering `item`: silence before it as needed, then it goes on air. */
  private begin(item: Item): void {
    const now = this.now();
    const bytesPerMs = (this.rate * 2) / 1000;
    let outAt = now + this.input.bufferedBytes / bytesPerMs;
    let silence = item.needsPreRoll ? this.preRoll : 0;
    if (this.input.streamingSince) {
      const since = this.input.streamingSince();
      const streamed = since === undefined ? 0 : Math.max(0, now - since);
      const streamedSamples = Math.round((streamed * this.rate) / 1000);
      if (streamedSamples < this.preRoll) silence = Math.max(silence, this.preRoll - streamedSamples);
    }
    // Back to back with the previous utterance (a replay): keep them apart for the recogniser.
    const gapSamples = Math.round(((outAt - this.lastEndOutAt) * this.rate) / 1000);
    if (gapSamples < this.separator) silence = Math.max(silence, this.separator - Math.max(0, gapSamples));
    if (silence > 0) {
      this.input.write(new Int16Array(silence));
      outAt += (silence * 1000) / this.rate;
    }
    item.needsPreRoll = false;
    item.from = item.written;
    item.startMark = this.input.speechBytesSent + this.input.bufferedBytes;
    try {
      this.opts.onAir?.({ utteranceId: item.id, speakerId: item.speakerId, at: outAt, held: item.wasHeld });
    } catch {
      /* a listener's failure must not stop delivery */
    }
  }

  /** Writes `item` from where it is, while the input's queue allows. Returns true when all of it is written. */
  private writeFrom(item: Item): boolean {
    while (item.written < item.samples) {
      // Live audio never reaches the lead (the input sends it as it comes); a replay is paced.
      if (this.input.bufferedBytes >= this.leadBytes) return false;
      const b = Math.floor(item.written / BLOCK);
      const off = item.written - b * BLOCK;
      const end = Math.min(BLOCK, item.samples - b * BLOCK);
      const block = item.blocks[b]!;
      this.input.write(off === 0 && end === BLOCK ? block : block.subarray(off, end));
      const n = end - off;
      item.written += n;
      if (item.wasHeld) this.counters.heldSamplesDelivered += n;
      item.lastOutAt = this.now() + (this.input.bufferedBytes * 1000) / (this.rate * 2);
    }
    return true;
  }

  private setEndMark(item: Item): void {
    if (item.startMark === undefined) return;
    // Its last sample goes out after the `written - from` samples of this delivery.
    item.endMark = item.startMark + (item.written - item.from) * 2;
    this.lastEndOutAt = item.lastOutAt;
  }

  /** Removes the utterances whose every sample has been sent. */
  private confirm(): void {
    if (this.items.length === 0) return;
    const sent = this.input.speechBytesSent;
    // Backwards: removing does not skip the next one (and no copy of the list per frame).
    for (let i = this.items.length - 1; i >= 0; i--) {
      const item = this.items[i]!;
      if (item.state !== 'deliver' || !item.ended) continue;
      const done = item.startMark === undefined ? item.written === item.samples : item.endMark !== undefined && sent >= item.endMark;
      if (!done) continue;
      if (item.wasHeld) this.counters.utterancesDeliveredLate++;
      this.remove(item);
    }
  }

  private append(item: Item, pcm: Int16Array, voiced: boolean): void {
    const n = pcm.length;
    const deliverableNow = item.state === 'deliver' && this.wasListening;
    if (!deliverableNow && this.waitingSamples() + n > this.maxHeld) {
      if (item.state === 'tentative') {
        this.counters.utterancesIgnored++;
        this.remove(item);
        item.state = 'dropped';
      } else this.unheard(item, 'bound');
      return;
    }
    if (this.stored + n > this.hardCap) this.releaseSent(item);
    if (this.stored + n > this.hardCap) {
      this.unheard(item, 'bound');
      return;
    }
    // A long live utterance keeps what it sent for a re-delivery up to the bound, then lets it go.
    if (item.state === 'deliver' && item.startMark !== undefined && item.samples - item.skip + n > this.maxHeld) this.releaseSent(item);
    let i = 0;
    while (i < n) {
      const b = Math.floor(item.samples / BLOCK);
      const off = item.samples - b * BLOCK;
      let block = item.blocks[b];
      if (!block) {
        block = new Int16Array(BLOCK);
        item.blocks.push(block);
      }
      const k = Math.min(BLOCK - off, n - i);
      block.set(pcm.subarray(i, i + k), off);
      i += k;
      item.samples += k;
    }
    this.stored += n;
    if (voiced) item.voicedEnd = item.samples;
  }

  /** A long live utterance: its blocks already sent are freed (it can no longer be delivered again whole). */
  private releaseSent(item: Item): void {
    if (this.freeBelow(item, this.sentIndex(item)) > 0) item.rewindable = false;
  }

  /** Frees the whole blocks below sample `index`; positions shift down. Returns the samples freed. */
  private freeBelow(item: Item, index: number): number {
    const blocks = Math.floor(index / BLOCK);
    if (blocks === 0) return 0;
    const n = blocks * BLOCK;
    item.blocks.splice(0, blocks);
    item.samples -= n;
    this.stored -= n;
    if (item.startMark !== undefined && n > item.from) item.startMark += (n - item.from) * 2;
    const down = (v: number): number => Math.max(0, v - n);
    item.from = down(item.from);
    item.skip = down(item.skip);
    item.written = down(item.written);
    item.voicedEnd = down(item.voicedEnd);
    return n;
  }

  /** Up to which sample `item` has gone out (its skip point before its delivery began). */
  private sentIndex(item: Item): number {
    if (item.startMark === undefined) return item.skip;
    const sent = Math.floor((this.input.speechBytesSent - item.startMark) / 2);
    return item.from + Math.max(0, Math.min(item.written - item.from, sent));
  }

  /** Samples waiting for Voxta (not written), all utterances. */
  private waitingSamples(): number {
    let n = 0;
    for (const i of this.items) n += i.samples - i.written;
    return n;
  }

  private promote(item: Item): void {
    if (item.state !== 'tentative') return;
    item.state = 'deliver';
    item.needsPreRoll = true;
    this.markHeld(item);
  }

  private markHeld(item: Item): void {
    item.waitingSince ??= this.now();
    if (!item.wasHeld) {
      item.wasHeld = true;
      this.counters.utterancesHeld++;
    }
  }

  private unheard(item: Item, reason: UnheardReason): void {
    const ms = Math.round((item.samples * 1000) / this.rate);
    this.remove(item);
    item.state = 'dropped';
    this.counters.utterancesUnheard++;
    try {
      this.opts.onUnheard?.({ utteranceId: item.id, speakerId: item.speakerId, reason, ms });
    } catch {
      /* reporting must not break the audio path */
    }
  }

  private remove(item: Item): void {
    const i = this.items.indexOf(item);
    if (i >= 0) this.items.splice(i, 1);
    this.stored -= item.samples;
    item.blocks = [];
    item.samples = 0;
    item.written = 0;
  }

  private audibleAt(t: number): boolean {
    return this.runs.some((r) => r.start <= t && (r.end === undefined || t < r.end));
  }

  private bargedIn(speakerId: string, liveAt: number): boolean {
    const now = this.now();
    return this.bargeIns.some((b) => b.speakerId === speakerId && b.at >= liveAt && now - b.at <= this.bargeInMarkMs);
  }

  private scheduleIfNeeded(): void {
    const pending = this.items.some((i) => i.state === 'deliver' && i.written < i.samples);
    const unconfirmed = this.items.some((i) => i.state === 'deliver' && i.endMark !== undefined);
    if (!pending && !unconfirmed) return;
    if (this.cancelTimer) return;
    this.cancelTimer = this.schedule(() => {
      this.cancelTimer = undefined;
      this.pump();
    }, 20);
  }
}
