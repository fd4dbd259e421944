/**
 * One SignalR hub connection over a WebSocket: handshake, record parsing, keep-alive pings, a
 * dead-client timeout, completions and close. It knows nothing about Voxta messages: each
 * `SendMessage` argument is handed to the owner through the `invocation` event.
 */
import { EventEmitter } from 'node:events';
import type { WebSocket, RawData } from 'ws';
import type { Logger } from '../../src/log.js';
import {
  HANDSHAKE_OK,
  HubMessageType,
  HubProtocolError,
  RecordReader,
  encodeRecord,
  handshakeError,
  isInvocation,
  parseHandshake,
  parseRecord,
} from './signalr.js';

export interface HubConnectionOptions {
  pingIntervalMs: number;
  /** The socket is considered dead after this long without any record from the client. */
  clientTimeoutMs: number;
}

export interface HubConnectionEvents {
  /** A `SendMessage` invocation: its first argument and, for `invoke`, the invocation id. */
  invocation: [argument: unknown, invocationId: string | undefined];
  /** The socket is gone (close frame, drop or timeout). Emitted once. */
  closed: [code: number];
}

/** Close codes used when the server ends a connection itself. */
export const CloseCode = {
  Normal: 1000,
  ProtocolError: 1002,
  PolicyViolation: 1008,
  /** Used in records for sockets terminated without a close frame. */
  Abnormal: 1006,
} as const;

/** A record still missing its separator after this many characters is refused. */
const MAX_PENDING_CHARS = 1024 * 1024;

export class SimHubConnection extends EventEmitter<HubConnectionEvents> {
  private readonly reader = new RecordReader();
  private handshakeDone = false;
  private pingTimer: NodeJS.Timeout | undefined;
  private lastHeard = Date.now();
  private closedEmitted = false;
  /** A close frame was sent by {@link halfClose} and the TCP connection is being held. */
  halfClosed = false;

  constructor(
    readonly id: string,
    private readonly socket: WebSocket,
    private readonly options: HubConnectionOptions,
    private readonly log: Logger,
  ) {
    super();
    socket.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    socket.on('close', (code) => this.onClosed(code));
    socket.on('error', (err) => this.log.debug({ connectionId: id, err: err.message }, 'hub socket error'));
  }

  get open(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  /** Sends `ReceiveMessage(payload)`. Returns false when the socket is no longer open. */
  sendEvent(payload: unknown): boolean {
    return this.sendRecord({ type: HubMessageType.Invocation, target: 'ReceiveMessage', arguments: [payload] });
  }

  /** Sends any record as is (used by fault injection for malformed traffic). */
  sendRecord(record: object): boolean {
    if (!this.open) return false;
    this.socket.send(encodeRecord(record));
    return true;
  }

  /** Answers an `invoke`; `error` makes the client's promise reject with it. */
  complete(invocationId: string, error?: string): void {
    this.sendRecord(
      error === undefined
        ? { type: HubMessageType.Completion, invocationId, result: null }
        : { type: HubMessageType.Completion, invocationId, error },
    );
  }

  /** A graceful SignalR close (type 7) followed by a WebSocket close frame. */
  closeWithMessage(opts: { error?: string; allowReconnect?: boolean } = {}): void {
    const record: Record<string, unknown> = { type: HubMessageType.Close };
    if (opts.error !== undefined) record.error = opts.error;
    if (opts.allowReconnect) record.allowReconnect = true;
    this.sendRecord(record);
    this.socket.close(CloseCode.Normal);
  }

  /**
   * Sends a WebSocket close frame but keeps the TCP connection open and stops reading it, like a
   * proxy or a restarting Voxta that never finishes the closing handshake. The client's socket
   * stays CLOSING (the `ws` library waits up to 30 s before giving up), so SignalR still says
   * `Connected` while every write fails.
   */
  halfClose(): void {
    this.halfClosed = true;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    const raw = (this.socket as unknown as { _socket?: import('node:net').Socket })._socket;
    if (!raw) return;
    // Stop the ws library from answering the client's close frame (which would close TCP).
    raw.removeAllListeners('data');
    raw.pause();
    // FIN + opcode 8 (close), unmasked (server → client), 2-byte payload: 1001 "going away".
    raw.write(Buffer.from([0x88, 0x02, 0x03, 0xe9]));
  }

  /** Kills the TCP connection without any close frame, like a crashed server or a cut cable. */
  terminate(): void {
    this.socket.terminate();
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    this.lastHeard = Date.now();
    if (isBinary) {
      this.fail('Binary frames are not supported: only the JSON hub protocol is', CloseCode.ProtocolError);
      return;
    }
    const records = this.reader.push(rawToString(data));
    if (this.reader.buffered > MAX_PENDING_CHARS) {
      this.log.warn({ connectionId: this.id, buffered: this.reader.buffered }, 'record separator missing, closing');
      this.fail('Message too large or missing its record separator', CloseCode.PolicyViolation);
      return;
    }
    for (const text of records) {
      if (!this.handshakeDone) {
        this.onHandshake(text);
        continue;
      }
      this.onRecord(text);
    }
  }

  private onHandshake(text: string): void {
    try {
      const hs = parseHandshake(text);
      if (hs.protocol !== 'json' || hs.version !== 1) {
        this.socket.send(handshakeError(`The protocol '${hs.protocol}' version ${hs.version} is not supported.`));
        this.socket.close(CloseCode.ProtocolError);
        return;
      }
    } catch (err) {
      this.fail((err as Error).message, CloseCode.ProtocolError);
      return;
    }
    this.handshakeDone = true;
    this.socket.send(HANDSHAKE_OK);
    this.startKeepAlive();
  }

  private onRecord(text: string): void {
    let record;
    try {
      record = parseRecord(text);
    } catch (err) {
      // A real ASP.NET server closes the connection on an unparsable record; do the same, loudly.
      this.log.warn({ connectionId: this.id, err: (err as HubProtocolError).message }, 'bad hub record, closing');
      this.fail((err as Error).message, CloseCode.ProtocolError);
      return;
    }
    if (isInvocation(record)) {
      if (record.target !== 'SendMessage') {
        this.log.warn({ connectionId: this.id, target: record.target }, 'unknown hub method');
        if (record.invocationId !== undefined) {
          this.complete(record.invocationId, `Unknown hub method '${record.target}'`);
        }
        return;
      }
      this.emit('invocation', record.arguments[0], record.invocationId);
      return;
    }
    switch (record.type) {
      case HubMessageType.Ping:
      case HubMessageType.Completion:
        return;
      case HubMessageType.Close:
        this.socket.close(CloseCode.Normal);
        return;
      default:
        this.log.debug({ connectionId: this.id, type: record.type }, 'ignored hub record type');
    }
  }

  private startKeepAlive(): void {
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > this.options.clientTimeoutMs) {
        this.log.info({ connectionId: this.id }, 'hub client timed out, dropping the connection');
        this.terminate();
        return;
      }
      this.sendRecord({ type: HubMessageType.Ping });
    }, Math.min(this.options.pingIntervalMs, this.options.clientTimeoutMs));
    this.pingTimer.unref();
  }

  private fail(message: string, code: number): void {
    this.sendRecord({ type: HubMessageType.Close, error: message });
    this.socket.close(code, message.slice(0, 120));
  }

  private onClosed(code: number): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.closedEmitted) return;
    this.closedEmitted = true;
    this.emit('closed', code);
  }
}

export function rawToString(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

export function rawToBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
