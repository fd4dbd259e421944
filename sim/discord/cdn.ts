/**
 * The simulated Discord CDN (cdn.discordapp.com / media.discordapp.net): a separate loopback
 * HTTP server, like the real CDN is a separate host, serving
 *   - attachments at `/attachments/:channelId/:attachmentId/:filename?ex=&is=&hm=&` with Discord's
 *     signed-URL parameters (a URL without a valid signature, or past `ex`, is a 404, so a bot
 *     must use the URL it was given),
 *   - avatars at `/avatars/:id/:hash.(png|webp|jpg|jpeg|gif)` (webhook avatars and per-message
 *     avatar overrides),
 *   - proxied link images at `/external/:key/...` (the `proxy_url` of resolved link embeds).
 * Every request is recorded, and fault rules make it misbehave (wrong Content-Type, a slow body,
 * a body larger than announced, 404, any status) so a bot's bounded downloads can be tested.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../src/log.js';
import { errorInfo } from '../../src/log.js';
import type { SimAttachment } from './state.js';

export type CdnFault =
  /** 404, as for a deleted or expired file. */
  | { kind: 'notFound' }
  /** Any other status (e.g. 500, 503), empty body. */
  | { kind: 'status'; status: number }
  /** The real bytes with a wrong Content-Type header (e.g. text/html for an image). */
  | { kind: 'contentType'; contentType: string }
  /** The real bytes, announced with a correct Content-Length, trickled `chunkBytes` every `intervalMs`. */
  | { kind: 'slowBody'; intervalMs: number; chunkBytes?: number }
  /**
   * A body of `bodyBytes` (the real bytes, then zero filler) while the response announces
   * `contentLength` bytes (default: the real size; a lie) or, with 'none', no length at all (chunked).
   */
  | { kind: 'oversizedBody'; bodyBytes: number; contentLength?: number | 'none' };

export interface CdnFaultRule {
  /** Which requests: a substring of the path+query, a RegExp tested on it, or every request when omitted. */
  match?: string | RegExp;
  fault: CdnFault;
  /** How many requests it applies to (default: until cleared). */
  times?: number;
}

export type CdnResource = 'attachment' | 'avatar' | 'external' | 'unknown';

export interface CdnRequestRecord {
  method: string;
  /** Path and query as requested. */
  url: string;
  path: string;
  query: Record<string, string>;
  resource: CdnResource;
  status: number;
  /** The fault applied, if any. */
  fault: CdnFault['kind'] | null;
  /** Body bytes actually written (updated while a slow body is being sent). */
  bytesSent: number;
  /** The client went away before the body was complete. */
  aborted: boolean;
  at: number;
}

interface StoredFile {
  data: Buffer;
  contentType: string;
}

const SIGNED_URL_TTL_S = 24 * 60 * 60;

export class CdnServer {
  readonly requests: CdnRequestRecord[] = [];
  private readonly server: Server;
  private port = 0;
  private readonly secret = randomBytes(32);
  private readonly avatars = new Map<string, StoredFile>();
  private readonly external = new Map<string, StoredFile>();
  private faults: Array<CdnFaultRule & { left: number }> = [];
  /** Seconds added to "now" when checking `ex` (a test can age every signed URL). */
  private clockSkewS = 0;

  constructor(
    private readonly lookupAttachment: (id: string) => SimAttachment | undefined,
    private readonly log: Logger,
  ) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err: errorInfo(err, true) }, 'discord-sim: CDN handler crashed');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Base URL, for `new Client({ rest: { cdn: sim.cdnUrl } })` (avatar URLs discord.js builds). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A signed attachment URL like Discord's (`ex` = expiry, `is` = issued, both hex seconds; `hm` = signature). */
  attachmentUrl(channelId: string, attachmentId: string, filename: string): string {
    const path = `/attachments/${channelId}/${attachmentId}/${encodeURIComponent(filename)}`;
    const issued = Math.floor(Date.now() / 1000);
    const ex = (issued + SIGNED_URL_TTL_S).toString(16);
    const is = issued.toString(16);
    return `${this.url}${path}?ex=${ex}&is=${is}&hm=${this.sign(path, ex, is)}&`;
  }

  /** Stores an avatar image; returns its URL (`/avatars/:id/:hash.png`). */
  putAvatar(ownerId: string, hash: string, data: Buffer, contentType: string): string {
    this.avatars.set(`${ownerId}/${hash}`, { data, contentType });
    return `${this.url}/avatars/${ownerId}/${hash}.png`;
  }

  /** The bytes of an avatar this CDN serves, if `url` is one of its avatar URLs. */
  avatarBytes(url: string): { data: Buffer; hash: string } | undefined {
    if (!url.startsWith(this.url + '/avatars/')) return undefined;
    const m = /^\/avatars\/(\d+)\/(a?_?[0-9a-f]+)\.\w+$/.exec(new URL(url).pathname);
    const file = m ? this.avatars.get(`${m[1]}/${m[2]}`) : undefined;
    return file && m ? { data: file.data, hash: m[2] as string } : undefined;
  }

  /** Stores a proxied copy of an external image (what Discord's media proxy fetched); returns its proxy URL. */
  putExternal(originalUrl: string, data: Buffer, contentType: string): string {
    const key = randomBytes(12).toString('base64url');
    this.external.set(key, { data, contentType });
    const u = new URL(originalUrl);
    return `${this.url}/external/${key}/${u.protocol.replace(':', '')}/${u.host}${u.pathname}`;
  }

  /** Adds a fault rule (rules are tried in order; the first match applies). */
  addFault(rule: CdnFaultRule): void {
    this.faults.push({ ...rule, left: rule.times ?? Infinity });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** Moves the CDN's clock forward: signed URLs whose `ex` is now past are refused with 404. */
  advanceClock(seconds: number): void {
    this.clockSkewS += seconds;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- internals ----

  private sign(path: string, ex: string, is: string): string {
    return createHmac('sha256', this.secret).update(`${path}|${ex}|${is}`).digest('hex');
  }

  private resolve(url: URL): { resource: CdnResource; file: StoredFile | undefined } {
    const path = url.pathname;
    const parts = path.split('/');
    if (parts[1] === 'attachments' && parts.length === 5) {
      const [, , channelId, id, name] = parts as [string, string, string, string, string];
      const att = this.lookupAttachment(id);
      const ex = url.searchParams.get('ex') ?? '';
      const is = url.searchParams.get('is') ?? '';
      const hm = url.searchParams.get('hm') ?? '';
      const signed = hm.length === 64 && hm === this.sign(path, ex, is);
      const fresh = parseInt(ex, 16) > Date.now() / 1000 + this.clockSkewS;
      const matches = att !== undefined && att.url.includes(`/attachments/${channelId}/${id}/${name}?`);
      if (!att || !signed || !fresh || !matches) return { resource: 'attachment', file: undefined };
      return { resource: 'attachment', file: { data: att.data, contentType: att.contentType ?? 'application/octet-stream' } };
    }
    if (parts[1] === 'avatars' && parts.length === 4) {
      const m = /^(a?_?[0-9a-f]+)\.(png|webp|jpg|jpeg|gif)$/.exec(parts[3] as string);
      return { resource: 'avatar', file: m ? this.avatars.get(`${parts[2]}/${m[1]}`) : undefined };
    }
    if (parts[1] === 'external' && parts.length >= 4) {
      return { resource: 'external', file: this.external.get(parts[2] as string) };
    }
    return { resource: 'unknown', file: undefined };
  }

  private takeFault(target: string): CdnFault | undefined {
    for (const rule of this.faults) {
      const hit = rule.match === undefined || (typeof rule.match === 'string' ? target.includes(rule.match) : rule.match.test(target));
      if (!hit) continue;
      rule.left -= 1;
      if (rule.left <= 0) this.faults = this.faults.filter((r) => r !== rule);
      return rule.fault;
    }
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://cdn');
    const { resource, file } = this.resolve(url);
    const record: CdnRequestRecord = {
      method: req.method ?? 'GET',
      url: url.pathname + url.search,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      resource,
      status: 0,
      fault: null,
      bytesSent: 0,
      aborted: false,
      at: Date.now(),
    };
    this.requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.aborted = true;
    });
    const fault = this.takeFault(record.url);
    record.fault = fault?.kind ?? null;
    const notFound = () => {
      record.status = 404;
      const body = 'This content is no longer available.';
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    };
    if (fault?.kind === 'notFound' || (!file && fault?.kind !== 'status')) {
      if (!file) this.log.debug({ url: record.url }, 'discord-sim: CDN 404 (unknown file, bad signature or expired URL)');
      notFound();
      return;
    }
    if (fault?.kind === 'status') {
      record.status = fault.status;
      res.writeHead(fault.status, { 'content-length': '0' });
      res.end();
      return;
    }
    const data = (file as StoredFile).data;
    const contentType = fault?.kind === 'contentType' ? fault.contentType : (file as StoredFile).contentType;
    const head = req.method === 'HEAD';
    if (fault?.kind === 'oversizedBody') {
      const body = Buffer.alloc(Math.max(fault.bodyBytes, 0));
      data.copy(body, 0, 0, Math.min(data.length, body.length));
      const headers: Record<string, string> = { 'content-type': contentType, connection: 'close' };
      if (fault.contentLength !== 'none') headers['content-length'] = String(fault.contentLength ?? data.length);
      record.status = 200;
      res.writeHead(200, headers);
      if (head) {
        res.end();
        return;
      }
      // Node does not police Content-Length (strictContentLength is off): the extra bytes really go out.
      await this.writeChunked(res, body, 64 * 1024, 0, record);
      return;
    }
    record.status = 200;
    res.writeHead(200, { 'content-type': contentType, 'content-length': String(data.length), 'cache-control': 'public, max-age=31536000' });
    if (head) {
      res.end();
      return;
    }
    if (fault?.kind === 'slowBody') {
      await this.writeChunked(res, data, fault.chunkBytes ?? 1024, fault.intervalMs, record);
      return;
    }
    record.bytesSent = data.length;
    res.end(data);
  }

  /** Writes `body` in chunks (with a pause between them), stopping if the client goes away. */
  private async writeChunked(res: ServerResponse, body: Buffer, chunkBytes: number, intervalMs: number, record: CdnRequestRecord): Promise<void> {
    for (let offset = 0; offset < body.length; offset += chunkBytes) {
      if (res.destroyed) return;
      const chunk = body.subarray(offset, offset + chunkBytes);
      const drained = res.write(chunk);
      record.bytesSent += chunk.length;
      if (intervalMs > 0) await sleep(intervalMs);
      else if (!drained) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }
    }
    if (!res.destroyed) res.end();
  }
}
