/**
 * The few Voxta REST calls the bot needs (protocol §1.1, §5.3), over Node's fetch.
 *
 * Every failure becomes a typed error with a plain message: {@link VoxtaAuthError} (401/403),
 * {@link VoxtaHttpError} (other statuses), {@link VoxtaUnreachableError} (refused, DNS, timeout).
 * Credentials go only to the configured Voxta origin, and error messages carry only the path.
 */
import { logger } from '../log.js';
import type { VoxtaEndpoint } from './endpoint.js';
import { asUnreachable, VoxtaAuthError, VoxtaError, VoxtaHttpError, VoxtaServerError } from './errors.js';
import { BODY_CAPS, readBounded } from './http-body.js';
import { isScenarioInfo, normaliseScenario, type ScenarioInfo } from './messages.js';

export interface CharacterSummary {
  id: string;
  name: string;
  description?: string;
  thumbnailUrl?: string;
  /** Voxta's CharactersListItem.explicitContent: the character card is marked explicit. */
  explicitContent?: boolean;
  [k: string]: unknown;
}

/** A scenario from `GET /api/scenarios` (items are Voxta's ScenarioInfo; MC reads id, name, client). */
export interface ScenarioSummary extends ScenarioInfo {
  /** Scenario role name → the character filling it by default (from `roles[].defaultCharacterId`). */
  defaultRoles: Record<string, string>;
}

export interface ChatSummary {
  id: string;
  title?: string;
  characterIds: string[];
  /** The chat's scenario; null (or absent) for a chat without one. */
  scenarioId?: string | null;
  createdTimestamp?: number;
  /** Epoch ms of the last session, 0 when never used. */
  lastSessionTimestamp: number;
  [k: string]: unknown;
}

export interface FetchOptions {
  signal?: AbortSignal;
  /** Per-request deadline (default 15 s). */
  timeoutMs?: number;
  accept?: string;
  /** Largest body accepted (bytes); a larger one is refused while it streams in. */
  maxBytes?: number;
}

export interface FetchedBytes {
  bytes: Uint8Array;
  contentType: string;
  url: string;
}

export class VoxtaRest {
  readonly #log = logger().child({ mod: 'voxta-rest' });

  constructor(
    readonly endpoint: VoxtaEndpoint,
    private readonly defaults: { timeoutMs?: number } = {},
  ) {}

  /** `GET /api/characters`; accepts `{characters:[…]}` or a bare array. `explicitContent` is always a boolean. */
  async listCharacters(opts: FetchOptions = {}): Promise<CharacterSummary[]> {
    const body = await this.getJson('/api/characters', opts);
    const list = Array.isArray(body) ? body : (body as { characters?: unknown })?.characters;
    if (!Array.isArray(list)) throw new VoxtaServerError('GET /api/characters did not return a list of characters');
    return list
      .filter((c): c is CharacterSummary => typeof c?.id === 'string' && typeof c?.name === 'string')
      .map((c) => ({ ...c, explicitContent: c.explicitContent === true }));
  }

  /** `GET /api/scenarios` → `{scenarios:[ScenarioInfo…]}` (MC bot-engine-voxta.ts `loadScenarios`); also a bare array. */
  async listScenarios(opts: FetchOptions = {}): Promise<ScenarioSummary[]> {
    const body = await this.getJson('/api/scenarios', opts);
    const list = Array.isArray(body) ? body : (body as { scenarios?: unknown })?.scenarios;
    if (!Array.isArray(list)) throw new VoxtaServerError('GET /api/scenarios did not return a list of scenarios');
    // Parsed as the hub's ScenarioInfo is (messages.ts), plus the default cast by role.
    return list
      .filter(isScenarioInfo)
      .map(normaliseScenario)
      .map((s) => {
        const defaultRoles: Record<string, string> = {};
        for (const r of s.roles) if (typeof r.defaultCharacterId === 'string') defaultRoles[r.name] = r.defaultCharacterId;
        return { ...s, defaultRoles };
      });
  }

  /** `GET /api/characters/{id}`; undefined when Voxta answers 404. */
  async getCharacter(id: string, opts: FetchOptions = {}): Promise<CharacterSummary | undefined> {
    try {
      const body = await this.getJson(`/api/characters/${encodeURIComponent(id)}`, opts);
      const c = (body as { character?: unknown })?.character ?? body;
      const o = c as Partial<CharacterSummary> | null;
      return o && typeof o.id === 'string' && typeof o.name === 'string' ? (o as CharacterSummary) : undefined;
    } catch (err) {
      if (err instanceof VoxtaHttpError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** `GET /api/chats?characterId=`, most recently used first (`lastSessionTimestamp` desc, then created). */
  async listChats(characterId: string, opts: FetchOptions = {}): Promise<ChatSummary[]> {
    const body = await this.getJson(`/api/chats?characterId=${encodeURIComponent(characterId)}`, opts);
    const list = Array.isArray(body) ? body : (body as { chats?: unknown })?.chats;
    if (!Array.isArray(list)) throw new VoxtaServerError('GET /api/chats did not return a list of chats');
    const chats: ChatSummary[] = [];
    for (const raw of list as Array<Record<string, unknown>>) {
      if (typeof raw?.id !== 'string') continue;
      const characters = Array.isArray(raw.characters) ? raw.characters : [];
      chats.push({
        ...raw,
        id: raw.id,
        title: typeof raw.title === 'string' ? raw.title : undefined,
        characterIds: characters
          .map((c: unknown) => (typeof c === 'string' ? c : typeof (c as { id?: unknown })?.id === 'string' ? (c as { id: string }).id : undefined))
          .filter((x): x is string => x !== undefined),
        scenarioId: typeof raw.scenarioId === 'string' ? raw.scenarioId : null,
        createdTimestamp: timestamp(raw.createdTimestamp ?? raw.created),
        lastSessionTimestamp: timestamp(raw.lastSessionTimestamp ?? raw.lastSession) ?? 0,
      });
    }
    return chats.sort((a, b) => b.lastSessionTimestamp - a.lastSessionTimestamp || (b.createdTimestamp ?? 0) - (a.createdTimestamp ?? 0));
  }

  /** GET JSON from a server path. */
  async getJson(path: string, opts: FetchOptions = {}): Promise<unknown> {
    const res = await this.request(this.endpoint.httpUrl(path), { ...opts, accept: 'application/json' });
    const text = new TextDecoder().decode(await readBounded(res, opts.maxBytes ?? BODY_CAPS.json, `GET ${pathOf(res.url || path)}`));
    try {
      return JSON.parse(text);
    } catch {
      throw new VoxtaServerError(`GET ${pathOf(res.url || path)} did not return JSON`);
    }
  }

  /**
   * Downloads bytes (TTS audio, thumbnails) from a relative or absolute URL the server gave.
   * Credentials are sent only when the URL is on the Voxta origin.
   */
  async fetchBytes(url: string | URL, opts: FetchOptions = {}): Promise<FetchedBytes> {
    const target = typeof url === 'string' ? this.endpoint.resolve(url) : url;
    const res = await this.request(target, opts);
    const buf = await readBounded(res, opts.maxBytes ?? BODY_CAPS.image, `GET ${pathOf(target)}`);
    return { bytes: buf, contentType: res.headers.get('content-type') ?? 'application/octet-stream', url: pathOf(target) };
  }

  private async request(url: URL, opts: FetchOptions): Promise<Response> {
    const timeoutMs = opts.timeoutMs ?? this.defaults.timeoutMs ?? 15_000;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const headers: Record<string, string> = { Accept: opts.accept ?? '*/*' };
    if (this.endpoint.isSameOrigin(url)) Object.assign(headers, this.endpoint.authHeaders());
    const path = pathOf(url);
    let res: Response;
    try {
      try {
        res = await fetch(url, { headers, signal, redirect: 'follow' });
      } catch (first) {
        // A kept-alive socket the server closed meanwhile fails the request without it ever
        // reaching the server; one immediate retry (GETs only) tells that apart from a real outage.
        if (signal.aborted || asUnreachable(first, '')?.reason !== 'network') throw first;
        res = await fetch(url, { headers, signal, redirect: 'follow' });
      }
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason instanceof Error ? opts.signal.reason : new DOMException('Aborted', 'AbortError');
      const unreachable = asUnreachable(timeout.aborted ? Object.assign(new Error('timed out'), { name: 'TimeoutError' }) : err, this.endpoint.display);
      if (unreachable) throw unreachable;
      this.#log.debug({ path, err: String(err) }, 'voxta: request failed');
      throw new VoxtaError(`Request to Voxta (${path}) failed`, { cause: err });
    }
    if (res.status === 401 || res.status === 403) {
      res.body?.cancel().catch(() => undefined);
      throw new VoxtaAuthError(undefined, res.status);
    }
    if (!res.ok) {
      res.body?.cancel().catch(() => undefined);
      throw new VoxtaHttpError(res.status, path);
    }
    return res;
  }
}

/** Path of a URL, for messages: no origin credentials, no query (it may carry tokens). */
export function pathOf(url: URL | string): string {
  try {
    const u = typeof url === 'string' ? new URL(url, 'http://x') : url;
    return u.pathname;
  } catch {
    return '(invalid url)';
  }
}

function timestamp(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string') {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  return undefined;
}
