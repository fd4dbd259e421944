/**
 * The microphone socket of one chat session: `/ws/audio/input/stream?sessionId=` (protocol §4a).
 *
 * Wire format: a text frame with the spec header first, then binary frames of 16 kHz mono s16le.
 * Voxta's pipeline advances its listening windows by `bufferMilliseconds` PER FRAME, so we send
 * EXACTLY one 960-byte (30 ms) frame every 30 ms while recording is requested: speech taken from
 * a bounded buffer that {@link VoxtaAudioInput.write} fills, or zeros when there is none. Discord
 * sends nothing while people are silent; without the zeros Voxta's VAD would never see the end of
 * an utterance. (Newer servers understand `{"type":"silence"}` markers; zero PCM works on all.)
 *
 * Clock: frame k is due at t0 + k·30 ms (performance.now()), so timer lateness never accumulates
 * into drift. A late tick sends the frames that are due, but at most `maxCatchUpFrames` at once;
 * older slots are skipped (counted) rather than burst. Speech does not wait for its slot: a frame
 * is sent as soon as it is complete and takes the next slot (see `#sendEarly`).
 *
 * Jitter buffer: Discord delivers 20 ms packets, we send 30 ms frames, so the buffer oscillates.
 * When speech (re)starts we wait until `prebufferMs` is buffered before consuming it (sending zeros
 * meanwhile), so a frame is rarely padded mid-word; when the writer goes quiet, the remainder is
 * flushed zero-padded.
 *
 * Lifecycle: `enable(sessionId)` on `recordingRequest{enabled:true}` opens (or resumes) the socket;
 * `disable()` stops frames and sends `{"type":"keepalive"}` every 15 s, closing after a long pause;
 * an unexpected drop reopens with back-off (header first again); a new sessionId (after a Voxta
 * reconnect) closes the old socket and opens a new one.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { errorInfo, logger, type Logger } from '../log.js';
import type { VoxtaChatSession } from './chat-session.js';
import type { VoxtaEndpoint } from './endpoint.js';

/**
 * Speech buffered before it is streamed: one 30 ms frame. Benchmarked (`npm run bench`, latency
 * diagnostic) against 40 and 60 ms: a longer pre-buffer doubled the input's p95 latency and saved
 * at most one zero-padded frame per thirty bursts of speech.
 */
const DEFAULT_PREBUFFER_MS = 30;
/** How far (in 30 ms slots) speech sent on arrival may run ahead of the frame clock. */
const MAX_LEAD_SLOTS = 1;

export const SAMPLE_RATE = 16_000;
export const FRAME_MS = 30;
/** 30 ms of 16 kHz mono 16-bit. */
export const FRAME_BYTES = (SAMPLE_RATE * 2 * FRAME_MS) / 1000;
const BYTES_PER_MS = (SAMPLE_RATE * 2) / 1000;

/** The spec header Voxta expects as the first (text) frame; the server's spec is fixed at these values. */
export const AUDIO_SPEC_HEADER = { contentType: 'audio/wav', sampleRate: SAMPLE_RATE, channels: 1, bitsPerSample: 16, bufferMilliseconds: FRAME_MS } as const;

export type AudioInputState = 'idle' | 'connecting' | 'streaming' | 'paused' | 'closed';

export interface VoxtaAudioInputOptions {
  endpoint: VoxtaEndpoint;
  /** Bound of the PCM buffer; the oldest audio is dropped beyond it (default 1000 ms). */
  maxBufferMs?: number;
  /** Audio to gather before consuming speech after silence (default 30 ms). */
  prebufferMs?: number;
  /** No write() for this long = the speaker stopped: flush a partial frame padded (default 90 ms). */
  writerIdleMs?: number;
  /** Most frames sent in one tick when the timer was late (default 3). */
  maxCatchUpFrames?: number;
  /** Keepalive period while paused (default 15 s). */
  keepaliveMs?: number;
  /** Close the socket after being paused this long (default 30 s). */
  closeAfterPauseMs?: number;
  /** Reopen back-off after a drop. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Skip frames while the socket has more than this many bytes unsent (default 64 KiB). */
  maxSocketBufferBytes?: number;
  log?: Logger;
}

export interface AudioInputStats {
  framesSent: number;
  silenceFrames: number;
  speechFrames: number;
  /** Frames' worth of audio dropped because the buffer was full. */
  overflowDrops: number;
  /** Clock slots skipped because the timer was very late. */
  lateSkips: number;
  /** Extra speech frames sent to catch up after skipped slots. */
  catchUpFrames: number;
  /** Frames not sent because the socket was backed up. */
  backpressureSkips: number;
  keepalivesSent: number;
  opens: number;
  /** Opens after an unexpected drop. */
  reopens: number;
  drops: number;
  bufferedMs: number;
}

type Events = {
  state: [state: AudioInputState, previous: AudioInputState];
  open: [sessionId: string];
  drop: [info: { sessionId: string; code?: number; error?: string }];
};

export class VoxtaAudioInput extends EventEmitter<Events> {
  readonly #endpoint: VoxtaEndpoint;
  readonly #log: Logger;
  readonly #o: Required<Omit<VoxtaAudioInputOptions, 'endpoint' | 'log' | 'reconnect'>> & { reconnectInitialMs: number; reconnectMaxMs: number };

  #state: AudioInputState = 'idle';
  #sessionId: string | undefined;
  #enabled = false;
  #ws: WebSocket | undefined;
  #wsSessionId: string | undefined;
  #wsOpen = false;

  // PCM buffer: chunks with a read offset into the first.
  #chunks: Buffer[] = [];
  #headOffset = 0;
  #buffered = 0;
  #primed = false;
  /** Clock slots skipped while speech was streaming, whose audio is still to be caught up. */
  #skippedWithSpeech = 0;
  #lastWriteAt = -Infinity;
  #oddWarned = false;

  // Clock.
  #clock: NodeJS.Timeout | undefined;
  #t0 = 0;
  #slots = 0;

  #keepalive: NodeJS.Timeout | undefined;
  #pauseClose: NodeJS.Timeout | undefined;
  #reopenTimer: NodeJS.Timeout | undefined;
  #reopenDelay: number;
  #pendingReopen = false;

  readonly #stats = {
    framesSent: 0,
    silenceFrames: 0,
    speechFrames: 0,
    overflowDrops: 0,
    lateSkips: 0,
    catchUpFrames: 0,
    backpressureSkips: 0,
    keepalivesSent: 0,
    opens: 0,
    reopens: 0,
    drops: 0,
  };
  #overflowBytes = 0;
  /** Speech bytes taken from the buffer into frames (monotonic; not reset by `disable()`). */
  #speechBytesSent = 0;

  constructor(opts: VoxtaAudioInputOptions) {
    super();
    this.#endpoint = opts.endpoint;
    this.#log = (opts.log ?? logger()).child({ mod: 'voxta-audio-in' });
    this.#o = {
      maxBufferMs: opts.maxBufferMs ?? 1000,
      prebufferMs: opts.prebufferMs ?? DEFAULT_PREBUFFER_MS,
      writerIdleMs: opts.writerIdleMs ?? 90,
      maxCatchUpFrames: Math.max(1, opts.maxCatchUpFrames ?? 3),
      keepaliveMs: opts.keepaliveMs ?? 15_000,
      closeAfterPauseMs: opts.closeAfterPauseMs ?? 30_000,
      maxSocketBufferBytes: opts.maxSocketBufferBytes ?? 64 * 1024,
      reconnectInitialMs: opts.reconnect?.initialDelayMs ?? 500,
      reconnectMaxMs: opts.reconnect?.maxDelayMs ?? 10_000,
    };
    this.#reopenDelay = this.#o.reconnectInitialMs;
  }

  get state(): AudioInputState {
    return this.#state;
  }
  get sessionId(): string | undefined {
    return this.#sessionId;
  }
  /** True while recording is requested (frames flow whenever the socket is open). */
  get enabled(): boolean {
    return this.#enabled;
  }
  get stats(): AudioInputStats {
    return { ...this.#stats, bufferedMs: this.#buffered / BYTES_PER_MS };
  }
  /** Bytes written and not yet sent (cleared, unsent, by `disable()` and a session change). */
  get bufferedBytes(): number {
    return this.#buffered;
  }
  /**
   * Bytes of written audio that went out in frames so far (monotonic). With `bufferedBytes` a
   * writer can tell when something it wrote has really been sent, rather than dropped unsent
   * when recording stopped.
   */
  get speechBytesSent(): number {
    return this.#speechBytesSent;
  }
  /** When the frame clock of the current stream started (performance.now()); undefined when not streaming. */
  get streamingSince(): number | undefined {
    return this.#state === 'streaming' ? this.#t0 : undefined;
  }

  /**
   * Speech to stream: 16 kHz mono signed 16-bit little-endian. Ignored unless recording is
   * requested. Never blocks; the buffer is bounded (oldest audio dropped).
   */
  write(pcm: Buffer | Int16Array): void {
    if (this.#state === 'closed' || !this.#enabled) return;
    let buf = Buffer.isBuffer(pcm) ? Buffer.from(pcm) : Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    if (!Buffer.isBuffer(pcm)) buf = Buffer.from(buf); // copy: the caller may reuse its array
    if (buf.length % 2 !== 0) {
      if (!this.#oddWarned) this.#log.warn('odd-length PCM write: the last byte is dropped (16-bit samples expected)');
      this.#oddWarned = true;
      buf = buf.subarray(0, buf.length - 1);
    }
    if (buf.length === 0) return;
    this.#chunks.push(buf);
    this.#buffered += buf.length;
    this.#lastWriteAt = performance.now();
    this.#sendEarly();
    const max = Math.max(FRAME_BYTES, Math.floor((this.#o.maxBufferMs * BYTES_PER_MS) / 2) * 2);
    if (this.#buffered > max) {
      const excess = this.#buffered - max;
      this.#discard(excess);
      this.#overflowBytes += excess;
      const frames = Math.floor(this.#overflowBytes / FRAME_BYTES);
      if (frames > 0) {
        this.#stats.overflowDrops += frames;
        this.#overflowBytes -= frames * FRAME_BYTES;
      }
    }
  }

  /** `recordingRequest{enabled:true}`: open (or resume) the socket of `sessionId` and stream. */
  enable(sessionId: string): void {
    if (this.#state === 'closed') return;
    this.#enabled = true;
    this.#setSession(sessionId);
    this.#clearPauseTimers();
    if (this.#wsOpen) this.#startStreaming();
    else this.#ensureSocket();
  }

  /** `recordingRequest{enabled:false}`: stop frames, keep the socket alive with keepalives for a while. */
  disable(): void {
    if (this.#state === 'closed') return;
    this.#enabled = false;
    this.#stopClock();
    this.#clearBuffer();
    if (this.#wsOpen) this.#enterPause();
  }

  /**
   * The chat's session changed (new chat, or re-resumed after a reconnect) or is gone (undefined).
   * The old socket is closed; while recording is requested a socket for the new session opens.
   */
  setSession(sessionId: string | undefined): void {
    if (this.#state === 'closed') return;
    this.#setSession(sessionId);
    if (sessionId && this.#enabled && !this.#ws) this.#ensureSocket();
  }

  /** The chat ended: stop streaming and close the socket (a later `enable` reopens). */
  stop(): void {
    if (this.#state === 'closed') return;
    this.#enabled = false;
    this.#setSession(undefined);
  }

  /** Closes for good. */
  close(): void {
    if (this.#state === 'closed') return;
    this.stop();
    this.#setState('closed');
  }

  // ------------------------------------------------------------------------------------------

  #setSession(sessionId: string | undefined): void {
    if (sessionId === this.#sessionId) return;
    this.#sessionId = sessionId;
    this.#cancelReopen();
    this.#reopenDelay = this.#o.reconnectInitialMs;
    if (this.#ws) this.#closeSocket(1000, sessionId ? 'new session' : 'session ended');
    this.#clearBuffer();
    if (!sessionId) this.#setState('idle');
  }

  #ensureSocket(): void {
    if (this.#ws || !this.#sessionId || this.#state === 'closed' || this.#reopenTimer) return;
    const sessionId = this.#sessionId;
    const url = this.#endpoint.audioInputUrl(sessionId);
    this.#setState('connecting');
    const ws = new WebSocket(url, { headers: this.#endpoint.authHeaders(), handshakeTimeout: 10_000 });
    this.#ws = ws;
    this.#wsSessionId = sessionId;
    this.#wsOpen = false;
    const reopening = this.#pendingReopen;
    this.#pendingReopen = false;

    ws.on('open', () => {
      if (this.#ws !== ws) return;
      this.#wsOpen = true;
      this.#stats.opens++;
      if (reopening) this.#stats.reopens++;
      this.#reopenDelay = this.#o.reconnectInitialMs;
      // The spec header must be the very first frame on every socket.
      ws.send(JSON.stringify(AUDIO_SPEC_HEADER));
      this.#log.debug({ sessionId, reopening }, 'audio input socket open');
      this.emit('open', sessionId);
      if (this.#enabled) this.#startStreaming();
      else this.#enterPause();
    });
    ws.on('unexpected-response', (_req, res) => {
      // 401/404…: surface a plain reason, then treat it as a drop (the close handler reopens).
      this.#log.warn({ sessionId, status: res.statusCode }, 'Voxta refused the audio input socket');
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err) => {
      if (this.#ws === ws) this.#log.debug({ sessionId, err: errorInfo(err) }, 'audio input socket error');
    });
    ws.on('close', (code) => {
      if (this.#ws !== ws) return;
      this.#onDropped(sessionId, code);
    });
  }

  #onDropped(sessionId: string, code: number | undefined): void {
    this.#ws = undefined;
    this.#wsOpen = false;
    this.#stopClock();
    this.#clearPauseTimers();
    this.#stats.drops++;
    this.emit('drop', { sessionId, code });
    if (this.#state === 'closed' || sessionId !== this.#sessionId) return;
    const delay = this.#reopenDelay;
    this.#reopenDelay = Math.min(this.#o.reconnectMaxMs, this.#reopenDelay * 2);
    this.#log.info({ sessionId, code, reopenInMs: delay }, 'audio input socket dropped; reopening');
    this.#setState('connecting');
    this.#reopenTimer = setTimeout(() => {
      this.#reopenTimer = undefined;
      // Reopen only if the server still wants audio or we were keeping the socket for a resume.
      if (this.#sessionId === sessionId && this.#state !== 'closed') {
        this.#pendingReopen = true;
        if (this.#enabled) this.#ensureSocket();
        else this.#setState('idle');
      }
    }, delay);
    this.#reopenTimer.unref();
  }

  #closeSocket(code: number, reason: string): void {
    const ws = this.#ws;
    this.#ws = undefined;
    this.#wsSessionId = undefined;
    this.#wsOpen = false;
    this.#stopClock();
    this.#clearPauseTimers();
    if (!ws) return;
    try {
      if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
      else ws.terminate();
    } catch {
      /* already closed */
    }
  }

  #cancelReopen(): void {
    if (this.#reopenTimer) clearTimeout(this.#reopenTimer);
    this.#reopenTimer = undefined;
    this.#pendingReopen = false;
  }

  #startStreaming(): void {
    this.#clearPauseTimers();
    this.#setState('streaming');
    if (this.#clock) return;
    this.#t0 = performance.now();
    this.#slots = 0;
    this.#primed = false;
    this.#tick();
  }

  #stopClock(): void {
    if (this.#clock) clearTimeout(this.#clock);
    this.#clock = undefined;
  }

  #tick(): void {
    this.#clock = undefined;
    const ws = this.#ws;
    if (!ws || !this.#wsOpen || !this.#enabled) return;
    const now = performance.now();
    const due = Math.floor((now - this.#t0) / FRAME_MS) + 1;
    let toSend = due - this.#slots;
    if (toSend > this.#o.maxCatchUpFrames) {
      const skipped = toSend - this.#o.maxCatchUpFrames;
      this.#slots += skipped;
      this.#stats.lateSkips += skipped;
      this.#skippedWithSpeech += skipped;
      toSend = this.#o.maxCatchUpFrames;
    }
    for (let i = 0; i < toSend; i++) {
      this.#sendFrame(ws, now);
      this.#slots++;
    }
    // Skipped slots leave their speech in the buffer, and each would add 30 ms of delay until the
    // speaker pauses. Speech (never silence) beyond the pre-buffer is caught up instead, one extra
    // frame per tick, so a stall costs latency for a moment rather than for the whole utterance.
    if (!this.#primed) this.#skippedWithSpeech = 0;
    else if (this.#skippedWithSpeech > 0 && this.#buffered >= FRAME_BYTES + this.#prebufferBytes()) {
      this.#sendFrame(ws, now);
      this.#skippedWithSpeech--;
      this.#stats.catchUpFrames++;
    }
    const next = this.#t0 + this.#slots * FRAME_MS;
    this.#clock = setTimeout(() => this.#tick(), Math.max(0, next - performance.now()));
  }

  /**
   * Speech is sent as soon as a whole frame of it is buffered rather than at the next clock slot
   * (which saves up to 30 ms of latency per frame). The frame takes a slot of the clock, so the
   * clock sends nothing of its own until real time catches up: the stream keeps one frame per 30 ms
   * on average, at most one slot ahead of the clock, and never early while the clock is behind.
   */
  #sendEarly(): void {
    const ws = this.#ws;
    if (!ws || !this.#wsOpen || !this.#enabled || this.#clock === undefined) return;
    const now = performance.now();
    const due = Math.floor((now - this.#t0) / FRAME_MS) + 1;
    // Behind the clock (a late timer), the next tick's catch-up rules apply instead: no burst here.
    while (this.#slots >= due && this.#slots < due + MAX_LEAD_SLOTS && this.#buffered >= FRAME_BYTES && (this.#primed || this.#buffered >= this.#prebufferBytes())) {
      this.#sendFrame(ws, now);
      this.#slots++;
    }
  }

  #sendFrame(ws: WebSocket, now: number): void {
    const frame = this.#nextFrame(now);
    if (ws.bufferedAmount > this.#o.maxSocketBufferBytes) {
      this.#stats.backpressureSkips++;
      return;
    }
    ws.send(frame, { binary: true });
    this.#stats.framesSent++;
  }

  #prebufferBytes(): number {
    return Math.max(FRAME_BYTES, Math.round((this.#o.prebufferMs * BYTES_PER_MS) / 2) * 2);
  }

  /** The next 960 bytes: buffered speech when there is enough, zeros otherwise. */
  #nextFrame(now: number): Buffer {
    const writerIdle = now - this.#lastWriteAt > this.#o.writerIdleMs;
    if (this.#buffered >= FRAME_BYTES && (this.#primed || this.#buffered >= this.#prebufferBytes() || writerIdle)) {
      this.#primed = true;
      this.#stats.speechFrames++;
      return this.#take(FRAME_BYTES);
    }
    if (this.#buffered > 0 && writerIdle) {
      // The speaker stopped: flush what is left, padded with silence.
      this.#primed = false;
      this.#stats.speechFrames++;
      const frame = Buffer.alloc(FRAME_BYTES);
      this.#take(this.#buffered).copy(frame);
      return frame;
    }
    this.#primed = false;
    this.#stats.silenceFrames++;
    return Buffer.alloc(FRAME_BYTES);
  }

  #take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.#chunks[0]!;
      const avail = head.length - this.#headOffset;
      const k = Math.min(avail, n - filled);
      head.copy(out, filled, this.#headOffset, this.#headOffset + k);
      filled += k;
      this.#headOffset += k;
      if (this.#headOffset >= head.length) {
        this.#chunks.shift();
        this.#headOffset = 0;
      }
    }
    this.#buffered -= n;
    this.#speechBytesSent += n;
    return out;
  }

  #discard(n: number): void {
    let left = n;
    while (left > 0 && this.#chunks.length > 0) {
      const head = this.#chunks[0]!;
      const avail = head.length - this.#headOffset;
      const k = Math.min(avail, left);
      left -= k;
      this.#headOffset += k;
      if (this.#headOffset >= head.length) {
        this.#chunks.shift();
        this.#headOffset = 0;
      }
    }
    this.#buffered -= n - left;
  }

  #clearBuffer(): void {
    this.#chunks = [];
    this.#headOffset = 0;
    this.#buffered = 0;
    this.#primed = false;
  }

  #enterPause(): void {
    this.#setState('paused');
    this.#clearPauseTimers();
    const ws = this.#ws;
    this.#keepalive = setInterval(() => {
      if (this.#ws === ws && this.#wsOpen && ws) {
        ws.send(JSON.stringify({ type: 'keepalive' }));
        this.#stats.keepalivesSent++;
      }
    }, this.#o.keepaliveMs);
    this.#keepalive.unref();
    this.#pauseClose = setTimeout(() => {
      this.#log.debug({ sessionId: this.#sessionId }, 'audio input paused for long: closing the socket');
      this.#closeSocket(1000, 'paused');
      this.#setState('idle');
    }, this.#o.closeAfterPauseMs);
    this.#pauseClose.unref();
  }

  #clearPauseTimers(): void {
    if (this.#keepalive) clearInterval(this.#keepalive);
    if (this.#pauseClose) clearTimeout(this.#pauseClose);
    this.#keepalive = undefined;
    this.#pauseClose = undefined;
  }

  #setState(next: AudioInputState): void {
    const prev = this.#state;
    if (prev === next || prev === 'closed') return;
    this.#state = next;
    try {
      this.emit('state', next, prev);
    } catch (err) {
      this.#log.error({ err: errorInfo(err) }, 'audio input state listener threw');
    }
  }
}

/**
 * Wires a {@link VoxtaAudioInput} to a chat session: `recordingRequest` enables/disables it, a new
 * chat or a re-resumed session moves it to the new sessionId, a dropped hub suspends it, and the
 * end of the chat or of the session stops it. The voice pipeline then only calls `write()`.
 */
export function attachAudioInput(
  session: VoxtaChatSession,
  opts: Omit<VoxtaAudioInputOptions, 'endpoint'> = {},
): VoxtaAudioInput & { detach(): void } {
  const input = new VoxtaAudioInput({ ...opts, endpoint: session.endpoint }) as VoxtaAudioInput & { detach(): void };
  const onRecording = (m: { sessionId: string; enabled: boolean }): void => {
    if (m.enabled) input.enable(m.sessionId);
    else input.disable();
  };
  const onChatStarted = (chat: { sessionId: string }): void => input.setSession(chat.sessionId);
  const onReconnecting = (): void => input.setSession(undefined);
  const onReconnected = (info: { sessionId?: string }): void => input.setSession(info.sessionId);
  const onChatClosed = (): void => input.stop();
  const onState = (state: string): void => {
    if (state === 'closed') input.close();
  };
  session.on('recordingRequest', onRecording);
  session.on('chatStarted', onChatStarted);
  session.on('reconnecting', onReconnecting);
  session.on('reconnected', onReconnected);
  session.on('chatClosed', onChatClosed);
  session.on('chatLost', onChatClosed);
  session.on('state', onState);
  input.detach = () => {
    session.off('recordingRequest', onRecording);
    session.off('chatStarted', onChatStarted);
    session.off('reconnecting', onReconnecting);
    session.off('reconnected', onReconnected);
    session.off('chatClosed', onChatClosed);
    session.off('chatLost', onChatClosed);
    session.off('state', onState);
  };
  if (session.sessionId) input.setSession(session.sessionId);
  return input;
}
