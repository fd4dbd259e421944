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
  /** Decodes every packet in order with a fresh decoder (mono by default: down-mixed). */
  pcm(sampleRate?: OpusSampleRate, channels?: OpusChannels): Int16Array;
}

export class BotAudioRecorder {
  readonly packets: BotAudioPacket[] = [];
  e2eeFrames = 0;
  clearFrames = 0;
  daveFailures = 0;
  transportFailures = 0;

  add(packet: BotAudioPacket, daveDecrypted: boolean): void {
    this.packets.push(packet);
    if (packet.silence) return;
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
      pcm: (sampleRate: OpusSampleRate = 48_000, channels: OpusChannels = 1) =>
        decodePackets(packets.map((p) => p.opus), sampleRate, channels).pcm,
    };
  }
}

export function isSilenceFrame(opus: Buffer): boolean {
  return opus.equals(SILENCE_FRAME);
}
