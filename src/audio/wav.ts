/**
 * RIFF/WAVE parser for TTS output, tolerant of what real servers send:
 * - `fmt ` chunks of any size (16, 18, 40…), including WAVE_FORMAT_EXTENSIBLE (the sub-format
 *   GUID decides between PCM and IEEE float);
 * - any other chunk (LIST, fact, cue, id3, bext, junk…) skipped, honouring the pad byte after an
 *   odd-sized chunk;
 * - a `data` size of 0 or 0xFFFFFFFF (written before the length was known, by streaming
 *   servers), or larger than the file: the audio is the rest of the file;
 * - truncated data: whole sample frames that are present are kept;
 * - RIFF and RF64 magic; the RIFF size field is ignored (streamers get it wrong too).
 * Samples come out as interleaved 16-bit PCM whatever the source: 8-bit unsigned, 16-bit,
 * 24-bit, 32-bit integer, 32/64-bit float, A-law and µ-law.
 */

export type WavSampleFormat = 'pcm' | 'float' | 'alaw' | 'mulaw';

export interface WavAudio {
  sampleRate: number;
  channels: number;
  /** Bits per sample of the source (container size for 8/16/24/32/64). */
  bitsPerSample: number;
  format: WavSampleFormat;
  /** Interleaved 16-bit samples (frames × channels). */
  samples: Int16Array;
  /** Sample frames (samples per channel). */
  frames: number;
  durationSec: number;
}

/** The bytes are not a WAV file we can play; the message says why. */
export class WavError extends Error {
  override readonly name = 'WavError';
}

const FORMAT_PCM = 0x0001;
const FORMAT_FLOAT = 0x0003;
const FORMAT_ALAW = 0x0006;
const FORMAT_MULAW = 0x0007;
const FORMAT_EXTENSIBLE = 0xfffe;
/** KSDATAFORMAT_SUBTYPE_* GUIDs share these 14 bytes after the 2-byte format code. */
const GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

const FORMAT_NAMES: Record<number, string> = {
  0x0002: 'Microsoft ADPCM',
  0x0011: 'IMA ADPCM',
  0x0031: 'GSM 6.10',
  0x0050: 'MPEG',
  0x0055: 'MPEG Layer 3 (MP3)',
  0x674f: 'Ogg Vorbis',
  0x704f: 'Opus',
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fourcc(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);
}

/** Up to `n` leading bytes shown as text, non-printables escaped, for error messages. */
function preview(bytes: Uint8Array, n = 4): string {
  let s = '';
  for (let i = 0; i < Math.min(n, bytes.length); i++) {
    const c = bytes[i]!;
    s += c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return s;
}

interface Fmt {
  formatTag: number;
  channels: number;
  sampleRate: number;
  blockAlign: number;
  bitsPerSample: number;
}

function parseFmt(bytes: Uint8Array, view: DataView, at: number, size: number): Fmt {
  if (size < 14) throw new WavError(`WAV fmt chunk too short (${size} bytes)`);
  let formatTag = view.getUint16(at, true);
  const channels = view.getUint16(at + 2, true);
  const sampleRate = view.getUint32(at + 4, true);
  const blockAlign = view.getUint16(at + 12, true);
  let bitsPerSample = size >= 16 ? view.getUint16(at + 14, true) : 0;
  if (formatTag === FORMAT_EXTENSIBLE) {
    if (size < 40) throw new WavError(`WAVE_FORMAT_EXTENSIBLE fmt chunk too short (${size} bytes, need 40)`);
    const sub = at + 24;
    for (let i = 0; i < GUID_TAIL.length; i++) {
      if (bytes[sub + 2 + i] !== GUID_TAIL[i]) throw new WavError('WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID');
    }
    formatTag = view.getUint16(sub, true);
    // validBitsPerSample (at + 18) may be smaller than the container (e.g. 20 in 24): the
    // container size is what we read; the unused low bits are zero by the spec.
  }
  if (channels < 1 || channels > 32) throw new WavError(`WAV has ${channels} channels`);
  if (sampleRate < 1000 || sampleRate > 768_000) throw new WavError(`WAV sample rate ${sampleRate} Hz is out of range`);
  if (formatTag === FORMAT_ALAW || formatTag === FORMAT_MULAW) bitsPerSample = 8;
  return { formatTag, channels, sampleRate, blockAlign, bitsPerSample };
}

/** Parses a complete (or truncated) WAV file held in memory. */
export function parseWav(bytes: Uint8Array): WavAudio {
  if (bytes.length < 12) {
    throw new WavError(bytes.length === 0 ? 'not a RIFF/WAVE file (empty)' : `not a RIFF/WAVE file (only ${bytes.length} bytes: "${preview(bytes, 12)}")`);
  }
  const magic = fourcc(bytes, 0);
  if ((magic !== 'RIFF' && magic !== 'RF64') || fourcc(bytes, 8) !== 'WAVE') {
    throw new WavError(`not a RIFF/WAVE file (starts with "${preview(bytes)}")`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let fmt: Fmt | undefined;
  let dataStart = -1;
  let dataEnd = -1;
  let at = 12;
  while (at + 8 <= bytes.length) {
    const id = fourcc(bytes, at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      if (body + size > bytes.length) throw new WavError('WAV fmt chunk is truncated');
      fmt = parseFmt(bytes, view, body, size);
    } else if (id === 'data') {
      dataStart = body;
      const streamed = size === 0 || size === 0xffffffff || body + size > bytes.length;
      dataEnd = streamed ? bytes.length : body + size;
      if (streamed || fmt) break;
    }
    if (size > bytes.length) break; // a bogus size: nothing after it can be trusted
    at = body + size + (size & 1);
  }
  if (!fmt) throw new WavError(dataStart < 0 ? 'WAV file has neither fmt nor data chunk' : 'WAV file has no fmt chunk');
  if (dataStart < 0) throw new WavError('WAV file has no data chunk');

  const { formatTag, channels, sampleRate } = fmt;
  let format: WavSampleFormat;
  if (formatTag === FORMAT_PCM) format = 'pcm';
  else if (formatTag === FORMAT_FLOAT) format = 'float';
  else if (formatTag === FORMAT_ALAW) format = 'alaw';
  else if (formatTag === FORMAT_MULAW) format = 'mulaw';
  else {
    const name = FORMAT_NAMES[formatTag];
    throw new WavError(`unsupported WAV encoding: format tag 0x${formatTag.toString(16).padStart(4, '0')}${name ? ` (${name})` : ''}`);
  }
  const bits = fmt.bitsPerSample;
  const containerBytes = fmt.blockAlign > 0 && fmt.blockAlign % channels === 0 ? fmt.blockAlign / channels : Math.ceil(bits / 8);
  const supported =
    format === 'pcm' ? [1, 2, 3, 4].includes(containerBytes) : format === 'float' ? containerBytes === 4 || containerBytes === 8 : containerBytes === 1;
  if (!supported) throw new WavError(`unsupported WAV sample size: ${bits} bits (${containerBytes}-byte ${format} samples)`);

  const frameBytes = containerBytes * channels;
  const frames = Math.floor((dataEnd - dataStart) / frameBytes);
  const count = frames * channels;
  const samples = convert(bytes, view, dataStart, count, format, containerBytes);
  return { sampleRate, channels, bitsPerSample: containerBytes * 8, format, samples, frames, durationSec: frames / sampleRate };
}

function clip16(v: number): number {
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

function convert(bytes: Uint8Array, view: DataView, at: number, count: number, format: WavSampleFormat, size: number): Int16Array {
  const out = new Int16Array(count);
  if (format === 'pcm') {
    if (size === 2) {
      if (LITTLE_ENDIAN && ((bytes.byteOffset + at) & 1) === 0) {
        out.set(new Int16Array(bytes.buffer, bytes.byteOffset + at, count));
      } else {
        for (let i = 0; i < count; i++) out[i] = view.getInt16(at + 2 * i, true);
      }
    } else if (size === 1) {
      for (let i = 0; i < count; i++) out[i] = (bytes[at + i]! - 128) << 8;
    } else if (size === 3) {
      for (let i = 0, p = at; i < count; i++, p += 3) {
        const v = (bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16)) << 8; // sign-extended 24 → 32 bits
        out[i] = clip16(Math.round(v / 65536));
      }
    } else {
      for (let i = 0; i < count; i++) out[i] = clip16(Math.round(view.getInt32(at + 4 * i, true) / 65536));
    }
  } else if (format === 'float') {
    if (size === 4) {
      for (let i = 0; i < count; i++) out[i] = clip16(Math.round(view.getFloat32(at + 4 * i, true) * 32768));
    } else {
      for (let i = 0; i < count; i++) out[i] = clip16(Math.round(view.getFloat64(at + 8 * i, true) * 32768));
    }
    // NaN from a broken float file becomes 0 through Int16Array assignment.
  } else {
    const table = format === 'alaw' ? ALAW_TABLE : MULAW_TABLE;
    for (let i = 0; i < count; i++) out[i] = table[bytes[at + i]!]!;
  }
  return out;
}

/** G.711 decode tables (ITU-T G.711 reference expansion). */
const ALAW_TABLE = new Int16Array(256);
const MULAW_TABLE = new Int16Array(256);
for (let i = 0; i < 256; i++) {
  const a = i ^ 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  ALAW_TABLE[i] = a & 0x80 ? t : -t;

  const u = ~i & 0xff;
  let m = ((u & 0x0f) << 3) + 0x84;
  m <<= (u & 0x70) >> 4;
  MULAW_TABLE[i] = u & 0x80 ? 0x84 - m : m - 0x84;
}
