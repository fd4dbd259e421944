/**
 * The voice gateway's transport: an HTTPS server with a WebSocket endpoint, speaking Discord's
 * voice gateway v8 framing.
 *
 * - Text frames are JSON `{ op, d, seq? }`.
 * - Binary frames (DAVE MLS opcodes) are `[seq u16 BE][op u8][payload]` server→client and
 *   `[op u8][payload]` client→server.
 *
 * This module knows framing only; the protocol (identify, resume, DAVE...) lives in bot-session.ts.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

export type ClientFrame =
  | { kind: 'json'; op: number; d: unknown; raw: string }
  | { kind: 'binary'; op: number; payload: Buffer };

export interface GatewayConnectionEvents {
  frame: [ClientFrame];
  malformed: [{ reason: string; raw: string }];
  close: [{ code: number; reason: string }];
}

let nextConnectionId = 1;

/** One client websocket. Emits `frame`, `malformed` and `close` (once). */
export class GatewayConnection extends EventEmitter<GatewayConnectionEvents> {
  readonly id = nextConnectionId++;
  private closed = false;

  constructor(private readonly ws: WebSocket, readonly remoteAddress: string | undefined) {
    super();
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('close', (code, reason) => {
      this.closed = true;
      this.emit('close', { code, reason: reason.toString('utf8') });
    });
    // A socket error is followed by 'close'; without a listener ws would throw.
    ws.on('error', () => {});
  }

  get isOpen(): boolean {
    return !this.closed && this.ws.readyState === this.ws.OPEN;
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (isBinary) {
      if (buf.length < 1) {
        this.emit('malformed', { reason: 'empty binary frame', raw: '' });
        return;
      }
      this.emit('frame', { kind: 'binary', op: buf[0]!, payload: buf.subarray(1) });
      return;
    }
    const raw = buf.toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      this.emit('malformed', { reason: 'invalid JSON', raw: raw.slice(0, 200) });
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { op?: unknown }).op !== 'number') {
      this.emit('malformed', { reason: 'JSON frame without a numeric op', raw: raw.slice(0, 200) });
      return;
    }
    const { op, d } = parsed as { op: number; d?: unknown };
    this.emit('frame', { kind: 'json', op, d, raw });
  }

  sendJson(message: { op: number; d: unknown; seq?: number }): void {
    if (this.isOpen) this.ws.send(JSON.stringify(message));
  }

  sendBinary(seq: number, op: number, payload: Buffer): void {
    if (!this.isOpen) return;
    const header = Buffer.alloc(3);
    header.writeUInt16BE(seq & 0xffff, 0);
    header[2] = op;
    this.ws.send(Buffer.concat([header, payload]));
  }

  close(code: number, reason = ''): void {
    if (this.closed) return;
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
  }

  terminate(): void {
    this.ws.terminate();
  }
}

export interface VoiceGatewayServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts `https` + `ws` on host:0. Every new websocket is handed to `onConnection`. */
export async function startVoiceGateway(opts: {
  host: string;
  keyPem: string;
  certPem: string;
  onConnection: (conn: GatewayConnection) => void;
}): Promise<VoiceGatewayServer> {
  const server: Server = createServer({ key: opts.keyPem, cert: opts.certPem });
  const wss = new WebSocketServer({ server });
  const sockets = new Set<WebSocket>();
  wss.on('connection', (ws, req) => {
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    opts.onConnection(new GatewayConnection(ws, req.socket.remoteAddress));
  });
  // TLS handshake failures (e.g. a client that does not trust our CA) must not crash the sim.
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    async close() {
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
