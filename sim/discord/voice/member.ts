/**
 * A simulated human in the voice channel: an SSRC, an RTP clock, and (with DAVE v1) a real
 * @snazzah/davey `DAVESession` that is an MLS group member exactly like a Discord client's.
 */
import { randomInt } from 'node:crypto';
import davey from '@snazzah/davey';

/** davey.MediaType.AUDIO (a const enum in davey's typings, unusable under isolatedModules). */
export const DAVE_MEDIA_AUDIO = 0;
/** The trailer of a DAVE-encrypted frame (RFC-less "magic marker"). */
export const DAVE_MARKER = Buffer.from([0xfa, 0xfa]);

export function hasDaveMarker(frame: Buffer): boolean {
  return frame.length > 2 && frame[frame.length - 2] === 0xfa && frame[frame.length - 1] === 0xfa;
}

export class SimMember {
  readonly ssrc: number;
  /** Next RTP sequence number and timestamp (random start, as real clients do). */
  sequence = randomInt(0, 0x10000);
  timestamp = randomInt(0, 0x1_0000_0000);
  /** The member's DAVE session for the current bot session's group (v1 only). */
  dave: davey.DAVESession | undefined;
  /** Serialises this member's speech: two speak() calls for one member never interleave. */
  speechQueue: Promise<void> = Promise.resolve();

  constructor(readonly userId: string, ssrc: number) {
    this.ssrc = ssrc;
  }

  /**
   * (Re)creates the member's DAVE session for a new group in `channelId`, sets the server's
   * external sender and returns a fresh key package for the Add proposal.
   */
  joinDaveGroup(channelId: string, externalSenderPackage: Buffer): Buffer {
    if (this.dave) this.dave.reinit(1, this.userId, channelId);
    else this.dave = new davey.DAVESession(1, this.userId, channelId);
    this.dave.setExternalSender(externalSenderPackage);
    return this.dave.getSerializedKeyPackage();
  }

  leaveDaveGroup(): void {
    try {
      this.dave?.reset();
    } catch {
      // reset only fails when there is nothing to delete
    }
    this.dave = undefined;
  }

  get daveReady(): boolean {
    return this.dave?.ready ?? false;
  }

  /** E2EE-encrypts one Opus frame when the group is ready; silence frames stay clear (davey does that). */
  protectFrame(opus: Buffer): { frame: Buffer; e2ee: boolean } {
    if (!this.dave?.ready) return { frame: opus, e2ee: false };
    const frame = this.dave.encryptOpus(opus);
    return { frame, e2ee: hasDaveMarker(frame) };
  }

  /** Advances the RTP clock by one 20 ms frame and returns the header fields to use. */
  nextRtp(): { sequence: number; timestamp: number; ssrc: number } {
    const fields = { sequence: this.sequence, timestamp: this.timestamp, ssrc: this.ssrc };
    this.sequence = (this.sequence + 1) & 0xffff;
    this.timestamp = (this.timestamp + 960) >>> 0;
    return fields;
  }
}
