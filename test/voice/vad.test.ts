import { describe, expect, it } from 'vitest';
import { EnergyVad, rmsOf } from '../../src/audio/vad.js';

const RATE = 16000;
const FRAME = 320; // 20 ms at 16 kHz

function tone(amplitude: number, hz = 440, offset = 0): Int16Array {
  const out = new Int16Array(FRAME);
  for (let i = 0; i < FRAME; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * hz * (offset + i)) / RATE));
  return out;
}

function noise(amplitude: number, seed = 1): Int16Array {
  let x = seed;
  const out = new Int16Array(FRAME);
  for (let i = 0; i < FRAME; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[i] = Math.round(((x / 0x7fffffff) * 2 - 1) * amplitude);
  }
  return out;
}

describe('EnergyVad', () => {
  it('computes RMS of a sine as amplitude / √2', () => {
    expect(rmsOf(tone(10000, 500))).toBeCloseTo(10000 / Math.SQRT2, -1);
    expect(rmsOf(new Int16Array(0))).toBe(0);
  });

  it('marks speech voiced, silence unvoiced, and holds over short pauses', () => {
    const vad = new EnergyVad({ hangoverMs: 100 });
    const silent = new Int16Array(FRAME);
    expect(vad.process(silent).voiced).toBe(false);
    const loud = vad.process(tone(4000));
    expect(loud).toMatchObject({ voiced: true, energetic: true });
    // 100 ms hangover = 5 frames still voiced after the last energetic one, then unvoiced.
    const after = Array.from({ length: 7 }, () => vad.process(silent).voiced);
    expect(after).toEqual([true, true, true, true, true, false, false]);
  });

  it('needs attackFrames consecutive energetic frames before switching on', () => {
    const vad = new EnergyVad({ attackFrames: 3, hangoverMs: 0 });
    expect(vad.process(tone(4000)).voiced).toBe(false);
    expect(vad.process(tone(4000)).voiced).toBe(false);
    expect(vad.process(tone(4000)).voiced).toBe(true);
  });

  it('ignores quiet background below the fixed floor', () => {
    const vad = new EnergyVad();
    for (let i = 0; i < 50; i++) expect(vad.process(noise(200, i + 1)).voiced).toBe(false);
  });

  it('adapts to a steady loud hum so it eventually stops counting as voice, but speech above it still does', () => {
    const vad = new EnergyVad({ hangoverMs: 0 });
    const hum = () => noise(1500, 7);
    let voicedAtEnd = true;
    // 40 s of constant hum: the noise floor creeps up until the hum is no longer "energetic".
    for (let i = 0; i < 2000; i++) voicedAtEnd = vad.process(hum()).voiced;
    expect(voicedAtEnd).toBe(false);
    expect(vad.process(tone(20000)).voiced).toBe(true);
  });

  it('reset() forgets hangover and noise floor', () => {
    const vad = new EnergyVad({ hangoverMs: 200 });
    vad.process(tone(4000));
    vad.reset();
    expect(vad.process(new Int16Array(FRAME)).voiced).toBe(false);
  });
});
