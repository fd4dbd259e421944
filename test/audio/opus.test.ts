/**
 * The corrected opusscript wrapper: many live instances stay bit-exact, invalid packets are
 * refused without harm, and decoding at 16 kHz is a proper band-limited decode.
 */
import { describe, expect, it } from 'vitest';
import { OpusDecodeError, OpusDecoder, OpusEncodeError, OpusEncoder, OPUS_SILENCE_FRAME, opusHeapBytes, opusLiveCodecs } from '../../src/audio/opus.js';
import { Resampler } from '../../src/audio/resampler.js';
import { bestLag, snrDb, toneAmplitude, worstSpur } from '../../src/audio/quality.js';
import { concatInt16 } from '../../src/audio/pcm.js';
import { chirp, interleave, noise, prng, speechLike, tones } from './signals.js';

const FRAME = 960; // 20 ms at 48 kHz

function frames(pcm: Int16Array, channels: number, frameSize = FRAME): Int16Array[] {
  const step = frameSize * channels;
  const out: Int16Array[] = [];
  for (let at = 0; at + step <= pcm.length; at += step) out.push(pcm.subarray(at, at + step));
  return out;
}

function encodeAll(pcm: Int16Array, channels: 1 | 2, bitrate: number): Buffer[] {
  const enc = new OpusEncoder(48000, channels, 'audio', { bitrate });
  try {
    return frames(pcm, channels).map((f) => enc.encode(f));
  } finally {
    enc.destroy();
  }
}

function decodeAll(packets: Uint8Array[], rate: 16000 | 48000, channels: 1 | 2): Int16Array {
  const dec = new OpusDecoder(rate, channels);
  try {
    return concatInt16(packets.map((p) => dec.decode(p)));
  } finally {
    dec.destroy();
  }
}

function bandLimitTo16k(pcm48: Int16Array): Int16Array {
  const r = new Resampler(48000, 16000);
  return concatInt16([r.process(pcm48), r.flush()]);
}

function sameBytes(a: Uint8Array | Int16Array, b: Uint8Array | Int16Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

describe('OpusEncoder / OpusDecoder basics', () => {
  it('round-trips a frame, reports settings, and refuses a wrong frame length', () => {
    const enc = new OpusEncoder(48000, 2, 'audio');
    expect(enc.getComplexity()).toBe(9); // libopus default, read back through a GET ctl
    enc.setComplexity(3);
    enc.setBitrate(48000);
    expect(enc.getComplexity()).toBe(3);
    expect(enc.getBitrate()).toBe(48000);
    expect(enc.lookahead()).toBe(312);
    const pcm = interleave(tones(48000, FRAME, [{ hz: 440, amp: 8000 }]), tones(48000, FRAME, [{ hz: 660, amp: 8000 }]));
    const packet = enc.encode(pcm);
    expect(packet.length).toBeGreaterThan(10);
    const dec = new OpusDecoder(48000, 2);
    const out = dec.decode(packet);
    expect(out.length).toBe(FRAME * 2);
    expect(dec.lastPacketDuration()).toBe(FRAME);
    expect(() => enc.encode(new Int16Array(1000))).toThrow(OpusEncodeError);
    expect(() => enc.setComplexity(11)).toThrow(RangeError);
    enc.destroy();
    dec.destroy();
    expect(() => dec.decode(packet)).toThrow(/after destroy/);
    enc.destroy(); // idempotent
  });

  it("decodes Discord's silence frame F8 FF FE to 20 ms of silence at any rate", () => {
    for (const [rate, ch] of [[48000, 2], [16000, 1]] as const) {
      const dec = new OpusDecoder(rate, ch);
      const out = dec.decode(OPUS_SILENCE_FRAME);
      expect(out.length).toBe((rate / 50) * ch);
      expect(out.every((s) => s === 0)).toBe(true);
      dec.destroy();
    }
  });

  it('rejects bad rates and channel counts with RangeError', () => {
    expect(() => new OpusDecoder(44100 as 48000, 1)).toThrow(RangeError);
    expect(() => new OpusDecoder(48000, 3 as 2)).toThrow(RangeError);
    expect(() => new OpusEncoder(22050 as 24000, 1, 'voip')).toThrow(RangeError);
  });

  it('conceals a lost packet with decodeLoss()', () => {
    const pcm = speechLike(48000, FRAME * 10);
    const packets = encodeAll(pcm, 1, 48000);
    const dec = new OpusDecoder(48000, 1);
    for (const p of packets.slice(0, 5)) dec.decode(p);
    const plc = dec.decodeLoss(FRAME);
    expect(plc.length).toBe(FRAME);
    expect(plc.some((s) => s !== 0)).toBe(true); // concealment continues the signal
    expect(dec.decode(packets[6]!).length).toBe(FRAME); // and decoding goes on
    dec.destroy();
  });
});

describe('many live instances (the opusscript heap bug, fixed)', () => {
  it('64 decoders + 8 encoders used interleaved give bit-identical output to one instance alone', () => {
    const FRAMES = 60;
    const n = FRAME * FRAMES;
    // Eight real signals: tones, chirps, noise, speech-like; four stereo, four mono.
    const sources: Array<{ pcm: Int16Array; channels: 1 | 2; bitrate: number }> = [
      { pcm: interleave(tones(48000, n, [{ hz: 440, amp: 9000 }]), tones(48000, n, [{ hz: 3000, amp: 7000 }])), channels: 2, bitrate: 64000 },
      { pcm: interleave(chirp(48000, n, 100, 18000, 9000), chirp(48000, n, 18000, 100, 9000)), channels: 2, bitrate: 96000 },
      { pcm: interleave(noise(n, 6000, 3), noise(n, 6000, 4)), channels: 2, bitrate: 128000 },
      { pcm: interleave(speechLike(48000, n, 5), speechLike(48000, n, 6)), channels: 2, bitrate: 48000 },
      { pcm: tones(48000, n, [{ hz: 150, amp: 6000 }, { hz: 5000, amp: 4000 }]), channels: 1, bitrate: 32000 },
      { pcm: chirp(48000, n, 50, 20000, 12000), channels: 1, bitrate: 64000 },
      { pcm: noise(n, 10000, 9), channels: 1, bitrate: 24000 },
      { pcm: speechLike(48000, n, 11), channels: 1, bitrate: 40000 },
    ];
    const decoderSpecs = Array.from({ length: 64 }, (_, i) => ({
      source: i % 8,
      rate: (i % 2 === 0 ? 48000 : 16000) as 48000 | 16000,
      channels: (i % 2 === 0 ? 2 : 1) as 1 | 2,
    }));

    // Reference: each instance alone (created, used, destroyed before the next one exists).
    const refPackets = sources.map((s) => encodeAll(s.pcm, s.channels, s.bitrate));
    const refPcm = decoderSpecs.map((d) => decodeAll(refPackets[d.source]!, d.rate, d.channels));
    expect(opusLiveCodecs()).toBe(0);

    // All 72 alive at once, used frame by frame in interleaved order.
    const encoders = sources.map((s) => new OpusEncoder(48000, s.channels, 'audio', { bitrate: s.bitrate }));
    const decoders = decoderSpecs.map((d) => new OpusDecoder(d.rate, d.channels));
    expect(opusLiveCodecs()).toBe(72);
    const split = sources.map((s) => frames(s.pcm, s.channels));
    const outPackets: Buffer[][] = sources.map(() => []);
    const outPcm: Int16Array[][] = decoderSpecs.map(() => []);
    for (let f = 0; f < FRAMES; f++) {
      for (let e = 0; e < encoders.length; e++) outPackets[e]!.push(encoders[e]!.encode(split[e]![f]!));
      for (let d = 0; d < decoders.length; d++) outPcm[d]!.push(decoders[d]!.decode(outPackets[decoderSpecs[d]!.source]![f]!));
    }
    let packetMismatches = 0;
    for (let e = 0; e < encoders.length; e++) {
      for (let f = 0; f < FRAMES; f++) if (!sameBytes(outPackets[e]![f]!, refPackets[e]![f]!)) packetMismatches++;
    }
    let pcmMismatches = 0;
    for (let d = 0; d < decoders.length; d++) if (!sameBytes(concatInt16(outPcm[d]!), refPcm[d]!)) pcmMismatches++;
    expect(packetMismatches).toBe(0);
    expect(pcmMismatches).toBe(0);
    // The comparison is not vacuous: the decoded streams carry the signals.
    expect(refPcm[0]!.some((s) => Math.abs(s) > 1000)).toBe(true);
    for (const c of [...encoders, ...decoders]) c.destroy();
    expect(opusLiveCodecs()).toBe(0);
  });
});

describe('heap churn and growth', () => {
  it('stays bit-exact while other codecs are created and destroyed around it, and across heap growth', () => {
    const pcm = interleave(speechLike(48000, FRAME * 40, 21), chirp(48000, FRAME * 40, 300, 12000, 7000));
    const packets = encodeAll(pcm, 2, 64000);
    const reference = decodeAll(packets, 48000, 2);
    const referenceEnc = encodeAll(pcm, 2, 64000);

    const dec = new OpusDecoder(48000, 2);
    const enc = new OpusEncoder(48000, 2, 'audio', { bitrate: 64000 });
    const heapBefore = opusHeapBytes();
    const crowd: OpusDecoder[] = [];
    const out: Int16Array[] = [];
    const outPackets: Buffer[] = [];
    const split = frames(pcm, 2);
    for (let f = 0; f < 40; f++) {
      // Churn: free a few, allocate more (freed blocks get reused), until the heap has grown.
      for (let k = 0; k < 3 && crowd.length > 0 && f % 2 === 0; k++) crowd.splice(f % crowd.length, 1)[0]!.destroy();
      for (let k = 0; k < 8; k++) crowd.push(new OpusDecoder(48000, 2));
      for (const c of crowd.slice(-4)) c.decode(packets[f]!);
      out.push(dec.decode(packets[f]!));
      outPackets.push(enc.encode(split[f]!));
    }
    expect(opusHeapBytes()).toBeGreaterThan(heapBefore); // memory.grow happened mid-stream
    expect(sameBytes(concatInt16(out), reference)).toBe(true);
    expect(outPackets.every((p, i) => p.equals(referenceEnc[i]!))).toBe(true);
    for (const c of [...crowd, dec, enc]) c.destroy();
  });
});

describe('invalid packets', () => {
  it('throws OpusDecodeError for empty, truncated and malformed packets, and the stream continues unharmed', () => {
    const pcm = speechLike(48000, FRAME * 30);
    const packets = encodeAll(pcm, 1, 48000);
    const clean = decodeAll(packets, 16000, 1);

    const bad: Uint8Array[] = [
      new Uint8Array(0), // empty
      Uint8Array.of(0xff), // code 3 (arbitrary frame count) with no count byte: truncated
      Uint8Array.of(0x79, 0x01, 0x02, 0x03), // code 1 (two equal frames) with an odd payload
      Uint8Array.of(0x7a, 0xff, 0xff, 0x01), // code 2 with a first-frame length beyond the packet
      Uint8Array.of(0x7b, 0x00), // code 3 declaring zero frames
      Uint8Array.of(0x7b, 0xb1, 0x01), // code 3, VBR, 49 frames (more than 120 ms)
      new Uint8Array(9000), // larger than any Opus packet
    ];
    // The "caller" pattern: decode in try/catch, count failures, carry on.
    const dec = new OpusDecoder(16000, 1);
    const witness = new OpusDecoder(16000, 1); // another live instance, must stay unaffected
    let invalid = 0;
    const out: Int16Array[] = [];
    const witnessOut: Int16Array[] = [];
    packets.forEach((p, i) => {
      if (i % 3 === 1) {
        for (const b of bad) {
          try {
            dec.decode(b);
          } catch (err) {
            expect(err).toBeInstanceOf(OpusDecodeError);
            invalid++;
          }
        }
      }
      out.push(dec.decode(p));
      witnessOut.push(witness.decode(p));
    });
    expect(invalid).toBe(bad.length * 10);
    expect(sameBytes(concatInt16(out), clean)).toBe(true);
    expect(sameBytes(concatInt16(witnessOut), clean)).toBe(true);
    dec.destroy();
    witness.destroy();
  });

  it('survives random garbage: each packet either decodes to a valid duration or throws OpusDecodeError', () => {
    const rnd = prng(42);
    const dec = new OpusDecoder(16000, 1);
    let thrown = 0;
    let decoded = 0;
    for (let i = 0; i < 500; i++) {
      const len = 1 + Math.floor(rnd() * 200);
      const p = new Uint8Array(len);
      for (let k = 0; k < len; k++) p[k] = Math.floor(rnd() * 256);
      try {
        const pcm = dec.decode(p);
        expect(pcm.length % 40).toBe(0); // a whole number of 2.5 ms units at 16 kHz
        decoded++;
      } catch (err) {
        expect(err).toBeInstanceOf(OpusDecodeError);
        thrown++;
      }
    }
    expect(thrown).toBeGreaterThan(0);
    expect(thrown + decoded).toBe(500);
    // After a reset the decoder is exactly as good as new.
    dec.reset();
    const packets = encodeAll(speechLike(48000, FRAME * 10), 1, 48000);
    expect(sameBytes(concatInt16(packets.map((p) => dec.decode(p))), decodeAll(packets, 16000, 1))).toBe(true);
    dec.destroy();
  });
});

describe('decoding a 48 kHz stream directly at 16 kHz mono', () => {
  const N = 48000 * 2;

  /** Encodes 48 kHz stereo (the mono signal on both channels), decodes at 16 kHz mono. */
  function through16k(mono48: Int16Array, bitrate: number): Int16Array {
    return decodeAll(encodeAll(interleave(mono48, mono48), 2, bitrate), 16000, 1);
  }

  // The codec delay, measured once on a non-periodic signal (a chirp), used for all comparisons.
  const chirp48 = chirp(48000, N, 100, 7000, 8000);
  const chirpRef = bandLimitTo16k(chirp48);
  const chirpOut = through16k(chirp48, 96000);
  const delay = bestLag(chirpRef.subarray(0, 16000), chirpOut, 0, 800);

  it('has a measurable, stable codec delay (the encoder look-ahead, 312/3 samples)', () => {
    expect(delay.correlation).toBeGreaterThan(0.99);
    expect(delay.lag).toBe(104);
    expect(snrDb(chirpRef, chirpOut, delay.lag, 1600, chirpRef.length - 1600)).toBeGreaterThan(20);
  });

  it('tones come back at the right level and match the band-limited reference (SNR > 20 dB)', () => {
    const parts = [
      { hz: 300, amp: 6000 },
      { hz: 1000, amp: 5000 },
      { hz: 2500, amp: 4000 },
      { hz: 5000, amp: 3000 },
      { hz: 7000, amp: 2000 },
    ];
    const x = tones(48000, N, parts);
    const out = through16k(x, 96000);
    const ref = bandLimitTo16k(x);
    expect(snrDb(ref, out, delay.lag, 1600, ref.length - 1600)).toBeGreaterThan(20);
    for (const p of parts) {
      const level = 20 * Math.log10(toneAmplitude(out, 16000, p.hz, 3200, 16384) / p.amp);
      expect(Math.abs(level)).toBeLessThan(1);
    }
  });

  it('a speech-like signal matches the band-limited reference (SNR > 20 dB)', () => {
    const x = speechLike(48000, N);
    const out = through16k(x, 96000);
    const ref = bandLimitTo16k(x);
    expect(snrDb(ref, out, delay.lag, 1600, ref.length - 1600)).toBeGreaterThan(20);
  });

  it('a 12 kHz tone does not alias into the 16 kHz decode (< −60 dB)', () => {
    const x = tones(48000, N, [{ hz: 12000, amp: 16000 }]);
    const out = through16k(x, 96000);
    const at4k = 20 * Math.log10(toneAmplitude(out, 16000, 4000, 3200, 16384) / 16000);
    expect(at4k).toBeLessThan(-60);
    expect(worstSpur(out, 16000, 3200, 16384, 16000).levelDb).toBeLessThan(-60);
    // Control: naive 3:1 decimation of a 48 kHz decode folds it to 4 kHz at full level.
    const full = decodeAll(encodeAll(interleave(x, x), 2, 96000), 48000, 2);
    const naive = new Int16Array(Math.floor(full.length / 6));
    for (let i = 0; i < naive.length; i++) naive[i] = full[i * 6]!;
    expect(20 * Math.log10(toneAmplitude(naive, 16000, 4000, 3200, 16384) / 16000)).toBeGreaterThan(-6);
  });
});
