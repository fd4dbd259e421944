/**
 * The offline Discord voice server: voice gateway v8 over TLS, UDP/RTP with
 * aead_aes256_gcm_rtpsize, DAVE off|v1. See README.md in this folder for the API contract.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorInfo, logger, type Logger } from '../../../src/log.js';
import type { BotAudioRecord } from './bot-audio.js';
import { BotAudioRecorder } from './bot-audio.js';
import { encodeDiscordFrames, SILENCE_FRAME, toDiscordFrames } from './audio-frames.js';
import { BotSession, type SessionContext } from './bot-session.js';
import { GuildVoice, type GatewayFrameRecord } from './guild.js';
import { SimMember } from './member.js';
import { VoiceClose, VoiceOp } from './opcodes.js';
import { generateTestCertificate } from './tls-cert.js';
import { VoiceUdp } from './udp.js';
import { startVoiceGateway, type GatewayConnection } from './voice-gateway.js';

export type { BotAudioRecord, BotAudioPacket } from './bot-audio.js';
export type { GatewayFrameRecord } from './guild.js';
export { VoiceOp, VoiceClose } from './opcodes.js';

export type DaveMode = 'off' | 'v1';

export interface VoiceServerOptions {
  dave: DaveMode;
  /** Listen address; an IP (the endpoint is dialled as wss://IP:PORT). Default 127.0.0.1. */
  host?: string;
  /** heartbeat_interval sent in HELLO. Default 13750 ms, like Discord. */
  helloIntervalMs?: number;
  /** Where to log; default the root logger. */
  log?: Logger;
}

export interface SessionInfo {
  channelId: string;
  botUserId: string;
  ssrc: number;
  connected: boolean;
  ready: boolean;
  daveProtocolVersion: number;
  /** MLS epoch and group members (DAVE v1). */
  daveEpoch: number | undefined;
  daveUserIds: string[];
}

export interface VoiceServer {
  readonly endpoint: string;
  readonly caCertPath: string;
  readonly caCertPem: string;
  readonly dave: DaveMode;
  readonly events: EventEmitter;
  openSession(p: { guildId: string; channelId: string; botUserId: string; sessionId: string }): { token: string };
  closeSession(guildId: string): void;
  memberJoined(guildId: string, userId: string): void;
  memberLeft(guildId: string, userId: string): void;
  setSuppressed(guildId: string, userId: string, suppressed: boolean): void;
  /** Frames a member spoke while suppressed (stage audience): never sent to the bot. */
  unheardMemberFrames(guildId: string, userId: string): number;
  speak(guildId: string, userId: string, pcm: Int16Array, opts: { sampleRate: number; channels: 1 | 2 }): Promise<void>;
  sendRawOpus(guildId: string, userId: string, packets: Buffer[]): Promise<void>;
  botAudio(guildId: string): BotAudioRecord;
  botSpeaking(guildId: string): { at: number; speaking: number }[];
  closeBotSocket(guildId: string, code: number): void;
  proposeUnknownUser(guildId: string): string;
  corruptNextPackets(guildId: string, n: number): void;
  dropNextPackets(guildId: string, n: number): void;
  delayHeartbeatAcks(guildId: string, ms: number): void;
  frames(guildId: string): GatewayFrameRecord[];
  session(guildId: string): SessionInfo | undefined;
  daveSettled(guildId: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const FRAME_MS = 20;
const SILENCE_TAIL = 5;
const SETTLE_BEFORE_SPEAKING_MS = 3_000;
const SPEAKING_LEAD_MS = 20;

export async function startVoiceServer(opts: VoiceServerOptions): Promise<VoiceServer> {
  const host = opts.host ?? '127.0.0.1';
  const log = (opts.log ?? logger()).child({ component: 'sim-discord-voice' });
  const cert = await generateTestCertificate(host);
  let udp: VoiceUdp | undefined;
  try {
    udp = await VoiceUdp.bind(host, (msg, ctx) => log.warn(ctx, msg));
    const server = new SimVoiceServer(opts, host, cert, udp, log);
    await server.listen();
    return server;
  } catch (err) {
    await udp?.close();
    await cert.cleanup();
    throw err;
  }
}

class SimVoiceServer implements VoiceServer {
  readonly events = new EventEmitter();
  readonly dave: DaveMode;
  private readonly guilds = new Map<string, GuildVoice>();
  private readonly helloIntervalMs: number;
  private readonly usedSsrcs = new Set<number>();
  private gateway: Awaited<ReturnType<typeof startVoiceGateway>> | undefined;
  private readonly ctx: SessionContext;
  private stopped = false;

  constructor(
    opts: VoiceServerOptions,
    private readonly host: string,
    private readonly cert: Awaited<ReturnType<typeof generateTestCertificate>>,
    private readonly udp: VoiceUdp,
    private readonly log: Logger,
  ) {
    this.dave = opts.dave;
    this.helloIntervalMs = opts.helloIntervalMs ?? 13_750;
    this.events.setMaxListeners(100);
    this.ctx = { dave: opts.dave, host, udp, events: this.events, log, allocateSsrc: () => this.allocateSsrc() };
  }

  async listen(): Promise<void> {
    this.gateway = await startVoiceGateway({
      host: this.host,
      keyPem: this.cert.keyPem,
      certPem: this.cert.certPem,
      onConnection: (conn) => this.onConnection(conn),
    });
  }

  get endpoint(): string {
    return `${this.host}:${this.gateway?.port ?? 0}`;
  }
  get caCertPath(): string {
    return this.cert.caCertPath;
  }
  get caCertPem(): string {
    return this.cert.caCertPem;
  }

  private allocateSsrc(): number {
    let ssrc: number;
    do ssrc = randomInt(1, 0x7fffffff);
    while (this.usedSsrcs.has(ssrc));
    this.usedSsrcs.add(ssrc);
    return ssrc;
  }

  private guild(guildId: string): GuildVoice {
    let g = this.guilds.get(guildId);
    if (!g) {
      g = new GuildVoice(guildId);
      this.guilds.set(guildId, g);
    }
    return g;
  }

  // ---- websocket handshake: HELLO, heartbeats, IDENTIFY / RESUME ----

  private onConnection(conn: GatewayConnection): void {
    let guild: GuildVoice | undefined;
    let authenticated = false;
    conn.sendJson({ op: VoiceOp.Hello, d: { heartbeat_interval: this.helloIntervalMs, v: 8 } });
    conn.on('malformed', ({ reason, raw }) => {
      this.protocolError(guild?.guildId, `malformed voice gateway frame (${reason}): ${raw}`);
      conn.close(VoiceClose.FailedToDecode, 'failed to decode payload');
    });
    conn.on('frame', (frame) => {
      if (frame.kind === 'json' && frame.op === VoiceOp.Heartbeat) {
        this.ackHeartbeat(conn, frame.d, guild);
        return;
      }
      if (authenticated) return; // the BotSession listens from now on
      const d = (frame.kind === 'json' ? frame.d ?? {} : {}) as Record<string, unknown>;
      if (frame.kind === 'json' && frame.op === VoiceOp.Identify) {
        guild = this.guilds.get(String(d.server_id));
        authenticated = this.identify(conn, d, guild);
      } else if (frame.kind === 'json' && frame.op === VoiceOp.Resume) {
        guild = this.guilds.get(String(d.server_id));
        authenticated = this.resume(conn, d, guild);
      } else {
        this.protocolError(guild?.guildId, `op ${frame.op} before identify`);
        conn.close(VoiceClose.NotAuthenticated, 'not authenticated');
      }
    });
  }

  private ackHeartbeat(conn: GatewayConnection, d: unknown, guild: GuildVoice | undefined): void {
    const t = (d as { t?: unknown } | null)?.t ?? d;
    const delay = guild?.faults.heartbeatAckDelayMs ?? 0;
    const ack = () => conn.sendJson({ op: VoiceOp.HeartbeatAck, d: { t } });
    if (delay === 0) ack();
    else if (Number.isFinite(delay)) setTimeout(ack, delay).unref();
  }

  private identify(conn: GatewayConnection, d: Record<string, unknown>, guild: GuildVoice | undefined): boolean {
    guild?.recordFrame({ at: Date.now(), dir: 'in', kind: 'json', op: VoiceOp.Identify, d: { ...d, token: '[redacted]' } });
    const grant = guild?.grant;
    if (!guild || !grant || grant.token !== d.token || grant.botUserId !== d.user_id || grant.sessionId !== d.session_id) {
      this.protocolError(guild?.guildId, `IDENTIFY rejected for guild ${String(d.server_id)}: unknown session or wrong token`);
      conn.close(VoiceClose.AuthenticationFailed, 'authentication failed');
      return false;
    }
    const maxDave = Number(d.max_dave_protocol_version ?? 0);
    if (this.dave === 'v1' && maxDave < 1) {
      // Discord has required DAVE since 2026-03-01: a client without it gets 4017.
      this.protocolError(guild.guildId, 'IDENTIFY without DAVE support on a DAVE v1 server');
      conn.close(4017, 'E2EE/DAVE protocol required');
      return false;
    }
    guild.session?.end();
    const session = new BotSession(guild, grant, this.ctx, maxDave);
    guild.session = session;
    session.identify(conn);
    this.log.info({ guildId: guild.guildId, ssrc: session.ssrc, dave: session.daveProtocolVersion }, 'bot identified on the voice gateway');
    return true;
  }

  private resume(conn: GatewayConnection, d: Record<string, unknown>, guild: GuildVoice | undefined): boolean {
    guild?.recordFrame({ at: Date.now(), dir: 'in', kind: 'json', op: VoiceOp.Resume, d: { ...d, token: '[redacted]' } });
    const session = guild?.session;
    if (!guild || !session || session.grant.sessionId !== d.session_id || session.grant.token !== d.token) {
      this.protocolError(guild?.guildId, 'RESUME for an unknown or ended session');
      conn.close(VoiceClose.SessionNoLongerValid, 'session no longer valid');
      return false;
    }
    session.resume(conn, typeof d.seq_ack === 'number' ? d.seq_ack : -1);
    return true;
  }

  private protocolError(guildId: string | undefined, message: string): void {
    this.log.warn({ guildId, message }, 'voice protocol error');
    this.events.emit('protocolError', { guildId, message });
  }

  // ---- sessions (called by the gateway side) ----

  openSession(p: { guildId: string; channelId: string; botUserId: string; sessionId: string }): { token: string } {
    const token = randomBytes(16).toString('hex');
    this.guild(p.guildId).grant = { ...p, token };
    return { token };
  }

  closeSession(guildId: string): void {
    const g = this.guilds.get(guildId);
    if (!g) return;
    const s = g.session;
    if (s) {
      s.closeSocket(VoiceClose.Disconnected, 'disconnected');
      s.end();
      g.session = undefined;
    }
    g.grant = undefined;
  }

  memberJoined(guildId: string, userId: string): void {
    const g = this.guild(guildId);
    if (g.members.has(userId)) return;
    const member = new SimMember(userId, this.allocateSsrc());
    g.members.set(userId, member);
    g.session?.memberJoined(member);
  }

  memberLeft(guildId: string, userId: string): void {
    const g = this.guilds.get(guildId);
    const member = g?.members.get(userId);
    if (!g || !member) return;
    g.members.delete(userId);
    g.session?.memberLeft(member);
    this.usedSsrcs.delete(member.ssrc);
  }

  setSuppressed(guildId: string, userId: string, suppressed: boolean): void {
    const g = this.guild(guildId);
    if (suppressed) g.suppressed.add(userId);
    else g.suppressed.delete(userId);
  }

  unheardMemberFrames(guildId: string, userId: string): number {
    return this.guilds.get(guildId)?.unheardMemberFrames.get(userId) ?? 0;
  }

  // ---- members speaking ----

  async speak(guildId: string, userId: string, pcm: Int16Array, opts: { sampleRate: number; channels: 1 | 2 }): Promise<void> {
    const packets = encodeDiscordFrames(toDiscordFrames(pcm, opts.sampleRate, opts.channels));
    for (let i = 0; i < SILENCE_TAIL; i++) packets.push(SILENCE_FRAME);
    await this.transmit(guildId, userId, packets);
  }

  async sendRawOpus(guildId: string, userId: string, packets: Buffer[]): Promise<void> {
    await this.transmit(guildId, userId, packets);
  }

  /** Paced RTP from one member (queued behind the member's previous speech). */
  private transmit(guildId: string, userId: string, packets: Buffer[]): Promise<void> {
    const g = this.guilds.get(guildId);
    const member = g?.members.get(userId);
    if (!g || !member) return Promise.reject(new Error(`member ${userId} is not in the voice channel of guild ${guildId}`));
    const run = member.speechQueue.then(() => this.pace(g, member, packets));
    member.speechQueue = run.catch(() => {});
    return run;
  }

  private async pace(g: GuildVoice, member: SimMember, packets: Buffer[]): Promise<void> {
    if (!g.session?.isDescribed) throw new Error(`the bot has no voice session in guild ${g.guildId}`);
    if (this.dave === 'v1') {
      await this.daveSettled(g.guildId, SETTLE_BEFORE_SPEAKING_MS).catch((err: unknown) =>
        this.log.warn({ guildId: g.guildId, err: errorInfo(err) }, 'speaking before the DAVE group settled (frames may go out in clear)'),
      );
    }
    // A suppressed (stage audience) member's client transmits nothing, not even op 5.
    let spoke = !g.suppressed.has(member.userId);
    if (spoke) g.session?.sendMemberSpeaking(member, 1);
    // Drift-free clock: packet i leaves at start + i·20 ms, whatever the timer jitter. The first
    // packet leaves one frame after op 5: UDP can overtake the TLS websocket, and the receiver
    // drops RTP from an SSRC it has not mapped yet (gotcha 5).
    const start = performance.now() + SPEAKING_LEAD_MS;
    let unsent = 0;
    for (let i = 0; i < packets.length; i++) {
      const wait = start + i * FRAME_MS - performance.now();
      if (wait >= 1) await sleep(wait);
      if (this.stopped || g.members.get(member.userId) !== member) break; // server stopped, or the member left mid-sentence
      if (g.suppressed.has(member.userId)) {
        // A stage audience member's audio reaches no one (their client would not even send it).
        g.unheardMemberFrames.set(member.userId, (g.unheardMemberFrames.get(member.userId) ?? 0) + 1);
        continue;
      }
      if (!g.session?.sendMemberFrame(member, packets[i]!)) unsent++;
      spoke = true;
    }
    if (spoke) g.session?.sendMemberSpeaking(member, 0);
    if (unsent > 0) this.log.warn({ guildId: g.guildId, userId: member.userId, unsent }, 'member frames not sent: no ready bot session');
  }

  // ---- observation ----

  botAudio(guildId: string): BotAudioRecord {
    return (this.guilds.get(guildId)?.audio ?? new BotAudioRecorder()).snapshot();
  }

  botSpeaking(guildId: string): { at: number; speaking: number }[] {
    return [...(this.guilds.get(guildId)?.speaking ?? [])];
  }

  frames(guildId: string): GatewayFrameRecord[] {
    return [...(this.guilds.get(guildId)?.frames ?? [])];
  }

  session(guildId: string): SessionInfo | undefined {
    const s = this.guilds.get(guildId)?.session;
    if (!s) return undefined;
    return {
      channelId: s.grant.channelId,
      botUserId: s.grant.botUserId,
      ssrc: s.ssrc,
      connected: s.connected,
      ready: s.isDescribed,
      daveProtocolVersion: s.daveProtocolVersion,
      daveEpoch: s.daveGroup?.currentEpoch,
      daveUserIds: s.daveGroup?.groupUserIds ?? [],
    };
  }

  daveSettled(guildId: string, timeoutMs = 5_000): Promise<void> {
    const settled = () => {
      const s = this.guilds.get(guildId)?.session;
      if (!s?.isDescribed) return false;
      return s.daveGroup ? s.daveGroup.isSettled() : true;
    };
    if (settled()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!settled()) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        const info = this.session(guildId);
        reject(new Error(`DAVE group of guild ${guildId} not settled after ${timeoutMs} ms (group: ${JSON.stringify(info?.daveUserIds ?? [])}, epoch ${String(info?.daveEpoch)})`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        for (const e of ['daveSettled', 'daveTransition', 'botReady'] as const) this.events.off(e, check);
      };
      for (const e of ['daveSettled', 'daveTransition', 'botReady'] as const) this.events.on(e, check);
    });
  }

  // ---- fault injection ----

  closeBotSocket(guildId: string, code: number): void {
    const s = this.guilds.get(guildId)?.session;
    if (!s) throw new Error(`no bot voice session in guild ${guildId}`);
    s.closeSocket(code, `simulated close ${code}`);
  }

  proposeUnknownUser(guildId: string): string {
    const s = this.guilds.get(guildId)?.session;
    if (!s?.daveGroup) throw new Error(`proposeUnknownUser needs a DAVE v1 bot session in guild ${guildId}`);
    const strangerId = String(BigInt(Date.now() - 1_420_070_400_000) << 22n | BigInt(randomInt(0, 1 << 22)));
    const stranger = new SimMember(strangerId, 0); // never sends media
    s.daveGroup.proposeUnknownUser(stranger);
    stranger.leaveDaveGroup();
    this.log.info({ guildId, strangerId }, 'sent the bot an MLS Add proposal for an unannounced user');
    return strangerId;
  }

  corruptNextPackets(guildId: string, n: number): void {
    this.guild(guildId).faults.corruptNext = n;
  }

  dropNextPackets(guildId: string, n: number): void {
    this.guild(guildId).faults.dropNext = n;
  }

  delayHeartbeatAcks(guildId: string, ms: number): void {
    this.guild(guildId).faults.heartbeatAckDelayMs = ms;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const g of this.guilds.values()) {
      g.session?.end();
      g.session = undefined;
      for (const m of g.members.values()) m.leaveDaveGroup();
    }
    await this.gateway?.close();
    await this.udp.close();
    await this.cert.cleanup();
  }
}
