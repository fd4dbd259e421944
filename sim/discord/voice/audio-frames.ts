/**
 * PCM → what a Discord client sends: 48 kHz stereo, 20 ms frames (960 samples per channel).
 * Also the inverse helper used by the bot-audio recorder.
 */
import { OpusDecoder, OpusEncoder, type OpusChannels, type OpusSampleRate } from '../../../src/audio/opus.js';
import { Resampler } from '../../../src/audio/resampler.js';

export const DISCORD_RATE = 48_000;
export const FRAME_SAMPLES = 960; // 20 ms at 48 kHz, per channel
export const SILENCE_FRAME = Buffer.from([0xf8, 0xff, 0xfe]);

/** Any-rate mono/stereo PCM → 48 kHz interleaved stereo frames of 20 ms (the last zero-padded). */
export function toDiscordFrames(pcm: Int16Array, sampleRate: number, channels: 1 | 2): Int16Array[] {
  if (!Number.isInteger(sampleRate) || sampleRate < 4000 || sampleRate > 192_000) {
    throw new RangeError(`unsupported sample rate ${sampleRate}`);
  }
  if (channels !== 1 && channels !== 2) throw new RangeError(`unsupported channel count ${String(channels)}`);
  let at48k = pcm;
  if (sampleRate !== DISCORD_RATE) {
    const resampler = new Resampler(sampleRate, DISCORD_RATE, { channels });
    const head = resampler.process(pcm);
    const tail = resampler.flush();
    at48k = new Int16Array(head.length + tail.length);
    at48k.set(head, 0);
    at48k.set(tail, head.length);
  }
  const perChannel = Math.floor(at48k.length / channels);
  const frames: Int16Array[] = [];
  for (let start = 0; start < perChannel; start += FRAME_SAMPLES) {
    const frame = new Int16Array(FRAME_SAMPLES * 2);
    const n = Math.min(FRAME_SAMPLES, perChannel - start);
    for (let i = 0; i < n; i++) {
      const j = start + i;
      const left = at48k[j * channels]!;
      frame[2 * i] = left;
      frame[2 * i + 1] = channels === 2 ? at48k[j * 2 + 1]! : left;
    }
    frames.push(frame);
  }
  return frames;
}

/** Encodes 48 kHz stereo 20 ms frames with one (stateful) encoder, as one client would. */
export function encodeDiscordFrames(frames: Int16Array[]): Buffer[] {
  const encoder = new OpusEncoder(DISCORD_RATE, 2, 'audio');
  try {
    return frames.map((f) => encoder.encode(f));
  } finally {
    encoder.destroy();
  }
}

/**
 * Decodes a packet sequence with a fresh decoder. Undecodable packets become 20 ms of silence
 * (and are counted) so one bad packet never hides the rest.
 */
export function decodePackets(packets: Buffer[], sampleRate: OpusSampleRate, channels: OpusChannels): { pcm: Int16Array; failures: number } {
  const decoder = new OpusDecoder(sampleRate, channels);
  const chunks: Int16Array[] = [];
  let failures = 0;
  try {
    for (const p of packets) {
      try {
        chunks.push(decoder.decode(p));
      } catch {
        failures++;
        chunks.push(new Int16Array((sampleRate / 50) * channels));
      }
    }
  } finally {
    decoder.destroy();
  }
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const pcm = new Int16Array(total);
  let offset = 0;
  for (const c of chunks) {
    pcm.set(c, offset);
    offset += c.length;
  }
  return { pcm, failures };
}
