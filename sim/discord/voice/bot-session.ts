/**
 * One voice session of the bot in one guild: from IDENTIFY (op 0) until the bot identifies again,
 * leaves, or the server stops. A RESUME (op 7) re-attaches a new websocket to the same session.
 *
 * Owns what Discord's voice server holds per session: the SSRC, the transport secret key, the
 * server→client sequence numbers (v8 `seq`, replayed after a resume from the client's `seq_ack`),
 * the bot's UDP address, and (DAVE v1) the MLS group.
 */
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { Logger } from '../../../src/log.js';
import { errorInfo } from '../../../src/log.js';
import { isSilenceFrame } from './bot-audio.js';
import { DaveGroup } from './dave-group.js';
import type { GuildVoice, SessionGrant } from './guild.js';
import { DAVE_MEDIA_AUDIO, hasDaveMarker, type SimMember } from './member.js';
import { VoiceClose, VoiceOp } from './opcodes.js';
import { decryptRtp, encryptRtp, ENCRYPTION_MODE, RtpDecryptError } from './rtp-crypto.js';
import type { GatewayConnection, ClientFrame } from './voice-gateway.js';
import type { UdpPeer, VoiceUdp } from './udp.js';

export interface SessionContext {
  readonly dave: 'off' | 'v1';
  readonly host: string;
  readonly udp: VoiceUdp;
  readonly events: EventEmitter;
  readonly log: Logger;
  allocateSsrc(): number;
}

type SequencedMessage = { seq: number; json?: { op: number; d: unknown }; binary?: { op: number; payload: Buffer } };

const REPLAY_BUFFER = 500;
/** The one-word header extension real Discord clients put on audio (an audio-level element). */
const AUDIO_LEVEL_EXTENSION = Buffer.from([0x10, 0x80, 0x00, 0x00]);

export class BotSession {
  readonly ssrc: number;
  readonly secretKey = randomBytes(32);
  readonly daveProtocolVersion: number;
  readonly startedAt = Date.now();
  private conn: GatewayConnection | undefined;
  private seq = 0;
  private readonly sent: SequencedMessage[] = [];
  /** Where RTP for the bot goes: the address seen in IP discovery. */
  private peer: UdpPeer | undefined;
  /** SESSION_DESCRIPTION sent: the session can carry media. */
  private described = false;
  private ended = false;
  private outgoingNonce = 0;
  /** Members the bot was told about with op 11. */
  private readonly announced = new Set<string>();
  /** Members whose op 5 SPEAKING (SSRC mapping) this session already sent. */
  private readonly speakingSent = new Set<string>();
  private readonly group: DaveGroup | undefined;
  private readonly udpHandler = {
    onDiscovery: (peer: UdpPeer) => {
      this.peer = peer;
    },
    onRtp: (packet: Buffer) => this.onBotRtp(packet),
  };
  private readonly log: Logger;

  constructor(
    readonly guild: GuildVoice,
    readonly grant: SessionGrant,
    private readonly ctx: SessionContext,
    clientMaxDaveVersion: number,
  ) {
    this.ssrc = ctx.allocateSsrc();
    this.daveProtocolVersion = ctx.dave === 'v1' && clientMaxDaveVersion >= 1 ? 1 : 0;
    this.log = ctx.log.child({ guildId: guild.guildId, ssrc: this.ssrc });
    ctx.udp.register(this.ssrc, this.udpHandler);
    if (this.daveProtocolVersion === 1) {
      const group = new DaveGroup(
        {
          channelId: grant.channelId,
          botUserId: grant.botUserId,
          sendBinaryToBot: (op, payload) => this.sendBinary(op, payload),
          sendJsonToBot: (op, d) => this.sendSequenced(op, d),
          presentMembers: () => [...guild.members.values()],
          recognisedUserIds: () => [grant.botUserId, ...this.announced],
          protocolError: (message) => this.protocolError(message),
        },
        this.log.child({ dave: true }),
      );
      group.on('transition', (info) => ctx.events.emit('daveTransition', { guildId: guild.guildId, ...info }));
      group.on('settled', () => ctx.events.emit('daveSettled', { guildId: guild.guildId }));
      this.group = group;
    }
  }

  get isDescribed(): boolean {
    return this.described && !this.ended;
  }

  get connected(): boolean {
    return this.conn?.isOpen ?? false;
  }

  get daveGroup(): DaveGroup | undefined {
    return this.group;
  }

  // ---- websocket attachment ----

  /** Attaches the websocket that identified (op 0) and answers READY. */
  identify(conn: GatewayConnection): void {
    this.attach(conn);
    this.sendSequenced(VoiceOp.Ready, {
      ssrc: this.ssrc,
      ip: this.ctx.host,
      port: this.ctx.udp.port,
      // AES-GCM first: the client picks the first mode it supports, and XChaCha needs a sodium-type
      // package @discordjs/voice may not have (it would throw at the first packet).
      modes: [ENCRYPTION_MODE, 'aead_xchacha20_poly1305_rtpsize'],
      experiments: [],
    });
    this.ctx.events.emit('botConnected', { guildId: this.guild.guildId });
  }

  /** Attaches the websocket that resumed (op 7): RESUMED, then everything the client missed. */
  resume(conn: GatewayConnection, seqAck: number): void {
    this.attach(conn);
    conn.sendJson({ op: VoiceOp.Resumed, d: null });
    this.record('out', { kind: 'json', op: VoiceOp.Resumed, d: null });
    const missed = this.sent.filter((m) => seqNewer(m.seq, seqAck));
    for (const m of missed) this.transmit(m);
    this.log.info({ seqAck, replayed: missed.length }, 'bot resumed its voice session');
    this.ctx.events.emit('botResumed', { guildId: this.guild.guildId, replayed: missed.length });
  }

  private attach(conn: GatewayConnection): void {
    if (this.conn && this.conn !== conn && this.conn.isOpen) this.conn.close(VoiceClose.SessionNoLongerValid, 'superseded');
    this.conn = conn;
    conn.on('frame', (frame) => {
      if (this.conn === conn) this.onFrame(frame);
    });
    conn.on('close', ({ code }) => {
      if (this.conn !== conn) return;
      this.conn = undefined;
      this.log.info({ code }, 'bot voice websocket closed');
      this.ctx.events.emit('botDisconnected', { guildId: this.guild.guildId, code });
    });
  }

  closeSocket(code: number, reason = ''): void {
    this.conn?.close(code, reason);
  }

  /** The session is over (superseded, left, server stopping). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.ctx.udp.unregister(this.ssrc, this.udpHandler);
    this.group?.stop();
  }

  // ---- sending ----

  /** A JSON message with a v8 sequence number, kept for replay after a resume. */
  sendSequenced(op: number, d: unknown): void {
    const m: SequencedMessage = { seq: this.nextSeq(), json: { op, d } };
    this.keep(m);
    this.transmit(m);
  }

  /** A binary DAVE message `[seq][op][payload]`, kept for replay after a resume. */
  sendBinary(op: number, payload: Buffer): void {
    const m: SequencedMessage = { seq: this.nextSeq(), binary: { op, payload } };
    this.keep(m);
    this.transmit(m);
  }

  private nextSeq(): number {
    // Binary frames carry a u16; JSON ones follow the same counter. 0 is skipped: the client
    // ignores a falsy `seq`.
    this.seq = this.seq >= 0xffff ? 1 : this.seq + 1;
    return this.seq;
  }

  private keep(m: SequencedMessage): void {
    this.sent.push(m);
    if (this.sent.length > REPLAY_BUFFER) this.sent.shift();
  }

  private transmit(m: SequencedMessage): void {
    const conn = this.conn;
    if (m.json) {
      this.record('out', { kind: 'json', op: m.json.op, seq: m.seq, d: m.json.d });
      conn?.sendJson({ op: m.json.op, d: m.json.d, seq: m.seq });
    } else if (m.binary) {
      this.record('out', { kind: 'binary', op: m.binary.op, seq: m.seq, bytes: m.binary.payload.length });
      conn?.sendBinary(m.seq, m.binary.op, m.binary.payload);
    }
  }

  private record(dir: 'in' | 'out', f: { kind: 'json'; op: number; seq?: number; d: unknown } | { kind: 'binary'; op: number; seq?: number; bytes: number }): void {
    this.guild.recordFrame({ at: Date.now(), dir, ...f });
  }

  private protocolError(message: string): void {
    this.log.warn({ message }, 'voice protocol error');
    this.ctx.events.emit('protocolError', { guildId: this.guild.guildId, message });
  }

  // ---- client frames after identify/resume ----

  private onFrame(frame: ClientFrame): void {
    if (this.ended) return; // a superseded session's socket: the client is about to close it
    if (frame.kind === 'binary') {
      this.record('in', { kind: 'binary', op: frame.op, bytes: frame.payload.length });
      this.onBinary(frame.op, frame.payload);
      return;
    }
    // Heartbeats are answered by the connection handler (they also come before identify).
    if (frame.op === VoiceOp.Heartbeat) return;
    this.record('in', { kind: 'json', op: frame.op, d: frame.d });
    const d = (frame.d ?? {}) as Record<string, unknown>;
    switch (frame.op) {
      case VoiceOp.SelectProtocol:
        this.onSelectProtocol(d);
        return;
      case VoiceOp.Speaking: {
        const speaking = Number(d.speaking ?? 0);
        const at = Date.now();
        this.guild.speaking.push({ at, speaking });
        if (d.ssrc !== undefined && d.ssrc !== this.ssrc) this.protocolError(`bot SPEAKING with ssrc ${String(d.ssrc)}, expected ${this.ssrc}`);
        this.ctx.events.emit('botSpeaking', { guildId: this.guild.guildId, speaking, at });
        return;
      }
      case VoiceOp.DaveTransitionReady:
        this.group?.onBotTransitionReady(Number(d.transition_id));
        return;
      case VoiceOp.DaveMlsInvalidCommitWelcome:
        this.group?.onBotInvalidCommitWelcome(Number(d.transition_id));
        return;
      case VoiceOp.Identify:
      case VoiceOp.Resume:
        this.protocolError(`op ${frame.op} on an already authenticated websocket`);
        this.conn?.close(VoiceClose.AlreadyAuthenticated, 'already authenticated');
        return;
      default:
        this.protocolError(`unknown opcode ${frame.op} from the bot`);
        this.conn?.close(VoiceClose.UnknownOpcode, 'unknown opcode');
    }
  }

  private onBinary(op: number, payload: Buffer): void {
    if (!this.group) {
      this.protocolError(`binary op ${op} without DAVE v1`);
      return;
    }
    if (op === VoiceOp.DaveMlsKeyPackage) this.group.onBotKeyPackage(Buffer.from(payload));
    else if (op === VoiceOp.DaveMlsCommitWelcome) this.group.onBotCommitWelcome(Buffer.from(payload));
    else this.protocolError(`unexpected binary op ${op} from the bot`);
  }

  private onSelectProtocol(d: Record<string, unknown>): void {
    const data = (d.data ?? {}) as Record<string, unknown>;
    if (d.protocol !== 'udp') {
      this.protocolError(`select protocol ${String(d.protocol)}`);
      this.conn?.close(VoiceClose.UnknownProtocol, 'unknown protocol');
      return;
    }
    if (data.mode !== ENCRYPTION_MODE) {
      this.protocolError(`unsupported encryption mode ${String(data.mode)}`);
      this.conn?.close(VoiceClose.UnknownEncryptionMode, 'unknown encryption mode');
      return;
    }
    if (!this.peer && typeof data.address === 'string' && typeof data.port === 'number') {
      this.peer = { address: data.address, port: data.port };
    }
    this.sendSequenced(VoiceOp.SessionDescription, {
      mode: ENCRYPTION_MODE,
      secret_key: [...this.secretKey],
      dave_protocol_version: this.daveProtocolVersion,
      audio_codec: 'opus',
      video_codec: 'H264',
      media_session_id: this.grant.sessionId,
    });
    this.described = true;
    this.ctx.events.emit('botReady', { guildId: this.guild.guildId, ssrc: this.ssrc, daveProtocolVersion: this.daveProtocolVersion });
    const present = [...this.guild.members.keys()];
    if (present.length > 0) this.announceMembers(present);
    this.group?.start();
  }

  // ---- membership ----

  private announceMembers(userIds: string[]): void {
    for (const id of userIds) this.announced.add(id);
    this.sendSequenced(VoiceOp.ClientsConnect, { user_ids: userIds });
  }

  memberJoined(member: SimMember): void {
    if (!this.described) return; // announced at SESSION_DESCRIPTION
    this.announceMembers([member.userId]);
    this.group?.memberJoined(member);
  }

  memberLeft(member: SimMember): void {
    this.speakingSent.delete(member.userId);
    if (!this.announced.delete(member.userId)) return;
    this.sendSequenced(VoiceOp.ClientDisconnect, { user_id: member.userId });
    this.group?.memberLeft(member);
  }

  // ---- media ----

  /** op 5 for a member: the bot's receiver learns SSRC → user only from this (gotcha 5). */
  sendMemberSpeaking(member: SimMember, speaking: 0 | 1): void {
    this.sendSequenced(VoiceOp.Speaking, { user_id: member.userId, ssrc: member.ssrc, speaking });
    if (speaking) this.speakingSent.add(member.userId);
  }

  /**
   * Sends one Opus frame from a member to the bot: DAVE (when the member's group is ready),
   * then transport encryption. Returns false when the session cannot carry media yet.
   */
  sendMemberFrame(member: SimMember, opus: Buffer): boolean {
    if (!this.isDescribed || !this.peer) return false;
    if (!this.speakingSent.has(member.userId)) this.sendMemberSpeaking(member, 1);
    let frame = opus;
    if (this.daveProtocolVersion === 1) {
      try {
        frame = member.protectFrame(opus).frame;
      } catch (err) {
        // A real client would not send a frame its E2EE layer refused: drop it, loudly.
        this.log.warn({ member: member.userId, bytes: opus.length, err: errorInfo(err) }, 'member could not DAVE-encrypt a frame; dropped');
        return true;
      }
    }
    const rtp = member.nextRtp();
    this.outgoingNonce = (this.outgoingNonce + 1) >>> 0;
    let packet = encryptRtp({ ...rtp, payload: frame, secretKey: this.secretKey, nonce: this.outgoingNonce, extensionBody: AUDIO_LEVEL_EXTENSION });
    const faults = this.guild.faults;
    if (faults.dropNext > 0) {
      faults.dropNext--;
      return true;
    }
    if (faults.corruptNext > 0) {
      faults.corruptNext--;
      packet = Buffer.from(packet);
      const i = 16 + Math.floor((packet.length - 16 - 20) / 2); // inside the ciphertext
      packet[i] = packet[i]! ^ 0x5a;
    }
    this.ctx.udp.send(packet, this.peer);
    return true;
  }

  private onBotRtp(packet: Buffer): void {
    if (!this.described) return;
    let decrypted;
    try {
      decrypted = decryptRtp(packet, this.secretKey);
    } catch (err) {
      this.guild.audio.transportFailures++;
      if (err instanceof RtpDecryptError) this.log.debug({ err: err.message }, 'bot RTP packet failed transport decryption');
      else this.log.warn({ err: errorInfo(err) }, 'bot RTP packet could not be processed');
      return;
    }
    if (decrypted.payloadType !== 120) this.protocolError(`bot RTP payload type ${decrypted.payloadType}`);
    let opus: Buffer = Buffer.from(decrypted.payload);
    const silence = isSilenceFrame(opus);
    let e2ee = false;
    let daveDecrypted = false;
    if (!silence && this.daveProtocolVersion === 1 && hasDaveMarker(opus)) {
      e2ee = true;
      const plain = this.decryptAsMember(opus);
      if (plain) {
        opus = plain;
        daveDecrypted = true;
      }
    }
    const heard = !this.guild.suppressed.has(this.grant.botUserId);
    const record = { at: Date.now(), opus, e2ee, silence, heard, sequence: decrypted.sequence, timestamp: decrypted.timestamp, ssrc: decrypted.ssrc };
    this.guild.audio.add(record, daveDecrypted);
    this.ctx.events.emit('botAudio', { guildId: this.guild.guildId, packet: record });
  }

  /** What a member's client does with the bot's frame: davey decrypt with the bot's sender key. */
  private decryptAsMember(frame: Buffer): Buffer | undefined {
    for (const m of this.guild.members.values()) {
      if (!m.dave?.ready) continue;
      try {
        return m.dave.decrypt(this.grant.botUserId, DAVE_MEDIA_AUDIO, frame);
      } catch (err) {
        this.log.debug({ member: m.userId, err: errorInfo(err).message }, 'member could not DAVE-decrypt a bot frame');
      }
    }
    return undefined;
  }
}

/** seq a is newer than b, with u16 wrap-around. */
function seqNewer(a: number, b: number): boolean {
  if (b < 0) return true;
  const diff = (a - b + 0x10000) % 0x10000;
  return diff !== 0 && diff < 0x8000;
}
