/**
 * Configuration from the environment, validated once at start.
 *
 * Every variable the bot reads is declared here, with its default and what it expects, so that
 * `.env.example` and the README table can be checked against one list. A missing or malformed
 * value becomes a {@link ConfigError} whose message is one plain line naming the variable; the
 * entry points print that line and exit instead of a stack trace.
 */
import path from 'node:path';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const BARGE_IN_MODES = ['off', 'anyone', 'floor'] as const;
export type BargeInMode = (typeof BARGE_IN_MODES)[number];
/** Where characters Voxta marks explicit may run: nowhere, or only in age-restricted channels. */
export const EXPLICIT_CHARACTERS_POLICIES = ['never', 'age-restricted'] as const;
export type ExplicitCharactersPolicy = (typeof EXPLICIT_CHARACTERS_POLICIES)[number];
/** What `/start` does about voice when no voice channel is given: join the invoker's, or stay in text. */
export const START_VOICE_DEFAULTS = ['join', 'text-only'] as const;
export type StartVoiceDefault = (typeof START_VOICE_DEFAULTS)[number];
/** At most `count` per `perSeconds`; undefined = no limit. */
export interface RateLimit {
  count: number;
  perSeconds: number;
}

export interface Config {
  discord: {
    /** Bot token. Empty only when loaded with `requireDiscordToken: false` (doctor, simulators). */
    token: string;
    /** Register commands to this guild only (instant; for development). */
    guildId: string | undefined;
    /** REST base URL; only the offline simulator changes it. */
    apiUrl: string;
    /** Role ids allowed to run state-changing commands besides Manage Server holders. */
    adminRoleIds: string[];
    /** Proxy bots (besides PluralKit and Tupperbox) whose webhook reposts are read as their members' words. */
    proxyBotIds: string[];
    /** Discord's media CDN: pictures members post are downloaded from its host (and media.discordapp.net) only. */
    cdnUrl: string;
  };
  voxta: {
    /** Base URL without credentials. */
    url: URL;
    apiKey: string | undefined;
    /** Basic-auth user info taken out of VOXTA_URL (reverse proxies). */
    basicAuth: { username: string; password: string } | undefined;
    maxChats: number;
    maxVoiceSessions: number;
    /** Offer pictures members post to Voxta's vision (capture requests). */
    vision: boolean;
  };
  voice: {
    endOfUtteranceMs: number;
    floorHangoverMs: number;
    bargeIn: BargeInMode;
    bargeInMinMs: number;
    bargeInGraceMs: number;
    mirrorTranscripts: boolean;
    optOutRoleId: string | undefined;
  };
  /**
   * Defaults of the per-server settings (`/config`): each server may override them; these apply
   * where it has not.
   */
  server: {
    /** Roles whose members may talk to the character; empty = everyone. */
    chatRoleIds: string[];
    /** Text turns per member (token bucket); undefined = no limit. */
    textRate: RateLimit | undefined;
    /** Spoken utterances per member; undefined = no limit. */
    voiceRate: RateLimit | undefined;
    /** Turns waiting for the character per server, beyond which new ones are refused. */
    maxQueuedTurns: number;
    explicitCharacters: ExplicitCharactersPolicy;
    startVoice: StartVoiceDefault;
  };
  health: { port: number; host: string };
  logLevel: LogLevel;
  dataDir: string;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly expected: string,
  ) {
    super(`Configuration error: ${variable} ${expected}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number between ${min} and ${max} (got "${raw}")`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max} (got ${n})`);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = str(env, name)?.toLowerCase();
  if (raw === undefined) return def;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, `must be true or false (got "${raw}")`);
}

function oneOf<T extends string>(env: Env, name: string, def: T, allowed: readonly T[]): T {
  const raw = str(env, name)?.toLowerCase();
  if (raw === undefined) return def;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(name, `must be one of ${allowed.join(', ')} (got "${raw}")`);
  }
  return raw as T;
}

function snowflakes(env: Env, name: string): string[] {
  const raw = str(env, name);
  if (raw === undefined) return [];
  const ids = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const id of ids) {
    if (!/^\d{15,21}$/.test(id)) throw new ConfigError(name, `must be a comma-separated list of Discord ids (got "${id}")`);
  }
  return ids;
}

function snowflake(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw !== undefined && !/^\d{15,21}$/.test(raw)) throw new ConfigError(name, `must be a Discord id, 15 to 21 digits (got "${raw}")`);
  return raw;
}

/**
 * A rate as people write it: `6/30s`, `6 per 30 seconds`, `12/min`, `20 per minute`, `3/1h`; `off`
 * (or `none`, `0`) for no limit. Returns the rate, `'off'`, or undefined when it cannot be read.
 */
export function parseRate(raw: string): RateLimit | 'off' | undefined {
  const t = raw.trim().toLowerCase();
  if (['off', 'none', 'no', 'unlimited', '0'].includes(t)) return 'off';
  const m = /^(\d{1,4})\s*(?:\/|per|every|a|an)\s*(\d{1,5})?\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?$/.exec(t);
  if (!m) return undefined;
  const count = Number(m[1]);
  const amount = m[2] === undefined ? 1 : Number(m[2]);
  const unit = m[3] ?? (m[2] === undefined ? undefined : 's');
  if (unit === undefined) return undefined;
  const seconds = amount * (unit.startsWith('h') ? 3600 : unit.startsWith('m') ? 60 : 1);
  if (count < 1 || seconds < 1 || seconds > 86_400) return undefined;
  return { count, perSeconds: seconds };
}

/** `6 per 30 seconds`, `12 per minute`. */
export function describeRate(rate: RateLimit | undefined): string {
  if (!rate) return 'no limit';
  const { count, perSeconds: s } = rate;
  const per = s === 60 ? 'minute' : s === 3600 ? 'hour' : s === 1 ? 'second' : s % 3600 === 0 ? `${s / 3600} hours` : s % 60 === 0 ? `${s / 60} minutes` : `${s} seconds`;
  return `${count} per ${per}`;
}

function rate(env: Env, name: string, def: RateLimit | undefined): RateLimit | undefined {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const r = parseRate(raw);
  if (r === undefined) throw new ConfigError(name, `must be a rate such as 6/30s or 12/min, or off (got "${raw}")`);
  return r === 'off' ? undefined : r;
}

function httpUrl(env: Env, name: string, def: string): URL {
  const raw = str(env, name) ?? def;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Never echo the raw value: it may carry credentials.
    throw new ConfigError(name, 'must be an http:// or https:// URL, e.g. http://localhost:5384');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(name, `must start with http:// or https:// (got ${url.protocol}//)`);
  }
  return url;
}

export interface LoadConfigOptions {
  /** The bot needs a token; `npm run doctor` and the simulators do not. */
  requireDiscordToken?: boolean;
}

/** Reads and validates the configuration. Throws {@link ConfigError} on the first bad value. */
export function loadConfig(env: Env = process.env, opts: LoadConfigOptions = {}): Config {
  const requireToken = opts.requireDiscordToken ?? true;
  const token = str(env, 'DISCORD_TOKEN') ?? '';
  if (requireToken && token === '') {
    throw new ConfigError('DISCORD_TOKEN', 'is missing: set it to the bot token from the Discord Developer Portal (Bot → Reset Token)');
  }
  if (token !== '' && !/^[A-Za-z0-9._-]{20,}$/.test(token)) {
    throw new ConfigError('DISCORD_TOKEN', 'is malformed: expected the bot token as shown in the Developer Portal, without "Bot " or quotes');
  }

  const rawVoxta = httpUrl(env, 'VOXTA_URL', 'http://localhost:5384');
  const basicAuth = rawVoxta.username
    ? { username: decodeURIComponent(rawVoxta.username), password: decodeURIComponent(rawVoxta.password) }
    : undefined;
  const voxtaUrl = new URL(rawVoxta.href);
  voxtaUrl.username = '';
  voxtaUrl.password = '';
  voxtaUrl.hash = '';
  voxtaUrl.search = '';
  if (!voxtaUrl.pathname.endsWith('/')) voxtaUrl.pathname += '/';

  const apiUrl = httpUrl(env, 'DISCORD_API_URL', 'https://discord.com/api').href.replace(/\/$/, '');

  return {
    discord: {
      token,
      guildId: snowflake(env, 'DISCORD_GUILD_ID'),
      apiUrl,
      adminRoleIds: snowflakes(env, 'ADMIN_ROLE_IDS'),
      proxyBotIds: snowflakes(env, 'PROXY_BOT_IDS'),
      cdnUrl: httpUrl(env, 'DISCORD_CDN_URL', 'https://cdn.discordapp.com').href.replace(/\/$/, ''),
    },
    voxta: {
      url: voxtaUrl,
      apiKey: str(env, 'VOXTA_API_KEY'),
      basicAuth,
      maxChats: int(env, 'VOXTA_MAX_CHATS', 2, 1, 100),
      maxVoiceSessions: int(env, 'VOXTA_MAX_VOICE_SESSIONS', 1, 0, 100),
      vision: bool(env, 'VOXTA_VISION', true),
    },
    voice: {
      endOfUtteranceMs: int(env, 'END_OF_UTTERANCE_MS', 700, 200, 5000),
      floorHangoverMs: int(env, 'FLOOR_HANGOVER_MS', 200, 0, 5000),
      bargeIn: oneOf<BargeInMode>(env, 'BARGE_IN', 'anyone', BARGE_IN_MODES),
      bargeInMinMs: int(env, 'BARGE_IN_MIN_MS', 400, 0, 10_000),
      bargeInGraceMs: int(env, 'BARGE_IN_GRACE_MS', 300, 0, 10_000),
      mirrorTranscripts: bool(env, 'MIRROR_TRANSCRIPTS', true),
      optOutRoleId: snowflake(env, 'OPT_OUT_ROLE_ID'),
    },
    server: {
      chatRoleIds: snowflakes(env, 'CHAT_ROLE_IDS'),
      textRate: rate(env, 'TEXT_RATE_LIMIT', { count: 6, perSeconds: 30 }),
      voiceRate: rate(env, 'VOICE_RATE_LIMIT', { count: 15, perSeconds: 60 }),
      maxQueuedTurns: int(env, 'MAX_QUEUED_TURNS', 10, 1, 1000),
      explicitCharacters: oneOf<ExplicitCharactersPolicy>(env, 'EXPLICIT_CHARACTERS', 'never', EXPLICIT_CHARACTERS_POLICIES),
      startVoice: oneOf<StartVoiceDefault>(env, 'START_VOICE', 'join', START_VOICE_DEFAULTS),
    },
    health: {
      port: int(env, 'HEALTH_PORT', 8080, 0, 65535),
      host: str(env, 'HEALTH_HOST') ?? '0.0.0.0',
    },
    logLevel: oneOf<LogLevel>(env, 'LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    dataDir: path.resolve(str(env, 'DATA_DIR') ?? './data'),
  };
}
