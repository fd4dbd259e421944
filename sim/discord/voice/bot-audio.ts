/** Recording of what the bot sent over RTP in one guild, decodable back to PCM. */
import type { OpusChannels, OpusSampleRate } from '../../../src/audio/opus.js';
import { decodePackets, SILENCE_FRAME } from './audio-frames.js';

export interface BotAudioPacket {
  /** Arrival time (Date.now()). */
  at: number;
  /** Opus payload after transport and DAVE decryption (still DAVE-encrypted if no member could decrypt it). */
  opus: Buffer;
  /** The frame arrived DAVE-encrypted (0xFAFA trailer). */
  e2ee: boolean;
  silence: boolean;
  /** Someone could hear it: false while the bot was suppressed (stage audience). */
  heard: boolean;
  sequence: number;
  timestamp: number;
  ssrc: number;
}

export interface BotAudioRecord {
  packets: BotAudioPacket[];
  /** Non-silence frames that arrived DAVE-encrypted and that a member decrypted. */
  e2eeFrames: number;
  /** Non-silence frames that arrived without DAVE encryption (pass-through). */
  clearFrames: number;
  /** Frames with the DAVE trailer that no member could decrypt. */
  daveFailures: number;
  /** Packets whose transport encryption did not verify (dropped, not in `packets`). */
  transportFailures: number;
  /** Non-silence frames sent while the bot could be heard, and while it was suppressed (heard by no one). */
  heardFrames: number;
  unheardFrames: number;
  /**
   * Decodes every packet in order with a fresh decoder (mono by default: down-mixed). With
   * `timeline: true`, pauses in transmission (gaps in arrival time, e.g. between two replies)
   * come back as silence, so the result lines up with wall-clock time; otherwise packets are
   * simply concatenated (best for comparing with the audio that was played). `heardOnly: true`
   * leaves out what the bot sent while suppressed (what the listeners actually got).
   */
  pcm(sampleRate?: OpusSampleRate, channels?: OpusChannels, opts?: { timeline?: boolean; heardOnly?: boolean }): Int16Array;
}

const FRAME_MS = 20;
/** Arrival jitter tolerated before a gap counts as a pause. */
const GAP_TOLERANCE_MS = 60;

/** Inserts 20 ms of silence per missing frame where packets stopped arriving for a while. */
function withPauses(pcm: Int16Array, packets: BotAudioPacket[], samplesPerFrame: number): Int16Array {
  if (packets.length === 0) return pcm;
  const frames = pcm.length / samplesPerFrame;
  if (!Number.isInteger(frames) || frames !== packets.length) return pcm;
  const chunks: Int16Array[] = [];
  let total = 0;
  for (let i = 0; i < packets.length; i++) {
    if (i > 0) {
      const gap = packets[i]!.at - packets[i - 1]!.at - FRAME_MS;
      if (gap > GAP_TOLERANCE_MS) {
        const silence = new Int16Array(Math.round(gap / FRAME_MS) * samplesPerFrame);
        chunks.push(silence);
        total += silence.length;
      }
    }
    const frame = pcm.subarray(i * samplesPerFrame, (i + 1) * samplesPerFrame);
    chunks.push(frame);
    total += frame.length;
  }
  const out = new Int16Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

export class BotAudioRecorder {
  readonly packets: BotAudioPacket[] = [];
  e2eeFrames = 0;
  clearFrames = 0;
  daveFailures = 0;
  transportFailures = 0;
  heardFrames = 0;
  unheardFrames = 0;

  add(packet: BotAudioPacket, daveDecrypted: boolean): void {
    this.packets.push(packet);
    if (packet.silence) return;
    if (packet.heard) this.heardFrames++;
    else this.unheardFrames++;
    if (!packet.e2ee) this.clearFrames++;
    else if (daveDecrypted) this.e2eeFrames++;
    else this.daveFailures++;
  }

  snapshot(): BotAudioRecord {
    const packets = [...this.packets];
    return {
      packets,
      e2eeFrames: this.e2eeFrames,
      clearFrames: this.clearFrames,
      daveFailures: this.daveFailures,
      transportFailures: this.transportFailures,
      heardFrames: this.heardFrames,
      unheardFrames: this.unheardFrames,
      pcm: (sampleRate: OpusSampleRate = 48_000, channels: OpusChannels = 1, opts: { timeline?: boolean; heardOnly?: boolean } = {}) => {
        const chosen = opts.heardOnly ? packets.filter((p) => p.heard) : packets;
        const { pcm } = decodePackets(chosen.map((p) => p.opus), sampleRate, channels);
        return opts.timeline ? withPauses(pcm, chosen, (sampleRate / 50) * channels) : pcm;
      },
    };
  }
}

export function isSilenceFrame(opus: Buffer): boolean {
  return opus.equals(SILENCE_FRAME);
}
