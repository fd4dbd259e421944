/**
 * The microphone socket `/ws/audio/input/stream?sessionId=` (protocol §4a): a JSON specification
 * header, then raw 16 kHz mono s16le PCM in binary frames, plus `keepalive` and `silence` text
 * frames. Everything is recorded per session and fed to the session's recogniser. The server
 * never sends anything on this socket.
 */
import { performance } from 'node:perf_hooks';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SimContext } from './context.js';
import { rawToBuffer, CloseCode } from './hub-connection.js';
import { isObject } from './signalr.js';

export const STANDARD_FRAME_BYTES = 960;
const CONCURRENCY_WINDOW_MS = 100;

export interface AudioRecord {
  sessionId: string;
  header: Record<string, unknown> | null;
  frames: Buffer[];
  /** performance.now() at arrival of each frame in `frames`. */
  frameTimes: number[];
  frameCount: number;
  byteCount: number;
  nonStandardFrames: number;
  /**
   * Frames that arrived while another session was streaming too (a frame from it within the last
   * 100 ms). Voxta's audio pipeline is process-wide, so two voice sessions would cross-feed (§4a).
   */
  concurrentFrames: number;
  silenceMarkers: number[];
  keepalives: number;
  sockets: number;
  open: boolean;
  closes: { code: number; reason: string; at: number }[];
}

export class AudioSockets {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  private readonly records = new Map<string, AudioRecord>();
  private readonly sockets = new Set<WebSocket>();
  private readonly openBySession = new Map<string, number>();
  private readonly lastFrameAt = new Map<string, number>();

  constructor(private readonly ctx: SimContext) {}

  record(sessionId: string): AudioRecord | undefined {
    return this.records.get(sessionId);
  }

  /** Accepts an already authenticated upgrade for `userKey`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, sessionId: string | null, userKey: string): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, sessionId, userKey));
  }

  dropAll(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  private onConnection(ws: WebSocket, sessionId: string | null, userKey: string): void {
    const log = this.ctx.log.child({ audioSession: sessionId });
    const session = sessionId ? this.ctx.registry.get(sessionId) : undefined;
    if (!sessionId || !session || session.state === 'disposing') {
      log.info('audio socket for an unknown session, closing');
      ws.close(CloseCode.PolicyViolation, sessionId ? 'Unknown sessionId' : 'Missing sessionId');
      return;
    }
    if (session.userKey !== userKey) {
      log.warn('audio socket authenticated as another user than the session owner, closing');
      ws.close(CloseCode.PolicyViolation, 'Session belongs to another user');
      return;
    }
    const rec = this.recordFor(sessionId);
    rec.sockets++;
    rec.open = true;
    this.openBySession.set(sessionId, (this.openBySession.get(sessionId) ?? 0) + 1);
    this.sockets.add(ws);
    let headerSeen = false;

    ws.on('message', (data, isBinary) => {
      const live = this.ctx.registry.get(sessionId);
      if (!headerSeen) {
        if (isBinary) {
          ws.close(CloseCode.PolicyViolation, 'Expected the specification header first');
          return;
        }
        const problem = this.acceptHeader(rec, rawToBuffer(data).toString('utf8'));
        if (problem) {
          log.warn({ problem }, 'bad audio specification header');
          ws.close(CloseCode.PolicyViolation, problem);
          return;
        }
        headerSeen = true;
        return;
      }
      if (isBinary) {
        const bytes = rawToBuffer(data);
        this.recordFrame(rec, bytes);
        live?.feedAudio(bytes);
        this.ctx.recorder.emit('audioFrame', { sessionId, bytes: bytes.length });
        return;
      }
      this.onControlFrame(rec, rawToBuffer(data).toString('utf8'), (ms) => live?.feedSilence(ms), log);
    });
    ws.on('close', (code, reason) => {
      this.sockets.delete(ws);
      const stillOpen = (this.openBySession.get(sessionId) ?? 1) - 1;
      this.openBySession.set(sessionId, stillOpen);
      rec.open = stillOpen > 0;
      rec.closes.push({ code, reason: reason.toString('utf8'), at: Date.now() });
      this.ctx.recorder.emit('changed');
    });
    ws.on('error', (err) => log.debug({ err: err.message }, 'audio socket error'));
  }

  /** Validates the spec header; returns a close reason when it is not 16000 Hz / 1 ch / 16 bit. */
  private acceptHeader(rec: AudioRecord, text: string): string | undefined {
    let spec: unknown;
    try {
      spec = JSON.parse(text);
    } catch {
      return 'Specification header is not JSON';
    }
    if (!isObject(spec)) return 'Specification header must be a JSON object';
    rec.header = spec;
    this.ctx.recorder.emit('changed');
    const { sampleRate, channels, bitsPerSample } = spec;
    if (sampleRate !== 16000 || channels !== 1 || bitsPerSample !== 16) {
      return `Unsupported audio format ${String(sampleRate)} Hz/${String(channels)} ch/${String(bitsPerSample)} bit; expected 16000/1/16`;
    }
    return undefined;
  }

  private onControlFrame(rec: AudioRecord, text: string, silence: (ms: number) => void, log: SimContext['log']): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      log.warn({ text: text.slice(0, 80) }, 'audio socket: text frame is not JSON, ignored');
      return;
    }
    if (isObject(msg) && msg.type === 'keepalive') {
      rec.keepalives++;
    } else if (isObject(msg) && msg.type === 'silence' && typeof msg.milliseconds === 'number' && msg.milliseconds >= 0) {
      rec.silenceMarkers.push(msg.milliseconds);
      silence(msg.milliseconds);
    } else {
      log.warn({ text: text.slice(0, 80) }, 'audio socket: unknown control frame, ignored');
      return;
    }
    this.ctx.recorder.emit('changed');
  }

  private recordFrame(rec: AudioRecord, bytes: Buffer): void {
    rec.frameCount++;
    rec.byteCount += bytes.length;
    if (bytes.length !== STANDARD_FRAME_BYTES) rec.nonStandardFrames++;
    const now = performance.now();
    for (const [other, at] of this.lastFrameAt) {
      if (other !== rec.sessionId && now - at < CONCURRENCY_WINDOW_MS) {
        rec.concurrentFrames++;
        break;
      }
    }
    this.lastFrameAt.set(rec.sessionId, now);
    rec.frames.push(Buffer.from(bytes));
    rec.frameTimes.push(now);
    const excess = rec.frames.length - this.ctx.options.maxRecordedFrames;
    if (excess > 0) {
      rec.frames.splice(0, excess);
      rec.frameTimes.splice(0, excess);
    }
  }

  private recordFor(sessionId: string): AudioRecord {
    let rec = this.records.get(sessionId);
    if (!rec) {
      rec = {
        sessionId,
        header: null,
        frames: [],
        frameTimes: [],
        frameCount: 0,
        byteCount: 0,
        nonStandardFrames: 0,
        concurrentFrames: 0,
        silenceMarkers: [],
        keepalives: 0,
        sockets: 0,
        open: false,
        closes: [],
      };
      this.records.set(sessionId, rec);
    }
    return rec;
  }
}
