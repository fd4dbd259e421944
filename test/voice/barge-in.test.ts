import { describe, expect, it } from 'vitest';
import { BargeInDetector } from '../../src/voice/barge-in.js';
import { Attribution } from '../../src/voice/attribution.js';

function detector(mode: 'off' | 'anyone' | 'floor', minMs = 400, graceMs = 300) {
  let t = 0;
  const d = new BargeInDetector({ mode, minMs, graceMs, now: () => t });
  /** Feeds `ms` of 20 ms frames from a member; returns the time the detector fired, if it did. */
  const speak = (userId: string, ms: number, voiced = true): number | undefined => {
    let firedAt: number | undefined;
    for (let i = 0; i < ms / 20; i++) {
      if (d.frame(userId, voiced) && firedAt === undefined) firedAt = t;
      t += 20;
    }
    return firedAt;
  };
  return { d, speak, at: (v: number) => (t = v), get now() { return t; } };
}

describe('BargeInDetector', () => {
  it('fires once a member has spoken minMs over playback after the grace period', () => {
    const s = detector('anyone', 400, 300);
    s.d.setPlayback(0);
    // First 300 ms are grace: voice there does not count.
    expect(s.speak('alice', 300)).toBeUndefined();
    const fired = s.speak('alice', 600);
    expect(fired).toBe(300 + 380); // the frame starting at 680 completes 400 ms of voice
    // Once per playback run.
    expect(s.speak('alice', 600)).toBeUndefined();
  });

  it('a short noise or a pause resets the run', () => {
    const s = detector('anyone', 400, 0);
    s.d.setPlayback(0);
    expect(s.speak('alice', 200)).toBeUndefined();
    s.speak('alice', 20, false);
    expect(s.speak('alice', 200)).toBeUndefined();
    expect(s.speak('alice', 400)).toBeDefined();
  });

  it('never fires when nothing is playing or in off mode', () => {
    const s = detector('anyone');
    expect(s.speak('alice', 2000)).toBeUndefined();
    const off = detector('off');
    off.d.setPlayback(0);
    expect(off.speak('alice', 2000)).toBeUndefined();
  });

  it('floor mode only listens to the member being answered', () => {
    const s = detector('floor', 400, 0);
    s.d.setAnswering('bob');
    s.d.setPlayback(0);
    expect(s.speak('alice', 1000)).toBeUndefined();
    expect(s.speak('bob', 1000)).toBeDefined();
  });

  it('a new playback run re-arms the detector', () => {
    const s = detector('anyone', 100, 0);
    s.d.setPlayback(0);
    expect(s.speak('alice', 200)).toBeDefined();
    s.d.setPlayback(undefined);
    s.d.setPlayback(s.now);
    expect(s.speak('alice', 200)).toBeDefined();
  });
});

describe('Attribution', () => {
  it('attributes a recognition to the utterance on air when it started, even if the next one began before the end', () => {
    const a = new Attribution();
    a.utteranceStarted({ utteranceId: 1, speakerId: 'alice', startAt: 0 });
    a.recognitionStarted(100);
    a.utteranceStarted({ utteranceId: 2, speakerId: 'bob', startAt: 1500 });
    expect(a.recognitionEnded(1600)?.speakerId).toBe('alice');
    a.recognitionStarted(1700);
    expect(a.recognitionEnded(2500)?.speakerId).toBe('bob');
    expect(a.distinctSpeakers).toBe(2);
  });

  it('without a start message, the end goes to the latest utterance on air; future ones are not used', () => {
    const a = new Attribution();
    a.utteranceStarted({ utteranceId: 1, speakerId: 'alice', startAt: 0 });
    a.utteranceStarted({ utteranceId: 2, speakerId: 'bob', startAt: 5000 }); // released later
    expect(a.recognitionEnded(1000)?.speakerId).toBe('alice');
    expect(a.recognitionEnded(6000)?.speakerId).toBe('bob');
  });

  it('two recognitions of one long utterance both go to its speaker', () => {
    const a = new Attribution();
    a.utteranceStarted({ utteranceId: 1, speakerId: 'alice', startAt: 0 });
    a.recognitionStarted(10);
    expect(a.recognitionEnded(900)?.speakerId).toBe('alice');
    a.recognitionStarted(1500);
    expect(a.recognitionEnded(2000)?.speakerId).toBe('alice');
  });
});
