/**
 * RTP packets in Discord's `aead_aes256_gcm_rtpsize` transport encryption, both directions.
 *
 * Layout (what @discordjs/voice 0.19.2 sends in `Networking.createAudioPacket` and parses in
 * `VoiceReceiver.decrypt`):
 *
 *   [RTP header 12 B][ext preamble 4 B if X]  ← AAD ("rtpsize": the unencrypted part)
 *   [AES-256-GCM ciphertext of (ext body ‖ payload)][16 B tag]
 *   [4 B nonce counter, big-endian]
 *
 * The 12-byte GCM nonce is the 4-byte counter followed by 8 zero bytes. With the X bit set, the
 * header extension's 4-byte preamble (`BE DE`, u16 length in 32-bit words) is part of the AAD
 * while the extension body is encrypted at the start of the plaintext; the receiver strips it.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';

export const RTP_HEADER_SIZE = 12;
export const RTP_OPUS_PAYLOAD_TYPE = 120;
export const GCM_TAG_SIZE = 16;
export const NONCE_COUNTER_SIZE = 4;
export const ENCRYPTION_MODE = 'aead_aes256_gcm_rtpsize';
/** One-byte-header extension profile (RFC 8285), what Discord clients send. */
export const ONE_BYTE_EXTENSION_PROFILE = 0xbede;

export interface RtpHeaderFields {
  sequence: number;
  timestamp: number;
  ssrc: number;
  payloadType?: number;
  marker?: boolean;
}

export interface EncryptRtpInput extends RtpHeaderFields {
  /** Opus payload (already DAVE-encrypted where applicable). */
  payload: Buffer;
  /** 32-byte session secret. */
  secretKey: Uint8Array;
  /** Nonce counter for this packet (u32); never reuse one with the same key. */
  nonce: number;
  /** Header extension body (a multiple of 4 bytes) placed, encrypted, before the payload. */
  extensionBody?: Buffer;
}

export interface DecryptedRtp extends Required<Omit<RtpHeaderFields, 'marker'>> {
  marker: boolean;
  nonce: number;
  /** Payload with the header extension body and RTP padding removed. */
  payload: Buffer;
  extensionBody: Buffer | undefined;
}

export class RtpDecryptError extends Error {
  override name = 'RtpDecryptError';
}

function gcmNonce(counter: number): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32BE(counter >>> 0, 0);
  return nonce;
}

/** Builds the unencrypted part of the packet: the 12-byte header, plus the extension preamble. */
export function buildRtpHeader(fields: RtpHeaderFields, extensionWords = 0): Buffer {
  const header = Buffer.alloc(RTP_HEADER_SIZE + (extensionWords > 0 ? 4 : 0));
  header[0] = 0x80 | (extensionWords > 0 ? 0x10 : 0);
  header[1] = ((fields.marker ? 0x80 : 0) | (fields.payloadType ?? RTP_OPUS_PAYLOAD_TYPE)) & 0xff;
  header.writeUInt16BE(fields.sequence & 0xffff, 2);
  header.writeUInt32BE(fields.timestamp >>> 0, 4);
  header.writeUInt32BE(fields.ssrc >>> 0, 8);
  if (extensionWords > 0) {
    header.writeUInt16BE(ONE_BYTE_EXTENSION_PROFILE, 12);
    header.writeUInt16BE(extensionWords, 14);
  }
  return header;
}

export function encryptRtp(input: EncryptRtpInput): Buffer {
  const ext = input.extensionBody ?? Buffer.alloc(0);
  if (ext.length % 4 !== 0) throw new RangeError('RTP header extension body must be a multiple of 4 bytes');
  const header = buildRtpHeader(input, ext.length / 4);
  const cipher = createCipheriv('aes-256-gcm', input.secretKey, gcmNonce(input.nonce));
  cipher.setAAD(header);
  const encrypted = Buffer.concat([cipher.update(Buffer.concat([ext, input.payload])), cipher.final(), cipher.getAuthTag()]);
  const counter = Buffer.alloc(NONCE_COUNTER_SIZE);
  counter.writeUInt32BE(input.nonce >>> 0, 0);
  return Buffer.concat([header, encrypted, counter]);
}

/** Reads the plain header fields without decrypting (for routing by SSRC). */
export function peekRtp(packet: Buffer): { version: number; payloadType: number; ssrc: number } | undefined {
  if (packet.length < RTP_HEADER_SIZE) return undefined;
  return { version: packet[0]! >> 6, payloadType: packet[1]! & 0x7f, ssrc: packet.readUInt32BE(8) };
}

/**
 * Decrypts one transport-encrypted RTP packet. Handles CSRCs, the X bit (preamble in the AAD,
 * body stripped from the plaintext) and the P bit (padding stripped), as RFC 3550 and rtpsize say.
 * Throws {@link RtpDecryptError} when the packet is malformed or the tag does not verify.
 */
export function decryptRtp(packet: Buffer, secretKey: Uint8Array): DecryptedRtp {
  const minimum = RTP_HEADER_SIZE + GCM_TAG_SIZE + NONCE_COUNTER_SIZE;
  if (packet.length < minimum) throw new RtpDecryptError(`RTP packet too short (${packet.length} bytes)`);
  const b0 = packet[0]!;
  if (b0 >> 6 !== 2) throw new RtpDecryptError(`RTP version ${b0 >> 6} is not 2`);
  const hasPadding = (b0 & 0x20) !== 0;
  const hasExtension = (b0 & 0x10) !== 0;
  const csrcCount = b0 & 0x0f;
  let aadSize = RTP_HEADER_SIZE + 4 * csrcCount;
  let extensionWords = 0;
  if (hasExtension) {
    if (packet.length < aadSize + 4 + GCM_TAG_SIZE + NONCE_COUNTER_SIZE) throw new RtpDecryptError('RTP extension preamble truncated');
    extensionWords = packet.readUInt16BE(aadSize + 2);
    aadSize += 4;
  }
  const end = packet.length - NONCE_COUNTER_SIZE;
  const tagStart = end - GCM_TAG_SIZE;
  if (tagStart < aadSize) throw new RtpDecryptError('RTP packet too short for its header');
  const nonce = packet.readUInt32BE(end);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', secretKey, gcmNonce(nonce));
    decipher.setAAD(packet.subarray(0, aadSize));
    decipher.setAuthTag(packet.subarray(tagStart, end));
    plain = Buffer.concat([decipher.update(packet.subarray(aadSize, tagStart)), decipher.final()]);
  } catch (err) {
    throw new RtpDecryptError(`AES-GCM authentication failed: ${(err as Error).message}`);
  }
  if (hasPadding && plain.length > 0) {
    const padding = plain[plain.length - 1]!;
    if (padding > plain.length) throw new RtpDecryptError('RTP padding longer than the payload');
    plain = plain.subarray(0, plain.length - padding);
  }
  const extensionBytes = 4 * extensionWords;
  if (extensionBytes > plain.length) throw new RtpDecryptError('RTP extension body longer than the payload');
  return {
    sequence: packet.readUInt16BE(2),
    timestamp: packet.readUInt32BE(4),
    ssrc: packet.readUInt32BE(8),
    payloadType: packet[1]! & 0x7f,
    marker: (packet[1]! & 0x80) !== 0,
    nonce,
    extensionBody: hasExtension ? plain.subarray(0, extensionBytes) : undefined,
    payload: plain.subarray(extensionBytes),
  };
}
