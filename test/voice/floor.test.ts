import { describe, expect, it } from 'vitest';
import { FloorArbiter, type FloorEvent } from '../../src/audio/floor.js';

/** A fake clock plus an arbiter whose events are recorded. */
function setup(opts: ConstructorParameters<typeof FloorArbiter>[1] = {}) {
  let t = 0;
  const events: FloorEvent[] = [];
  const arb = new FloorArbiter((e) => events.push(e), { now: () => t, ...opts });
  return {
    arb,
    events,
    advance(ms: number) {
      // tick every 20 ms like the uplink's timer
      const end = t + ms;
      while (t < end) {
        t = Math.min(end, t + 20);
        arb.tick();
      }
    },
    get now() {
      return t;
    },
    set now(v: number) {
      t = v;
    },
  };
}

/** A frame whose first sample identifies speaker and index, so forwarding order can be checked. */
function frame(tag: number): Int16Array {
  const f = new Int16Array(320);
  f[0] = tag;
  return f;
}

const tags = (events: FloorEvent[], speaker?: string) =>
  events.filter((e): e is Extract<FloorEvent, { type: 'frame' }> => e.type === 'frame' && (!speaker || e.speakerId === speaker)).map((e) => e.pcm[0]);

describe('FloorArbiter', () => {
  it('a single speaker takes the floor at the first voiced frame and ends after endOfUtteranceMs of no voice', () => {
    const s = setup({ endOfUtteranceMs: 700, floorHangoverMs: 200 });
    s.arb.push('alice', frame(1), false); // unvoiced before: kept as pre-roll
    s.now = 20;
    s.arb.push('alice', frame(2), true);
    expect(s.arb.floorHolder).toBe('alice');
    for (let i = 3; i <= 10; i++) {
      s.advance(20);
      s.arb.push('alice', frame(i), true);
    }
    expect(tags(s.events)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    s.advance(600);
    expect(s.events.some((e) => e.type === 'utteranceEnd')).toBe(false);
    s.advance(200);
    const end = s.events.find((e) => e.type === 'utteranceEnd');
    expect(end).toMatchObject({ speakerId: 'alice', voicedMs: 180, frames: 10 });
    expect(s.arb.floorHolder).toBe('alice'); // hangover
    s.advance(220);
    expect(s.arb.floorHolder).toBeUndefined();
  });

  it('two overlapping speakers: both utterances forwarded in order, each attributed, nothing dropped', () => {
    const s = setup({ endOfUtteranceMs: 700, floorHangoverMs: 200 });
    // alice speaks frames 100..149 (1 s); bob starts 300 ms later and speaks 200..239 (800 ms).
    for (let i = 0; i < 50; i++) {
      s.arb.push('alice', frame(100 + i), true);
      if (i >= 15 && i < 55) s.arb.push('bob', frame(200 + i - 15), true);
      s.advance(20);
    }
    for (let i = 35; i < 40; i++) {
      s.arb.push('bob', frame(200 + i), true);
      s.advance(20);
    }
    // While alice holds the floor, bob is buffered, not forwarded.
    expect(tags(s.events, 'bob')).toEqual([]);
    expect(s.arb.queue).toEqual(['bob']);
    s.advance(3000);
    const starts = s.events.filter((e) => e.type === 'utteranceStart').map((e) => [e.speakerId, e.buffered]);
    const ends = s.events.filter((e) => e.type === 'utteranceEnd').map((e) => e.speakerId);
    expect(starts).toEqual([
      ['alice', false],
      ['bob', true],
    ]);
    expect(ends).toEqual(['alice', 'bob']);
    // All of alice's frames, then all of bob's, in order.
    const all = tags(s.events);
    expect(all).toEqual([...Array.from({ length: 50 }, (_, i) => 100 + i), ...Array.from({ length: 40 }, (_, i) => 200 + i)]);
    // Every frame event is attributed to the right speaker, and sits between that speaker's start and end.
    let current: string | undefined;
    for (const e of s.events) {
      if (e.type === 'utteranceStart') current = e.speakerId;
      if (e.type === 'frame') expect(e.speakerId).toBe(current);
      if (e.type === 'utteranceEnd') current = undefined;
    }
    expect(s.arb.stats()).toMatchObject({ framesForwarded: 90, overflowFrames: 0, overflows: 0, utterances: 2, bufferedUtterances: 1 });
  });

  it('leaves at least endOfUtteranceMs of output silence between a buffered utterance and the next speaker', () => {
    const s = setup({ endOfUtteranceMs: 700, floorHangoverMs: 0 });
    // alice 1 s; bob 0.5 s during it; carol 0.5 s during it too (after bob).
    for (let i = 0; i < 50; i++) {
      s.arb.push('alice', frame(1), true);
      if (i >= 5 && i < 30) s.arb.push('bob', frame(2), true);
      if (i >= 10 && i < 35) s.arb.push('carol', frame(3), true);
      s.advance(20);
    }
    s.advance(5000);
    const seq = s.events.filter((e) => e.type !== 'frame').map((e) => `${e.type}:${'speakerId' in e ? e.speakerId : ''}@${'at' in e ? e.at : ''}`);
    const startBob = s.events.find((e) => e.type === 'utteranceStart' && e.speakerId === 'bob') as Extract<FloorEvent, { type: 'utteranceStart' }>;
    const startCarol = s.events.find((e) => e.type === 'utteranceStart' && e.speakerId === 'carol') as Extract<FloorEvent, { type: 'utteranceStart' }>;
    // Bob's 25 frames (500 ms) are forwarded in a burst at startBob.at; carol must wait for them to
    // play out plus 700 ms of silence.
    expect(startCarol.at - startBob.at, seq.join(' ')).toBeGreaterThanOrEqual(500 + 700);
    expect(tags(s.events)).toEqual([...Array(50).fill(1), ...Array(25).fill(2), ...Array(25).fill(3)]);
  });

  it('a buffered speaker still talking when they get the floor continues live', () => {
    const s = setup({ endOfUtteranceMs: 300, floorHangoverMs: 0 });
    for (let i = 0; i < 10; i++) {
      s.arb.push('alice', frame(1), true);
      s.arb.push('bob', frame(2), true);
      s.advance(20);
    }
    // alice stops; bob keeps talking for 1 s.
    for (let i = 0; i < 50; i++) {
      s.arb.push('bob', frame(3), true);
      s.advance(20);
    }
    s.advance(1000);
    expect(tags(s.events, 'bob')).toEqual([...Array(10).fill(2), ...Array(50).fill(3)]);
    expect(s.events.filter((e) => e.type === 'utteranceStart').map((e) => e.speakerId)).toEqual(['alice', 'bob']);
  });

  it('bounds buffering per speaker and in total, counting what was dropped', () => {
    const s = setup({ endOfUtteranceMs: 700, floorHangoverMs: 0, maxBufferedMsPerSpeaker: 200, maxBufferedMsTotal: 300 });
    for (let i = 0; i < 30; i++) {
      s.arb.push('alice', frame(1), true);
      s.arb.push('bob', frame(2), true); // 10 frames allowed
      if (i >= 12) s.arb.push('carol', frame(3), true); // only what is left of the total (5)
      s.advance(20);
    }
    const st = s.arb.stats();
    expect(st.framesBuffered).toBe(15);
    expect(st.overflowFrames).toBe(20 + 13);
    expect(st.overflows).toBe(2);
    expect(s.events.filter((e) => e.type === 'overflow').map((e) => e.speakerId)).toEqual(['bob', 'carol']);
    s.advance(5000);
    expect(tags(s.events, 'bob')).toHaveLength(10);
    expect(tags(s.events, 'carol')).toHaveLength(5);
  });

  it('the same speaker resuming within the hangover starts a new utterance without waiting', () => {
    const s = setup({ endOfUtteranceMs: 200, floorHangoverMs: 500 });
    s.arb.push('alice', frame(1), true);
    s.advance(300); // utterance ended, hangover running
    expect(s.events.filter((e) => e.type === 'utteranceEnd')).toHaveLength(1);
    s.arb.push('bob', frame(2), true); // bob must wait for the hangover
    s.arb.push('alice', frame(3), true); // alice is queued behind bob, who started first
    expect(s.arb.queue).toEqual(['bob', 'alice']);
    s.advance(3000);
    expect(s.events.filter((e) => e.type === 'utteranceStart').map((e) => e.speakerId)).toEqual(['alice', 'bob', 'alice']);
  });

  it('removeSpeaker drops waiting audio and frees the floor', () => {
    const s = setup({ endOfUtteranceMs: 700, floorHangoverMs: 0 });
    s.arb.push('alice', frame(1), true);
    s.arb.push('bob', frame(2), true);
    s.arb.removeSpeaker('bob');
    expect(s.arb.queue).toEqual([]);
    s.arb.removeSpeaker('alice');
    expect(s.arb.speaking).toBe(false);
    expect(s.arb.stats().framesBuffered).toBe(0);
  });

  it('a floor holder who leaves mid-sentence still gets an end-of-utterance silence before the next speaker', () => {
    const s = setup({ endOfUtteranceMs: 700, floorHangoverMs: 200 });
    for (let i = 0; i < 20; i++) {
      s.arb.push('alice', frame(1), true);
      s.advance(20);
    }
    const lastAlice = s.now;
    s.arb.removeSpeaker('alice'); // she left the channel while talking
    s.advance(100);
    for (let i = 0; i < 20; i++) {
      s.arb.push('carol', frame(3), true);
      s.advance(20);
    }
    s.advance(3000);
    const startCarol = s.events.find((e) => e.type === 'utteranceStart' && e.speakerId === 'carol') as Extract<FloorEvent, { type: 'utteranceStart' }>;
    // Voxta needs the silence to close Alice's turn, or her half sentence and Carol's words are one.
    expect(startCarol.at - lastAlice).toBeGreaterThanOrEqual(700);
    expect(tags(s.events, 'carol')).toHaveLength(20);
  });

  it('does not prepend a stale pre-roll to a later utterance', () => {
    const s = setup();
    s.arb.push('alice', frame(9), false);
    s.advance(5000);
    s.arb.push('alice', frame(1), true);
    expect(tags(s.events)).toEqual([1]);
  });
});
