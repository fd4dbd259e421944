/**
 * The HTTP plumbing of the REST API: request parsing (JSON and multipart/form-data as
 * @discordjs/rest sends them: `payload_json` plus `files[n]`), Discord-shaped errors, per-bucket
 * rate limits with the headers @discordjs/rest reads, and the route table matcher.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';

export interface UploadedFile {
  field: string;
  filename: string;
  contentType: string | undefined;
  data: Buffer;
}

export interface SimRequest {
  method: string;
  /** Path below `/api/v10`, e.g. `/channels/123/messages`. */
  path: string;
  /** The matched route template, e.g. `/channels/:channelId/messages`. */
  route: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** Parsed JSON body (or `payload_json` of a multipart body); undefined when there is none. */
  json: unknown;
  files: UploadedFile[];
}

export interface RestResult {
  status: number;
  body?: unknown;
}

export type RouteHandler = (req: SimRequest) => RestResult | Promise<RestResult>;

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  pattern: string;
  /** Needs `Authorization: Bot <token>` (interaction callbacks and webhooks with a token do not). */
  auth: boolean;
  handler: RouteHandler;
}

/** A Discord API error: `{ message, code, errors? }` with an HTTP status. */
export class RestError extends Error {
  /** For 429s raised by a handler (limits the route table cannot see): seconds to wait and extra headers. */
  retryAfterSec: number | undefined;
  headers: Record<string, string> = {};

  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly errors?: unknown,
  ) {
    super(message);
    this.name = 'RestError';
  }

  body(): Record<string, unknown> {
    return { message: this.message, code: this.code, ...(this.errors ? { errors: this.errors } : {}) };
  }
}

export const Errors = {
  unauthorized: () => new RestError(401, 0, '401: Unauthorized'),
  notFound: () => new RestError(404, 0, '404: Not Found'),
  unknownChannel: () => new RestError(404, 10003, 'Unknown Channel'),
  unknownGuild: () => new RestError(404, 10004, 'Unknown Guild'),
  unknownMember: () => new RestError(404, 10007, 'Unknown Member'),
  unknownMessage: () => new RestError(404, 10008, 'Unknown Message'),
  unknownUser: () => new RestError(404, 10013, 'Unknown User'),
  unknownEmoji: () => new RestError(400, 10014, 'Unknown Emoji'),
  unknownWebhook: () => new RestError(404, 10015, 'Unknown Webhook'),
  unknownVoiceState: () => new RestError(404, 10065, 'Unknown Voice State'),
  invalidWebhookToken: () => new RestError(401, 50027, 'Invalid Webhook Token'),
  wrongChannelType: () => new RestError(400, 50024, 'Cannot execute action on this channel type'),
  maxWebhooks: () => new RestError(400, 30007, 'Maximum number of webhooks reached (15)'),
  unknownInteraction: () => new RestError(404, 10062, 'Unknown interaction'),
  unknownCommand: () => new RestError(404, 10063, 'Unknown application command'),
  alreadyAcknowledged: () => new RestError(400, 40060, 'Interaction has already been acknowledged.'),
  missingAccess: () => new RestError(403, 50001, 'Missing Access'),
  missingPermissions: () => new RestError(403, 50013, 'Missing Permissions'),
  emptyMessage: () => new RestError(400, 50006, 'Cannot send an empty message'),
  cannotEditOthers: () => new RestError(403, 50005, 'Cannot edit a message authored by another user'),
  invalidFormBody: (errors: unknown) => new RestError(400, 50035, 'Invalid Form Body', errors),
};

/** `{ field: { _errors: [{ code, message }] } }`, nested by dotted path like Discord. */
export function fieldError(path: string, code: string, message: string): Record<string, unknown> {
  const parts = path.split('.');
  let node: Record<string, unknown> = { _errors: [{ code, message }] };
  for (let i = parts.length - 1; i >= 0; i--) node = { [parts[i] as string]: node };
  return node;
}

const MAX_BODY = 30 * 1024 * 1024;

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new RestError(413, 40005, 'Request entity too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON or multipart body. Malformed bodies become Discord's 50109 / 50035 errors. */
export async function parseBody(contentType: string | undefined, raw: Buffer): Promise<{ json: unknown; files: UploadedFile[] }> {
  if (raw.length === 0) return { json: undefined, files: [] };
  const type = (contentType ?? '').toLowerCase();
  if (type.startsWith('multipart/form-data')) {
    let form: FormData;
    try {
      // Node's own fetch implementation parses multipart bodies; no hand-rolled parser needed.
      form = await new Response(new Uint8Array(raw), { headers: { 'content-type': contentType ?? '' } }).formData();
    } catch (err) {
      throw new RestError(400, 50109, `The request body contains invalid multipart data (${(err as Error).message})`);
    }
    let json: unknown;
    const files: UploadedFile[] = [];
    for (const [field, value] of form.entries()) {
      if (field === 'payload_json' && typeof value === 'string') {
        json = parseJson(value);
      } else if (typeof value !== 'string') {
        files.push({
          field,
          filename: value.name,
          contentType: value.type || undefined,
          data: Buffer.from(await value.arrayBuffer()),
        });
      }
    }
    return { json, files };
  }
  return { json: parseJson(raw.toString('utf8')), files: [] };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new RestError(400, 50109, 'The request body contains invalid JSON.');
  }
}

/** Matches `/channels/123/messages` against `/channels/:channelId/messages`. */
export function matchRoute(pattern: string, path: string): Record<string, string> | undefined {
  const p = pattern.split('/');
  const s = path.split('/');
  if (p.length !== s.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const seg = p[i] as string;
    const val = s[i] as string;
    if (seg.startsWith(':')) {
      if (val === '') return undefined;
      params[seg.slice(1)] = decodeURIComponent(val);
    } else if (seg !== val) {
      return undefined;
    }
  }
  return params;
}

export interface RateLimitOptions {
  /** Requests allowed per bucket per window. */
  limit: number;
  windowMs: number;
  /** Per-route overrides, keyed `'METHOD /route/:template'`. */
  routes?: Record<string, { limit: number; windowMs: number } | null>;
  /**
   * Discord's extra limit on webhook executes per channel, whatever webhook posts there (about
   * 30 messages per minute). Not part of any bucket's headers: exceeding it is a 429 with
   * `X-RateLimit-Scope: shared`. Default: none.
   */
  webhookMessagesPerChannel?: { limit: number; windowMs: number };
}

/**
 * Approximately what Discord announces in its headers for the routes a bot uses (per channel or
 * per webhook token). Slower than the default: use it to see how the bot behaves under real
 * limits (e.g. coalescing streamed edits); @discordjs/rest queues requests to honour them.
 */
export const DISCORD_LIKE_RATE_LIMITS: RateLimitOptions = {
  limit: 50,
  windowMs: 1000,
  routes: {
    'POST /channels/:channelId/messages': { limit: 5, windowMs: 5000 },
    'PATCH /channels/:channelId/messages/:messageId': { limit: 5, windowMs: 5000 },
    'DELETE /channels/:channelId/messages/:messageId': { limit: 5, windowMs: 5000 },
    'POST /channels/:channelId/typing': { limit: 5, windowMs: 5000 },
    'POST /webhooks/:webhookId/:token': { limit: 5, windowMs: 2000 },
    'PATCH /webhooks/:webhookId/:token/messages/:messageId': { limit: 5, windowMs: 2000 },
    'PATCH /webhooks/:webhookId/:token': { limit: 5, windowMs: 2000 },
    'DELETE /webhooks/:webhookId/:token/messages/:messageId': { limit: 5, windowMs: 2000 },
    'POST /channels/:channelId/webhooks': { limit: 5, windowMs: 5000 },
    'PATCH /webhooks/:webhookId': { limit: 5, windowMs: 2000 },
    'DELETE /webhooks/:webhookId': { limit: 5, windowMs: 2000 },
    'PUT /applications/:appId/commands': { limit: 2, windowMs: 20_000 },
    'PUT /applications/:appId/guilds/:guildId/commands': { limit: 2, windowMs: 20_000 },
    // Discord does not rate limit interaction callbacks per bucket.
    'POST /interactions/:interactionId/:token/callback': null,
  },
  webhookMessagesPerChannel: { limit: 30, windowMs: 60_000 },
};

/**
 * Per-bucket fixed windows, keyed by method + route template + its major parameter (channel,
 * guild, webhook or interaction), like Discord's buckets. Answers truthfully: `remaining` counts
 * down and a request over the limit gets a 429 with `Retry-After`.
 */
export class RateLimiter {
  private readonly windows = new Map<string, { resetAt: number; used: number }>();

  constructor(private readonly opts: RateLimitOptions) {}

  take(method: string, route: string, params: Record<string, string>, now = Date.now()): { headers: Record<string, string>; limited: boolean; retryAfterSec: number } {
    const routeKey = `${method} ${route}`;
    const override = this.opts.routes?.[routeKey];
    if (override === null) return { headers: {}, limited: false, retryAfterSec: 0 };
    const { limit, windowMs } = override ?? this.opts;
    const major = params.channelId ?? params.guildId ?? (params.webhookId ? `${params.webhookId}/${params.token ?? ''}` : undefined) ?? params.interactionId ?? '';
    return this.takeKey(routeKey, major, limit, windowMs, now);
  }

  /** One fixed window keyed `routeKey|major` (also used for limits outside the route table). */
  takeKey(routeKey: string, major: string, limit: number, windowMs: number, now = Date.now()): { headers: Record<string, string>; limited: boolean; retryAfterSec: number } {
    const key = `${routeKey}|${major}`;
    let w = this.windows.get(key);
    if (!w || now >= w.resetAt) {
      w = { resetAt: now + windowMs, used: 0 };
      this.windows.set(key, w);
    }
    const limited = w.used >= limit;
    if (!limited) w.used += 1;
    const resetAfterSec = Math.max(0, (w.resetAt - now) / 1000);
    const bucket = createHash('sha1').update(routeKey).digest('hex').slice(0, 16);
    return {
      limited,
      retryAfterSec: resetAfterSec,
      headers: {
        'x-ratelimit-limit': String(limit),
        'x-ratelimit-remaining': String(Math.max(0, limit - w.used)),
        'x-ratelimit-reset': (w.resetAt / 1000).toFixed(3),
        'x-ratelimit-reset-after': resetAfterSec.toFixed(3),
        'x-ratelimit-bucket': bucket,
        ...(limited ? { 'x-ratelimit-scope': 'user' } : {}),
      },
    };
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (status === 204 || body === undefined) {
    res.writeHead(status === 200 ? 204 : status, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}
