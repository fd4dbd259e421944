/**
 * The client side of Voxta vision (docs/voxta-vision.md): declaring that we can post images,
 * answering the server's `visionCaptureRequest` with an HTTP upload (or a cancel), and the two
 * ways a user message can carry a picture (`/capture <Source>` before it, or an inline
 * `base64Url` attachment). Pure Voxta: bytes and content types in, nothing about Discord.
 *
 * Shapes and their evidence:
 * - capabilities `visionCapture: "PostImage"`, `visionSources: ["Screen"]`: the official Minecraft
 *   companion's `authenticate` [C]; enum values from the official Unity SDK [C];
 * - `POST /api/vision/requests/{id}/send?sessionId=&source=&label=`, multipart field `file`, and
 *   `DELETE /api/vision/requests/{id}?sessionId=` to cancel: the companion's vision-capture.ts [C];
 * - the server waits 30 s for an image, keyed by user + session + request id [S].
 */
import { errorInfo, logger, type Logger } from '../log.js';
import type { VoxtaChatSession } from './chat-session.js';
import type { VoxtaEndpoint } from './endpoint.js';
import { asUnreachable, VoxtaAuthError, VoxtaError, VoxtaHttpError, VoxtaInputError } from './errors.js';
import type { VisionCaptureRequestMessage } from './messages.js';
import { pathOf } from './rest.js';

/** `ComputerVisionSource` as Voxta names it (serialised by name). */
export type ComputerVisionSource = 'Undefined' | 'Attachment' | 'Eyes' | 'Screen' | 'Generated';
/** The sources a client can capture for (the server builds capture services for these two only). */
export type VisionSource = 'Eyes' | 'Screen';
export type VisionCaptureCapability = 'None' | 'PostImage';

/** The `VoxtaChatSession` option; absent = vision off (nothing declared, as before). */
export interface VisionOptions {
  /** What we can capture (default `['Screen']`, as the official Minecraft companion declares). */
  sources?: VisionSource[];
}

/** The `authenticate.capabilities` fields for vision; empty when vision is off. */
export function visionCapabilities(vision: VisionOptions | undefined): { visionCapture?: VisionCaptureCapability; visionSources?: VisionSource[] } {
  if (!vision) return {};
  const sources = [...new Set(vision.sources ?? ['Screen'])].filter((s): s is VisionSource => s === 'Eyes' || s === 'Screen');
  if (sources.length === 0) return {};
  return { visionCapture: 'PostImage', visionSources: sources };
}

/** Content types we send: what the official client sends (JPEG) and what every vision model reads. */
export const VISION_CONTENT_TYPES = ['image/jpeg', 'image/png'] as const;
export type VisionContentType = (typeof VISION_CONTENT_TYPES)[number];

export const VISION_LIMITS = {
  /** Largest image we upload over HTTP (the server's own limit is unknown; this is far below ASP.NET defaults). */
  uploadMaxBytes: 4 * 1024 * 1024,
  /**
   * Largest image we inline in a hub message. The hub's message size limit on a real Voxta is
   * unknown (ASP.NET's default of 32 KB would close the connection): keep attachments small.
   */
  attachmentMaxBytes: 512 * 1024,
} as const;

/** A picture ready to give Voxta (prepare it with src/image first: type sniffed, size bounded). */
export interface VisionImage {
  bytes: Uint8Array;
  contentType: VisionContentType;
  /** Shown in Voxta's UI; defaults to `image.jpg` / `image.png`. */
  fileName?: string;
  /** A short label for the image (Voxta passes it along with the image). */
  label?: string;
}

/** An inline image of a `send` (Voxta's `Base64UrlClientSendMessageAttachment`). */
export interface SendAttachment {
  $type: 'base64Url';
  source: ComputerVisionSource;
  fileName?: string;
  label?: string;
  /** `data:<type>;base64,<bytes>` */
  base64Url: string;
}

/** The text of a `send` that makes Voxta ask us for an image of `source` (server command `/capture`). */
export function captureCommand(source: VisionSource = 'Screen'): string {
  return `/capture ${source}`;
}

/** An inline `base64Url` attachment for `send` (source `Attachment`). Throws {@link VoxtaInputError}. */
export function imageAttachment(image: VisionImage, opts: { maxBytes?: number; source?: ComputerVisionSource } = {}): SendAttachment {
  checkImage(image, opts.maxBytes ?? VISION_LIMITS.attachmentMaxBytes);
  const out: SendAttachment = {
    $type: 'base64Url',
    source: opts.source ?? 'Attachment',
    base64Url: `data:${image.contentType};base64,${Buffer.from(image.bytes.buffer, image.bytes.byteOffset, image.bytes.byteLength).toString('base64')}`,
  };
  const fileName = image.fileName ?? defaultFileName(image.contentType);
  out.fileName = fileName;
  if (image.label) out.label = image.label;
  return out;
}

export interface VisionHttpOptions {
  /** Deadline of the request (default 20 s: below the server's 30 s wait). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Refuse larger images (default {@link VISION_LIMITS.uploadMaxBytes}). */
  maxBytes?: number;
}

type CaptureTarget = Pick<VisionCaptureRequestMessage, 'sessionId' | 'visionCaptureRequestId' | 'source'>;

/**
 * Answers a capture request with an image: multipart `file` to
 * `/api/vision/requests/{id}/send`, with the same credentials as every Voxta request.
 * Throws {@link VoxtaInputError} (image refused before sending), {@link VoxtaAuthError},
 * {@link VoxtaHttpError}, {@link VoxtaUnreachableError}.
 */
export async function uploadVisionCapture(endpoint: VoxtaEndpoint, request: CaptureTarget, image: VisionImage, opts: VisionHttpOptions = {}): Promise<void> {
  checkImage(image, opts.maxBytes ?? VISION_LIMITS.uploadMaxBytes);
  const url = endpoint.httpUrl(`/api/vision/requests/${encodeURIComponent(request.visionCaptureRequestId)}/send`);
  url.searchParams.set('sessionId', request.sessionId);
  url.searchParams.set('source', request.source);
  if (image.label) url.searchParams.set('label', image.label);
  const form = new FormData();
  const blob = new Blob([new Uint8Array(image.bytes.buffer as ArrayBuffer, image.bytes.byteOffset, image.bytes.byteLength)], { type: image.contentType });
  form.append('file', blob, image.fileName ?? defaultFileName(image.contentType));
  await visionRequest(endpoint, url, { method: 'POST', body: form }, opts);
}

/** Tells Voxta we have no image for this request, so it stops waiting (30 s otherwise). */
export async function cancelVisionCapture(endpoint: VoxtaEndpoint, request: Pick<CaptureTarget, 'sessionId' | 'visionCaptureRequestId'>, opts: VisionHttpOptions = {}): Promise<void> {
  const url = endpoint.httpUrl(`/api/vision/requests/${encodeURIComponent(request.visionCaptureRequestId)}`);
  url.searchParams.set('sessionId', request.sessionId);
  await visionRequest(endpoint, url, { method: 'DELETE' }, opts);
}

async function visionRequest(endpoint: VoxtaEndpoint, url: URL, init: { method: string; body?: FormData }, opts: VisionHttpOptions): Promise<void> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 20_000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const path = pathOf(url);
  let res: Response;
  try {
    // No redirects: the body and the credentials go to the Voxta origin only.
    res = await fetch(url, { ...init, headers: { Accept: '*/*', ...endpoint.authHeaders() }, signal, redirect: 'manual' });
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason instanceof Error ? opts.signal.reason : new DOMException('Aborted', 'AbortError');
    const unreachable = asUnreachable(timeout.aborted ? Object.assign(new Error('timed out'), { name: 'TimeoutError' }) : err, endpoint.display);
    if (unreachable) throw unreachable;
    throw new VoxtaError(`Request to Voxta (${init.method} ${path}) failed`, { cause: err });
  }
  // The answer's body is never needed (the official client only checks the status): never read it.
  res.body?.cancel().catch(() => undefined);
  if (res.status === 401 || res.status === 403) throw new VoxtaAuthError(undefined, res.status);
  if (!res.ok) throw new VoxtaHttpError(res.status, path);
}

function checkImage(image: VisionImage, maxBytes: number): void {
  if (!(VISION_CONTENT_TYPES as readonly string[]).includes(image.contentType)) {
    throw new VoxtaInputError(`Voxta is sent JPEG or PNG images only (got ${String(image.contentType).slice(0, 40)})`);
  }
  if (image.bytes.byteLength === 0) throw new VoxtaInputError('Empty image');
  if (image.bytes.byteLength > maxBytes) throw new VoxtaInputError(`The image is ${image.bytes.byteLength} bytes (limit ${maxBytes})`);
}

function defaultFileName(type: VisionContentType): string {
  return type === 'image/png' ? 'image.png' : 'image.jpg';
}

// ---------------------------------------------------------------------------------------------
// Answering capture requests
// ---------------------------------------------------------------------------------------------

/**
 * Gives the picture for a capture request, or undefined for "nothing to show" (the request is
 * then cancelled). The signal aborts when the answer would come too late for Voxta.
 */
export type VisionImageProvider = (request: VisionCaptureRequestMessage, signal: AbortSignal) => Promise<VisionImage | undefined> | VisionImage | undefined;

export interface VisionResponderOptions {
  /** Time for provider + upload, per request (default 20 s; Voxta gives up after 30 s). */
  timeoutMs?: number;
  /** Requests answered at once; more are cancelled straight away (default 4). */
  maxInFlight?: number;
  log?: Logger;
}

export interface VisionResponderStats {
  requests: number;
  uploaded: number;
  /** Cancels sent (no picture, a failure below, or too many requests at once). */
  cancelled: number;
  /** The provider or the upload failed (then a cancel is sent). */
  failed: number;
}

/** The part of a session the responder needs. */
export type VisionSessionLike = Pick<VoxtaChatSession, 'endpoint' | 'on' | 'off'>;

/**
 * Answers every `visionCaptureRequest` of one session: asks `provide` for the picture and uploads
 * it, or cancels the request (no picture, provider error, upload error, overload) so Voxta never
 * waits its 30 s for nothing — what the official client does.
 */
export class VisionResponder {
  readonly #session: VisionSessionLike;
  readonly #provide: VisionImageProvider;
  readonly #timeoutMs: number;
  readonly #maxInFlight: number;
  readonly #log: Logger;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  readonly #stats: VisionResponderStats = { requests: 0, uploaded: 0, cancelled: 0, failed: 0 };
  readonly #onRequest = (m: VisionCaptureRequestMessage): void => this.#handle(m);
  #closed = false;

  constructor(session: VisionSessionLike, provide: VisionImageProvider, opts: VisionResponderOptions = {}) {
    this.#session = session;
    this.#provide = provide;
    this.#timeoutMs = opts.timeoutMs ?? 20_000;
    this.#maxInFlight = Math.max(1, opts.maxInFlight ?? 4);
    this.#log = (opts.log ?? logger()).child({ mod: 'voxta-vision' });
    session.on('visionCaptureRequest', this.#onRequest);
  }

  get stats(): VisionResponderStats {
    return { ...this.#stats };
  }

  /** Requests being answered now. */
  get pending(): number {
    return this.#inFlight.size;
  }

  /** Stops listening, aborts answers in progress and waits for them to settle. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#session.off('visionCaptureRequest', this.#onRequest);
      this.#abort.abort(new VoxtaError('The vision responder was closed'));
    }
    await Promise.allSettled([...this.#inFlight]);
  }

  #handle(request: VisionCaptureRequestMessage): void {
    if (this.#closed) return;
    this.#stats.requests++;
    const task = this.#answer(request, this.#inFlight.size >= this.#maxInFlight).finally(() => this.#inFlight.delete(task));
    this.#inFlight.add(task);
  }

  /** Never rejects: every outcome is counted and logged. */
  async #answer(request: VisionCaptureRequestMessage, overloaded: boolean): Promise<void> {
    const ids = { requestId: request.visionCaptureRequestId, source: request.source };
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#timeoutMs)]);
    if (overloaded) {
      this.#log.warn({ ...ids, inFlight: this.#inFlight.size }, 'too many vision capture requests at once: cancelling this one');
    } else {
      try {
        const image = await raceAbort(Promise.resolve(this.#provide(request, signal)), signal);
        if (image) {
          await uploadVisionCapture(this.#session.endpoint, request, image, { signal, timeoutMs: this.#timeoutMs });
          this.#stats.uploaded++;
          this.#log.info({ ...ids, bytes: image.bytes.byteLength, type: image.contentType }, 'answered a vision capture request');
          return;
        }
        this.#log.debug(ids, 'no picture for this vision capture request: cancelling it');
      } catch (err) {
        this.#stats.failed++;
        this.#log.warn({ ...ids, err: errorInfo(err) }, 'could not answer a vision capture request: cancelling it');
      }
    }
    // Closed with the session: its chat is going away, nobody waits for this answer.
    if (this.#closed) return;
    try {
      // A fresh deadline: the request's own may be what just expired.
      await cancelVisionCapture(this.#session.endpoint, request, { timeoutMs: 5_000 });
      this.#stats.cancelled++;
    } catch (err) {
      this.#log.debug({ ...ids, err: errorInfo(err) }, 'cancelling the vision capture request failed');
    }
  }
}

/** Starts answering the session's capture requests; `close()` the result when done with the session. */
export function attachVisionResponder(session: VisionSessionLike, provide: VisionImageProvider, opts: VisionResponderOptions = {}): VisionResponder {
  return new VisionResponder(session, provide, opts);
}

/** `p`, or the signal's reason as soon as it aborts (a provider that ignores the signal cannot hang us). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new VoxtaError('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new VoxtaError('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
