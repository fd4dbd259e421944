/**
 * The voice connection of one guild, kept alive: join, wait for Ready, recover from disconnects,
 * give up cleanly when Discord says we were removed.
 *
 * Recovery rules (@discordjs/voice 0.19.2, read from its source):
 * - A voice-gateway close with any code but 4014 makes the library re-signal by itself
 *   (Ready → Signalling → Connecting → Ready) and count `rejoinAttempts`. We only watch: if it is
 *   not Ready again within `readyTimeoutMs`, or `rejoinAttempts` passes the cap (e.g. a 4017
 *   "DAVE required" loop), we rejoin from scratch (new VoiceConnection), with back-off, at most
 *   `maxRejoins` times in a row; then voice ends.
 * - `Disconnected` with close code 4014 = kicked, moved away, or the channel was deleted (unless the
 *   main gateway session was reset at the same moment, see `on4014`): voice
 *   ends for this guild (GuildVoice tells the text channel).
 * - Other `Disconnected` reasons (endpoint removed while Discord moves the call, adapter
 *   unavailable while the gateway shard reconnects): the guide's pattern — wait up to 5 s for
 *   Signalling/Connecting (the library or Discord recovering by itself), else rejoin.
 * - `rejoin(reason)` is also what the uplink calls when the receiver went deaf.
 *
 * DAVE containment: in 0.19.2 a DAVE MLS proposal naming a user the client was never told about
 * (op 27 before op 11) makes davey throw `UnexpectedUser` inside `Networking.onWsBinary`, which
 * runs in the `ws` message handler: the exception escapes as an uncaught exception and kills the
 * process (docs/discord-simulator.md "DAVE gotchas"). No public hook catches it, so each
 * Networking instance is guarded as soon as it exists: its bound `onWsBinary` listener is wrapped
 * in a try/catch that reports the error on the connection instead. This is per connection and
 * touches nothing process-wide. (The library reads `this.onWsBinary` when it attaches a new
 * WebSocket and when it detaches an old one, so replacing the instance property keeps its own
 * bookkeeping consistent.)
 */
import { EventEmitter } from 'node:events';
import {
  entersState,
  generateDependencyReport,
  joinVoiceChannel,
  VoiceConnectionDisconnectReason,
  VoiceConnectionStatus,
  type DiscordGatewayAdapterCreator,
  type VoiceConnection,
  type VoiceConnectionState,
} from '@discordjs/voice';
import { errorInfo, type Logger } from '../log.js';

/**
 * Consecutive DAVE decrypt failures tolerated before the library re-initialises the MLS session
 * (library default 36; its .d.ts says 24). 24 ≈ half a second of one speaker's 20 ms frames:
 * failures while a transition is pending are not counted at all, so what reaches this count is a
 * group that really fell out of step, and recovering after 0.5 s instead of 0.7 s loses less of
 * the utterance; it is still far above the odd packet that fails around a key change.
 */
export const DECRYPTION_FAILURE_TOLERANCE = 24;

let dependencyReportLogged = false;

/** Logs @discordjs/voice's dependency report once per process (Opus, crypto, DAVE libraries). */
export function logDependencyReportOnce(log: Logger): void {
  if (dependencyReportLogged) return;
  dependencyReportLogged = true;
  try {
    log.info({ report: generateDependencyReport() }, 'voice: @discordjs/voice dependency report');
  } catch (err) {
    log.warn({ err: errorInfo(err) }, 'voice: dependency report failed');
  }
}

export interface VoiceLinkOptions {
  guildId: string;
  channelId: string;
  adapterCreator: DiscordGatewayAdapterCreator;
  log: Logger;
  /** Wait for Ready when joining and after a disconnect (default 20 s; DAVE adds a handshake). */
  readyTimeoutMs?: number;
  /** Rejoins from scratch in a row before giving up (default 4). */
  maxRejoins?: number;
  /** First back-off delay between rejoins (default 1 s, doubling, max 15 s). */
  rejoinDelayMs?: number;
  /** Forward @discordjs/voice debug lines (incl. `[DAVE]`) to the log at debug level. */
  debug?: boolean;
  /**
   * When the bot's current main-gateway session began (epoch ms of the last READY). Discord closes
   * voice with 4014 for a kick, and also when the gateway session was dropped; a new READY around
   * the close tells the second case apart, which is rejoined instead of ended.
   */
  gatewaySessionStartedAt?(): number | undefined;
  /**
   * Cancels the join: the connection is destroyed at once and `open()` rejects with the signal's
   * reason (a stop while Discord is still setting up voice must not leave the bot in the channel).
   */
  signal?: AbortSignal;
}

/** How long after a 4014 a new gateway READY may still arrive to show a session reset. */
const GATEWAY_RESET_AFTER_MS = 3_000;
const RESET_POLL_MS = 250;

export type VoiceLinkState = 'connecting' | 'ready' | 'recovering' | 'ended';

export type VoiceLinkEndReason = 'kicked' | 'left' | 'unrecoverable' | 'destroyed';

type Events = {
  /** A new VoiceConnection replaced the previous one (after a rejoin): re-bind receiver and player. */
  connection: [connection: VoiceConnection];
  ready: [connection: VoiceConnection];
  /** Voice is over for this guild. */
  ended: [reason: VoiceLinkEndReason, detail: string];
  /** A DAVE protocol error was contained (see module comment). */
  daveError: [error: Error];
};

export interface VoiceLinkStats {
  rejoins: number;
  libraryRejoins: number;
  disconnects: number;
  connectionErrors: number;
  daveErrorsContained: number;
}

const REJOIN_WINDOW_MS = 10 * 60_000;

/** The reason a cancelled join rejects with: the signal's own, so the caller recognises it. */
function cancelledBy(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new Error('the voice join was cancelled');
}

const guarded = new WeakSet<object>();
/** Connections we destroyed ourselves to rejoin: their last state changes are not ours to act on. */
const retired = new WeakSet<VoiceConnection>();

export class VoiceLink extends EventEmitter<Events> {
  private conn: VoiceConnection;
  private _state: VoiceLinkState = 'connecting';
  private readonly log: Logger;
  private readonly readyTimeoutMs: number;
  private readonly maxRejoins: number;
  private readonly rejoinDelayMs: number;
  private watchdog: NodeJS.Timeout | undefined;
  private rejoinTimer: NodeJS.Timeout | undefined;
  private resetWaitTimer: NodeJS.Timeout | undefined;
  /** When the voice connection last became Ready (epoch ms). */
  private readySince = 0;
  private consecutiveRejoins = 0;
  private recentRejoins: number[] = [];
  private rejoinCapLogged = false;
  private lastLibraryRejoins = 0;
  private readonly counters = { rejoins: 0, libraryRejoins: 0, disconnects: 0, connectionErrors: 0, daveErrorsContained: 0 };

  private constructor(private readonly opts: VoiceLinkOptions) {
    super();
    this.log = opts.log;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
    this.maxRejoins = opts.maxRejoins ?? 4;
    this.rejoinDelayMs = opts.rejoinDelayMs ?? 1000;
    this.conn = this.createConnection();
  }

  /** Joins and resolves once the connection is Ready; rejects (and leaves) after the timeout. */
  static async open(opts: VoiceLinkOptions): Promise<VoiceLink> {
    logDependencyReportOnce(opts.log);
    const { signal } = opts;
    if (signal?.aborted) throw cancelledBy(signal);
    const link = new VoiceLink(opts);
    try {
      const until = signal ? AbortSignal.any([signal, AbortSignal.timeout(link.readyTimeoutMs)]) : link.readyTimeoutMs;
      await entersState(link.conn, VoiceConnectionStatus.Ready, until);
    } catch (err) {
      const status = link.conn.state.status;
      link.close();
      if (signal?.aborted) throw cancelledBy(signal);
      throw new Error(`voice connection not ready after ${link.readyTimeoutMs} ms (last state: ${status})`, { cause: err });
    }
    if (signal?.aborted) {
      link.close();
      throw cancelledBy(signal);
    }
    link.setState('ready');
    return link;
  }

  get connection(): VoiceConnection {
    return this.conn;
  }

  get state(): VoiceLinkState {
    return this._state;
  }

  stats(): VoiceLinkStats {
    return { ...this.counters };
  }

  /** Leaves the channel for good (no 'ended' event: the caller knows why). */
  close(): void {
    this.clearTimers();
    this._state = 'ended';
    this.destroyConnection(this.conn);
  }

  /**
   * Rejoins from scratch (new VoiceConnection: new networking, new DAVE session, new receiver),
   * after a back-off; voice ends after `maxRejoins` attempts in a row that never got Ready.
   */
  rejoin(reason: string): void {
    if (this._state === 'ended' || this.rejoinTimer) return;
    // Rejoins that each reach Ready but do not cure the problem (a receiver that keeps going
    // deaf) would loop forever: at most `maxRejoins` per 10 minutes; beyond that we stay as we are.
    const now = Date.now();
    this.recentRejoins = this.recentRejoins.filter((t) => now - t < REJOIN_WINDOW_MS);
    if (this.recentRejoins.length >= this.maxRejoins && this._state === 'ready') {
      if (!this.rejoinCapLogged) this.log.error({ reason }, `voice: ${this.maxRejoins} rejoins in 10 minutes did not help; not rejoining again for now`);
      this.rejoinCapLogged = true;
      return;
    }
    this.rejoinCapLogged = false;
    this.recentRejoins.push(now);
    this.consecutiveRejoins++;
    if (this.consecutiveRejoins > this.maxRejoins) {
      this.end('unrecoverable', `gave up after ${this.maxRejoins} rejoins (${reason})`);
      return;
    }
    const delay = Math.min(15_000, this.rejoinDelayMs * 2 ** (this.consecutiveRejoins - 1));
    this.log.warn({ reason, attempt: this.consecutiveRejoins, delayMs: delay }, 'voice: rejoining the voice channel');
    this.setState('recovering');
    this.rejoinTimer = setTimeout(() => {
      this.rejoinTimer = undefined;
      if (this._state === 'ended') return;
      this.counters.rejoins++;
      this.destroyConnection(this.conn);
      this.conn = this.createConnection();
      this.emit('connection', this.conn);
      this.armWatchdog('rejoin');
    }, delay);
    this.rejoinTimer.unref?.();
  }

  private createConnection(): VoiceConnection {
    const conn = joinVoiceChannel({
      guildId: this.opts.guildId,
      channelId: this.opts.channelId,
      adapterCreator: this.opts.adapterCreator,
      // We listen: join undeafened (the documented receive path; users also see the bot listens).
      selfDeaf: false,
      selfMute: false,
      // DAVE (E2EE) on: Discord has refused non-E2EE voice since March 2026 (close code 4017).
      daveEncryption: true,
      decryptionFailureTolerance: DECRYPTION_FAILURE_TOLERANCE,
      debug: this.opts.debug ?? false,
    });
    this.lastLibraryRejoins = conn.rejoinAttempts;
    conn.on('stateChange', (oldState, newState) => this.onStateChange(conn, oldState, newState));
    conn.on('error', (err) => {
      this.counters.connectionErrors++;
      this.log.warn({ err: errorInfo(err) }, 'voice: connection error');
    });
    if (this.opts.debug) conn.on('debug', (m) => this.log.debug({ voice: m }, 'voice: debug'));
    // A networking instance may already exist if the adapter answered synchronously.
    this.guardNetworking(conn.state);
    return conn;
  }

  private onStateChange(conn: VoiceConnection, oldState: VoiceConnectionState, newState: VoiceConnectionState): void {
    this.guardNetworking(newState);
    if (retired.has(conn) || conn !== this.conn || this._state === 'ended') return;
    if (oldState.status === newState.status) return;
    this.log.debug({ from: oldState.status, to: newState.status }, 'voice: connection state');
    switch (newState.status) {
      case VoiceConnectionStatus.Ready:
        this.readySince = Date.now();
        this.clearWatchdog();
        this.consecutiveRejoins = 0;
        this.lastLibraryRejoins = 0;
        this.setState('ready');
        this.emit('ready', conn);
        break;
      case VoiceConnectionStatus.Signalling:
      case VoiceConnectionStatus.Connecting:
        if (conn.rejoinAttempts > this.lastLibraryRejoins) {
          this.counters.libraryRejoins += conn.rejoinAttempts - this.lastLibraryRejoins;
          this.lastLibraryRejoins = conn.rejoinAttempts;
        }
        if (conn.rejoinAttempts > this.maxRejoins) {
          this.rejoin(`the library re-signalled ${conn.rejoinAttempts} times without getting ready`);
          break;
        }
        if (this._state === 'ready') this.setState('recovering');
        this.armWatchdog(newState.status);
        break;
      case VoiceConnectionStatus.Disconnected:
        this.counters.disconnects++;
        this.onDisconnected(conn, newState);
        break;
      case VoiceConnectionStatus.Destroyed:
        // Destroyed by someone else (adapter destroy when the bot left the guild, a shutdown).
        this.end('destroyed', 'the voice connection was destroyed');
        break;
    }
  }

  private onDisconnected(conn: VoiceConnection, state: VoiceConnectionState & { status: VoiceConnectionStatus.Disconnected }): void {
    if (state.reason === VoiceConnectionDisconnectReason.WebSocketClose && state.closeCode === 4014) {
      this.on4014();
      return;
    }
    if (state.reason === VoiceConnectionDisconnectReason.Manual) {
      this.end('left', 'disconnected on request');
      return;
    }
    this.setState('recovering');
    // The guide's pattern: give the library/Discord 5 s to start recovering by themselves.
    void Promise.race([
      entersState(conn, VoiceConnectionStatus.Signalling, 5_000),
      entersState(conn, VoiceConnectionStatus.Connecting, 5_000),
    ]).then(
      () => undefined,
      () => {
        if (conn === this.conn && this._state !== 'ended') this.rejoin(`disconnected (reason ${VoiceConnectionDisconnectReason[state.reason]})`);
      },
    );
  }

  /**
   * 4014 means "kicked, moved away, channel deleted, or the main gateway session was dropped"
   * (Discord's close-code table). The last one is no reason to leave: when the gateway started a new
   * session (READY) after this voice connection was set up, the voice session belonged to the old
   * gateway session: rejoin. Otherwise voice is over. The READY may come after the close (the gateway
   * identifies while voice is being torn down), so wait a little for it.
   */
  private on4014(): void {
    this.setState('recovering');
    const voiceSince = this.readySince;
    const sessionReset = () => {
      const readyAt = this.opts.gatewaySessionStartedAt?.();
      return readyAt !== undefined && readyAt > voiceSince;
    };
    const decide = (waitedMs: number): void => {
      this.resetWaitTimer = undefined;
      if (this._state === 'ended') return;
      if (sessionReset()) {
        this.rejoin('Discord dropped the voice session together with the gateway session (4014 after a new READY)');
      } else if (waitedMs < GATEWAY_RESET_AFTER_MS && this.opts.gatewaySessionStartedAt) {
        this.resetWaitTimer = setTimeout(() => decide(waitedMs + RESET_POLL_MS), RESET_POLL_MS);
        this.resetWaitTimer.unref?.();
      } else {
        this.end('kicked', 'Discord closed the voice connection with 4014 (kicked, moved away or channel deleted)');
      }
    };
    decide(0);
  }

  private armWatchdog(why: string): void {
    if (this.watchdog) return;
    this.watchdog = setTimeout(() => {
      this.watchdog = undefined;
      if (this._state === 'ended' || this.conn.state.status === VoiceConnectionStatus.Ready) return;
      this.rejoin(`not ready ${this.readyTimeoutMs} ms after ${why}`);
    }, this.readyTimeoutMs);
    this.watchdog.unref?.();
  }

  private clearWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }

  private clearTimers(): void {
    this.clearWatchdog();
    if (this.resetWaitTimer) clearTimeout(this.resetWaitTimer);
    this.resetWaitTimer = undefined;
    if (this.rejoinTimer) clearTimeout(this.rejoinTimer);
    this.rejoinTimer = undefined;
  }

  private end(reason: VoiceLinkEndReason, detail: string): void {
    if (this._state === 'ended') return;
    this.clearTimers();
    this._state = 'ended';
    this.log.info({ reason, detail }, 'voice: voice connection ended');
    this.destroyConnection(this.conn);
    this.emit('ended', reason, detail);
  }

  private setState(s: VoiceLinkState): void {
    this._state = s;
  }

  private destroyConnection(conn: VoiceConnection): void {
    retired.add(conn);
    if (conn.state.status === VoiceConnectionStatus.Destroyed) return;
    try {
      conn.destroy();
    } catch (err) {
      this.log.debug({ err: errorInfo(err) }, 'voice: destroying the connection failed');
    }
  }

  /** Wraps the networking's binary-message handler so a DAVE exception cannot escape (see module comment). */
  private guardNetworking(state: VoiceConnectionState): void {
    const networking = (state as { networking?: object }).networking as GuardableNetworking | undefined;
    if (!networking || guarded.has(networking)) return;
    const original = networking.onWsBinary;
    if (typeof original !== 'function') {
      this.log.warn('voice: cannot guard DAVE message handling (library internals changed); a malformed DAVE message could crash the process');
      guarded.add(networking);
      return;
    }
    guarded.add(networking);
    const safe = (message: { op: number }): void => {
      try {
        original.call(networking, message);
      } catch (err) {
        this.counters.daveErrorsContained++;
        const error = err instanceof Error ? err : new Error(String(err));
        this.log.warn({ op: message?.op, err: errorInfo(error) }, 'voice: DAVE message could not be processed; ignored (the session recovers on the next transition)');
        this.emit('daveError', error);
      }
    };
    const ws = (networking.state as { ws?: EventEmitter }).ws;
    if (ws) {
      ws.off('binary', original);
      ws.on('binary', safe);
    }
    networking.onWsBinary = safe;
  }
}

interface GuardableNetworking {
  onWsBinary: (message: { op: number }) => void;
  state: unknown;
}
