/**
 * HeldInput against a stand-in of the Voxta audio input that behaves like it where it matters:
 * writes queue up, the clock takes 480-sample frames off the front (counted as sent), and
 * `disable()` (recording stopped) drops what was not sent. Frames carry a tag in every sample so
 * the order and completeness of what reached "Voxta" can be read back.
 */
import { describe, expect, it } from 'vitest';
import { HeldInput, type HeldInputOptions, type UnheardUtterance, type UtteranceOnAir } from '../../src/voice/held-input.js';

class FakeInput {
  private queue: number[] = [];
  /** Every sample that went out, in order. */
  readonly out: number[] = [];
  speechBytesSent = 0;
  get bufferedBytes(): number {
    return this.queue.length * 2;
  }
  write(pcm: Int16Array): void {
    for (const s of pcm) this.queue.push(s);
  }
  /** The input's clock: `frames` 30 ms frames go out. */
  send(frames = 1): void {
    for (let f = 0; f < frames; f++) {
      const take = this.queue.splice(0, 480);
      this.out.push(...take);
      this.speechBytesSent += take.length * 2;
    }
  }
  /** recordingRequest false: the unsent buffer is cleared. */
  clear(): void {
    this.queue = [];
  }
}

/** Runs of equal samples: [value, count] (a tagged 20 ms frame is [tag, 320]). */
function runs(samples: number[]): Array<[number, number]> {
  const r: Array<[number, number]> = [];
  for (const s of samples) {
    const last = r.at(-1);
    if (last && last[0] === s) last[1]++;
    else r.push([s, 1]);
  }
  return r;
}

/** The tags heard, without the silence between them. */
const tagsOf = (samples: number[]) => runs(samples).filter(([v]) => v !== 0).map(([v]) => v);

function setup(o: Partial<HeldInputOptions> = {}) {
  let t = 1000;
  let listening = true;
  const input = new FakeInput();
  const onAir: UtteranceOnAir[] = [];
  const unheard: UnheardUtterance[] = [];
  let timer: (() => void) | undefined;
  const held = new HeldInput({
    input,
    listening: () => listening,
    now: () => t,
    schedule: (fn) => {
      timer = fn;
      return () => (timer = undefined);
    },
    onAir: (u) => onAir.push(u),
    onUnheard: (u) => unheard.push(u),
    ...o,
  });
  const frame = (tag: number) => new Int16Array(320).fill(tag);
  /** `n` 20 ms frames of utterance `id`, tagged id*100+k. */
  const speak = (id: number, n: number, from = 0, speakerId = 'alice') => {
    for (let k = from; k < from + n; k++) {
      held.write(frame(id * 100 + k), { utteranceId: id, speakerId });
      t += 20;
    }
  };
  /** The clock runs: frames go out, the timer pumps. */
  const run = (ms: number) => {
    for (let i = 0; i < ms / 30; i++) {
      t += 30;
      input.send(1);
      const fn = timer;
      timer = undefined;
      fn?.();
    }
  };
  return {
    held,
    input,
    onAir,
    unheard,
    speak,
    run,
    at: () => t,
    advance: (ms: number) => (t += ms),
    setListening: (v: boolean) => {
      listening = v;
      if (!v) input.clear();
      held.pump();
    },
    start: (id: number, speakerId = 'alice', liveAt = t) => held.utteranceStarted({ utteranceId: id, speakerId, liveAt }),
    end: (id: number) => held.utteranceEnded(id),
  };
}

const tags = (id: number, from: number, n: number) => Array.from({ length: n }, (_, k) => id * 100 + from + k);

describe('HeldInput', () => {
  it('an utterance that starts while Voxta records goes straight through, without pre-roll', () => {
    const s = setup();
    s.start(1);
    s.speak(1, 3);
    // Written at once (nothing waits for a timer): the input holds it all.
    expect(s.input.bufferedBytes).toBe(3 * 320 * 2);
    s.end(1);
    s.run(300);
    expect(runs(s.input.out).slice(0, 3)).toEqual([
      [100, 320],
      [101, 320],
      [102, 320],
    ]);
    expect(s.onAir).toEqual([expect.objectContaining({ utteranceId: 1, speakerId: 'alice', held: false })]);
    expect(s.held.stats()).toMatchObject({ utterancesHeld: 0, utterancesUnheard: 0, heldMs: 0 });
  });

  it('an utterance that starts just as the input stream begins gets the pre-roll the recogniser has not had yet', () => {
    let since: number | undefined;
    const s = setup();
    Object.assign(s.input, { streamingSince: () => since });
    since = s.at() - 60; // streaming for 60 ms
    s.start(1);
    s.speak(1, 2);
    s.end(1);
    s.run(1200); // the floor's end of utterance and hangover pass in real time
    since = s.at() - 5000; // long established
    s.start(2);
    s.speak(2, 2);
    s.end(2);
    s.run(2000);
    const r = runs(s.input.out);
    expect(r[0]).toEqual([0, 90 * 16]); // 150 ms of lead silence in all: 60 heard, 90 written
    expect(tagsOf(s.input.out)).toEqual([100, 101, 200, 201]);
    // The second went out live with no silence written ahead of it (the input streams its own
    // zeros between utterances; this stand-in sends nothing when empty).
    expect(r.filter(([v]) => v === 0)).toHaveLength(1);
  });

  it('one that starts while Voxta does not record (character silent) is held from its first frame and delivered in full, after pre-roll, once it records', () => {
    const s = setup();
    s.setListening(false);
    s.start(1);
    s.speak(1, 10);
    s.end(1);
    s.run(600);
    expect(s.input.out).toEqual([]); // nothing while not recording
    expect(s.held.stats()).toMatchObject({ utterancesHeld: 1, heldMs: 200 });
    s.setListening(true);
    s.run(900);
    const r = runs(s.input.out);
    // ≥ 150 ms of silence, then every frame in order.
    expect(r[0]![0]).toBe(0);
    expect(r[0]![1]).toBeGreaterThanOrEqual(2400);
    expect(tagsOf(s.input.out)).toEqual(tags(1, 0, 10));
    expect(s.onAir).toEqual([expect.objectContaining({ utteranceId: 1, held: true })]);
    expect(s.held.stats()).toMatchObject({ utterancesHeld: 1, utterancesDeliveredLate: 1, heldMsDelivered: 200, heldMs: 0, utterancesUnheard: 0 });
  });

  it('a held utterance still going on when Voxta records again continues live after its held part', () => {
    const s = setup();
    s.setListening(false);
    s.start(1);
    s.speak(1, 5);
    s.setListening(true);
    s.speak(1, 5, 5);
    s.end(1);
    s.run(600);
    expect(tagsOf(s.input.out)).toEqual(tags(1, 0, 10));
  });

  it('delivery is paced: a long hold is written a little ahead of the input, not dumped into it', () => {
    const s = setup({ leadMs: 200 });
    s.setListening(false);
    s.start(1);
    s.speak(1, 100); // 2 s
    s.end(1);
    s.setListening(true);
    expect(s.input.bufferedBytes).toBeLessThanOrEqual((200 + 150 + 20) * 32);
    s.run(300);
    expect(s.input.bufferedBytes).toBeLessThanOrEqual((200 + 20) * 32);
    s.run(2400);
    expect(tagsOf(s.input.out)).toEqual(tags(1, 0, 100));
  });

  it('recording stopping mid-replay keeps what was not sent: the utterance is delivered again, whole, next time', () => {
    const s = setup();
    s.setListening(false);
    s.start(1);
    s.speak(1, 50); // 1 s
    s.end(1);
    s.start(2, 'bob');
    s.speak(2, 10, 0, 'bob');
    s.end(2);
    s.setListening(true);
    s.run(600); // part of utterance 1 went out…
    expect(tagsOf(s.input.out).length).toBeGreaterThan(5);
    expect(tagsOf(s.input.out).length).toBeLessThan(50);
    s.setListening(false); // …then Voxta stopped recording (and cancelled what it was hearing)
    const before = s.input.out.length;
    s.run(600);
    expect(s.input.out.length).toBe(before);
    s.setListening(true);
    s.run(4000);
    const second = s.input.out.slice(before);
    // Both utterances in full, in order, apart.
    expect(tagsOf(second)).toEqual([...tags(1, 0, 50), ...tags(2, 0, 10)]);
    const gap = runs(second).find(([v], i, all) => v === 0 && i > 0 && all[i - 1]![0] === 149)!;
    expect(gap[1]).toBeGreaterThanOrEqual(700 * 16);
    expect(s.held.stats()).toMatchObject({ utterancesDeliveredLate: 2, utterancesUnheard: 0 });
  });

  it('a live utterance cut by recording stopping is delivered again whole; one already sent in full is not', () => {
    const s = setup();
    s.start(1);
    s.speak(1, 5);
    s.end(1);
    s.run(300); // utterance 1 sent in full
    s.start(2);
    s.speak(2, 5);
    s.run(60); // part of utterance 2 sent…
    s.setListening(false); // …a reply starts: Voxta stops recording mid-utterance
    s.speak(2, 5, 5);
    s.end(2);
    const before = s.input.out.length;
    s.setListening(true);
    s.run(900);
    expect(tagsOf(s.input.out.slice(before))).toEqual(tags(2, 0, 10));
    expect(s.onAir.map((u) => [u.utteranceId, u.held])).toEqual([
      [1, false],
      [2, false],
      [2, true],
    ]);
  });

  it('after a recognition, only the part Voxta has not recognised is delivered again', () => {
    const s = setup();
    s.start(1);
    s.speak(1, 50);
    s.run(1200); // 1 s of it went out…
    s.held.recognised(); // …and Voxta recognised it (a pause the floor did not count as the end)
    s.speak(1, 10, 50);
    s.setListening(false);
    s.end(1);
    const before = s.input.out.length;
    s.setListening(true);
    s.run(900);
    expect(tagsOf(s.input.out.slice(before))).toEqual(tags(1, 50, 10));
  });

  it('a recognised utterance whose rest is only silence is not delivered again when recording stops before the floor ends it', () => {
    const s = setup();
    s.start(1);
    s.speak(1, 30);
    for (let k = 0; k < 5; k++) s.held.write(new Int16Array(320), { utteranceId: 1, speakerId: 'alice', voiced: false }); // the member's trailing silence frames
    s.run(900); // sent; Voxta's end of utterance…
    s.held.recognised(); // …its transcript…
    s.setListening(false); // …and the reply it started stops recording before our floor ended the utterance
    s.end(1);
    const before = s.input.out.length;
    s.setListening(true);
    s.run(900);
    expect(tagsOf(s.input.out.slice(before))).toEqual([]);
    expect(s.onAir.filter((u) => u.held)).toEqual([]);
    expect(s.held.stats()).toMatchObject({ utterancesHeld: 0, heldMs: 0 });
  });

  it('speech over the character that does not barge in is dropped at its end (Voxta decides); with a barge-in it is delivered in full', () => {
    const s = setup();
    s.setListening(false);
    s.held.setPlayback(s.at());
    s.advance(100);
    s.start(1);
    s.speak(1, 10);
    s.end(1);
    s.start(2);
    s.speak(2, 10); // 200 ms before the barge-in fires…
    s.held.bargeIn('alice');
    s.held.setPlayback(undefined);
    s.speak(2, 10, 10); // …and after
    s.end(2);
    s.setListening(true);
    s.run(900);
    expect(tagsOf(s.input.out)).toEqual(tags(2, 0, 20));
    expect(s.held.stats()).toMatchObject({ utterancesIgnored: 1, utterancesHeld: 1, utterancesDeliveredLate: 1 });
  });

  it('an utterance begun before the character became audible stays held when its speech starts over it', () => {
    const s = setup();
    s.setListening(false);
    s.start(1);
    s.speak(1, 10);
    s.held.setPlayback(s.at()); // the reply's speech begins while the member goes on
    s.speak(1, 10, 10);
    s.end(1);
    s.held.setPlayback(undefined);
    s.setListening(true);
    s.run(900);
    expect(tagsOf(s.input.out)).toEqual(tags(1, 0, 20));
  });

  it('an utterance over the character still going on when Voxta records again is delivered from its start', () => {
    const s = setup();
    s.setListening(false);
    s.held.setPlayback(s.at());
    s.start(1);
    s.speak(1, 10);
    s.held.setPlayback(undefined);
    s.setListening(true);
    s.speak(1, 5, 10);
    s.end(1);
    s.run(900);
    expect(tagsOf(s.input.out)).toEqual(tags(1, 0, 15));
  });

  it('a barge-in reaches an utterance the floor hands over only later (the barging speaker was waiting)', () => {
    const s = setup();
    s.setListening(false);
    const since = s.at();
    s.held.setPlayback(since);
    const liveAt = s.at() + 50;
    s.advance(400);
    s.held.bargeIn('bob'); // Bob talked over the character while Alice held the floor
    s.held.setPlayback(undefined);
    s.start(7, 'bob', liveAt);
    s.speak(7, 5, 0, 'bob');
    s.end(7);
    s.setListening(true);
    s.run(600);
    expect(tagsOf(s.input.out)).toEqual(tags(7, 0, 5));
  });

  it('what cannot be delivered is reported once per utterance: over the bound, too old, session gone', () => {
    const s = setup({ maxHeldMs: 500, maxAgeMs: 5000 });
    s.setListening(false);
    s.start(1);
    s.speak(1, 30); // 600 ms > 500 ms bound
    s.speak(1, 5, 30);
    s.end(1);
    expect(s.unheard).toEqual([expect.objectContaining({ utteranceId: 1, speakerId: 'alice', reason: 'bound' })]);

    s.start(2, 'bob');
    s.speak(2, 5, 0, 'bob');
    s.end(2);
    s.advance(6000);
    s.held.tick();
    expect(s.unheard.at(-1)).toMatchObject({ utteranceId: 2, speakerId: 'bob', reason: 'expired' });

    s.start(3);
    s.speak(3, 5);
    s.end(3);
    s.held.setPlayback(s.at());
    s.start(4); // over the character: not owed to anyone
    s.speak(4, 5);
    s.held.dropAll('session');
    expect(s.unheard.map((u) => [u.utteranceId, u.reason])).toEqual([
      [1, 'bound'],
      [2, 'expired'],
      [3, 'session'],
    ]);
    expect(s.held.stats()).toMatchObject({ utterancesUnheard: 3, heldMs: 0 });
    s.setListening(true);
    s.run(600);
    expect(s.input.out).toEqual([]);
  });

  it('a live utterance longer than the bound cannot be delivered again whole: cut by recording stopping, it is reported', () => {
    const s = setup({ maxHeldMs: 500 });
    s.start(1);
    for (let k = 0; k < 40; k++) {
      s.speak(1, 1, k); // 800 ms, sent as it comes
      s.run(30);
    }
    expect(s.held.stats().heldMs).toBeLessThanOrEqual(500);
    s.setListening(false);
    expect(s.unheard).toEqual([expect.objectContaining({ utteranceId: 1, reason: 'cut' })]);
  });

  it('when the session goes, only what Voxta has not recognised is reported, and the rest of an utterance in progress is dropped', () => {
    const s = setup();
    s.start(1);
    s.speak(1, 10);
    s.run(600);
    s.held.recognised(); // all of it recognised; the floor has not ended it yet
    s.held.dropAll('session');
    expect(s.unheard).toEqual([]);
    s.speak(1, 5, 10); // the member goes on: not for the new session
    s.end(1);
    s.start(2);
    s.speak(2, 5);
    s.end(2);
    const before = s.input.out.length;
    s.run(900);
    expect(tagsOf(s.input.out.slice(before))).toEqual(tags(2, 0, 5));
    expect(s.held.stats().heldMs).toBe(0);
  });
});
