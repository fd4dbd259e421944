/**
 * PCM → what a Discord client sends: 48 kHz stereo, 20 ms frames (960 samples per channel).
 * Also the inverse helper used by the bot-audio recorder.
 */
import { OpusDecoder, OpusEncoder, type OpusChannels, type OpusSampleRate } from '../../../src/audio/opus.js';

export const DISCORD_RATE = 48_000;
export const FRAME_SAMPLES = 960; // 20 ms at 48 kHz, per channel
export const SILENCE_FRAME = Buffer.from([0xf8, 0xff, 0xfe]);

/**
 * Resamples one channel with linear interpolation. A test double's resampler: adequate for tones
 * and speech fixtures (images are attenuated by the linear kernel, and Opus band-limits anyway),
 * not a production resampler (that is src/audio/resampler.ts).
 */
export function resampleLinear(input: Int16Array, inRate: number, outRate: number): Int16Array {
  if (inRate === outRate) return input;
  const outLength = Math.floor((input.length * outRate) / inRate);
  const out = new Int16Array(outLength);
  const step = inRate / outRate;
  for (let i = 0; i < outLength; i++) {
    const pos = i * step;
    const i0 = Math.floor(pos);
    const frac = pos - i0;
    const a = input[i0] ?? 0;
    const b = input[i0 + 1] ?? a;
    out[i] = Math.round(a + (b - a) * frac);
  }
  return out;
}

function deinterleave(pcm: Int16Array, channels: 1 | 2): Int16Array[] {
  if (channels === 1) return [pcm];
  const n = Math.floor(pcm.length / 2);
  const left = new Int16Array(n);
  const right = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    left[i] = pcm[2 * i]!;
    right[i] = pcm[2 * i + 1]!;
  }
  return [left, right];
}

/** Any-rate mono/stereo PCM → 48 kHz interleaved stereo frames of 20 ms (the last zero-padded). */
export function toDiscordFrames(pcm: Int16Array, sampleRate: number, channels: 1 | 2): Int16Array[] {
  if (!Number.isInteger(sampleRate) || sampleRate < 4000 || sampleRate > 192_000) {
    throw new RangeError(`unsupported sample rate ${sampleRate}`);
  }
  if (channels !== 1 && channels !== 2) throw new RangeError(`unsupported channel count ${String(channels)}`);
  const planes = deinterleave(pcm, channels).map((p) => resampleLinear(p, sampleRate, DISCORD_RATE));
  const left = planes[0]!;
  const right = planes[1] ?? left;
  const frames: Int16Array[] = [];
  for (let start = 0; start < left.length; start += FRAME_SAMPLES) {
    const frame = new Int16Array(FRAME_SAMPLES * 2);
    const n = Math.min(FRAME_SAMPLES, left.length - start);
    for (let i = 0; i < n; i++) {
      frame[2 * i] = left[start + i]!;
      frame[2 * i + 1] = right[start + i]!;
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
