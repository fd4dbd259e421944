import { describe, expect, it } from 'vitest';
import { HeldInput } from '../../src/voice/held-input.js';

function setup() {
  let t = 0;
  const input = { enabled: false, written: [] as number[], write(pcm: Int16Array) { this.written.push(pcm[0]!); } };
  const held = new HeldInput(input, { recentMs: 100, maxHoldMs: 200, holdTimeoutMs: 1000, now: () => t });
  const frame = (tag: number) => {
    const f = new Int16Array(320); // 20 ms at 16 kHz
    f[0] = tag;
    return f;
  };
  return { input, held, frame, at: (v: number) => (t = v) };
}

describe('HeldInput', () => {
  it('passes frames straight through while recording', () => {
    const s = setup();
    s.input.enabled = true;
    s.held.write(s.frame(1));
    s.held.write(s.frame(2));
    expect(s.input.written).toEqual([1, 2]);
  });

  it('without a barge-in, what was said while not recording is dropped when recording resumes', () => {
    const s = setup();
    for (let i = 1; i <= 3; i++) s.held.write(s.frame(i));
    s.input.enabled = true;
    s.held.resumed();
    s.held.write(s.frame(9));
    expect(s.input.written).toEqual([9]);
  });

  it('after a barge-in, the recent window and what follows are replayed in order when recording resumes', () => {
    const s = setup();
    for (let i = 1; i <= 8; i++) s.held.write(s.frame(i)); // only the last 100 ms (5 frames) are kept
    s.held.hold();
    s.held.write(s.frame(9));
    s.held.write(s.frame(10));
    s.input.enabled = true;
    s.held.resumed();
    s.held.write(s.frame(11));
    expect(s.input.written).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(s.held.replayedFrames).toBe(7);
  });

  it('a hold is bounded (keeps the beginning) and expires', () => {
    const s = setup();
    s.held.hold();
    for (let i = 1; i <= 20; i++) s.held.write(s.frame(i)); // 200 ms cap = 10 frames
    s.input.enabled = true;
    s.held.resumed();
    expect(s.input.written).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

    const e = setup();
    e.held.hold();
    e.held.write(e.frame(1));
    e.at(5000);
    e.input.enabled = true;
    e.held.resumed();
    expect(e.input.written).toEqual([]);
  });

  it('a write after recording resumed flushes a pending hold first (resume signal missed)', () => {
    const s = setup();
    s.held.hold();
    s.held.write(s.frame(1));
    s.input.enabled = true;
    s.held.write(s.frame(2));
    expect(s.input.written).toEqual([1, 2]);
  });
});
