/**
 * The few pieces of the MLS (RFC 9420) TLS presentation language the voice server needs:
 * variable-length vectors (`opaque<V>`, QUIC-style varint length) and a walker that finds the end
 * of a commit MLSMessage, so op 28 (commit ‖ optional welcome, no length prefix) can be split.
 */

/** Encodes a length as an MLS varint (1, 2 or 4 bytes; the top two bits give the size). */
export function encodeVarint(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`invalid varint ${n}`);
  if (n < 0x40) return Buffer.from([n]);
  if (n < 0x4000) return Buffer.from([0x40 | (n >> 8), n & 0xff]);
  if (n < 0x40000000) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n, 0);
    b[0] = b[0]! | 0x80;
    return b;
  }
  throw new RangeError(`varint too large: ${n}`);
}

/** `opaque<V>`: varint length, then the bytes. */
export function opaque(bytes: Buffer | Uint8Array): Buffer {
  return Buffer.concat([encodeVarint(bytes.length), bytes]);
}

export function u8(n: number): Buffer {
  return Buffer.from([n & 0xff]);
}
export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
}
export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}
export function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n, 0);
  return b;
}

export class MlsParseError extends Error {
  override name = 'MlsParseError';
}

/** A forward-only reader over a buffer, throwing {@link MlsParseError} on truncation. */
export class MlsReader {
  offset = 0;
  constructor(readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.offset + n > this.buf.length) {
      throw new MlsParseError(`truncated MLS data: need ${n} bytes at offset ${this.offset} of ${this.buf.length}`);
    }
  }
  u8(): number {
    this.need(1);
    return this.buf[this.offset++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  skip(n: number): void {
    this.need(n);
    this.offset += n;
  }
  varint(): number {
    const first = this.u8();
    const prefix = first >> 6;
    if (prefix === 0) return first & 0x3f;
    if (prefix === 1) return ((first & 0x3f) << 8) | this.u8();
    if (prefix === 2) {
      this.need(3);
      const v = ((first & 0x3f) * 0x1000000) + this.buf.readUIntBE(this.offset, 3);
      this.offset += 3;
      return v;
    }
    throw new MlsParseError(`invalid varint prefix at offset ${this.offset - 1}`);
  }
  opaque(): Buffer {
    const len = this.varint();
    this.need(len);
    const v = this.buf.subarray(this.offset, this.offset + len);
    this.offset += len;
    return v;
  }
  rest(): Buffer {
    return this.buf.subarray(this.offset);
  }
}

const SENDER_MEMBER = 1;
const SENDER_EXTERNAL = 2;
const CONTENT_COMMIT = 3;
const LEAF_SOURCE_KEY_PACKAGE = 1;
const LEAF_SOURCE_COMMIT = 3;

/** Skips a LeafNode (RFC 9420 §7.2). */
function skipLeafNode(r: MlsReader): void {
  r.opaque(); // encryption_key
  r.opaque(); // signature_key
  const credentialType = r.u16();
  if (credentialType === 1) r.opaque(); // basic: identity
  else r.opaque(); // x509: certificates<V> (a vector, skipped whole)
  for (let i = 0; i < 5; i++) r.opaque(); // capabilities: versions, cipher_suites, extensions, proposals, credentials
  const source = r.u8();
  if (source === LEAF_SOURCE_KEY_PACKAGE) r.skip(16); // lifetime: not_before u64, not_after u64
  else if (source === LEAF_SOURCE_COMMIT) r.opaque(); // parent_hash
  r.opaque(); // extensions
  r.opaque(); // signature
}

/**
 * Splits DAVE op 28 (`commit MLSMessage ‖ [Welcome]`) by walking the commit's PublicMessage:
 * FramedContent header, content_type 3, proposals<V>, optional<UpdatePath>, signature<V>,
 * confirmation_tag<V>, and membership_tag<V> when the sender is a member. What is left is the welcome.
 */
export function splitCommitWelcome(payload: Buffer): { commit: Buffer; welcome: Buffer | undefined } {
  const r = new MlsReader(payload);
  const version = r.u16();
  const wireFormat = r.u16();
  if (version !== 1 || wireFormat !== 1) {
    throw new MlsParseError(`op 28 commit is not an MLS 1.0 PublicMessage (version ${version}, wire format ${wireFormat})`);
  }
  r.opaque(); // group_id
  r.skip(8); // epoch
  const senderType = r.u8();
  if (senderType === SENDER_MEMBER || senderType === SENDER_EXTERNAL) r.skip(4);
  r.opaque(); // authenticated_data
  const contentType = r.u8();
  if (contentType !== CONTENT_COMMIT) throw new MlsParseError(`op 28 message has content type ${contentType}, not commit`);
  r.opaque(); // proposals<V>
  const hasPath = r.u8();
  if (hasPath === 1) {
    skipLeafNode(r);
    r.opaque(); // nodes<V>
  } else if (hasPath !== 0) {
    throw new MlsParseError(`invalid optional<UpdatePath> flag ${hasPath}`);
  }
  r.opaque(); // signature
  r.opaque(); // confirmation_tag
  if (senderType === SENDER_MEMBER) r.opaque(); // membership_tag
  const commit = payload.subarray(0, r.offset);
  const rest = r.rest();
  return { commit, welcome: rest.length > 0 ? rest : undefined };
}
