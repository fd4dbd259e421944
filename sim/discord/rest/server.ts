/**
 * The REST request pipeline: authenticate (`Authorization: Bot <token>`), match the route table,
 * apply the rate limit, run the handler, answer JSON, and record every request (unknown routes are
 * answered 404 and logged with their path, so a route the bot needs but the simulator lacks is
 * visible at once).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import type { Logger } from '../../../src/log.js';
import { errorInfo } from '../../../src/log.js';
import { Errors, RateLimiter, RestError, matchRoute, parseBody, readBody, sendJson, type RateLimitOptions, type Route, type SimRequest } from './http.js';

export const API_PREFIX = '/api/v10';

export interface RecordedRequest {
  method: string;
  /** Path below `/api/v10` (interaction and webhook tokens included: they are per-interaction). */
  path: string;
  /** The matched route template, or null for an unknown route. */
  route: string | null;
  query: Record<string, string>;
  /** JSON body (or `payload_json` of a multipart body). */
  body: unknown;
  files: Array<{ field: string; filename: string; size: number; contentType: string | undefined }>;
  status: number;
  /** Discord error code and message when the answer was an error. */
  error?: { code: number; message: string };
  at: number;
}

export class RestServer extends EventEmitter<{ request: [RecordedRequest] }> {
  readonly requests: RecordedRequest[] = [];
  private readonly limiter: RateLimiter;

  constructor(
    private readonly routes: Route[],
    private readonly opts: { token: string; rateLimit: RateLimitOptions; log: Logger },
  ) {
    super();
    this.limiter = new RateLimiter(opts.rateLimit);
  }

  /** Requests whose route template matches (e.g. `'POST /channels/:channelId/messages'`). */
  find(methodAndRoute: string): RecordedRequest[] {
    return this.requests.filter((r) => `${r.method} ${r.route}` === methodAndRoute);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const method = (req.method ?? 'GET').toUpperCase();
    const record: RecordedRequest = {
      method,
      path: url.pathname.startsWith(API_PREFIX) ? url.pathname.slice(API_PREFIX.length) : url.pathname,
      route: null,
      query: Object.fromEntries(url.searchParams),
      body: undefined,
      files: [],
      status: 0,
      at: Date.now(),
    };
    let extraHeaders: Record<string, string> = {};
    try {
      const raw = await readBody(req);
      if (!url.pathname.startsWith(API_PREFIX + '/')) throw this.unknownRoute(method, url.pathname);
      const path = record.path;
      let route: Route | undefined;
      let params: Record<string, string> | undefined;
      for (const r of this.routes) {
        if (r.method !== method) continue;
        params = matchRoute(r.pattern, path);
        if (params) {
          route = r;
          break;
        }
      }
      if (!route || !params) throw this.unknownRoute(method, path);
      record.route = route.pattern;
      if (route.auth && req.headers.authorization !== `Bot ${this.opts.token}`) throw Errors.unauthorized();
      const { json, files } = await parseBody(req.headers['content-type'], raw);
      record.body = json;
      record.files = files.map((f) => ({ field: f.field, filename: f.filename, size: f.data.length, contentType: f.contentType }));
      const rl = this.limiter.take(method, route.pattern, params);
      extraHeaders = rl.headers;
      if (rl.limited) {
        extraHeaders['retry-after'] = String(Math.ceil(rl.retryAfterSec));
        this.opts.log.warn({ route: `${method} ${route.pattern}` }, 'discord-sim: rate limit exceeded (429)');
        throw new RestError(429, 0, 'You are being rate limited.');
      }
      const simReq: SimRequest = { method, path, route: route.pattern, params, query: url.searchParams, headers: req.headers, json, files };
      const result = await route.handler(simReq);
      record.status = result.status;
      sendJson(res, result.status, result.body, extraHeaders);
    } catch (err) {
      if (err instanceof RestError) {
        record.status = err.status;
        record.error = { code: err.code, message: err.message };
        if (err.status === 429 && err.retryAfterSec !== undefined) {
          // A limit the handler enforced (not the route bucket): its own headers and wait.
          extraHeaders = { ...extraHeaders, ...err.headers, 'retry-after': String(Math.ceil(err.retryAfterSec)) };
        }
        const body = err.status === 429 ? { message: err.message, retry_after: err.retryAfterSec ?? Number(extraHeaders['retry-after'] ?? 1), global: false } : err.body();
        if (err.status !== 404 || record.route !== null) {
          this.opts.log.debug({ route: `${method} ${record.route ?? record.path}`, status: err.status, code: err.code, msg: err.message }, 'discord-sim: REST error answer');
        }
        sendJson(res, err.status, body, extraHeaders);
      } else {
        record.status = 500;
        this.opts.log.error({ route: `${method} ${record.route ?? record.path}`, err: errorInfo(err, true) }, 'discord-sim: REST handler crashed');
        sendJson(res, 500, { message: '500: Internal Server Error', code: 0 });
      }
    } finally {
      this.requests.push(record);
      this.emit('request', record);
    }
  }

  private unknownRoute(method: string, path: string): RestError {
    this.opts.log.warn({ method, path }, 'discord-sim: unknown REST route (404): the simulator does not implement it');
    return Errors.notFound();
  }
}
