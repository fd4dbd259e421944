/**
 * Per-server settings (`/config`): what each one is, how a value typed by an admin is read and
 * checked (a refusal is one plain sentence), how it is stored (SQLite `guild_settings`, one row per
 * setting a server changed) and where the value in force comes from: the server's own setting, or
 * the default from the environment.
 *
 * `transcripts` shares its row (`mirrorTranscripts`) with `/transcripts on|off`, so both commands
 * always agree. A stored value this version cannot read (written by hand, or by a newer version)
 * counts as unset: the default applies and the log says so.
 */
import {
  BARGE_IN_MODES,
  describeRate,
  EXPLICIT_CHARACTERS_POLICIES,
  parseRate,
  START_VOICE_DEFAULTS,
  type BargeInMode,
  type Config,
  type ExplicitCharactersPolicy,
  type RateLimit,
  type StartVoiceDefault,
} from '../config.js';
import { errorInfo, type Logger } from '../log.js';
import type { GuildSettingKey, Store } from '../store/store.js';
import type { Choice } from './catalog.js';
import { UserFacingError } from './user-errors.js';

export const SETTING_NAMES = ['barge-in', 'transcripts', 'chat-roles', 'text-rate', 'voice-rate', 'queue-limit', 'explicit-characters', 'start-voice'] as const;
export type SettingName = (typeof SETTING_NAMES)[number];

export interface SettingValues {
  'barge-in': BargeInMode;
  transcripts: boolean;
  /** Empty: everyone may talk. */
  'chat-roles': string[];
  /** Undefined: no limit. */
  'text-rate': RateLimit | undefined;
  'voice-rate': RateLimit | undefined;
  'queue-limit': number;
  'explicit-characters': ExplicitCharactersPolicy;
  'start-voice': StartVoiceDefault;
}

/** What a value is read against: the server's roles (for `chat-roles`). */
export interface SettingContext {
  guildId: string;
  roles?: ReadonlyArray<{ id: string; name: string; managed?: boolean }>;
}

interface SettingSpec<T> {
  readonly name: SettingName;
  readonly key: GuildSettingKey;
  /** The environment variable that sets the default. */
  readonly env: string;
  /** One line for `/config show` and the command's option list. */
  readonly summary: string;
  fromConfig(config: Config): T;
  /** Reads what an admin typed; throws {@link UserFacingError} with a plain sentence. */
  parse(raw: string, ctx: SettingContext): T;
  serialize(value: T): string;
  /** Undefined when the stored text cannot be read. */
  deserialize(stored: string): { value: T } | undefined;
  show(value: T): string;
  /** Values offered while typing. */
  suggestions(ctx: SettingContext): string[];
}

function oneOfSpec<T extends string>(
  name: SettingName,
  key: GuildSettingKey,
  env: string,
  summary: string,
  allowed: readonly T[],
  fromConfig: (c: Config) => T,
  explain: string,
): SettingSpec<T> {
  return {
    name,
    key,
    env,
    summary,
    fromConfig,
    parse(raw) {
      const v = raw.trim().toLowerCase().replace(/\s+/g, '-');
      if ((allowed as readonly string[]).includes(v)) return v as T;
      throw new UserFacingError(`${name} must be ${orList(allowed)} (${explain}).`);
    },
    serialize: (v) => v,
    deserialize: (s) => ((allowed as readonly string[]).includes(s) ? { value: s as T } : undefined),
    show: (v) => v,
    suggestions: () => [...allowed],
  };
}

function rateSpec(name: 'text-rate' | 'voice-rate', key: GuildSettingKey, env: string, summary: string, what: string, examples: string[], fromConfig: (c: Config) => RateLimit | undefined): SettingSpec<RateLimit | undefined> {
  return {
    name,
    key,
    env,
    summary,
    fromConfig,
    parse(raw) {
      const r = parseRate(raw);
      if (r === undefined) throw new UserFacingError(`${name} must be a number of ${what} per time, such as ${examples.join(' or ')}, or off.`);
      if (r !== 'off' && r.count > 1000) throw new UserFacingError(`${name} allows at most 1000 ${what} per period; use off for no limit.`);
      return r === 'off' ? undefined : r;
    },
    serialize: (v) => (v ? `${v.count}/${v.perSeconds}s` : 'off'),
    deserialize(s) {
      const r = parseRate(s);
      return r === undefined ? undefined : { value: r === 'off' ? undefined : r };
    },
    show: (v) => describeRate(v),
    suggestions: () => [...examples, 'off'],
  };
}

const SPECS: { readonly [N in SettingName]: SettingSpec<SettingValues[N]> } = {
  'barge-in': oneOfSpec<BargeInMode>(
    'barge-in',
    'bargeIn',
    'BARGE_IN',
    'Who stops the character by speaking over it: off, anyone, floor (only the member being answered).',
    BARGE_IN_MODES,
    (c) => c.voice.bargeIn,
    'off: nobody, anyone: any member, floor: only the member being answered',
  ),
  transcripts: {
    name: 'transcripts',
    key: 'mirrorTranscripts',
    env: 'MIRROR_TRANSCRIPTS',
    summary: 'Post what is said in voice, and the replies, in the text channel: on or off (same as /transcripts).',
    fromConfig: (c) => c.voice.mirrorTranscripts,
    parse(raw) {
      const v = raw.trim().toLowerCase();
      if (['on', 'true', 'yes'].includes(v)) return true;
      if (['off', 'false', 'no'].includes(v)) return false;
      throw new UserFacingError('transcripts must be on or off.');
    },
    serialize: (v) => String(v),
    deserialize: (s) => (s === 'true' ? { value: true } : s === 'false' ? { value: false } : undefined),
    show: (v) => (v ? 'on' : 'off'),
    suggestions: () => ['on', 'off'],
  },
  'chat-roles': {
    name: 'chat-roles',
    key: 'chatRoleIds',
    env: 'CHAT_ROLE_IDS',
    summary: 'Who may talk to the character: everyone, or members with one of these roles.',
    fromConfig: (c) => c.server.chatRoleIds,
    parse: parseRoles,
    serialize: (v) => v.join(','),
    deserialize(s) {
      if (s === '') return { value: [] };
      const ids = s.split(',');
      return ids.every((id) => /^\d{15,21}$/.test(id)) ? { value: ids } : undefined;
    },
    show: (v) => (v.length === 0 ? 'everyone' : v.map((id) => `<@&${id}>`).join(' ')),
    // Bots' and integrations' own roles are not offered (no member can be given them).
    suggestions: (ctx) => ['everyone', ...(ctx.roles ?? []).filter((r) => r.id !== ctx.guildId && !r.managed).map((r) => r.name)],
  },
  'text-rate': rateSpec(
    'text-rate',
    'textRate',
    'TEXT_RATE_LIMIT',
    'Messages each member may send to the character, such as 6/30s (a burst of 6, then one every 5 seconds); off for no limit.',
    'messages',
    ['6/30s', '10/min', '3/10s'],
    (c) => c.server.textRate,
  ),
  'voice-rate': rateSpec(
    'voice-rate',
    'voiceRate',
    'VOICE_RATE_LIMIT',
    'Spoken turns each member may take, such as 15/min; off for no limit.',
    'spoken turns',
    ['15/min', '30/min', '5/min'],
    (c) => c.server.voiceRate,
  ),
  'queue-limit': {
    name: 'queue-limit',
    key: 'maxQueuedTurns',
    env: 'MAX_QUEUED_TURNS',
    summary: 'Messages that may wait for the character at once in this server (more are refused).',
    fromConfig: (c) => c.server.maxQueuedTurns,
    parse(raw) {
      const t = raw.trim();
      const n = /^\d{1,4}$/.test(t) ? Number(t) : NaN;
      if (!(n >= 1 && n <= 1000)) throw new UserFacingError('queue-limit must be a whole number from 1 to 1000.');
      return n;
    },
    serialize: (v) => String(v),
    deserialize(s) {
      const n = /^\d{1,4}$/.test(s) ? Number(s) : NaN;
      return n >= 1 && n <= 1000 ? { value: n } : undefined;
    },
    show: (v) => `${v} message${v === 1 ? '' : 's'}`,
    suggestions: () => ['5', '10', '20', '50'],
  },
  'explicit-characters': oneOfSpec<ExplicitCharactersPolicy>(
    'explicit-characters',
    'explicitCharacters',
    'EXPLICIT_CHARACTERS',
    'Characters Voxta marks explicit: never, or only in age-restricted channels (text and voice).',
    EXPLICIT_CHARACTERS_POLICIES,
    (c) => c.server.explicitCharacters,
    'never: not in this server, age-restricted: only in age-restricted channels',
  ),
  'start-voice': oneOfSpec<StartVoiceDefault>(
    'start-voice',
    'startVoice',
    'START_VOICE',
    'What /start does without a voice channel: join (the voice channel you are in) or text-only.',
    START_VOICE_DEFAULTS,
    (c) => c.server.startVoice,
    'join: the voice channel of whoever runs /start, text-only: only when a voice channel is given',
  ),
};

function orList(values: readonly string[]): string {
  return values.length <= 2 ? values.join(' or ') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`;
}

const MAX_CHAT_ROLES = 25;

/** `everyone`, or roles as mentions, ids or names (names separated by commas). */
function parseRoles(raw: string, ctx: SettingContext): string[] {
  const text = raw.trim();
  if (/^@?(everyone|all|anyone)$/i.test(text)) return [];
  const known = ctx.roles;
  const ids: string[] = [];
  const rest = text.replace(/<@&(\d{15,21})>/g, (_m, id: string) => {
    ids.push(id);
    return ',';
  });
  for (const token of rest.split(/[,;]/).map((t) => t.trim()).filter(Boolean)) {
    const words = /^\d{15,21}$/.test(token) ? [token] : undefined;
    if (words) {
      ids.push(token);
      continue;
    }
    const name = token.replace(/^@/, '').toLowerCase();
    const byName = known?.find((r) => r.name.toLowerCase() === name);
    if (byName) {
      ids.push(byName.id);
      continue;
    }
    // "@Mods @Regulars" typed without commas: each word a role name.
    const parts = token.split(/\s+/).map((w) => known?.find((r) => r.name.toLowerCase() === w.replace(/^@/, '').toLowerCase()));
    if (parts.length > 1 && parts.every(Boolean)) {
      for (const r of parts) ids.push(r!.id);
      continue;
    }
    throw new UserFacingError(`I cannot find a role called “${token.slice(0, 60)}” in this server. Mention the roles (@Role) or give their names separated by commas, or write everyone.`);
  }
  const unique = [...new Set(ids)];
  if (unique.includes(ctx.guildId)) return []; // the @everyone role
  if (known) {
    const missing = unique.find((id) => !known.some((r) => r.id === id));
    if (missing) throw new UserFacingError(`There is no role with the id ${missing} in this server.`);
  }
  if (unique.length === 0) throw new UserFacingError('Name at least one role, or write everyone.');
  if (unique.length > MAX_CHAT_ROLES) throw new UserFacingError(`chat-roles takes at most ${MAX_CHAT_ROLES} roles.`);
  return unique;
}

export function isSettingName(name: string): name is SettingName {
  return (SETTING_NAMES as readonly string[]).includes(name);
}

export function settingSummary(name: SettingName): string {
  return SPECS[name].summary;
}

export interface SettingInForce<T> {
  value: T;
  /** `server`: this server set it; `default`: the environment's default applies. */
  source: 'server' | 'default';
  /** The environment variable behind the default. */
  env: string;
  /** The value as people read it. */
  shown: string;
}

export class GuildSettings {
  constructor(
    private readonly store: Store,
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  /** The value in force and where it comes from. A value that cannot be read counts as unset. */
  get<N extends SettingName>(guildId: string, name: N): SettingInForce<SettingValues[N]> {
    const spec = SPECS[name] as SettingSpec<SettingValues[N]>;
    let stored: string | undefined;
    try {
      stored = this.store.getSetting(guildId, spec.key);
    } catch (err) {
      this.log.warn({ err: errorInfo(err), guildId, setting: name }, 'settings: reading a server setting failed; using the default');
    }
    if (stored !== undefined) {
      const read = spec.deserialize(stored);
      if (read) return { value: read.value, source: 'server', env: spec.env, shown: spec.show(read.value) };
      this.log.warn({ guildId, setting: name, stored: stored.slice(0, 100) }, 'settings: a stored server setting cannot be read; using the default');
    }
    const value = spec.fromConfig(this.config);
    return { value, source: 'default', env: spec.env, shown: spec.show(value) };
  }

  value<N extends SettingName>(guildId: string, name: N): SettingValues[N] {
    return this.get(guildId, name).value;
  }

  /** Reads, checks and stores what an admin typed; returns the value now in force. */
  set<N extends SettingName>(ctx: SettingContext, name: N, raw: string): SettingInForce<SettingValues[N]> {
    const spec = SPECS[name] as SettingSpec<SettingValues[N]>;
    const value = spec.parse(raw, ctx);
    this.store.setSetting(ctx.guildId, spec.key, spec.serialize(value));
    return { value, source: 'server', env: spec.env, shown: spec.show(value) };
  }

  /** Back to the default; returns the value now in force. */
  reset<N extends SettingName>(guildId: string, name: N): SettingInForce<SettingValues[N]> {
    this.store.deleteSetting(guildId, SPECS[name].key);
    return this.get(guildId, name);
  }

  /** Values offered while typing `/config set <name> value:`, filtered by what was typed. */
  suggestions(ctx: SettingContext, name: SettingName, typed: string): Choice[] {
    const q = typed.trim().toLowerCase();
    return SPECS[name]
      .suggestions(ctx)
      .filter((v) => !q || v.toLowerCase().includes(q))
      .slice(0, 25)
      .map((v) => ({ name: v.slice(0, 100), value: v.slice(0, 100) }));
  }

  // ---- typed shortcuts for the parts that apply the settings ----------------------------------

  bargeIn(guildId: string): BargeInMode {
    return this.value(guildId, 'barge-in');
  }

  chatRoleIds(guildId: string): string[] {
    return this.value(guildId, 'chat-roles');
  }

  textRate(guildId: string): RateLimit | undefined {
    return this.value(guildId, 'text-rate');
  }

  voiceRate(guildId: string): RateLimit | undefined {
    return this.value(guildId, 'voice-rate');
  }

  maxQueuedTurns(guildId: string): number {
    return this.value(guildId, 'queue-limit');
  }

  explicitCharacters(guildId: string): ExplicitCharactersPolicy {
    return this.value(guildId, 'explicit-characters');
  }

  startVoice(guildId: string): StartVoiceDefault {
    return this.value(guildId, 'start-voice');
  }
}
