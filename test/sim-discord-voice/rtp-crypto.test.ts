import { randomBytes } from 'node:crypto';
import { Networking, VoiceReceiver } from '@discordjs/voice';
import { describe, expect, it } from 'vitest';
import { decryptRtp, encryptRtp, RtpDecryptError } from '../../sim/discord/voice/rtp-crypto.js';

/**
 * The crypto is checked against @discordjs/voice 0.19.2 itself: packets made by the client's own
 * `Networking.createAudioPacket` must decrypt here, and packets made here must parse in the
 * client's own `VoiceReceiver.parsePacket`.
 */
const MODE = 'aead_aes256_gcm_rtpsize';

interface ClientConnectionData {
  ssrc: number;
  encryptionMode: string;
  secretKey: Uint8Array;
  sequence: number;
  timestamp: number;
  nonce: number;
  nonceBuffer: Buffer;
}

// Internal members of the client used as ground truth (pinned version 0.19.2).
type NetworkingInternals = {
  createAudioPacket(opus: Buffer, data: ClientConnectionData, dave: undefined): Buffer;
  encryptOpusPacket: unknown;
};
type ReceiverInternals = {
  parsePacket(buffer: Buffer, mode: string, nonce: Buffer, key: Uint8Array, userId: string): Buffer;
};

function clientPacket(opus: Buffer, data: ClientConnectionData): Buffer {
  const proto = Networking.prototype as unknown as NetworkingInternals;
  return proto.createAudioPacket.call({ encryptOpusPacket: proto.encryptOpusPacket } as never, opus, data, undefined);
}

function clientReceiver(): ReceiverInternals {
  // A connection that is not Ready: parsePacket then skips DAVE (transport only).
  return new VoiceReceiver({ state: { status: 'connecting' } } as never) as unknown as ReceiverInternals;
}

describe('rtpsize AES-GCM against @discordjs/voice 0.19.2', () => {
  it('decrypts packets built by the client (header, nonce counter, payload)', () => {
    const secretKey = new Uint8Array(randomBytes(32));
    const data: ClientConnectionData = { ssrc: 1234, encryptionMode: MODE, secretKey, sequence: 65535, timestamp: 0xfffffc40, nonce: 0, nonceBuffer: Buffer.alloc(12) };
    for (let i = 0; i < 3; i++) {
      const opus = randomBytes(40 + i);
      const packet = clientPacket(opus, data);
      const got = decryptRtp(packet, secretKey);
      expect(got.payload.equals(opus)).toBe(true);
      expect(got.ssrc).toBe(1234);
      expect(got.sequence).toBe(data.sequence);
      expect(got.timestamp).toBe(data.timestamp);
      expect(got.payloadType).toBe(120);
      expect(got.nonce).toBe(i + 1); // the client's counter starts at 1
      expect(got.extensionBody).toBeUndefined();
      data.sequence = (data.sequence + 1) & 0xffff;
      data.timestamp = (data.timestamp + 960) >>> 0;
    }
  });

  it('builds packets the client parses, with and without the 0xBEDE header extension', () => {
    const secretKey = new Uint8Array(randomBytes(32));
    const receiver = clientReceiver();
    for (const extensionBody of [undefined, Buffer.from([0x10, 0x80, 0, 0]), Buffer.alloc(8, 7)]) {
      const opus = randomBytes(57);
      const packet = encryptRtp({ sequence: 9, timestamp: 960, ssrc: 4242, payload: opus, secretKey, nonce: 77, extensionBody });
      const parsed = receiver.parsePacket(packet, MODE, Buffer.alloc(12), secretKey, 'user');
      expect(parsed.equals(opus)).toBe(true);
      const ours = decryptRtp(packet, secretKey);
      expect(ours.payload.equals(opus)).toBe(true);
      expect(ours.extensionBody?.equals(extensionBody!) ?? extensionBody === undefined).toBe(true);
    }
  });

  it('rejects a tampered packet, a wrong key and a truncated packet with RtpDecryptError', () => {
    const secretKey = new Uint8Array(randomBytes(32));
    const packet = encryptRtp({ sequence: 1, timestamp: 2, ssrc: 3, payload: randomBytes(30), secretKey, nonce: 1 });
    const tampered = Buffer.from(packet);
    tampered[20] = tampered[20]! ^ 1;
    expect(() => decryptRtp(tampered, secretKey)).toThrow(RtpDecryptError);
    const headerTampered = Buffer.from(packet);
    headerTampered[3] = headerTampered[3]! ^ 1; // the header is authenticated (AAD)
    expect(() => decryptRtp(headerTampered, secretKey)).toThrow(RtpDecryptError);
    expect(() => decryptRtp(packet, new Uint8Array(randomBytes(32)))).toThrow(RtpDecryptError);
    expect(() => decryptRtp(packet.subarray(0, 20), secretKey)).toThrow(RtpDecryptError);
  });
});
