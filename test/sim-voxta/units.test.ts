import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { avatarPng } from '../../sim/voxta/png.js';
import { Recognizer, partialTranscript, type UtteranceInfo } from '../../sim/voxta/recognizer.js';
import { RecordReader, parseRecord } from '../../sim/voxta/signalr.js';
import { TtsRegistry, hasEspeak, speechDurationMs, synthesiseTone, toneFrequencyFor } from '../../sim/voxta/tts.js';
import { decodeWav, encodeWav } from '../../sim/voxta/wav.js';
import { defaultReply, splitSentences } from '../../sim/voxta/characters.js';
import { frame, parseWavHeader } from './helpers.js';

describe('voxta-sim building blocks', () => {
  it('WAV round trip and the tone actually has the chosen frequency', () => {
    const freq = toneFrequencyFor('abcdef12-0000-4000-8000-000000000000');
    expect(freq).toBeGreaterThanOrEqual(300);
    expect(freq).toBeLessThan(900);
    const pcm = synthesiseTone(500, freq, 24000);
    const wav = encodeWav(pcm, 24000);
    expect(parseWavHeader(wav)).toMatchObject({ sampleRate: 24000, channels: 1, bitsPerSample: 16, durationMs: 500 });
    const back = decodeWav(wav);
    expect(back.pcm).toEqual(pcm);
    // Count zero crossings in the steady part: ≈ 2 × frequency per second.
    let crossings = 0;
    for (let i = 2401; i < 9600; i++) if ((back.pcm[i - 1]! < 0) !== (back.pcm[i]! < 0)) crossings++;
    expect(crossings / 0.3).toBeGreaterThan(2 * freq * 0.97);
    expect(crossings / 0.3).toBeLessThan(2 * freq * 1.03);
  });

  it('decodeWav tolerates streaming placeholder sizes (espeak-ng --stdout)', () => {
    const wav = encodeWav(Int16Array.from([1, -2, 3, -4]), 22050);
    wav.writeUInt32LE(0xffffffff, 4);
    wav.writeUInt32LE(0xffffffff, 40);
    expect(Array.from(decodeWav(wav).pcm)).toEqual([1, -2, 3, -4]);
    expect(() => decodeWav(Buffer.from('not a wav file at all'))).toThrow(/RIFF/);
  });

  it('espeak voice: real speech when espeak-ng is installed, otherwise the tone fallback', async () => {
    let warned = 0;
    const tts = new TtsRegistry(() => warned++);
    const job = tts.create({ sessionId: 's', messageId: 'm', text: 'Hello from the simulator.' });
    const { served, wav } = await tts.render(job.id, { sampleRate: 16000, voice: 'espeak' })!;
    expect(parseWavHeader(wav).sampleRate).toBe(served.sampleRate);
    if (hasEspeak()) {
      expect(served.frequency).toBeNull();
      expect(served.durationMs).toBeGreaterThan(500);
    } else {
      expect(warned).toBe(1);
      expect(served).toMatchObject({ sampleRate: 16000, frequency: toneFrequencyFor(job.id), durationMs: speechDurationMs(job.text) });
    }
    expect(tts.render('unknown', { sampleRate: 16000, voice: 'tone' })).toBeUndefined();
  });

  it('speech durations: 60 ms per character, at least 300 ms', () => {
    expect(speechDurationMs('Hi.')).toBe(300);
    expect(speechDurationMs('This is longer.')).toBe(900);
  });

  it('PNG thumbnails are valid: signature, IHDR and inflatable IDAT of the right size', () => {
    const png = avatarPng([10, 20, 30], 16);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.toString('ascii', 12, 16)).toBe('IHDR');
    expect(png.readUInt32BE(16)).toBe(16);
    const idatLen = png.readUInt32BE(33);
    expect(png.toString('ascii', 37, 41)).toBe('IDAT');
    expect(inflateSync(png.subarray(41, 41 + idatLen)).length).toBe((16 * 3 + 1) * 16);
  });

  it('RecordReader splits records across and within frames', () => {
    const r = new RecordReader();
    expect(r.push('{"a":1}\x1e{"b"')).toEqual(['{"a":1}']);
    expect(r.buffered).toBe(4);
    expect(r.push(':2}\x1e\x1e')).toEqual(['{"b":2}']);
    expect(() => parseRecord('{"type":1,"target":5}')).toThrow(/target/);
    expect(() => parseRecord('[1]')).toThrow(/numeric/);
  });

  it('recogniser: onset, partials, end after endSilenceMs of frames; any frame size; reset', () => {
    const events: string[] = [];
    const rec = new Recognizer(() => ({ vadThreshold: 500, endSilenceMs: 90 }), {
      start: () => events.push('start'),
      partial: (ms) => events.push(`partial ${ms}`),
      end: (i) => events.push(`end ${i.voicedMs} ${i.partials}`),
    });
    // 20 voiced frames delivered in odd-sized pieces.
    const voiced = Buffer.concat(Array.from({ length: 20 }, (_, i) => frame(8000, i)));
    for (let off = 0; off < voiced.length; off += 333) rec.pushPcm(voiced.subarray(off, off + 333));
    expect(events).toEqual(['start', 'partial 300']);
    rec.pushPcm(Buffer.concat([frame(0), frame(0)]));
    expect(events).toHaveLength(2);
    rec.pushSilence(30);
    expect(events.at(-1)).toBe('end 600 1');
    rec.pushPcm(frame(8000));
    rec.reset();
    rec.pushSilence(300);
    expect(events.filter((e) => e === 'start')).toHaveLength(2);
    expect(events.filter((e) => e.startsWith('end'))).toHaveLength(1);
  });

  it('recogniser: whole only when the onset follows enough silence received while recording; cut at the start or by stop()', () => {
    const ends: UtteranceInfo[] = [];
    const stops: UtteranceInfo[] = [];
    const rec = new Recognizer(() => ({ vadThreshold: 500, endSilenceMs: 90 }), {
      start: () => {},
      partial: () => {},
      end: (i) => ends.push(i),
      stopped: (i) => stops.push(i),
    });
    const voice = (n: number) => rec.pushPcm(Buffer.concat(Array.from({ length: n }, (_, i) => frame(8000, i))));
    const quiet = (n: number) => rec.pushPcm(Buffer.concat(Array.from({ length: n }, () => frame(0))));

    // Voice from the very first frame heard: the recogniser came in mid-word.
    voice(10);
    quiet(3);
    expect(ends.at(-1)).toEqual({ voicedMs: 300, partials: 1, leadSilenceMs: 0, cut: 'start' });
    // Two silent frames are not enough lead…
    rec.stop();
    quiet(2);
    voice(5);
    quiet(3);
    expect(ends.at(-1)).toMatchObject({ leadSilenceMs: 60, cut: 'start' });
    // …three are (the previous utterance's trailing silence counts too).
    voice(5);
    quiet(3);
    expect(ends.at(-1)).toMatchObject({ voicedMs: 150, leadSilenceMs: 90, cut: null });
    // Recording stops while a whole-begun utterance goes on: cut at the end.
    voice(4);
    rec.stop();
    expect(stops).toEqual([{ voicedMs: 120, partials: 0, leadSilenceMs: 90, cut: 'end' }]);
    // After a stop there is no lead silence: voice right away is cut at both ends when stopped again.
    voice(4);
    rec.stop();
    expect(stops.at(-1)).toMatchObject({ cut: 'both', leadSilenceMs: 0 });
    // stop() without an utterance reports nothing; silence markers count as lead silence.
    rec.stop();
    expect(stops).toHaveLength(2);
    rec.pushSilence(90);
    voice(3);
    quiet(3);
    expect(ends.at(-1)).toMatchObject({ leadSilenceMs: 90, cut: null });
  });

  it('partialTranscript is visibly partial and never the sentence itself', () => {
    expect(partialTranscript('what time is it now', 'start')).toBe('… is it now');
    expect(partialTranscript('what time is it now', 'end')).toBe('what time is …');
    expect(partialTranscript('stop', 'start')).toBe('… stop');
    expect(partialTranscript('stop', 'end')).toBe('stop …');
    for (const cut of ['start', 'end', 'both'] as const) expect(partialTranscript('the whole question here', cut)).not.toBe('the whole question here');
  });

  it('default replies and sentence splitting', () => {
    expect(defaultReply('Hello!', { sessionId: 's', chatId: 'c', characterName: 'Mira', turn: 3 })).toEqual([
      'You said: Hello!',
      'This is Mira, reply number 3.',
    ]);
    expect(splitSentences('One. Two? Three! four')).toEqual(['One.', 'Two?', 'Three!', 'four']);
  });
});
