/**
 * The WAV parser on hand-made odd files: every layout a TTS server may send, and clear errors
 * for what is not audio.
 */
import { describe, expect, it } from 'vitest';
import { parseWav, WavError } from '../../src/audio/wav.js';

interface Chunk {
  id: string;
  body: Uint8Array;
  /** Size written in the header (defaults to body length). */
  declared?: number;
}

function u16(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff];
}
function u32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** Assembles RIFF chunks, with the pad byte after odd-sized bodies. */
function riff(chunks: Chunk[], magic = 'RIFF', form = 'WAVE'): Uint8Array {
  const parts: number[] = [];
  for (const c of chunks) {
    parts.push(...Buffer.from(c.id, 'latin1'), ...u32(c.declared ?? c.body.length), ...c.body);
    if (c.body.length & 1) parts.push(0);
  }
  return Uint8Array.from([...Buffer.from(magic, 'latin1'), ...u32(parts.length + 4), ...Buffer.from(form, 'latin1'), ...parts]);
}

function fmt(tag: number, channels: number, rate: number, bits: number, extra: number[] = []): Chunk {
  const block = (channels * bits) / 8;
  return { id: 'fmt ', body: Uint8Array.from([...u16(tag), ...u16(channels), ...u32(rate), ...u32(rate * block), ...u16(block), ...u16(bits), ...extra]) };
}

const SUBTYPE_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];
function extensible(sub: number, channels: number, rate: number, bits: number, validBits = bits, tail = SUBTYPE_TAIL): Chunk {
  return fmt(0xfffe, channels, rate, bits, [...u16(22), ...u16(validBits), ...u32(channels === 1 ? 4 : 3), ...u16(sub), ...tail]);
}

function pcm16(samples: number[]): Uint8Array {
  return Uint8Array.from(samples.flatMap((s) => u16(s & 0xffff)));
}

const listInfo: Chunk = { id: 'LIST', body: Uint8Array.from([...Buffer.from('INFOISFT', 'latin1'), ...u32(5), ...Buffer.from('Lavf\0', 'latin1')]) }; // odd size 17
const fact: Chunk = { id: 'fact', body: Uint8Array.from(u32(4)) };

describe('parseWav', () => {
  it('reads canonical 16-bit mono at 22.05 kHz', () => {
    const wav = parseWav(riff([fmt(1, 1, 22050, 16), { id: 'data', body: pcm16([0, 1000, -1000, 32767, -32768]) }]));
    expect(wav).toMatchObject({ sampleRate: 22050, channels: 1, bitsPerSample: 16, format: 'pcm', frames: 5 });
    expect(Array.from(wav.samples)).toEqual([0, 1000, -1000, 32767, -32768]);
    expect(wav.durationSec).toBeCloseTo(5 / 22050, 12);
  });

  it('skips LIST (odd size, padded), fact and unknown chunks before and after fmt', () => {
    const bytes = riff([listInfo, fmt(1, 2, 24000, 16), fact, { id: 'junk', body: new Uint8Array(3) }, { id: 'data', body: pcm16([1, 2, 3, 4, 5, 6]) }, listInfo]);
    const wav = parseWav(bytes);
    expect(wav.channels).toBe(2);
    expect(wav.frames).toBe(3);
    expect(Array.from(wav.samples)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('accepts fmt chunks of size 18 (cbSize) and 40 (WAVE_FORMAT_EXTENSIBLE, PCM and float)', () => {
    const f18 = parseWav(riff([fmt(1, 1, 16000, 16, u16(0)), { id: 'data', body: pcm16([7, -7]) }]));
    expect(Array.from(f18.samples)).toEqual([7, -7]);

    const ext24 = parseWav(riff([extensible(1, 1, 48000, 24), { id: 'data', body: Uint8Array.from([0x00, 0x00, 0x40, 0x00, 0x00, 0xc0, 0x80, 0x00, 0x00]) }]));
    expect(ext24).toMatchObject({ format: 'pcm', bitsPerSample: 24, sampleRate: 48000 });
    expect(Array.from(ext24.samples)).toEqual([16384, -16384, 1]); // 0x000080 rounds up to 1

    const f32 = new Float32Array([0.5, -1, 1.5]);
    const extF = parseWav(riff([extensible(3, 1, 44100, 32), { id: 'data', body: new Uint8Array(f32.buffer) }]));
    expect(extF.format).toBe('float');
    expect(Array.from(extF.samples)).toEqual([16384, -32768, 32767]); // clipped, not wrapped
  });

  it('refuses WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID', () => {
    const bad = extensible(1, 1, 48000, 16, 16, [...SUBTYPE_TAIL.slice(0, 13), 0x00]);
    expect(() => parseWav(riff([bad, { id: 'data', body: pcm16([1]) }]))).toThrow(/sub-format GUID/);
  });

  it('takes the rest of the file when the data size is 0xFFFFFFFF or 0 (streamed WAV)', () => {
    for (const declared of [0xffffffff, 0]) {
      const bytes = riff([fmt(1, 1, 24000, 16), { id: 'data', body: pcm16([10, 20, 30, 40]), declared }]);
      const wav = parseWav(bytes);
      expect(Array.from(wav.samples)).toEqual([10, 20, 30, 40]);
    }
  });

  it('keeps the whole frames of truncated data (declared size larger than the file)', () => {
    // Stereo 16-bit: 4 bytes a frame; 10 bytes present → 2 whole frames.
    const body = pcm16([1, -1, 2, -2, 3, -3]).subarray(0, 10);
    const wav = parseWav(riff([fmt(1, 2, 16000, 16), { id: 'data', body, declared: 1000 }]));
    expect(wav.frames).toBe(2);
    expect(Array.from(wav.samples)).toEqual([1, -1, 2, -2]);
  });

  it('converts 8-bit unsigned, 32-bit integer, 64-bit float, A-law and µ-law to 16 bits', () => {
    const u8 = parseWav(riff([fmt(1, 1, 8000, 8), { id: 'data', body: Uint8Array.from([128, 255, 0, 64]) }]));
    expect(Array.from(u8.samples)).toEqual([0, 32512, -32768, -16384]);

    const i32 = new Int32Array([0x40000000, -0x80000000, 0x7fffffff, 0x00008000]);
    const w32 = parseWav(riff([fmt(1, 1, 16000, 32), { id: 'data', body: new Uint8Array(i32.buffer) }]));
    expect(Array.from(w32.samples)).toEqual([16384, -32768, 32767, 1]);

    const f64 = new Float64Array([0.25, -0.25, -2]);
    const w64 = parseWav(riff([fmt(3, 1, 16000, 64), fact, { id: 'data', body: new Uint8Array(f64.buffer) }]));
    expect(Array.from(w64.samples)).toEqual([8192, -8192, -32768]);

    const alaw = parseWav(riff([fmt(6, 1, 8000, 8), fact, { id: 'data', body: Uint8Array.from([0xd5, 0x55, 0xaa, 0x2a]) }]));
    expect(alaw.format).toBe('alaw');
    expect(Array.from(alaw.samples)).toEqual([8, -8, 32256, -32256]);

    const mulaw = parseWav(riff([fmt(7, 1, 8000, 8), { id: 'data', body: Uint8Array.from([0xff, 0x7f, 0x00, 0x80]) }]));
    expect(Array.from(mulaw.samples)).toEqual([0, 0, -32124, 32124]);
  });

  it('reads 12-bit PCM from its 16-bit containers even when blockAlign is 0', () => {
    const bytes = riff([{ id: 'fmt ', body: Uint8Array.from([...u16(1), ...u16(1), ...u32(8000), ...u32(16000), ...u16(0), ...u16(12)]) }, { id: 'data', body: pcm16([0x7ff0, -0x8000]) }]);
    expect(Array.from(parseWav(bytes).samples)).toEqual([0x7ff0, -0x8000]);
  });

  it('reads from a Buffer at an odd byte offset (no alignment assumption)', () => {
    const bytes = riff([fmt(1, 1, 16000, 16), { id: 'data', body: pcm16([300, -300, 12345]) }]);
    const backing = Buffer.alloc(bytes.length + 1);
    backing.set(bytes, 1);
    const wav = parseWav(backing.subarray(1));
    expect(Array.from(wav.samples)).toEqual([300, -300, 12345]);
  });

  it('accepts RF64 with a data size of 0xFFFFFFFF', () => {
    const ds64: Chunk = { id: 'ds64', body: new Uint8Array(28) };
    const wav = parseWav(riff([ds64, fmt(1, 1, 24000, 16), { id: 'data', body: pcm16([5, 6]), declared: 0xffffffff }], 'RF64'));
    expect(Array.from(wav.samples)).toEqual([5, 6]);
  });

  it('returns empty audio for an empty data chunk at the end of the file', () => {
    const wav = parseWav(riff([fmt(1, 1, 24000, 16), { id: 'data', body: new Uint8Array(0) }]));
    expect(wav.frames).toBe(0);
    expect(wav.durationSec).toBe(0);
  });

  describe('errors for files that are not playable audio', () => {
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['an HTML error page', Buffer.from('<!DOCTYPE html><html><body>502 Bad Gateway</body></html>'), /^not a RIFF\/WAVE file \(starts with "<!DO"\)$/],
      ['JSON', Buffer.from('{"error":"not found"}'), /starts with "\{\\x22er"|starts with "\{/],
      ['an MP3 with ID3 tag', Uint8Array.from([0x49, 0x44, 0x33, 0x04, 0, 0, 0, 0, 0, 0x21, 0xff, 0xfb, 0x90]), /not a RIFF\/WAVE file \(starts with "ID3\\x04"\)/],
      ['an empty body', new Uint8Array(0), /not a RIFF\/WAVE file \(empty\)/],
      ['a short body', Buffer.from('RIFF'), /only 4 bytes/],
      ['a RIFF AVI', riff([], 'RIFF', 'AVI '), /not a RIFF\/WAVE file/],
      ['a WAV without data', riff([fmt(1, 1, 16000, 16)]), /no data chunk/],
      ['a WAV without fmt', riff([{ id: 'data', body: pcm16([1, 2]) }]), /no fmt chunk/],
      ['an MP3-in-WAV', riff([fmt(0x55, 1, 22050, 0), { id: 'data', body: new Uint8Array(10) }]), /unsupported WAV encoding: format tag 0x0055 \(MPEG Layer 3 \(MP3\)\)/],
      ['a 16-bit float WAV', riff([fmt(3, 1, 16000, 16), { id: 'data', body: new Uint8Array(6) }]), /unsupported WAV sample size: 16 bits/],
      ['a 40-bit PCM WAV', riff([fmt(1, 1, 16000, 40), { id: 'data', body: new Uint8Array(10) }]), /unsupported WAV sample size: 40 bits/],
      ['a silly sample rate', riff([fmt(1, 1, 10, 16), { id: 'data', body: pcm16([1]) }]), /sample rate 10 Hz/],
    ];
    for (const [name, bytes, message] of cases) {
      it(`refuses ${name} with a WavError saying why`, () => {
        let caught: unknown;
        try {
          parseWav(bytes);
        } catch (err) {
          caught = err;
        }
        expect(caught).toBeInstanceOf(WavError);
        expect((caught as Error).message).toMatch(message);
      });
    }
  });
});
