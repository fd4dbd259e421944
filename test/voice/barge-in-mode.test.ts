/** The barge-in mode changed while the bot is in voice (a server's `/config set barge-in`). */
import { describe, expect, it } from 'vitest';
import { BargeInDetector } from '../../src/voice/barge-in.js';

describe('BargeInDetector.setMode', () => {
  it('takes a new mode at once: off stops firing, anyone fires again, a run in progress starts over', () => {
    let t = 0;
    const d = new BargeInDetector({ mode: 'anyone', minMs: 100, graceMs: 0, now: () => t });
    const speak = (ms: number): boolean => {
      let fired = false;
      for (let i = 0; i < ms / 20; i++) {
        fired = d.frame('alice', true) || fired;
        t += 20;
      }
      return fired;
    };
    d.setPlayback(0);
    expect(speak(60)).toBe(false);
    d.setMode('off');
    expect(d.mode).toBe('off');
    expect(speak(400)).toBe(false);
    d.setMode('anyone');
    expect(speak(60)).toBe(false); // the run before the change does not count
    expect(speak(60)).toBe(true);
    d.setPlayback(1000);
    d.setMode('floor');
    d.setAnswering('bob');
    expect(speak(400)).toBe(false);
  });
});
