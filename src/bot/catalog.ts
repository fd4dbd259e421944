/**
 * Characters and chats as listed by Voxta's REST API, cached for autocomplete.
 *
 * Discord drops an autocomplete answer that takes longer than 3 s, and users type faster than
 * Voxta may answer, so lookups are bounded by a deadline: a fresh cache answers at once; a stale
 * one answers at once and refreshes in the background; with no cache, the request waits up to the
 * deadline and then answers with nothing rather than time out. One refresh runs at a time.
 */
import { errorInfo, type Logger } from '../log.js';
import type { CharacterSummary, ChatSummary, FetchedBytes, FetchOptions, ScenarioSummary } from '../voxta/rest.js';

/** The REST calls used here (implemented by `VoxtaRest`). */
export interface VoxtaCatalogPort {
  listCharacters(opts?: FetchOptions): Promise<CharacterSummary[]>;
  listChats(characterId: string, opts?: FetchOptions): Promise<ChatSummary[]>;
  fetchBytes(url: string, opts?: FetchOptions): Promise<FetchedBytes>;
  /** Scenarios (`GET /api/scenarios`); optional for callers that have none to offer. */
  listScenarios?(opts?: FetchOptions): Promise<ScenarioSummary[]>;
}

interface Entry<T> {
  value: T | undefined;
  at: number;
  refreshing: Promise<T> | undefined;
}

export interface CatalogOptions {
  ttlMs?: number;
  log: Logger;
  now?: () => number;
}

export class CachedList<T> {
  private entry: Entry<T> = { value: undefined, at: 0, refreshing: undefined };
  constructor(
    private readonly load: () => Promise<T>,
    private readonly ttlMs: number,
    private readonly log: Logger,
    private readonly what: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Fresh value, waiting for Voxta (errors propagate): for commands that must be right. */
  async get(): Promise<T> {
    if (this.entry.value !== undefined && this.now() - this.entry.at < this.ttlMs) return this.entry.value;
    return this.refresh();
  }

  /** Whatever can be had within `deadlineMs`: fresh, stale, or undefined. Never throws. */
  async within(deadlineMs: number): Promise<T | undefined> {
    const e = this.entry;
    if (e.value !== undefined && this.now() - e.at < this.ttlMs) return e.value;
    const refresh = this.refresh().catch((err: unknown) => {
      this.log.debug({ err: errorInfo(err) }, `catalog: refreshing ${this.what} failed`);
      return undefined;
    });
    if (e.value !== undefined) return e.value; // stale now, fresh next time
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), deadlineMs);
    });
    try {
      return await Promise.race([refresh, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  invalidate(): void {
    this.entry.at = 0;
  }

  private refresh(): Promise<T> {
    if (this.entry.refreshing) return this.entry.refreshing;
    const p = this.load()
      .then((v) => {
        this.entry.value = v;
        this.entry.at = this.now();
        return v;
      })
      .finally(() => {
        this.entry.refreshing = undefined;
      });
    this.entry.refreshing = p;
    return p;
  }
}

export interface Choice {
  name: string;
  value: string;
}

export const AUTOCOMPLETE_LIMIT = 25;
/** Leaves room under Discord's 3 s for the round trip. */
export const AUTOCOMPLETE_DEADLINE_MS = 2000;

export class VoxtaCatalog {
  readonly characters: CachedList<CharacterSummary[]>;
  readonly scenarios: CachedList<ScenarioSummary[]>;
  private readonly chats = new Map<string, CachedList<ChatSummary[]>>();
  private readonly ttlMs: number;

  constructor(
    readonly rest: VoxtaCatalogPort,
    private readonly opts: CatalogOptions,
  ) {
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.characters = new CachedList(() => rest.listCharacters({ timeoutMs: 10_000 }), this.ttlMs, opts.log, 'characters', opts.now);
    this.scenarios = new CachedList(async () => (rest.listScenarios ? rest.listScenarios({ timeoutMs: 10_000 }) : []), this.ttlMs, opts.log, 'scenarios', opts.now);
  }

  /** Scenarios whose name contains what was typed (prefix matches first), ≤ 25. */
  async scenarioChoices(typed: string, deadlineMs = AUTOCOMPLETE_DEADLINE_MS): Promise<Choice[]> {
    const list = (await this.scenarios.within(deadlineMs)) ?? [];
    return rank(list, typed).map((s) => ({ name: truncate(s.name, 100), value: s.id }));
  }

  /** A scenario picked (its id) or typed (exact name, then a unique prefix); undefined when none matches. */
  async resolveScenario(input: string): Promise<ScenarioSummary | undefined> {
    return resolveByName(await this.scenarios.get(), input);
  }

  chatsOf(characterId: string): CachedList<ChatSummary[]> {
    let c = this.chats.get(characterId);
    if (!c) {
      c = new CachedList(() => this.rest.listChats(characterId, { timeoutMs: 10_000 }), this.ttlMs, this.opts.log, 'chats', this.opts.now);
      this.chats.set(characterId, c);
    }
    return c;
  }

  /**
   * Characters whose name contains what was typed (prefix matches first), ≤ 25. `explicit`: what
   * to do with characters Voxta marks explicit: list them as the others (`show`, the default),
   * list them marked 🔞 (`mark`), or leave them out (`hide`: where they may not run). `keep`
   * narrows the list further (e.g. characters not in the chat yet).
   */
  async characterChoices(
    typed: string,
    deadlineMs = AUTOCOMPLETE_DEADLINE_MS,
    opts: { explicit?: 'show' | 'mark' | 'hide'; keep?: (c: CharacterSummary) => boolean } = {},
  ): Promise<Choice[]> {
    const explicit = opts.explicit ?? 'show';
    const keep = opts.keep ?? (() => true);
    const list = ((await this.characters.within(deadlineMs)) ?? []).filter((c) => keep(c) && (explicit !== 'hide' || c.explicitContent !== true));
    return rank(list, typed).map((c) => ({ name: truncate(explicit === 'mark' && c.explicitContent === true ? `🔞 ${c.name}` : c.name, 100), value: c.id }));
  }

  /**
   * What the user picked or typed in `character:`: an id from autocomplete, or a name typed
   * without picking (exact, then unique prefix). Undefined when nothing matches.
   */
  async resolveCharacter(input: string): Promise<CharacterSummary | undefined> {
    return resolveByName(await this.characters.get(), input);
  }

  /** Recent chats of a character with readable labels ("Aria — 3 days ago"), ≤ 25. */
  async chatChoices(characterId: string, characterName: string, typed: string, deadlineMs = AUTOCOMPLETE_DEADLINE_MS): Promise<Choice[]> {
    const list = (await this.chatsOf(characterId).within(deadlineMs)) ?? [];
    const q = typed.trim().toLowerCase();
    const now = (this.opts.now ?? Date.now)();
    return list
      .map((chat) => ({ chat, label: chatLabel(chat, characterName, now) }))
      .filter(({ chat, label }) => !q || label.toLowerCase().includes(q) || chat.id.toLowerCase().startsWith(q))
      .slice(0, AUTOCOMPLETE_LIMIT)
      .map(({ chat, label }) => ({ name: truncate(label, 100), value: chat.id }));
  }
}

export function chatLabel(chat: ChatSummary, characterName: string, now: number): string {
  const title = chat.title?.trim() || characterName;
  const when = chat.lastSessionTimestamp > 0 ? `last used ${relativeTime(now - chat.lastSessionTimestamp)}` : chat.createdTimestamp ? `created ${relativeTime(now - chat.createdTimestamp)}` : 'never used';
  const count = typeof chat.messageCount === 'number' ? `, ${chat.messageCount} messages` : '';
  return `${title} — ${when}${count}`;
}

export function relativeTime(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} minute${m === 1 ? '' : 's'} ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} hour${h === 1 ? '' : 's'} ago`;
  const d = Math.round(h / 24);
  if (d < 60) return `${d} day${d === 1 ? '' : 's'} ago`;
  const mo = Math.round(d / 30);
  return `${mo} month${mo === 1 ? '' : 's'} ago`;
}

/** Items whose name contains what was typed, prefix matches first, then by name; ≤ 25. */
function rank<T extends { name: string }>(list: readonly T[], typed: string): T[] {
  const q = typed.trim().toLowerCase();
  return list
    .map((c) => ({ c, i: q ? c.name.toLowerCase().indexOf(q) : 0 }))
    .filter((x) => x.i >= 0)
    .sort((a, b) => (a.i === 0 ? 0 : 1) - (b.i === 0 ? 0 : 1) || a.c.name.localeCompare(b.c.name))
    .slice(0, AUTOCOMPLETE_LIMIT)
    .map(({ c }) => c);
}

/** An id picked from autocomplete, or a name typed without picking (exact, then a unique prefix). */
function resolveByName<T extends { id: string; name: string }>(list: readonly T[], input: string): T | undefined {
  const q = input.trim();
  const lower = q.toLowerCase();
  if (!q) return undefined;
  return (
    list.find((c) => c.id === q) ??
    list.find((c) => c.name.toLowerCase() === lower) ??
    (() => {
      const prefix = list.filter((c) => c.name.toLowerCase().startsWith(lower));
      return prefix.length === 1 ? prefix[0] : undefined;
    })()
  );
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, n - 1) + '…';
}
