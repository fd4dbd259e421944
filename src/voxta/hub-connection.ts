/**
 * The SignalR side of a session: ONE hub connection at a time, numbered by generation.
 *
 * Every new connection (and every drop) starts a new generation; callbacks of an older connection
 * (its late messages, its close) are ignored, and a write for an older generation is refused. This
 * is what lets the session recycle connections without a dead one interfering.
 *
 * No automatic reconnect here: a new SignalR connection is a new Voxta user connection whose chat
 * is gone, so reconnecting is the session's business (see chat-session.ts).
 */
import { HttpTransportType, HubConnectionBuilder, HubConnectionState, LogLevel, type HubConnection, type ILogger } from '@microsoft/signalr';
import { errorInfo, type Logger } from '../log.js';
import type { VoxtaEndpoint } from './endpoint.js';
import { asUnreachable, describeChain, VoxtaAuthError, VoxtaDisconnectedError, VoxtaError, VoxtaServerError, VoxtaTimeoutError, VoxtaUrlError } from './errors.js';
import type { ClientMessage } from './messages.js';

export interface HubLinkOptions {
  endpoint: VoxtaEndpoint;
  /** SignalR negotiate + WebSocket open. */
  connectTimeoutMs: number;
  /** SignalR: drop the connection after this long without hearing from the server (default 30 s). */
  serverTimeoutMs?: number;
  /** SignalR ping period (default 15 s). */
  keepAliveMs?: number;
  /** Skip the negotiate request (default false). */
  skipNegotiation?: boolean;
  log: Logger;
}

export interface HubLinkHandlers {
  /** A raw `ReceiveMessage` payload of the current connection. */
  message(raw: unknown): void;
  /** The current connection closed without `drop()` (server gone, timeout, recycle). */
  closed(gen: number, err: Error | undefined): void;
}

export class HubLink {
  #conn: HubConnection | undefined;
  #gen = 0;
  readonly #opts: HubLinkOptions;
  readonly #handlers: HubLinkHandlers;

  constructor(opts: HubLinkOptions, handlers: HubLinkHandlers) {
    this.#opts = opts;
    this.#handlers = handlers;
  }

  /** Generation of the current connection (or of the last drop). */
  get generation(): number {
    return this.#gen;
  }

  get connected(): boolean {
    return this.#conn?.state === HubConnectionState.Connected;
  }

  /**
   * Drops the current connection and opens a new one; resolves with its generation. Rejects with a
   * typed {@link VoxtaError} (auth, wrong URL, unreachable…) or {@link VoxtaDisconnectedError} when
   * dropped while opening.
   */
  async open(): Promise<number> {
    await this.drop();
    const gen = ++this.#gen;
    const conn = this.#build();
    this.#conn = conn;
    conn.on('ReceiveMessage', (raw: unknown) => {
      if (gen === this.#gen) this.#handlers.message(raw);
    });
    conn.onclose((err) => {
      if (gen !== this.#gen) return;
      this.#conn = undefined;
      this.#handlers.closed(gen, err);
    });
    const connectMs = this.#opts.connectTimeoutMs;
    try {
      await withTimeout(conn.start(), connectMs, () => new VoxtaTimeoutError('the connection', connectMs));
    } catch (err) {
      if (gen === this.#gen) this.#conn = undefined;
      conn.stop().catch(() => undefined);
      throw await connectErrorOf(err, this.#opts.endpoint, this.#opts.log);
    }
    if (gen !== this.#gen) {
      // Closed or superseded while the socket was opening: do not leak it.
      conn.stop().catch(() => undefined);
      throw new VoxtaDisconnectedError();
    }
    return gen;
  }

  /** Writes on the connection of generation `gen`; rejects with a typed error when it is gone. */
  async write(message: ClientMessage, gen: number): Promise<void> {
    const conn = this.#conn;
    if (!conn || gen !== this.#gen || conn.state !== HubConnectionState.Connected) throw new VoxtaDisconnectedError();
    try {
      await conn.send('SendMessage', message);
    } catch (err) {
      this.#opts.log.debug({ type: message.$type, err: errorInfo(err) }, 'write failed');
      throw new VoxtaDisconnectedError();
    }
  }

  /** Closes the current connection and starts a new generation: its close is not reported. */
  async drop(): Promise<void> {
    const conn = this.#conn;
    this.#conn = undefined;
    this.#gen++;
    if (conn) await conn.stop().catch(() => undefined);
  }

  /** Closes the current connection like a drop by the server would: `closed` is reported. */
  recycle(): void {
    this.#conn?.stop().catch(() => undefined);
  }

  #build(): HubConnection {
    const ep = this.#opts.endpoint;
    const apiKey = ep.apiKey;
    const conn = new HubConnectionBuilder()
      .withUrl(ep.hubUrl, {
        transport: HttpTransportType.WebSockets,
        skipNegotiation: this.#opts.skipNegotiation ?? false,
        accessTokenFactory: apiKey ? () => apiKey : undefined,
        headers: ep.usesBasicAuth ? ep.authHeaders() : undefined,
        timeout: this.#opts.connectTimeoutMs,
        logger: signalrLogger(this.#opts.log),
      })
      .configureLogging(signalrLogger(this.#opts.log))
      .build();
    conn.serverTimeoutInMilliseconds = this.#opts.serverTimeoutMs ?? 30_000;
    conn.keepAliveIntervalInMilliseconds = this.#opts.keepAliveMs ?? 15_000;
    return conn;
  }
}

/** SignalR's own log lines go to our logger at debug/trace (scrubbed by log.ts), never to the console. */
function signalrLogger(parent: Logger): ILogger {
  const log = parent.child({ lib: 'signalr' });
  return {
    log(level: LogLevel, message: string) {
      if (level >= LogLevel.Warning) log.debug(message);
      else log.trace(message);
    },
  };
}

/** The typed error of a failed connection start, with advice the user can act on. */
async function connectErrorOf(err: unknown, endpoint: VoxtaEndpoint, log: Logger): Promise<VoxtaError> {
  if (err instanceof VoxtaError) return err;
  const text = describeChain(err);
  const status = /Status code '(\d{3})'|status code (\d{3})|returned from negotiate '(\d{3})'|Unexpected server response: (\d{3})/i.exec(text);
  const code = status ? Number(status[1] ?? status[2] ?? status[3] ?? status[4]) : undefined;
  if (code === 401 || code === 403) return new VoxtaAuthError(undefined, code);
  if (code === 404) return new VoxtaUrlError(`No Voxta hub at ${endpoint.display}/hub (HTTP 404): is VOXTA_URL the Voxta server?`);
  if (code !== undefined) return new VoxtaServerError(`the hub connection was refused with HTTP ${code}`);
  // SignalR flattens network errors into text ("fetch failed") and loses the cause (refused?
  // DNS?); one plain probe of the base URL recovers it so the user gets the right advice.
  if (/fetch failed|Failed to complete negotiation|WebSocket failed to connect|ECONN|ENOTFOUND|EAI_AGAIN/i.test(text)) {
    const probed = await probe(endpoint);
    if (probed) return probed;
  }
  const unreachable = asUnreachable(err, endpoint.display);
  if (unreachable) return unreachable;
  log.debug({ err: text }, 'hub connection failed');
  return new VoxtaError(`Could not connect to Voxta at ${endpoint.display}`, { cause: err });
}

/** The network error of a plain GET of the base URL, if there is one. */
async function probe(endpoint: VoxtaEndpoint): Promise<VoxtaError | undefined> {
  try {
    const res = await fetch(endpoint.baseUrl, { method: 'GET', headers: endpoint.authHeaders(), signal: AbortSignal.timeout(3000) });
    res.body?.cancel().catch(() => undefined);
    if (res.status === 401 || res.status === 403) return new VoxtaAuthError(undefined, res.status);
    return undefined;
  } catch (err) {
    return asUnreachable(err, endpoint.display);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(onTimeout()), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
