/**
 * Where Voxta lives and how to authenticate to it. The only module that holds credentials.
 *
 * - `VOXTA_API_KEY` → `Authorization: Bearer <key>` (hub, REST, TTS downloads, audio socket).
 * - `user:pass@` in `VOXTA_URL` → `Authorization: Basic …` (a reverse proxy in front of Voxta).
 *   When both are configured, the API key wins the `Authorization` header (it is what Voxta itself
 *   checks) and a warning is logged once: one header cannot carry both schemes.
 *
 * Secrets are registered with `registerSecret` on construction so that no log line or error
 * message can quote them, and the base URL this class exposes never contains user info.
 */
import type { Config } from '../config.js';
import { logger, registerSecret } from '../log.js';
import { VoxtaUrlError } from './errors.js';

export interface VoxtaEndpointOptions {
  /** Base URL; user info in it is taken as Basic auth and removed. */
  url: URL | string;
  apiKey?: string | undefined;
  basicAuth?: { username: string; password: string } | undefined;
}

export class VoxtaEndpoint {
  /** Base URL without credentials, query or hash; the path ends with `/`. */
  readonly baseUrl: URL;
  readonly #apiKey: string | undefined;
  readonly #basic: { username: string; password: string } | undefined;

  constructor(opts: VoxtaEndpointOptions) {
    let url: URL;
    try {
      url = new URL(typeof opts.url === 'string' ? opts.url : opts.url.href);
    } catch {
      throw new VoxtaUrlError('The Voxta URL is not a valid URL (expected e.g. http://localhost:5384)');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new VoxtaUrlError(`The Voxta URL must start with http:// or https:// (got ${url.protocol}//)`);
    }
    let basic = opts.basicAuth;
    if (!basic && url.username) {
      basic = { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
    }
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    this.baseUrl = url;
    this.#apiKey = opts.apiKey || undefined;
    this.#basic = basic;
    registerSecret(this.#apiKey);
    if (basic) {
      registerSecret(basic.password);
      registerSecret(basicToken(basic));
    }
    if (this.#apiKey && basic) {
      logger().warn('voxta: both VOXTA_API_KEY and user:password in VOXTA_URL are set; the API key is used, Basic auth is not sent');
    }
  }

  static fromConfig(voxta: Pick<Config['voxta'], 'url' | 'apiKey' | 'basicAuth'>): VoxtaEndpoint {
    return new VoxtaEndpoint({ url: voxta.url, apiKey: voxta.apiKey, basicAuth: voxta.basicAuth });
  }

  /** The API key, for SignalR's `accessTokenFactory` (it sends it as a Bearer header in Node). */
  get apiKey(): string | undefined {
    return this.#apiKey;
  }

  /** True when Basic auth (and no API key) will be sent. */
  get usesBasicAuth(): boolean {
    return !this.#apiKey && this.#basic !== undefined;
  }

  /** Headers that authenticate an HTTP request or WebSocket upgrade; empty for a pre-authorised local server. */
  authHeaders(): Record<string, string> {
    if (this.#apiKey) return { Authorization: `Bearer ${this.#apiKey}` };
    if (this.#basic) return { Authorization: `Basic ${basicToken(this.#basic)}` };
    return {};
  }

  /** `http://host:port/` as text, for messages (never has credentials). */
  get display(): string {
    return this.baseUrl.origin + (this.baseUrl.pathname === '/' ? '' : this.baseUrl.pathname.replace(/\/$/, ''));
  }

  /** SignalR hub URL (http/https; SignalR switches it to ws/wss itself). */
  get hubUrl(): string {
    return new URL('hub', this.baseUrl).href;
  }

  /** A URL on the server for a path such as `/api/chats` (relative to the base path). */
  httpUrl(path: string): URL {
    return new URL(path.replace(/^\//, ''), this.baseUrl);
  }

  /** The ws:// or wss:// URL of a server path. */
  wsUrl(path: string): string {
    const u = this.httpUrl(path);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  }

  /** The microphone socket of a chat session (protocol §4a). */
  audioInputUrl(sessionId: string): string {
    return this.wsUrl(`ws/audio/input/stream?sessionId=${encodeURIComponent(sessionId)}`);
  }

  /**
   * Resolves an audio or thumbnail URL the server sent: relative ones against the base URL,
   * absolute http(s) ones as they are. Anything else (`data:`, `file:`, `silence:`, garbage) is
   * refused with {@link VoxtaUrlError}: the client never fetches non-http URLs.
   */
  resolve(url: string): URL {
    const trimmed = url.trim();
    if (trimmed === '') throw new VoxtaUrlError('Empty URL');
    let out: URL;
    try {
      if (trimmed.startsWith('/') && !trimmed.startsWith('//')) {
        out = this.httpUrl(trimmed);
      } else if (/^https?:\/\//i.test(trimmed)) {
        out = new URL(trimmed);
      } else {
        throw new VoxtaUrlError(`Refusing to fetch a non-http URL (${trimmed.split(':')[0]?.slice(0, 16) ?? '?'}:…)`);
      }
    } catch (err) {
      if (err instanceof VoxtaUrlError) throw err;
      throw new VoxtaUrlError('Invalid URL from Voxta');
    }
    return out;
  }

  /**
   * Whether an absolute URL points at this Voxta server, i.e. may receive our credentials.
   * Credentials are only ever sent to the configured origin.
   */
  isSameOrigin(url: URL): boolean {
    return url.origin === this.baseUrl.origin;
  }
}

function basicToken(b: { username: string; password: string }): string {
  return Buffer.from(`${b.username}:${b.password}`, 'utf8').toString('base64');
}
