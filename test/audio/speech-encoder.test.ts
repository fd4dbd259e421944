/**
 * Speech PCM → 20 ms Opus packets: decodes back to the input (after the codec delay), has the
 * right duration, is chunking-invariant, and the packet stream is lazy and abortable.
 */
import { describe, expect, it } from 'vitest';
import { OpusDecoder } from '../../src/audio/opus.js';
import { Resampler } from '../../src/audio/resampler.js';
import { SpeechEncoder, encodeWav, opusRateFor, type SpeechEncoderOptions } from '../../src/audio/speech-encoder.js';
import { WavError } from '../../src/audio/wav.js';
import { createOpusPacketStream } from '../../src/audio/opus-stream.js';
import { bestLag, correlation } from '../../src/audio/quality.js';
import { concatInt16 } from '../../src/audio/pcm.js';
import { channel, interleave, prng, speechLike } from './signals.js';

function encode(opts: SpeechEncoderOptions, pcm: Int16Array, chunkFrames: number): { packets: Buffer[]; enc: SpeechEncoder } {
  const enc = new SpeechEncoder(opts);
  const ch = opts.inputChannels ?? 1;
  const packets: Buffer[] = [];
  for (let at = 0; at < pcm.length; at += chunkFrames * ch) packets.push(...enc.push(pcm.subarray(at, at + chunkFrames * ch)));
  packets.push(...enc.end());
  return { packets, enc };
}

function decode48(packets: Buffer[], channels: 1 | 2): Int16Array {
  const dec = new OpusDecoder(48000, channels);
  const out = concatInt16(packets.map((p) => dec.decode(p)));
  dec.destroy();
  return out;
}

function to48k(mono: Int16Array, rate: number): Int16Array {
  const r = new Resampler(rate, 48000);
  return concatInt16([r.process(mono), r.flush()]);
}

/** Aligns the decode with the reference and returns the lag and correlation over the whole signal. */
function match(reference48: Int16Array, decoded48: Int16Array): { lag: number; correlation: number } {
  const { lag } = bestLag(reference48.subarray(0, 24000), decoded48, 0, 2000);
  return { lag, correlation: correlation(reference48, decoded48, lag) };
}

const isStereoPacket = (p: Buffer): boolean => (p[0]! & 0x04) !== 0;

describe('SpeechEncoder', () => {
  it('24 kHz mono speech → stereo packets that decode back to the input, with the right duration', () => {
    // 1.84 s, ending inside a voiced syllable so the tail check below has a waveform to match.
    const x = speechLike(24000, 44160);
    const { packets, enc } = encode({ inputRate: 24000 }, x, 480);
    expect(enc.opusRate).toBe(24000); // 'auto': no resampling needed
    expect(enc.durationSec).toBeCloseTo(1.84, 9);
    // 92 frames of speech + 1 frame that pushes the encoder's look-ahead out.
    expect(packets.length).toBe(93);
    expect(enc.packetCount).toBe(93);
    expect(packets.every(isStereoPacket)).toBe(true);
    const out = decode48(packets, 2);
    expect(out.length).toBe(93 * 960 * 2);
    const left = channel(out, 2, 0);
    expect(correlation(left, channel(out, 2, 1), 0)).toBeGreaterThan(0.999); // duplicated channels
    const m = match(to48k(x, 24000), left);
    expect(m.correlation).toBeGreaterThan(0.95);
    expect(m.lag).toBeGreaterThan(0);
    expect(m.lag).toBeLessThan(960); // the codec delay is a few ms, not frames
    // The end of the speech is in the packets (look-ahead flushed): the last 100 ms match too.
    const ref = to48k(x, 24000);
    expect(left.length).toBeGreaterThanOrEqual(ref.length + m.lag); // every input sample came out
    const tailFrom = ref.length - 4800;
    const tail = correlation(ref.subarray(tailFrom), left.subarray(tailFrom + m.lag), 0);
    expect(tail).toBeGreaterThan(0.9);
    enc.destroy();
  });

  it('22.05 kHz stereo → resampled to 24 kHz, both channels kept', () => {
    const l = speechLike(22050, 22050, 1);
    const r = speechLike(22050, 22050, 2, 4000);
    const { packets, enc } = encode({ inputRate: 22050, inputChannels: 2 }, interleave(l, r), 441);
    expect(enc.opusRate).toBe(24000);
    expect(enc.durationSec).toBeCloseTo(1.0, 9);
    expect(packets.length).toBeGreaterThanOrEqual(50);
    expect(packets.length).toBeLessThanOrEqual(51);
    const out = decode48(packets, 2);
    expect(match(to48k(l, 22050), channel(out, 2, 0)).correlation).toBeGreaterThan(0.95);
    expect(match(to48k(r, 22050), channel(out, 2, 1)).correlation).toBeGreaterThan(0.95);
    enc.destroy();
  });

  it('forced 48 kHz mono packets from 16 kHz input', () => {
    const x = speechLike(16000, 24000, 4); // 1.5 s
    const { packets, enc } = encode({ inputRate: 16000, opusRate: 48000, opusChannels: 1, bitrate: 32000 }, x, 333);
    expect(enc.opusRate).toBe(48000);
    expect(packets.some(isStereoPacket)).toBe(false);
    const out = decode48(packets, 1);
    expect(out.length).toBeGreaterThanOrEqual(1.5 * 48000);
    expect(match(to48k(x, 16000), out).correlation).toBeGreaterThan(0.95);
    enc.destroy();
  });

  it('averages more than two input channels', () => {
    const x = speechLike(16000, 16000, 13);
    const three = new Int16Array(x.length * 3);
    for (let i = 0; i < x.length; i++) three.fill(x[i]!, i * 3, i * 3 + 3);
    const { packets, enc } = encode({ inputRate: 16000, inputChannels: 3 }, three, 320);
    expect(enc.durationSec).toBeCloseTo(1.0, 9);
    expect(match(to48k(x, 16000), channel(decode48(packets, 2), 2, 0)).correlation).toBeGreaterThan(0.95);
    enc.destroy();
  });

  it('gives identical packets however the input is chunked', () => {
    const x = speechLike(22050, 30000, 9);
    const a = encode({ inputRate: 22050 }, x, 30000).packets;
    const rnd = prng(5);
    const enc = new SpeechEncoder({ inputRate: 22050 });
    const b: Buffer[] = [];
    for (let at = 0; at < x.length; ) {
      const n = Math.floor(rnd() * 1500);
      b.push(...enc.push(x.subarray(at, at + n)));
      at += n;
    }
    b.push(...enc.end());
    expect(b.length).toBe(a.length);
    expect(b.every((p, i) => p.equals(a[i]!))).toBe(true);
    enc.destroy();
  });

  it('switches input format between chunks and accumulates the duration', () => {
    const enc = new SpeechEncoder({ inputRate: 24000 });
    const packets = [...enc.push(speechLike(24000, 12000))];
    packets.push(...enc.setInputFormat(16000, 1));
    packets.push(...enc.push(speechLike(16000, 8000)));
    packets.push(...enc.end());
    expect(enc.durationSec).toBeCloseTo(1.0, 9);
    expect(packets.length).toBeGreaterThanOrEqual(50);
    expect(packets.length).toBeLessThanOrEqual(51);
    expect(enc.end()).toEqual([]); // nothing new since the last end()
    enc.destroy();
  });

  it('encodeWav(): WAV bytes → packets with the true duration; non-audio → WavError', () => {
    const x = speechLike(22050, 22050 * 2, 17);
    const header = Buffer.alloc(44);
    header.write('RIFF', 0);
    header.writeUInt32LE(36 + x.byteLength, 4);
    header.write('WAVEfmt ', 8);
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(1, 20);
    header.writeUInt16LE(1, 22);
    header.writeUInt32LE(22050, 24);
    header.writeUInt32LE(44100, 28);
    header.writeUInt16LE(2, 32);
    header.writeUInt16LE(16, 34);
    header.write('data', 36);
    header.writeUInt32LE(0xffffffff, 40); // streamed
    const res = encodeWav(Buffer.concat([header, Buffer.from(x.buffer)]));
    expect(res.durationSec).toBeCloseTo(2, 9);
    expect(res.wav).toMatchObject({ sampleRate: 22050, channels: 1, format: 'pcm' });
    expect(res.packets.length).toBe(101);
    expect(match(to48k(x, 22050), channel(decode48(res.packets, 2), 2, 0)).correlation).toBeGreaterThan(0.95);
    expect(() => encodeWav(Buffer.from('<!DOCTYPE html>'))).toThrow(WavError);
  });

  it('picks the smallest Opus rate at or above the input rate', () => {
    expect([8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000].map(opusRateFor)).toEqual([
      8000, 12000, 16000, 24000, 24000, 48000, 48000, 48000, 48000,
    ]);
  });
});

describe('OpusPacketStream', () => {
  it('streams packets for PCM written chunk by chunk, at changing rates, then ends', async () => {
    const stream = createOpusPacketStream({ inputRate: 24000 });
    stream.write(speechLike(24000, 12000)); // 0.5 s
    stream.write(speechLike(16000, 8000), 16000, 1); // 0.5 s
    stream.finish();
    const packets: Buffer[] = [];
    for await (const p of stream) packets.push(p as Buffer);
    expect(packets.length).toBeGreaterThanOrEqual(50);
    expect(packets.length).toBeLessThanOrEqual(51);
    expect(stream.encodedSec).toBeCloseTo(1.0, 9);
    expect(stream.isAborted).toBe(false);
    const out = decode48(packets, 2);
    expect(out.some((s) => Math.abs(s) > 1000)).toBe(true);
  });

  it('encodes lazily: unread PCM is not encoded ahead of the reader', async () => {
    const stream = createOpusPacketStream({ inputRate: 24000, highWaterMark: 3 });
    stream.write(speechLike(24000, 48000)); // 2 s queued
    await new Promise((r) => setImmediate(r));
    expect(stream.encodedSec).toBe(0); // nobody is reading yet
    const first = stream.read() as Buffer | null; // what the audio player does every 20 ms
    expect(first).toBeInstanceOf(Buffer);
    await new Promise((r) => setImmediate(r));
    expect(stream.encodedSec).toBeLessThan(0.2); // a few packets ahead, not 2 s
    stream.abort();
  });

  it('abort() ends the stream at once and drops what was queued', async () => {
    const stream = createOpusPacketStream({ inputRate: 24000 });
    stream.write(speechLike(24000, 48000));
    const got: Buffer[] = [];
    const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
    stream.on('data', (p: Buffer) => {
      got.push(p);
      if (got.length === 3) stream.abort();
    });
    await closed;
    expect(stream.destroyed).toBe(true);
    expect(stream.isAborted).toBe(true);
    expect(got.length).toBe(3);
    stream.write(speechLike(24000, 480)); // ignored, no throw
    stream.finish();
  });

  it('a consumer destroying the stream frees it; later writes are ignored', async () => {
    const stream = createOpusPacketStream({ inputRate: 16000 });
    stream.write(speechLike(16000, 3200));
    expect(stream.read()).toBeInstanceOf(Buffer);
    stream.destroy();
    await new Promise((r) => setImmediate(r));
    expect(() => stream.write(speechLike(16000, 320))).not.toThrow();
    expect(stream.isAborted).toBe(false);
  });
});
