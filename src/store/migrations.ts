/**
 * Ordered schema migrations. Each entry moves the database from version `index` to `index + 1`.
 *
 * Never edit a migration that has shipped: add a new one. The store applies the missing ones in
 * order, each in its own transaction together with the version bump, so a failure leaves the
 * database at the last good version.
 */
export interface Migration {
  /** What the migration does, for the log. */
  readonly description: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    description: 'guild sessions, message-id map, voice opt-outs, guild settings',
    sql: `
      CREATE TABLE guild_sessions (
        guild_id          TEXT PRIMARY KEY,
        character_id      TEXT NOT NULL,
        character_name    TEXT NOT NULL,
        chat_id           TEXT,
        text_channel_id   TEXT NOT NULL,
        voice_channel_id  TEXT,
        active            INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL
      );
      CREATE INDEX guild_sessions_active ON guild_sessions (active);

      CREATE TABLE message_map (
        discord_message_id TEXT PRIMARY KEY,
        guild_id           TEXT NOT NULL,
        chat_id            TEXT NOT NULL,
        voxta_message_id   TEXT NOT NULL,
        created_at         INTEGER NOT NULL
      );
      CREATE INDEX message_map_guild_created ON message_map (guild_id, created_at);

      CREATE TABLE voice_opt_outs (
        guild_id   TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (guild_id, user_id)
      );

      CREATE TABLE guild_settings (
        guild_id TEXT NOT NULL,
        key      TEXT NOT NULL,
        value    TEXT NOT NULL,
        PRIMARY KEY (guild_id, key)
      );
    `,
  },
  {
    description: 'pending user messages (typed while the chat was not reachable; delivered once, after a restart too)',
    sql: `
      CREATE TABLE pending_messages (
        id                 INTEGER PRIMARY KEY AUTOINCREMENT,
        guild_id           TEXT NOT NULL,
        chat_id            TEXT,
        discord_message_id TEXT,
        text               TEXT NOT NULL,
        sent               INTEGER NOT NULL DEFAULT 0 CHECK (sent IN (0, 1)),
        after_message_id   TEXT,
        created_at         INTEGER NOT NULL
      );
      CREATE INDEX pending_messages_guild ON pending_messages (guild_id, id);
    `,
  },
  {
    description: 'the cast of a chat (characters, scenario) and the bot\'s channel webhooks (characters post as themselves)',
    sql: `
      ALTER TABLE guild_sessions ADD COLUMN cast_json TEXT;
      ALTER TABLE guild_sessions ADD COLUMN scenario_id TEXT;
      ALTER TABLE guild_sessions ADD COLUMN scenario_name TEXT;

      CREATE TABLE channel_webhooks (
        webhook_id    TEXT PRIMARY KEY,
        guild_id      TEXT NOT NULL,
        channel_id    TEXT NOT NULL,
        token         TEXT NOT NULL,
        persona_key   TEXT,
        name          TEXT NOT NULL,
        avatar_key    TEXT NOT NULL DEFAULT '',
        last_used_at  INTEGER NOT NULL,
        created_at    INTEGER NOT NULL
      );
      CREATE INDEX channel_webhooks_channel ON channel_webhooks (channel_id, last_used_at);
    `,
  },
  {
    description: 'members blocked from talking to the character, per guild; message links findable by Voxta id',
    sql: `
      CREATE TABLE member_blocks (
        guild_id   TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (guild_id, user_id)
      );
      CREATE INDEX message_map_voxta ON message_map (chat_id, voxta_message_id);
    `,
  },
];
