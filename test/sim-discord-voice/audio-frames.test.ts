import { describe, expect, it } from 'vitest';
import { decodePackets, encodeDiscordFrames, FRAME_SAMPLES, toDiscordFrames } from '../../sim/discord/voice/audio-frames.js';
import { goertzel, tone } from './helpers.js';

describe('member audio framing', () => {
  it('turns 16 kHz mono into 48 kHz stereo 20 ms frames that decode back to the tone', () => {
    const frames = toDiscordFrames(tone(1000, 0.25, 16_000), 16_000, 1);
    expect(frames).toHaveLength(13); // 0.25 s = 12.5 frames → last one zero-padded
    expect(frames.every((f) => f.length === FRAME_SAMPLES * 2)).toBe(true);
    const pcm = decodePackets(encodeDiscordFrames(frames), 48_000, 1).pcm;
    expect(pcm.length).toBe(13 * FRAME_SAMPLES);
    expect(goertzel(pcm, 1000)).toBeGreaterThan(100 * goertzel(pcm, 3000));
  });

  it('keeps left and right apart for stereo input', () => {
    const left = tone(440, 0.1);
    const right = tone(1500, 0.1);
    const stereo = new Int16Array(left.length * 2);
    for (let i = 0; i < left.length; i++) {
      stereo[2 * i] = left[i]!;
      stereo[2 * i + 1] = right[i]!;
    }
    const pcm = decodePackets(encodeDiscordFrames(toDiscordFrames(stereo, 48_000, 2)), 48_000, 2).pcm;
    const l = pcm.filter((_, i) => i % 2 === 0);
    const r = pcm.filter((_, i) => i % 2 === 1);
    expect(goertzel(l, 440)).toBeGreaterThan(20 * goertzel(l, 1500));
    expect(goertzel(r, 1500)).toBeGreaterThan(20 * goertzel(r, 440));
  });

  it('decodes a broken packet as 20 ms of silence and counts it', () => {
    const good = encodeDiscordFrames(toDiscordFrames(tone(440, 0.04), 48_000, 1));
    const { pcm, failures } = decodePackets([good[0]!, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), good[1]!], 48_000, 1);
    expect(failures).toBe(1);
    expect(pcm.length).toBe(3 * FRAME_SAMPLES);
  });

  it('rejects unsupported formats with a clear error', () => {
    expect(() => toDiscordFrames(new Int16Array(10), 100, 1)).toThrow(/sample rate/);
    expect(() => toDiscordFrames(new Int16Array(10), 48_000, 3 as 1)).toThrow(/channel/);
  });
});

describe('bot audio recording', () => {
  it('counts E2EE, clear and undecryptable frames, and can restore pauses on a timeline', async () => {
    const { BotAudioRecorder } = await import('../../sim/discord/voice/bot-audio.js');
    const rec = new BotAudioRecorder();
    const opus = encodeDiscordFrames(toDiscordFrames(tone(440, 0.08), 48_000, 1)); // 4 frames
    const base = { silence: false, heard: true, sequence: 0, timestamp: 0, ssrc: 1 };
    rec.add({ ...base, at: 1000, opus: opus[0]!, e2ee: true }, true);
    // Sent while the bot was suppressed on a stage: recorded, but heard by no one.
    rec.add({ ...base, at: 1020, opus: opus[1]!, e2ee: false, heard: false }, false);
    rec.add({ ...base, at: 1540, opus: opus[2]!, e2ee: true }, false); // 500 ms pause before it
    rec.add({ ...base, at: 1560, opus: Buffer.from([0xf8, 0xff, 0xfe]), e2ee: false, silence: true }, false);
    const snap = rec.snapshot();
    expect(snap).toMatchObject({ e2eeFrames: 1, clearFrames: 1, daveFailures: 1, heardFrames: 2, unheardFrames: 1 });
    expect(snap.pcm()).toHaveLength(4 * FRAME_SAMPLES);
    expect(snap.pcm(48_000, 1, { heardOnly: true })).toHaveLength(3 * FRAME_SAMPLES);
    expect(snap.pcm(48_000, 1, { timeline: true })).toHaveLength((4 + 25) * FRAME_SAMPLES);
    expect(snap.pcm(16_000, 2)).toHaveLength(4 * 320 * 2);
  });
});
