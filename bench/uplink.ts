/**
 * Uplink CPU per second of one speaker's speech.
 *
 * Ours: the real receive path of src/voice/uplink.ts — the `Uplink` class bound to a real
 * @discordjs/voice `VoiceReceiver` (its subscription is a real `AudioReceiveStream`; each Opus
 * packet is pushed into it exactly as the receiver does after transport/DAVE decryption), so the
 * work per packet is: stream delivery → `OpusDecoder(16000, 1)` (the corrected wrapper) → energy
 * VAD → barge-in detector → floor arbiter → the held input (src/voice/held-input.ts, Voxta
 * listening: utterances go straight through, kept until sent) → the audio-input write, here a
 * `PcmFramer(960)` cutting 30 ms / 960-byte Voxta frames (the pure equivalent of
 * VoxtaAudioInput's buffer, whose socket and clock are not part of this figure).
 *
 * Baseline (what typical bots do): an identical `AudioReceiveStream` subscription whose packets
 * go to ONE `new OpusScript(48000, 2)` (opusscript's own class) decoding 48 kHz stereo, then
 * plain 3:1 decimation with L/R averaging, then the same 960-byte framing. No VAD, no floor.
 *
 * Transport and DAVE decryption are the same for both and excluded. Input: Opus packets of a
 * speech-like signal encoded like a Discord client (48 kHz stereo, 20 ms, 64 kb/s, 'voip').
 */
import { EndBehaviorType, VoiceReceiver, type AudioReceiveStream } from '@discordjs/voice';
import OpusScript from 'opusscript';
import { pino } from 'pino';
import { PcmFramer } from '../src/audio/framer.js';
import { BargeInDetector } from '../src/voice/barge-in.js';
import { HeldInput } from '../src/voice/held-input.js';
import { Uplink } from '../src/voice/uplink.js';
import { decimate3StereoToMono } from './lib/naive.js';
import type { BenchOptions } from './lib/options.js';
import type { SectionResult } from './lib/report.js';
import { discordPackets } from './lib/signals.js';
import { interleave, pairedRatios, ratio, scaleStat, stat } from './lib/stats.js';

const MEMBER = '200000000000000001';

/** The receiver only needs its connection for DAVE decryption, which happens before the push. */
function bareReceiver(): VoiceReceiver {
  return new VoiceReceiver({ state: { status: 'destroyed' } } as unknown as ConstructorParameters<typeof VoiceReceiver>[0]);
}

export interface UplinkHarness {
  /** Feeds every packet once through our path; returns the number of 960-byte frames produced. */
  runOurs(): number;
  runBaseline(): number;
  /** Moves our path's clock on without packets (the member is silent). */
  advance(ms: number): void;
  close(): void;
}

/** Builds both paths around one shared packet list. Exposed for the memory soak. */
export async function uplinkHarness(packets: readonly Buffer[]): Promise<UplinkHarness> {
  // ---- ours ----
  let virtualMs = 0;
  const now = () => virtualMs;
  const oursFramer = new PcmFramer(960);
  let oursFrames = 0;
  const bargeIn = new BargeInDetector({ mode: 'anyone', minMs: 400, graceMs: 300, now });
  // The framer takes everything at once: all written audio counts as sent.
  let sentBytes = 0;
  const held = new HeldInput({
    input: {
      write(pcm: Int16Array) {
        oursFrames += oursFramer.push(pcm).length;
        sentBytes += pcm.length * 2;
      },
      bufferedBytes: 0,
      get speechBytesSent() {
        return sentBytes;
      },
    },
    listening: () => true,
    now,
    schedule: () => () => {},
  });
  const uplink = new Uplink({
    log: pino({ level: 'silent' }),
    botUserId: '100000000000000001',
    isListenable: () => true,
    input: held,
    onFloor: (e) => {
      if (e.type === 'utteranceStart') held.utteranceStarted({ utteranceId: e.utteranceId, speakerId: e.speakerId, liveAt: e.liveAt });
      else if (e.type === 'utteranceEnd') held.utteranceEnded(e.utteranceId);
    },
    floor: { endOfUtteranceMs: 700, floorHangoverMs: 200 },
    onVoice: (userId, voiced) => {
      bargeIn.setPlayback(undefined);
      bargeIn.frame(userId, voiced);
    },
    now,
  });
  const receiver = bareReceiver();
  uplink.attach(receiver);
  receiver.speaking.emit('start', MEMBER); // what the receiver emits on a member's first packet
  const oursStream = receiver.subscriptions.get(MEMBER);
  if (!oursStream) throw new Error('bench: the Uplink did not subscribe to the member');

  // ---- baseline ----
  const baseReceiver = bareReceiver();
  const baseStream: AudioReceiveStream = baseReceiver.subscribe(MEMBER, { end: { behavior: EndBehaviorType.AfterInactivity, duration: 5 * 60_000 } });
  // Created on first use, so users of our path alone (the memory soak) never load the buggy class.
  let opusscript: OpusScript | undefined;
  const baseFramer = new PcmFramer(960);
  let baseFrames = 0;
  baseStream.on('data', (packet: Buffer) => {
    opusscript ??= new OpusScript(48000, 2);
    const pcm = opusscript.decode(packet);
    const stereo = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.byteLength >> 1);
    baseFrames += baseFramer.push(decimate3StereoToMono(stereo)).length;
  });

  // A Readable delivers pushes synchronously only once it is flowing (resume happens on the next
  // tick); before that they would be buffered and the first run would measure nothing.
  await new Promise((resolve) => setImmediate(resolve));

  return {
    runOurs() {
      const before = oursFrames;
      for (const p of packets) {
        virtualMs += 20;
        oursStream.push(p);
      }
      return oursFrames - before;
    },
    runBaseline() {
      const before = baseFrames;
      for (const p of packets) baseStream.push(p);
      return baseFrames - before;
    },
    advance(ms: number) {
      virtualMs += ms;
    },
    close() {
      uplink.close();
      held.close();
      for (const s of [oursStream, baseStream]) {
        s.destroy();
        // The receive stream's inactivity timer survives destroy() and would hold the process.
        const timer = (s as unknown as { endTimeout?: NodeJS.Timeout }).endTimeout;
        if (timer) clearTimeout(timer);
      }
      opusscript?.delete();
    },
  };
}

export async function benchUplink(o: BenchOptions): Promise<SectionResult> {
  const seconds = o.quick ? 1 : 20;
  const rounds = o.quick ? 2 : 21;
  o.progress(`uplink: encoding ${seconds} s of speech-like audio as Discord-like Opus packets`);
  const packets = discordPackets({ seconds });
  const speechSec = (packets.length * 20) / 1000;
  const bytes = packets.reduce((s, p) => s + p.length, 0);
  const h = await uplinkHarness(packets);
  try {
    // Correctness check before timing: both paths must turn every packet into audio.
    const expectFrames = Math.floor((packets.length * 320 * 2) / 960);
    const oursFrames = h.runOurs();
    const baseFrames = h.runBaseline();
    if (Math.abs(oursFrames - expectFrames) > 2 || Math.abs(baseFrames - expectFrames) > 2) {
      throw new Error(`uplink paths produced ${oursFrames} / ${baseFrames} frames, expected ≈${expectFrames}`);
    }
    o.progress(`uplink: ${rounds} interleaved rounds of ${speechSec} s of speech`);
    const samples = await interleave(
      [
        { name: 'ours', run: () => h.runOurs() },
        { name: 'baseline', run: () => h.runBaseline() },
      ],
      { warmup: o.quick ? 1 : 3, rounds },
    );
    const oursCpu = samples.get('ours')!.map((s) => s.cpuMs);
    const baseCpu = samples.get('baseline')!.map((s) => s.cpuMs);
    const perSec = 1 / speechSec;
    const ours = scaleStat(stat(oursCpu), perSec);
    const base = scaleStat(stat(baseCpu), perSec);
    return {
      name: 'uplink',
      rows: [
        {
          section: 'uplink',
          figure: 'Uplink CPU per speaker-second',
          unit: 'ms CPU / s of speech',
          ours,
          baseline: base,
          ratio: ratio(ours, base),
          ratioRange: pairedRatios(oursCpu, baseCpu),
          target: { on: 'ratio', op: '<=', value: 0.6 },
          digits: 3,
        },
        {
          section: 'uplink',
          figure: 'Uplink share of one core per speaker',
          unit: '%',
          ours: scaleStat(ours, 0.1),
          baseline: scaleStat(base, 0.1),
          ratio: ratio(ours, base),
          digits: 3,
        },
      ],
      notes: [
        `Uplink: ${packets.length} packets (${speechSec} s, ${Math.round((bytes * 8) / speechSec / 1000)} kb/s, 48 kHz stereo 'voip' Opus) per run, ${rounds} rounds interleaved; CPU = process.cpuUsage().`,
        'Ours = real Uplink class (AudioReceiveStream → OpusDecoder 16 kHz mono → VAD → barge-in → floor → 960-byte framing). Baseline = same stream → one `new OpusScript(48000, 2)` → every 3rd frame, L/R averaged → 960-byte framing.',
      ],
      details: {
        packets: packets.length,
        speechSeconds: speechSec,
        bitrateKbps: (bytes * 8) / speechSec / 1000,
        pairedRatio: pairedRatios(oursCpu, baseCpu),
        wallMsPerRun: { ours: stat(samples.get('ours')!.map((s) => s.wallMs)), baseline: stat(samples.get('baseline')!.map((s) => s.wallMs)) },
      },
    };
  } finally {
    h.close();
  }
}
