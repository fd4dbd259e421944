/**
 * The gateway: v10 JSON over a WebSocket on the REST server's port (no compression, no ETF, as
 * @discordjs/ws 1.2.3 speaks it when zlib-sync is absent).
 *
 * Sessions follow Discord's rules: HELLO → IDENTIFY (token checked, 4004 otherwise) → READY whose
 * `guilds` list matches the GUILD_CREATEs that follow (discord.js waits for every one of them);
 * heartbeats are ACKed; a dropped socket can RESUME and gets the missed dispatches replayed.
 * Dispatches are filtered by the session's intents exactly where Discord filters them.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { GatewayCloseCodes, GatewayIntentBits, GatewayOpcodes } from 'discord-api-types/v10';
import { errorInfo, type Logger } from '../../src/log.js';

export interface GatewayFrameRecord {
  dir: 'in' | 'out';
  op: number;
  t: string | null;
  s: number | null;
  /** The payload; IDENTIFY/RESUME tokens are replaced by "[redacted]". */
  d: unknown;
  at: number;
  sessionId: string | null;
}

export interface IdentifyRecord {
  intents: number;
  properties: unknown;
  shard: unknown;
  at: number;
}

export interface VoiceStateUpdateRequest {
  guild_id: string;
  channel_id: string | null;
  self_mute: boolean;
  self_deaf: boolean;
}

export interface RequestGuildMembers {
  guild_id: string;
  query?: string;
  limit?: number;
  user_ids?: string | string[];
  nonce?: string;
  presences?: boolean;
}

export interface GatewaySession {
  readonly id: string;
  readonly intents: number;
  seq: number;
  /** Recent dispatches, for RESUME replay. */
  readonly sent: Array<{ s: number; t: string; d: unknown }>;
  socket: WebSocket | null;
  invalidated: boolean;
}

/** What the gateway needs from the rest of the simulator, computed when a session starts. */
export interface GatewayHooks {
  /** Whether the bot is in this guild: nothing about a guild it is not in is dispatched. */
  botInGuild(guildId: string): boolean;
  /** A new IDENTIFY replaced every earlier session (state bound to old sessions must go). */
  sessionStarted(session: GatewaySession): void;
  readyData(session: GatewaySession): Record<string, unknown>;
  /** The GUILD_CREATE payloads after READY, one per guild in READY's `guilds`. */
  initialGuilds(session: GatewaySession): Array<Record<string, unknown>>;
  voiceStateUpdate(session: GatewaySession, d: VoiceStateUpdateRequest): void;
  requestGuildMembers(session: GatewaySession, d: RequestGuildMembers): void;
}

export interface GatewayOptions {
  token: string;
  /** The bot's user id: GUILD_MEMBER_UPDATE about the bot itself is sent whatever the intents. */
  botUserId: string;
  heartbeatIntervalMs: number;
  /** Privileged intents enabled "in the developer portal". */
  privileged: { messageContent: boolean; members: boolean; presences: boolean };
  /** Close with 4014 when a disabled privileged intent is requested, as Discord does. */
  rejectDisallowedIntents: boolean;
  resumeUrl: () => string;
  log: Logger;
}

export interface GatewayEvents {
  identify: [IdentifyRecord];
  ready: [GatewaySession];
  resumed: [GatewaySession];
  frame: [GatewayFrameRecord];
}

/** Which intent a dispatch needs, where Discord filters by intent. */
const DISPATCH_INTENT: Record<string, number> = {
  GUILD_CREATE: GatewayIntentBits.Guilds,
  GUILD_UPDATE: GatewayIntentBits.Guilds,
  GUILD_DELETE: GatewayIntentBits.Guilds,
  GUILD_ROLE_CREATE: GatewayIntentBits.Guilds,
  GUILD_ROLE_UPDATE: GatewayIntentBits.Guilds,
  GUILD_ROLE_DELETE: GatewayIntentBits.Guilds,
  CHANNEL_CREATE: GatewayIntentBits.Guilds,
  CHANNEL_UPDATE: GatewayIntentBits.Guilds,
  CHANNEL_DELETE: GatewayIntentBits.Guilds,
  THREAD_CREATE: GatewayIntentBits.Guilds,
  THREAD_UPDATE: GatewayIntentBits.Guilds,
  THREAD_DELETE: GatewayIntentBits.Guilds,
  THREAD_LIST_SYNC: GatewayIntentBits.Guilds,
  THREAD_MEMBER_UPDATE: GatewayIntentBits.Guilds,
  WEBHOOKS_UPDATE: GatewayIntentBits.GuildWebhooks,
  GUILD_MEMBER_ADD: GatewayIntentBits.GuildMembers,
  GUILD_MEMBER_UPDATE: GatewayIntentBits.GuildMembers,
  GUILD_MEMBER_REMOVE: GatewayIntentBits.GuildMembers,
  VOICE_STATE_UPDATE: GatewayIntentBits.GuildVoiceStates,
  MESSAGE_CREATE: GatewayIntentBits.GuildMessages,
  MESSAGE_UPDATE: GatewayIntentBits.GuildMessages,
  MESSAGE_DELETE: GatewayIntentBits.GuildMessages,
  TYPING_START: GatewayIntentBits.GuildMessageTyping,
};

const PRIVILEGED = {
  members: GatewayIntentBits.GuildMembers,
  presences: GatewayIntentBits.GuildPresences,
  messageContent: GatewayIntentBits.MessageContent,
} as const;

const REPLAY_BUFFER = 1000;

interface Connection {
  socket: WebSocket;
  session: GatewaySession | null;
  lastHeartbeatAt: number;
}

export class Gateway extends EventEmitter<GatewayEvents> {
  readonly frames: GatewayFrameRecord[] = [];
  readonly identifies: IdentifyRecord[] = [];
  private readonly sessions = new Map<string, GatewaySession>();
  private readonly connections = new Set<Connection>();
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  private hooks: GatewayHooks | undefined;
  /** Fault switch: stop answering heartbeats (the client then treats the link as a zombie). */
  ackHeartbeats = true;

  constructor(private readonly opts: GatewayOptions) {
    super();
  }

  setHooks(hooks: GatewayHooks): void {
    this.hooks = hooks;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://sim');
    if (url.pathname !== '/gateway') {
      this.opts.log.warn({ path: url.pathname }, 'discord-sim: websocket upgrade on unknown path');
      socket.destroy();
      return;
    }
    if (url.searchParams.get('encoding') !== 'json' || url.searchParams.has('compress')) {
      // We only speak uncompressed JSON; say so loudly instead of failing obscurely later.
      this.opts.log.warn({ query: url.search }, 'discord-sim: gateway client asked for an encoding or compression the simulator does not speak');
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
  }

  /** The most recent live (identified, not invalidated) session. */
  get currentSession(): GatewaySession | undefined {
    let last: GatewaySession | undefined;
    for (const s of this.sessions.values()) if (!s.invalidated) last = s;
    return last;
  }

  /** True while a session is identified and has a socket attached. */
  get connected(): boolean {
    return [...this.sessions.values()].some((s) => !s.invalidated && s.socket !== null);
  }

  /**
   * Sends a dispatch to every live session whose intents allow it. `transform` may adapt the
   * payload per session (e.g. strip message content); returning undefined skips that session.
   */
  dispatch(t: string, d: unknown, transform?: (d: unknown, session: GatewaySession) => unknown): void {
    // Discord: "Guild Member Update is sent for current-user updates regardless of whether the
    // GUILD_MEMBERS intent is set" (gateway.mdx, Caveats).
    const aboutBot = t === 'GUILD_MEMBER_UPDATE' && (d as { user?: { id?: unknown } } | null)?.user?.id === this.opts.botUserId;
    const intent = aboutBot ? undefined : DISPATCH_INTENT[t];
    const guildId = d && typeof d === 'object' ? (d as { guild_id?: unknown }).guild_id : undefined;
    if (typeof guildId === 'string' && this.hooks && !this.hooks.botInGuild(guildId)) return;
    for (const session of this.sessions.values()) {
      if (session.invalidated) continue;
      if (intent !== undefined && (session.intents & intent) === 0) continue;
      const payload = transform ? transform(d, session) : d;
      if (payload === undefined) continue;
      this.sendDispatch(session, t, payload);
    }
  }

  /** Closes the bot's socket with `code` without invalidating its session, so it can RESUME. */
  dropConnection(code = 4000): void {
    for (const c of this.connections) c.socket.close(code, 'simulated disconnect');
  }

  /** Asks the client to reconnect and resume (op 7 RECONNECT). */
  requestReconnect(): void {
    for (const c of this.connections) if (c.session) this.send(c, { op: GatewayOpcodes.Reconnect, d: null });
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.terminate();
    this.connections.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // ---- internals ----

  private onConnection(socket: WebSocket): void {
    const conn: Connection = { socket, session: null, lastHeartbeatAt: Date.now() };
    this.connections.add(conn);
    socket.on('message', (raw, isBinary) => this.onFrame(conn, raw, isBinary));
    socket.on('close', (code) => {
      this.connections.delete(conn);
      if (conn.session && conn.session.socket === socket) conn.session.socket = null;
      this.opts.log.debug({ code, sessionId: conn.session?.id }, 'discord-sim: gateway socket closed');
    });
    socket.on('error', (err) => this.opts.log.warn({ err: err.message }, 'discord-sim: gateway socket error'));
    this.send(conn, { op: GatewayOpcodes.Hello, d: { heartbeat_interval: this.opts.heartbeatIntervalMs } });
  }

  private onFrame(conn: Connection, raw: RawData, isBinary: boolean): void {
    try {
      this.handleFrame(conn, raw, isBinary);
    } catch (err) {
      // A simulator bug must show up as a loud log line, not as an uncaught exception that kills
      // the test process (or as a silently swallowed frame).
      this.opts.log.error({ err: errorInfo(err, true) }, 'discord-sim: error while handling a gateway frame');
    }
  }

  private handleFrame(conn: Connection, raw: RawData, isBinary: boolean): void {
    let payload: { op?: unknown; d?: unknown };
    try {
      if (isBinary) throw new Error('binary frame');
      payload = JSON.parse(Buffer.isBuffer(raw) ? raw.toString('utf8') : Buffer.concat(raw as Buffer[]).toString('utf8')) as typeof payload;
      if (typeof payload !== 'object' || payload === null || typeof payload.op !== 'number') throw new Error('no op');
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'discord-sim: undecodable gateway frame; closing with 4002 like Discord');
      conn.socket.close(GatewayCloseCodes.DecodeError, 'Error while decoding payload.');
      return;
    }
    const op = payload.op as number;
    this.record('in', op, null, null, redactToken(op, payload.d), conn.session?.id ?? null);

    switch (op) {
      case GatewayOpcodes.Heartbeat:
        conn.lastHeartbeatAt = Date.now();
        if (this.ackHeartbeats) this.send(conn, { op: GatewayOpcodes.HeartbeatAck });
        return;
      case GatewayOpcodes.Identify:
        this.onIdentify(conn, payload.d);
        return;
      case GatewayOpcodes.Resume:
        this.onResume(conn, payload.d);
        return;
    }
    if (!conn.session) {
      conn.socket.close(GatewayCloseCodes.NotAuthenticated, 'Not authenticated.');
      return;
    }
    switch (op) {
      case GatewayOpcodes.VoiceStateUpdate:
        if (!isVoiceStateUpdate(payload.d)) {
          conn.socket.close(GatewayCloseCodes.DecodeError, 'Error while decoding payload.');
          return;
        }
        this.hooks?.voiceStateUpdate(conn.session, payload.d);
        return;
      case GatewayOpcodes.RequestGuildMembers:
        this.hooks?.requestGuildMembers(conn.session, payload.d as RequestGuildMembers);
        return;
      case GatewayOpcodes.PresenceUpdate:
        return;
      default:
        this.opts.log.warn({ op }, 'discord-sim: unknown gateway opcode; closing with 4001 like Discord');
        conn.socket.close(GatewayCloseCodes.UnknownOpcode, 'Unknown opcode.');
    }
  }

  private onIdentify(conn: Connection, d: unknown): void {
    if (conn.session) {
      conn.socket.close(GatewayCloseCodes.AlreadyAuthenticated, 'Already authenticated.');
      return;
    }
    const body = (d ?? {}) as { token?: unknown; intents?: unknown; properties?: unknown; shard?: unknown };
    if (body.token !== this.opts.token) {
      this.opts.log.warn('discord-sim: IDENTIFY with a wrong token; closing with 4004');
      conn.socket.close(GatewayCloseCodes.AuthenticationFailed, 'Authentication failed.');
      return;
    }
    if (typeof body.intents !== 'number' || !Number.isInteger(body.intents) || body.intents < 0) {
      conn.socket.close(GatewayCloseCodes.InvalidIntents, 'Invalid intent(s).');
      return;
    }
    const intents = body.intents;
    if (this.opts.rejectDisallowedIntents) {
      for (const [name, bit] of Object.entries(PRIVILEGED)) {
        if ((intents & bit) !== 0 && !this.opts.privileged[name as keyof typeof PRIVILEGED]) {
          this.opts.log.warn({ intent: name }, 'discord-sim: privileged intent requested but not enabled; closing with 4014');
          conn.socket.close(GatewayCloseCodes.DisallowedIntents, 'Disallowed intent(s).');
          return;
        }
      }
    }
    const record: IdentifyRecord = { intents, properties: body.properties, shard: body.shard, at: Date.now() };
    this.identifies.push(record);
    this.emit('identify', record);

    // A new identify replaces older sessions of this bot (single shard).
    for (const s of this.sessions.values()) s.invalidated = true;
    const session: GatewaySession = {
      id: randomBytes(16).toString('hex'),
      intents,
      seq: 0,
      sent: [],
      socket: conn.socket,
      invalidated: false,
    };
    this.sessions.set(session.id, session);
    conn.session = session;
    if (!this.hooks) throw new Error('gateway hooks not set');
    this.hooks.sessionStarted(session);
    const ready = this.hooks.readyData(session);
    this.sendDispatch(session, 'READY', { ...ready, session_id: session.id, resume_gateway_url: this.opts.resumeUrl() });
    for (const guild of this.hooks.initialGuilds(session)) this.sendDispatch(session, 'GUILD_CREATE', guild);
    this.emit('ready', session);
  }

  private onResume(conn: Connection, d: unknown): void {
    const body = (d ?? {}) as { token?: unknown; session_id?: unknown; seq?: unknown };
    const session = typeof body.session_id === 'string' ? this.sessions.get(body.session_id) : undefined;
    if (body.token !== this.opts.token) {
      conn.socket.close(GatewayCloseCodes.AuthenticationFailed, 'Authentication failed.');
      return;
    }
    const seq = typeof body.seq === 'number' ? body.seq : -1;
    const oldest = session?.sent[0]?.s ?? (session ? session.seq + 1 : 0);
    if (!session || session.invalidated || seq > session.seq || seq < oldest - 1) {
      this.opts.log.info({ sessionId: body.session_id }, 'discord-sim: RESUME refused; sending INVALID_SESSION');
      this.send(conn, { op: GatewayOpcodes.InvalidSession, d: false });
      return;
    }
    if (session.socket && session.socket !== conn.socket) session.socket.terminate();
    session.socket = conn.socket;
    conn.session = session;
    for (const e of session.sent) if (e.s > seq) this.send(conn, { op: GatewayOpcodes.Dispatch, t: e.t, s: e.s, d: e.d });
    this.sendDispatch(session, 'RESUMED', null);
    this.emit('resumed', session);
  }

  private sendDispatch(session: GatewaySession, t: string, d: unknown): void {
    session.seq += 1;
    const s = session.seq;
    session.sent.push({ s, t, d });
    if (session.sent.length > REPLAY_BUFFER) session.sent.shift();
    const conn = [...this.connections].find((c) => c.socket === session.socket);
    if (conn) this.send(conn, { op: GatewayOpcodes.Dispatch, t, s, d });
    else this.record('out', GatewayOpcodes.Dispatch, t, s, d, session.id, true);
  }

  private send(conn: Connection, frame: { op: number; d?: unknown; t?: string; s?: number }): void {
    this.record('out', frame.op, frame.t ?? null, frame.s ?? null, frame.d ?? null, conn.session?.id ?? null);
    if (conn.socket.readyState !== conn.socket.OPEN) return;
    conn.socket.send(JSON.stringify({ op: frame.op, d: frame.d ?? null, s: frame.s ?? null, t: frame.t ?? null }));
  }

  private record(dir: 'in' | 'out', op: number, t: string | null, s: number | null, d: unknown, sessionId: string | null, buffered = false): void {
    const rec: GatewayFrameRecord = { dir, op, t, s, d, at: Date.now(), sessionId };
    if (buffered) (rec as GatewayFrameRecord & { buffered?: boolean }).buffered = true;
    this.frames.push(rec);
    this.emit('frame', rec);
  }
}

function redactToken(op: number, d: unknown): unknown {
  if ((op === GatewayOpcodes.Identify || op === GatewayOpcodes.Resume) && d && typeof d === 'object') {
    return { ...(d as Record<string, unknown>), token: '[redacted]' };
  }
  return d;
}

function isVoiceStateUpdate(d: unknown): d is VoiceStateUpdateRequest {
  if (!d || typeof d !== 'object') return false;
  const v = d as Record<string, unknown>;
  return typeof v.guild_id === 'string' && (v.channel_id === null || typeof v.channel_id === 'string');
}

/** Random bot token in Discord's shape: base64(user id) . 6 chars . 27 chars. */
export function makeBotToken(userId: string): string {
  const b64 = (n: number) => randomBytes(n).toString('base64url');
  return `${Buffer.from(userId).toString('base64url')}.${b64(5).slice(0, 6)}.${b64(21).slice(0, 27)}`;
}
