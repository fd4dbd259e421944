/**
 * Persistent bot state in SQLite (`node:sqlite`, no native add-on): which guild talks to which
 * character and chat, in which channels, whether that session should be resumed on boot; the
 * Discord ↔ Voxta message-id map used for edits and deletions; voice opt-outs, guild settings and
 * members blocked from talking to the character.
 *
 * Every write runs in a transaction. The schema carries a version number and is brought up to
 * date by the ordered {@link MIGRATIONS} when the store opens.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { MIGRATIONS, type Migration } from './migrations.js';

export const DB_FILE_NAME = 'voxta-discord.db';

/** One guild's session as stored. `chatId` is unset until Voxta has created the chat. */
export interface GuildSessionRecord {
  guildId: string;
  characterId: string;
  characterName: string;
  chatId: string | undefined;
  textChannelId: string;
  voiceChannelId: string | undefined;
  /** True while the session should run (and be resumed after a restart). */
  active: boolean;
  /**
   * Everyone who speaks in the chat, the main character first (its id and name are also
   * `characterId`/`characterName`). Absent in records written before group chats.
   */
  cast?: CastEntry[];
  /** The scenario the chat was started from, if any. */
  scenario?: { id: string; name: string };
  createdAt: number;
  updatedAt: number;
}

/** One character of a stored cast. */
export interface CastEntry {
  id: string;
  name: string;
}

/** One of the bot's own webhooks in a channel (characters post through them). */
export interface StoredWebhook {
  id: string;
  guildId: string;
  /** The channel it belongs to (a thread's parent: webhooks live in the parent). */
  channelId: string;
  token: string;
  /** Who it posts as now (a character id); undefined when not known (adopted after a restart). */
  personaKey: string | undefined;
  name: string;
  /** Identifies the avatar uploaded to it (a hash of the image bytes); '' = none. */
  avatarKey: string;
  lastUsedAt: number;
  createdAt: number;
}

export interface MessageLink {
  discordMessageId: string;
  guildId: string;
  chatId: string;
  voxtaMessageId: string;
  createdAt: number;
}

/**
 * A user message handed to Voxta but not yet confirmed stored in the chat (its `update` echo not
 * seen). Kept across restarts so that nothing the channel was promised is lost.
 */
export interface PendingMessage {
  id: number;
  guildId: string;
  /** The chat it was typed for; undefined while a new chat was being started. */
  chatId: string | undefined;
  discordMessageId: string | undefined;
  /** The text as composed for Voxta (sanitised, maybe "Name: text"). */
  text: string;
  /** Written on a live Voxta connection: it may have been stored even without an echo seen. */
  sent: boolean;
  /** Last Voxta message id known when it was written (where its echo must be in the history). */
  afterMessageId: string | undefined;
  createdAt: number;
}

/** Keys of per-guild settings (`mirrorTranscripts` is shared by `/transcripts` and `/config`). */
export type GuildSettingKey =
  | 'mirrorTranscripts'
  | 'bargeIn'
  | 'chatRoleIds'
  | 'textRate'
  | 'voiceRate'
  | 'maxQueuedTurns'
  | 'explicitCharacters'
  | 'startVoice';

export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

interface SessionRow {
  guild_id: string;
  character_id: string;
  character_name: string;
  chat_id: string | null;
  text_channel_id: string;
  voice_channel_id: string | null;
  active: number;
  cast_json?: string | null;
  scenario_id?: string | null;
  scenario_name?: string | null;
  created_at: number;
  updated_at: number;
}

function parseCast(json: string | null | undefined): CastEntry[] | undefined {
  if (!json) return undefined;
  try {
    const v: unknown = JSON.parse(json);
    if (!Array.isArray(v)) return undefined;
    const cast = v.filter((c): c is CastEntry => typeof c === 'object' && c !== null && typeof (c as CastEntry).id === 'string' && typeof (c as CastEntry).name === 'string');
    return cast.length ? cast.map((c) => ({ id: c.id, name: c.name })) : undefined;
  } catch {
    return undefined;
  }
}

function toRecord(row: SessionRow): GuildSessionRecord {
  const cast = parseCast(row.cast_json);
  return {
    ...(cast ? { cast } : {}),
    ...(row.scenario_id ? { scenario: { id: row.scenario_id, name: row.scenario_name ?? '' } } : {}),
    guildId: row.guild_id,
    characterId: row.character_id,
    characterName: row.character_name,
    chatId: row.chat_id ?? undefined,
    textChannelId: row.text_channel_id,
    voiceChannelId: row.voice_channel_id ?? undefined,
    active: row.active === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

interface WebhookRow {
  webhook_id: string;
  guild_id: string;
  channel_id: string;
  token: string;
  persona_key: string | null;
  name: string;
  avatar_key: string;
  last_used_at: number;
  created_at: number;
}

function toWebhook(r: WebhookRow): StoredWebhook {
  return {
    id: r.webhook_id,
    guildId: r.guild_id,
    channelId: r.channel_id,
    token: r.token,
    personaKey: r.persona_key ?? undefined,
    name: r.name,
    avatarKey: r.avatar_key,
    lastUsedAt: r.last_used_at,
    createdAt: r.created_at,
  };
}

export interface StoreOptions {
  /** Clock for timestamps (tests). */
  now?: () => number;
  /** Migrations to apply (tests); defaults to the project's. */
  migrations?: readonly Migration[];
  /**
   * How long a write waits for another connection's lock before failing with SQLITE_BUSY (default
   * {@link DEFAULT_BUSY_TIMEOUT_MS}). node:sqlite is synchronous: the whole process, every guild's
   * audio included, waits this long, so it is short; a failed write is retried by its caller.
   */
  busyTimeoutMs?: number;
}

export const DEFAULT_BUSY_TIMEOUT_MS = 250;

export class Store {
  readonly path: string;
  private readonly db: DatabaseSync;
  private readonly now: () => number;
  private inTransaction = false;
  private closed = false;
  /** Migrations applied by this open (for the start-up log). */
  readonly appliedMigrations: string[] = [];

  private constructor(file: string, opts: StoreOptions) {
    this.path = file;
    this.now = opts.now ?? Date.now;
    this.db = new DatabaseSync(file);
    this.db.exec('PRAGMA journal_mode = WAL');
    this.db.exec('PRAGMA synchronous = NORMAL');
    this.db.exec('PRAGMA foreign_keys = ON');
    this.db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS))}`);
    this.migrate(opts.migrations ?? MIGRATIONS);
  }

  /** Opens (creating the directory and the file if needed) `dataDir/voxta-discord.db`. */
  static open(dataDir: string, opts: StoreOptions = {}): Store {
    try {
      fs.mkdirSync(dataDir, { recursive: true });
    } catch (err) {
      throw new StoreError(`Cannot create the data directory ${dataDir}: ${(err as Error).message}`, { cause: err });
    }
    const file = path.join(dataDir, DB_FILE_NAME);
    try {
      return new Store(file, opts);
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw new StoreError(`Cannot open the database ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  get schemaVersion(): number {
    const row = this.db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
    return row?.version ?? 0;
  }

  private migrate(migrations: readonly Migration[]): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const current = this.schemaVersion;
    if (current > migrations.length) {
      throw new StoreError(
        `The database ${this.path} has schema version ${current}, newer than this bot knows (${migrations.length}); upgrade the bot or use another DATA_DIR`,
      );
    }
    for (let v = current; v < migrations.length; v++) {
      const m = migrations[v]!;
      this.transaction(() => {
        this.db.exec(m.sql);
        this.db.exec('DELETE FROM schema_version');
        this.db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(v + 1);
      });
      this.appliedMigrations.push(`${v + 1}: ${m.description}`);
    }
  }

  /**
   * Runs `fn` in one transaction: committed when it returns, rolled back when it throws.
   * Nested calls join the outer transaction.
   */
  transaction<T>(fn: () => T): T {
    this.assertOpen();
    if (this.inTransaction) return fn();
    this.db.exec('BEGIN IMMEDIATE');
    this.inTransaction = true;
    try {
      const result = fn();
      this.db.exec('COMMIT');
      return result;
    } catch (err) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // The failure that caused the rollback is the one worth reporting.
      }
      throw err;
    } finally {
      this.inTransaction = false;
    }
  }

  private run(sql: string, ...params: SQLInputValue[]): void {
    this.transaction(() => this.db.prepare(sql).run(...params));
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('The database is closed');
  }

  // ---- guild sessions -------------------------------------------------------------------

  getGuildSession(guildId: string): GuildSessionRecord | undefined {
    this.assertOpen();
    const row = this.db.prepare('SELECT * FROM guild_sessions WHERE guild_id = ?').get(guildId) as SessionRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  /** Every guild whose session should be running (resumed on boot). */
  listActiveGuildSessions(): GuildSessionRecord[] {
    this.assertOpen();
    const rows = this.db.prepare('SELECT * FROM guild_sessions WHERE active = 1 ORDER BY updated_at').all() as unknown as SessionRow[];
    return rows.map(toRecord);
  }

  /** Inserts or replaces a guild's session; keeps the original creation time. */
  saveGuildSession(rec: Omit<GuildSessionRecord, 'createdAt' | 'updatedAt'>): GuildSessionRecord {
    const now = this.now();
    this.run(
      `INSERT INTO guild_sessions (guild_id, character_id, character_name, chat_id, text_channel_id, voice_channel_id, active,
                                   cast_json, scenario_id, scenario_name, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (guild_id) DO UPDATE SET
         character_id = excluded.character_id, character_name = excluded.character_name, chat_id = excluded.chat_id,
         text_channel_id = excluded.text_channel_id, voice_channel_id = excluded.voice_channel_id,
         active = excluded.active, cast_json = excluded.cast_json, scenario_id = excluded.scenario_id,
         scenario_name = excluded.scenario_name, updated_at = excluded.updated_at`,
      rec.guildId,
      rec.characterId,
      rec.characterName,
      rec.chatId ?? null,
      rec.textChannelId,
      rec.voiceChannelId ?? null,
      rec.active ? 1 : 0,
      rec.cast?.length ? JSON.stringify(rec.cast.map((c) => ({ id: c.id, name: c.name }))) : null,
      rec.scenario?.id ?? null,
      rec.scenario?.name ?? null,
      now,
      now,
    );
    return this.getGuildSession(rec.guildId)!;
  }

  /** Marks a guild's session running or stopped, keeping the record (so `/resume` works later). */
  setGuildSessionActive(guildId: string, active: boolean): void {
    this.run('UPDATE guild_sessions SET active = ?, updated_at = ? WHERE guild_id = ?', active ? 1 : 0, this.now(), guildId);
  }

  /** Forgets a guild entirely (the bot was removed from it): session, message map, opt-outs, settings. */
  forgetGuild(guildId: string): void {
    this.transaction(() => {
      for (const table of ['guild_sessions', 'message_map', 'voice_opt_outs', 'guild_settings', 'pending_messages', 'channel_webhooks', 'member_blocks']) {
        this.db.prepare(`DELETE FROM ${table} WHERE guild_id = ?`).run(guildId);
      }
    });
  }

  // ---- Discord ↔ Voxta message ids ------------------------------------------------------

  linkMessage(link: Omit<MessageLink, 'createdAt'>): void {
    this.run(
      `INSERT INTO message_map (discord_message_id, guild_id, chat_id, voxta_message_id, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (discord_message_id) DO UPDATE SET chat_id = excluded.chat_id, voxta_message_id = excluded.voxta_message_id`,
      link.discordMessageId,
      link.guildId,
      link.chatId,
      link.voxtaMessageId,
      this.now(),
    );
  }

  findMessageLink(discordMessageId: string): MessageLink | undefined {
    this.assertOpen();
    const row = this.db
      .prepare('SELECT discord_message_id, guild_id, chat_id, voxta_message_id, created_at FROM message_map WHERE discord_message_id = ?')
      .get(discordMessageId) as
      | { discord_message_id: string; guild_id: string; chat_id: string; voxta_message_id: string; created_at: number }
      | undefined;
    if (!row) return undefined;
    return {
      discordMessageId: row.discord_message_id,
      guildId: row.guild_id,
      chatId: row.chat_id,
      voxtaMessageId: row.voxta_message_id,
      createdAt: row.created_at,
    };
  }

  /** The Discord messages that carry this Voxta message (a reply may span several). */
  findMessageLinksByVoxtaId(chatId: string, voxtaMessageId: string): string[] {
    this.assertOpen();
    const rows = this.db
      .prepare('SELECT discord_message_id FROM message_map WHERE chat_id = ? AND voxta_message_id = ? ORDER BY created_at, rowid')
      .all(chatId, voxtaMessageId) as unknown as Array<{ discord_message_id: string }>;
    return rows.map((r) => r.discord_message_id);
  }

  unlinkMessage(discordMessageId: string): void {
    this.run('DELETE FROM message_map WHERE discord_message_id = ?', discordMessageId);
  }

  /**
   * Keeps the map small: drops links older than `maxAgeMs` and, per guild, all but the newest
   * `keepPerGuild`. Returns how many were removed.
   */
  pruneMessageLinks(maxAgeMs: number, keepPerGuild: number): number {
    return this.transaction(() => {
      const cutoff = this.now() - maxAgeMs;
      const byAge = this.db.prepare('DELETE FROM message_map WHERE created_at < ?').run(cutoff);
      const byCount = this.db
        .prepare(
          `DELETE FROM message_map WHERE discord_message_id IN (
             SELECT discord_message_id FROM (
               SELECT discord_message_id, ROW_NUMBER() OVER (PARTITION BY guild_id ORDER BY created_at DESC, rowid DESC) AS n
               FROM message_map)
             WHERE n > ?)`,
        )
        .run(keepPerGuild);
      return Number(byAge.changes) + Number(byCount.changes);
    });
  }

  // ---- pending user messages ---------------------------------------------------------------

  /** Records a user message about to be handed to Voxta; returns its row id. */
  addPendingMessage(m: { guildId: string; chatId: string | undefined; discordMessageId: string | undefined; text: string }): number {
    return this.transaction(() => {
      const res = this.db
        .prepare('INSERT INTO pending_messages (guild_id, chat_id, discord_message_id, text, sent, after_message_id, created_at) VALUES (?, ?, ?, ?, 0, NULL, ?)')
        .run(m.guildId, m.chatId ?? null, m.discordMessageId ?? null, m.text, this.now());
      return Number(res.lastInsertRowid);
    });
  }

  /** The message was written on a live connection, after the Voxta message `afterMessageId`. */
  markPendingMessageSent(id: number, afterMessageId: string | undefined): void {
    this.run('UPDATE pending_messages SET sent = 1, after_message_id = ? WHERE id = ?', afterMessageId ?? null, id);
  }

  /** Voxta confirmed it (or it will never be delivered): forget it. */
  deletePendingMessages(ids: readonly number[]): void {
    if (ids.length === 0) return;
    this.transaction(() => {
      const del = this.db.prepare('DELETE FROM pending_messages WHERE id = ?');
      for (const id of ids) del.run(id);
    });
  }

  /** A guild's pending messages, oldest first. */
  listPendingMessages(guildId: string): PendingMessage[] {
    this.assertOpen();
    const rows = this.db.prepare('SELECT * FROM pending_messages WHERE guild_id = ? ORDER BY id').all(guildId) as unknown as Array<{
      id: number;
      guild_id: string;
      chat_id: string | null;
      discord_message_id: string | null;
      text: string;
      sent: number;
      after_message_id: string | null;
      created_at: number;
    }>;
    return rows.map((r) => ({
      id: r.id,
      guildId: r.guild_id,
      chatId: r.chat_id ?? undefined,
      discordMessageId: r.discord_message_id ?? undefined,
      text: r.text,
      sent: r.sent === 1,
      afterMessageId: r.after_message_id ?? undefined,
      createdAt: r.created_at,
    }));
  }

  // ---- the bot's channel webhooks ------------------------------------------------------------

  /** The bot's webhooks in a channel, least recently used first. */
  listWebhooks(channelId: string): StoredWebhook[] {
    this.assertOpen();
    const rows = this.db.prepare('SELECT * FROM channel_webhooks WHERE channel_id = ? ORDER BY last_used_at, created_at').all(channelId) as unknown as WebhookRow[];
    return rows.map(toWebhook);
  }

  /** One of the bot's webhooks, by id (to recognise its own messages). */
  findWebhook(webhookId: string): StoredWebhook | undefined {
    this.assertOpen();
    const row = this.db.prepare('SELECT * FROM channel_webhooks WHERE webhook_id = ?').get(webhookId) as WebhookRow | undefined;
    return row ? toWebhook(row) : undefined;
  }

  /** Inserts or replaces one of the bot's webhooks. */
  saveWebhook(w: StoredWebhook): void {
    this.run(
      `INSERT INTO channel_webhooks (webhook_id, guild_id, channel_id, token, persona_key, name, avatar_key, last_used_at, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (webhook_id) DO UPDATE SET
         guild_id = excluded.guild_id, channel_id = excluded.channel_id, token = excluded.token, persona_key = excluded.persona_key,
         name = excluded.name, avatar_key = excluded.avatar_key, last_used_at = excluded.last_used_at`,
      w.id,
      w.guildId,
      w.channelId,
      w.token,
      w.personaKey ?? null,
      w.name,
      w.avatarKey,
      w.lastUsedAt,
      w.createdAt,
    );
  }

  deleteWebhook(webhookId: string): void {
    this.run('DELETE FROM channel_webhooks WHERE webhook_id = ?', webhookId);
  }

  // ---- voice opt-outs -------------------------------------------------------------------

  setVoiceOptOut(guildId: string, userId: string, optedOut: boolean): void {
    if (optedOut) {
      this.run('INSERT OR IGNORE INTO voice_opt_outs (guild_id, user_id, created_at) VALUES (?, ?, ?)', guildId, userId, this.now());
    } else {
      this.run('DELETE FROM voice_opt_outs WHERE guild_id = ? AND user_id = ?', guildId, userId);
    }
  }

  isVoiceOptedOut(guildId: string, userId: string): boolean {
    this.assertOpen();
    return this.db.prepare('SELECT 1 FROM voice_opt_outs WHERE guild_id = ? AND user_id = ?').get(guildId, userId) !== undefined;
  }

  listVoiceOptOuts(guildId: string): string[] {
    this.assertOpen();
    const rows = this.db.prepare('SELECT user_id FROM voice_opt_outs WHERE guild_id = ? ORDER BY user_id').all(guildId) as unknown as {
      user_id: string;
    }[];
    return rows.map((r) => r.user_id);
  }

  // ---- settings -------------------------------------------------------------------------

  getSetting(guildId: string, key: GuildSettingKey): string | undefined {
    this.assertOpen();
    const row = this.db.prepare('SELECT value FROM guild_settings WHERE guild_id = ? AND key = ?').get(guildId, key) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  getBooleanSetting(guildId: string, key: GuildSettingKey, fallback: boolean): boolean {
    const v = this.getSetting(guildId, key);
    return v === undefined ? fallback : v === 'true';
  }

  setSetting(guildId: string, key: GuildSettingKey, value: string | boolean): void {
    this.run(
      'INSERT INTO guild_settings (guild_id, key, value) VALUES (?, ?, ?) ON CONFLICT (guild_id, key) DO UPDATE SET value = excluded.value',
      guildId,
      key,
      String(value),
    );
  }

  /** Back to the default (the environment's). */
  deleteSetting(guildId: string, key: GuildSettingKey): void {
    this.run('DELETE FROM guild_settings WHERE guild_id = ? AND key = ?', guildId, key);
  }

  // ---- members blocked from talking to the character -----------------------------------------

  setMemberBlocked(guildId: string, userId: string, blocked: boolean): void {
    if (blocked) {
      this.run('INSERT OR IGNORE INTO member_blocks (guild_id, user_id, created_at) VALUES (?, ?, ?)', guildId, userId, this.now());
    } else {
      this.run('DELETE FROM member_blocks WHERE guild_id = ? AND user_id = ?', guildId, userId);
    }
  }

  isMemberBlocked(guildId: string, userId: string): boolean {
    this.assertOpen();
    return this.db.prepare('SELECT 1 FROM member_blocks WHERE guild_id = ? AND user_id = ?').get(guildId, userId) !== undefined;
  }

  listBlockedMembers(guildId: string): string[] {
    this.assertOpen();
    const rows = this.db.prepare('SELECT user_id FROM member_blocks WHERE guild_id = ? ORDER BY created_at, user_id').all(guildId) as unknown as Array<{ user_id: string }>;
    return rows.map((r) => r.user_id);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  get isOpen(): boolean {
    return !this.closed;
  }
}
