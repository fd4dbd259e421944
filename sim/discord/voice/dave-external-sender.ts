/**
 * The voice server's side of DAVE: the MLS *external sender*.
 *
 * Discord's voice server is not an MLS member. It owns a P-256 signing key, announces it to every
 * client (op 25), and signs Add/Remove proposals (op 27) that one group member then commits. The
 * clients (the bot, and each simulated member through @snazzah/davey) do all the group logic.
 * Byte layout checked against captured Discord buffers in davey's test suite and against davey
 * itself (see docs/discord-simulator.md, "DAVE v1 on the simulator side").
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { opaque, u16, u32, u64, u8 } from './mls-wire.js';

const MLS_VERSION_10 = 1;
const WIRE_FORMAT_PUBLIC = 1;
const SENDER_EXTERNAL = 2;
const CONTENT_PROPOSAL = 2;
const PROPOSAL_ADD = 1;
const PROPOSAL_REMOVE = 3;
const CREDENTIAL_BASIC = 1;

export const PROPOSALS_APPEND = 0;
export const PROPOSALS_REVOKE = 1;

/** A snowflake (channel or user id) as the u64 big-endian bytes DAVE uses for group ids and identities. */
export function snowflakeBytes(id: string): Buffer {
  return u64(BigInt(id));
}

export type ProposalBody = { kind: 'add'; keyPackage: Buffer } | { kind: 'remove'; leafIndex: number };

export class DaveExternalSender {
  private readonly privateKey: KeyObject;
  /** Uncompressed SEC1 P-256 point (65 bytes), the MLS signature key. */
  readonly publicKey: Buffer;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.privateKey = privateKey;
    const jwk = publicKey.export({ format: 'jwk' });
    this.publicKey = Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  }

  /** op 25 payload: ExternalSender = signature_key<V> ‖ Credential(basic, identity). */
  packagePayload(): Buffer {
    return Buffer.concat([opaque(this.publicKey), u16(CREDENTIAL_BASIC), opaque(Buffer.from([0x00]))]);
  }

  /**
   * One MLSMessage (PublicMessage) carrying a proposal from the external sender. Signed with
   * SignWithLabel("FramedContentTBS"): no GroupContext (external sender), no membership tag.
   */
  proposalMessage(channelId: string, epoch: number, body: ProposalBody): Buffer {
    const proposal =
      body.kind === 'add'
        ? Buffer.concat([u16(PROPOSAL_ADD), body.keyPackage])
        : Buffer.concat([u16(PROPOSAL_REMOVE), u32(body.leafIndex)]);
    const framedContent = Buffer.concat([
      opaque(snowflakeBytes(channelId)),
      u64(BigInt(epoch)),
      u8(SENDER_EXTERNAL),
      u32(0), // sender_index: our position in the group's external_senders extension
      opaque(Buffer.alloc(0)), // authenticated_data
      u8(CONTENT_PROPOSAL),
      proposal,
    ]);
    const header = Buffer.concat([u16(MLS_VERSION_10), u16(WIRE_FORMAT_PUBLIC)]);
    const tbs = Buffer.concat([header, framedContent]);
    const signContent = Buffer.concat([opaque(Buffer.from('MLS 1.0 FramedContentTBS', 'ascii')), opaque(tbs)]);
    const signature = sign('sha256', signContent, this.privateKey); // DER, as MLS's ECDSA expects
    return Buffer.concat([header, framedContent, opaque(signature)]);
  }

  /** op 27 payload: u8 operation type ‖ opaque<V>(concatenated MLSMessages). */
  proposalsPayload(channelId: string, epoch: number, bodies: ProposalBody[]): Buffer {
    const messages = Buffer.concat(bodies.map((b) => this.proposalMessage(channelId, epoch, b)));
    return Buffer.concat([u8(PROPOSALS_APPEND), opaque(messages)]);
  }
}
