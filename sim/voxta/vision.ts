/**
 * Simulated Voxta vision (docs/voxta-vision.md §8): the vision service switch, capture requests,
 * the upload and cancel endpoints, inline `base64Url` attachments, and replies that prove which
 * bytes arrived.
 *
 * - `SimVision` (one per simulator) owns the pending capture requests and answers
 *   `POST /api/vision/requests/{id}/send` and `DELETE /api/vision/requests/{id}`.
 * - `SessionVision` (one per chat session) decides when the server asks for a picture (`/capture`,
 *   or a user message mentioning one), decodes attachments, and holds a user message back until
 *   its pictures are settled, so the reply can describe them.
 *
 * Dimensions come from sharp (libvips), not from the bot's own header parser in src/image, so the
 * reply is an independent check of what the client sent.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import sharp from 'sharp';
import type { Logger } from '../../src/log.js';
import { errorInfo } from '../../src/log.js';
import type { ChatMessageRecord, ChatRecord } from './chat-store.js';
import type { ClientPayload, ServerMessage } from './messages.js';

// ---------------------------------------------------------------------------------------------
// Options and records
// ---------------------------------------------------------------------------------------------

export interface SimVisionOptions {
  /** The vision service switch (default false: a server without vision). */
  enabled?: boolean;
  /** User text that makes the server ask for a picture first; false to never ask (default: image, picture, photo, pic, screenshot, look). */
  askOnMention?: RegExp | false;
  /** How long a capture request waits for the picture (default 30 s, as Voxta). */
  captureTimeoutMs?: number;
  /** Largest accepted upload, in bytes (default 8 MiB); 413 beyond, checked while streaming. */
  maxUploadBytes?: number;
  /** Largest decoded inline attachment, in bytes (default 2 MiB). */
  maxAttachmentBytes?: number;
}

export interface ResolvedVisionOptions {
  enabled: boolean;
  askOnMention: RegExp | false;
  captureTimeoutMs: number;
  maxUploadBytes: number;
  maxAttachmentBytes: number;
}

export const DEFAULT_MENTION = /\b(image|images|picture|pictures|photo|photos|pic|pics|screenshot|look)\b/i;

export function resolveVisionOptions(o: SimVisionOptions = {}): ResolvedVisionOptions {
  return {
    enabled: o.enabled ?? false,
    askOnMention: o.askOnMention === undefined ? DEFAULT_MENTION : o.askOnMention,
    captureTimeoutMs: o.captureTimeoutMs ?? 30_000,
    maxUploadBytes: o.maxUploadBytes ?? 8 * 1024 * 1024,
    maxAttachmentBytes: o.maxAttachmentBytes ?? 2 * 1024 * 1024,
  };
}

/** Content types the simulated server takes (what the official client sends, plus PNG). */
export const SIM_VISION_TYPES = ['image/jpeg', 'image/png'] as const;

/** One picture the simulator received, by upload or attachment. */
export interface VisionUpload {
  via: 'capture' | 'attachment';
  sessionId: string;
  /** The capture request it answered (captures only). */
  requestId?: string;
  source: string;
  label?: string;
  fileName?: string;
  contentType: string;
  bytes: Buffer;
  /** Decoded by the simulator (libvips), not taken from the client. */
  width: number;
  height: number;
  /** First 8 hex digits of the SHA-256 of the bytes received. */
  sha256: string;
  /** Whether the vision service described it (false when vision is off: stored, unseen). */
  seen: boolean;
  at: number;
}

export interface VisionRequestRecord {
  requestId: string;
  sessionId: string;
  source: string;
  trigger: 'command' | 'mention';
  outcome: 'pending' | 'uploaded' | 'cancelled' | 'expired' | 'closed';
  at: number;
}

interface PendingCapture {
  record: VisionRequestRecord;
  userKey: string;
  timer: NodeJS.Timeout;
  settle: (image: VisionUpload | undefined) => void;
}

/** What the simulator shares with the vision module. */
export interface VisionHost {
  readonly options: { vision: ResolvedVisionOptions };
  readonly log: Logger;
  /** Something changed (wakes `sim.waitFor`). */
  changed(): void;
}

const MAX_RECORDS = 1000;
/** An over-limit upload is drained up to this much (so the client reads our 413), then cut. */
const DRAIN_LIMIT = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// SimVision: pending requests, HTTP endpoints, records
// ---------------------------------------------------------------------------------------------

export class SimVision {
  readonly uploads: VisionUpload[] = [];
  readonly requests: VisionRequestRecord[] = [];
  readonly #pending = new Map<string, PendingCapture>();

  constructor(private readonly host: VisionHost) {}

  /** Sends nothing itself: registers a request the session announces; settles once. */
  register(record: Omit<VisionRequestRecord, 'outcome' | 'at'>, userKey: string, settle: (image: VisionUpload | undefined) => void): void {
    const full: VisionRequestRecord = { ...record, outcome: 'pending', at: Date.now() };
    push(this.requests, full);
    const timer = setTimeout(() => this.#finish(record.requestId, 'expired', undefined), this.host.options.vision.captureTimeoutMs);
    this.#pending.set(record.requestId, { record: full, userKey, timer, settle });
    this.host.changed();
  }

  /** Drops a session's pending requests (chat closed or connection gone). */
  closeSession(sessionId: string): void {
    for (const [id, p] of this.#pending) if (p.record.sessionId === sessionId) this.#finish(id, 'closed', undefined);
  }

  clear(): void {
    for (const id of [...this.#pending.keys()]) this.#finish(id, 'closed', undefined);
  }

  record(upload: VisionUpload): void {
    push(this.uploads, upload);
    this.host.changed();
  }

  #finish(requestId: string, outcome: VisionRequestRecord['outcome'], image: VisionUpload | undefined): void {
    const p = this.#pending.get(requestId);
    if (!p) return;
    this.#pending.delete(requestId);
    clearTimeout(p.timer);
    p.record.outcome = outcome;
    p.settle(image);
    this.host.changed();
  }

  /** Answers `/api/vision/...`; false for other paths. `userKey` is the authenticated caller. */
  handleHttp(req: IncomingMessage, res: ServerResponse, url: URL, userKey: string): boolean {
    const m = url.pathname.match(/^\/api\/vision\/requests\/([^/]+)(\/send)?\/?$/);
    if (!m) return false;
    const requestId = decodeURIComponent(m[1] ?? '');
    const isSend = m[2] !== undefined;
    if (isSend && req.method !== 'POST') return methodNotAllowed(req, res, 'POST');
    if (!isSend && req.method !== 'DELETE') return methodNotAllowed(req, res, 'DELETE');
    // Voxta keys a request by user + session + id: anything else is "no such request".
    const pending = this.#pending.get(requestId);
    const sessionId = url.searchParams.get('sessionId');
    if (!pending || pending.record.sessionId !== sessionId || pending.userKey !== userKey) {
      req.resume();
      sendText(res, 404, 'No such vision capture request (unknown, expired, already answered, or another session)');
      return true;
    }
    if (!isSend) {
      req.resume();
      this.#finish(requestId, 'cancelled', undefined);
      sendText(res, 200, '');
      return true;
    }
    void this.#receiveUpload(req, res, url, pending).catch((err: unknown) => {
      this.host.log.error({ err: errorInfo(err, true) }, 'vision upload failed');
      sendText(res, 500, 'Internal simulator error');
    });
    return true;
  }

  async #receiveUpload(req: IncomingMessage, res: ServerResponse, url: URL, pending: PendingCapture): Promise<void> {
    const { maxUploadBytes } = this.host.options.vision;
    const type = req.headers['content-type'] ?? '';
    const boundary = /^multipart\/form-data;.*\bboundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
    if (!boundary) {
      req.resume();
      return sendText(res, 415, 'Expected multipart/form-data');
    }
    const declared = Number(req.headers['content-length']);
    // Multipart framing adds a few hundred bytes around the file.
    const bodyLimit = maxUploadBytes + 16 * 1024;
    if (Number.isFinite(declared) && declared > bodyLimit) {
      drainThenReply(req, res, 413, `Upload larger than ${maxUploadBytes} bytes`);
      return;
    }
    const body = await readBody(req, bodyLimit);
    if (body === 'too-large') {
      drainThenReply(req, res, 413, `Upload larger than ${maxUploadBytes} bytes`);
      return;
    }
    const file = multipartFile(body, boundary[1] ?? boundary[2] ?? '', 'file');
    if (!file) return sendText(res, 400, 'No file part named "file"');
    if (file.data.length > maxUploadBytes) return sendText(res, 413, `Upload larger than ${maxUploadBytes} bytes`);
    const source = url.searchParams.get('source') ?? '';
    if (source !== pending.record.source) {
      // Voxta drops an image whose source is not the one it asked for.
      return sendText(res, 400, `Source "${source}" does not match the requested source "${pending.record.source}"`);
    }
    const checked = await checkImage(file.data, file.contentType);
    if (typeof checked === 'string') return sendText(res, 415, checked);
    const label = url.searchParams.get('label') ?? undefined;
    const upload: VisionUpload = {
      via: 'capture',
      sessionId: pending.record.sessionId,
      requestId: pending.record.requestId,
      source,
      label,
      fileName: file.fileName,
      contentType: file.contentType,
      bytes: file.data,
      ...checked,
      seen: true,
      at: Date.now(),
    };
    if (!this.#pending.has(pending.record.requestId)) return sendText(res, 404, 'The vision capture request expired meanwhile');
    this.record(upload);
    this.#finish(pending.record.requestId, 'uploaded', upload);
    sendText(res, 200, '');
  }
}

// ---------------------------------------------------------------------------------------------
// SessionVision: per chat session
// ---------------------------------------------------------------------------------------------

/** Pictures a user message waits for before it is processed. */
export class VisionTicket {
  readonly images: VisionUpload[] = [];
  #waiting = 0;
  #settled: Array<() => void> = [];
  constructor(private readonly wake: () => void) {}
  get pending(): boolean {
    return this.#waiting > 0;
  }
  /** Resolves once nothing is pending (at once when nothing is). */
  whenSettled(): Promise<void> {
    return this.pending ? new Promise((resolve) => this.#settled.push(resolve)) : Promise.resolve();
  }
  /** Waits for `p` (never rejects: a failure just adds no picture), then `use`s its value. */
  wait<T>(p: Promise<T>, use: (value: T) => void): void {
    this.#waiting++;
    void p
      .then(use, () => undefined)
      .finally(() => {
        this.#waiting--;
        if (this.#waiting > 0) return;
        for (const resolve of this.#settled.splice(0)) resolve();
        this.wake();
      });
  }
}

/** What a session exposes to its vision part. */
export interface VisionSessionHost {
  readonly sessionId: string;
  readonly userKey: string;
  readonly chat: ChatRecord;
  /** What the client declared in `authenticate.capabilities`. */
  capabilities(): Record<string, unknown> | undefined;
  emit(message: ServerMessage): void;
  /** Stores a user message and sends its `update`. */
  storeUserMessage(text: string): ChatMessageRecord;
  /** A user message may run now: run the foreground queue. */
  wake(): void;
  readonly log: Logger;
}

export type SendOutcome =
  /** `/capture`: nothing else to do with this send. */
  | { handled: true }
  | { handled: false; ticket: VisionTicket | undefined; hasAttachments: boolean };

export class SessionVision {
  /** The last `/capture` still waiting: later user messages queue behind it (serial input queue). */
  #capture: VisionTicket | undefined;
  /** A picture-only user message a following text is merged into, as Voxta does. */
  #mergeInto: ChatMessageRecord | undefined;

  constructor(
    private readonly vision: SimVision,
    private readonly options: () => ResolvedVisionOptions,
    private readonly host: VisionSessionHost,
  ) {}

  private get opts(): ResolvedVisionOptions {
    return this.options();
  }

  /** Looks at a `send` before the session handles it. Throws on malformed attachments. */
  onSend(p: ClientPayload, text: string, reject: (message: string) => Error): SendOutcome {
    const command = /^\/capture(?:[\s:]+(\S*))?\s*$/i.exec(text);
    if (command) {
      this.captureCommand(command[1] ?? '');
      return { handled: true };
    }
    const attachments = parseAttachments(p.attachments, this.opts.maxAttachmentBytes, reject);
    let ticket: VisionTicket | undefined;
    const ensureTicket = (): VisionTicket => (ticket ??= new VisionTicket(() => this.host.wake()));
    for (const a of attachments) {
      ensureTicket().wait(checkImage(a.bytes, a.contentType), (checked) => {
        if (typeof checked === 'string') {
          this.host.log.info({ reason: checked }, 'attachment refused');
          return;
        }
        const upload: VisionUpload = {
          via: 'attachment',
          sessionId: this.host.sessionId,
          source: a.source,
          label: a.label,
          fileName: a.fileName,
          contentType: a.contentType,
          bytes: a.bytes,
          ...checked,
          seen: this.opts.enabled,
          at: Date.now(),
        };
        this.vision.record(upload);
        if (upload.seen) ticket!.images.push(upload);
      });
    }
    // A user message behind a pending /capture waits for it and is answered with its picture.
    const capture = this.#capture;
    if (capture?.pending) {
      const t = ensureTicket();
      t.wait(capture.whenSettled(), () => t.images.push(...capture.images));
    }
    const mention = this.opts.askOnMention;
    if (attachments.length === 0 && !capture?.pending && this.opts.enabled && p.doReply !== false && mention && mention.test(text)) {
      const source = this.declaredSources()[0];
      if (source) {
        const t = ensureTicket();
        t.wait(this.request(source, 'mention'), (image) => {
          if (image) t.images.push(image);
        });
      }
    }
    return { handled: false, ticket, hasAttachments: attachments.length > 0 };
  }

  /** Stores the text of a user message, merged into a picture-only message left by `/capture`. */
  storeUserText(text: string, store: () => ChatMessageRecord): ChatMessageRecord {
    const target = this.#mergeInto;
    this.#mergeInto = undefined;
    if (target && this.host.chat.messages.at(-1) === target) {
      target.text = target.text === '' ? text : `${target.text} ${text}`;
      return target;
    }
    return store();
  }

  /** The sentence of a reply that proves which pictures arrived (empty when none was seen). */
  sentences(ticket: VisionTicket | undefined): string[] {
    return (ticket?.images ?? []).map((i) => `I see your picture: ${i.width}x${i.height} ${i.contentType}, sha256 ${i.sha256}.`);
  }

  dispose(): void {
    this.vision.closeSession(this.host.sessionId);
  }

  /** `/capture [Source]`: as Voxta's VisionCaptureCommand (no reply; a picture-only user message). */
  private captureCommand(arg: string): void {
    const source = arg === '' ? 'Eyes' : (['Eyes', 'Screen'].find((s) => s.toLowerCase() === arg.toLowerCase()) ?? arg);
    if (!this.opts.enabled || !this.declaredSources().includes(source)) {
      this.host.log.warn({ source }, 'Cannot capture image, no vision capture services are available');
      return;
    }
    const ticket = new VisionTicket(() => this.host.wake());
    this.#capture = ticket;
    ticket.wait(this.request(source, 'command'), (image) => {
      if (!image) {
        this.host.log.warn({ source }, 'Failed to capture image');
        return;
      }
      ticket.images.push(image);
      this.#mergeInto = this.host.storeUserMessage('');
    });
  }

  /** Emits `visionCaptureRequest` and resolves with the picture, or undefined (cancelled, expired). */
  private request(source: string, trigger: VisionRequestRecord['trigger']): Promise<VisionUpload | undefined> {
    const requestId = randomUUID();
    return new Promise((resolve) => {
      this.vision.register({ requestId, sessionId: this.host.sessionId, source, trigger }, this.host.userKey, resolve);
      this.host.emit({ $type: 'visionCaptureRequest', sessionId: this.host.sessionId, visionCaptureRequestId: requestId, source });
    });
  }

  /** Sources the client declared with `visionCapture: "PostImage"`. */
  private declaredSources(): string[] {
    const caps = this.host.capabilities();
    if (caps?.visionCapture !== 'PostImage' || !Array.isArray(caps.visionSources)) return [];
    return caps.visionSources.filter((s): s is string => s === 'Eyes' || s === 'Screen');
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

interface ParsedAttachment {
  bytes: Buffer;
  contentType: string;
  source: string;
  fileName?: string;
  label?: string;
}

/** `send.attachments`: only `base64Url` ones, as Voxta (others: "not supported"). */
function parseAttachments(raw: unknown, maxBytes: number, reject: (message: string) => Error): ParsedAttachment[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw reject('send "attachments" must be an array');
  return raw.map((a: unknown, i) => {
    const o = a as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null) throw reject(`attachments[${i}] must be an object`);
    if (o.$type !== 'base64Url') throw reject(`Attachment type ${String(o.$type)} is not supported`);
    const url = typeof o.base64Url === 'string' ? o.base64Url : '';
    const m = /^data:([a-z0-9.+-]+\/[a-z0-9.+-]+);base64,([A-Za-z0-9+/=\s]*)$/i.exec(url);
    if (!m) throw reject(`attachments[${i}].base64Url must be a data:<type>;base64,… URL`);
    // Checked before decoding: base64 is 4/3 of the bytes.
    if ((m[2]!.length * 3) / 4 > maxBytes + 3) throw reject(`attachments[${i}] is larger than ${maxBytes} bytes`);
    return {
      bytes: Buffer.from(m[2]!, 'base64'),
      contentType: m[1]!.toLowerCase(),
      source: typeof o.source === 'string' ? o.source : 'Attachment',
      fileName: typeof o.fileName === 'string' ? o.fileName : undefined,
      label: typeof o.label === 'string' ? o.label : undefined,
    };
  });
}

/** Type, real content and dimensions (libvips), or why the picture is refused. */
async function checkImage(bytes: Buffer, contentType: string): Promise<{ width: number; height: number; sha256: string } | string> {
  if (!(SIM_VISION_TYPES as readonly string[]).includes(contentType)) return `Unsupported image type ${contentType || '(none)'}: send image/jpeg or image/png`;
  let meta: { format?: string; width?: number; height?: number };
  try {
    meta = await sharp(bytes, { failOn: 'truncated', limitInputPixels: 100_000_000 }).metadata();
  } catch {
    return 'The file is not a readable image';
  }
  const format = meta.format === 'jpeg' ? 'image/jpeg' : meta.format === 'png' ? 'image/png' : `image/${meta.format ?? '?'}`;
  if (format !== contentType) return `The bytes are ${format}, not the declared ${contentType}`;
  return { width: meta.width ?? 0, height: meta.height ?? 0, sha256: createHash('sha256').update(bytes).digest('hex').slice(0, 8) };
}

/** The body, or 'too-large' as soon as it passes `limit` (the rest is not buffered). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (c: Buffer): void => {
      total += c.length;
      if (total > limit) {
        req.off('data', onData);
        req.off('end', onEnd);
        resolve('too-large');
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => resolve(Buffer.concat(chunks, total));
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', reject);
  });
}

/** Replies `status` after discarding the rest of the body (up to a hard cap, then the socket is cut). */
function drainThenReply(req: IncomingMessage, res: ServerResponse, status: number, text: string): void {
  let drained = 0;
  const reply = (): void => sendText(res, status, text);
  req.on('data', (c: Buffer) => {
    drained += c.length;
    if (drained > DRAIN_LIMIT) {
      res.setHeader('Connection', 'close');
      reply();
      req.socket.destroy();
    }
  });
  req.once('end', reply);
  if (req.readableEnded) reply();
  req.resume();
}

/** The part named `name` of a multipart body. */
function multipartFile(body: Buffer, boundary: string, name: string): { data: Buffer; contentType: string; fileName?: string } | undefined {
  if (!boundary) return undefined;
  const delimiter = Buffer.from(`--${boundary}`);
  let pos = body.indexOf(delimiter);
  while (pos >= 0) {
    const start = pos + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') return undefined; // closing delimiter
    const headerEnd = body.indexOf('\r\n\r\n', start);
    if (headerEnd < 0) return undefined;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd + 4);
    if (next < 0) return undefined;
    const headers = body.subarray(start, headerEnd).toString('latin1');
    const disposition = /content-disposition:\s*form-data;([^\r\n]*)/i.exec(headers)?.[1] ?? '';
    const partName = /\bname="([^"]*)"/i.exec(disposition)?.[1];
    if (partName === name) {
      return {
        data: Buffer.from(body.subarray(headerEnd + 4, next)),
        contentType: (/content-type:\s*([^\r\n;]+)/i.exec(headers)?.[1] ?? '').trim().toLowerCase(),
        fileName: /\bfilename="([^"]*)"/i.exec(disposition)?.[1],
      };
    }
    pos = next + 2;
  }
  return undefined;
}

function methodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: string): true {
  req.resume();
  res.setHeader('Allow', allow);
  sendText(res, 405, `Method ${req.method ?? '?'} not allowed`);
  return true;
}

function sendText(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function push<T>(list: T[], item: T): void {
  list.push(item);
  if (list.length > MAX_RECORDS) list.splice(0, list.length - MAX_RECORDS);
}
