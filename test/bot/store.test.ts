import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { DB_FILE_NAME, Store, StoreError } from '../../src/store/store.js';

let dir: string;
const open: Store[] = [];
function openStore(opts: Parameters<typeof Store.open>[1] = {}): Store {
  const s = Store.open(dir, opts);
  open.push(s);
  return s;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vd-store-'));
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const session = {
  guildId: '100000000000000001',
  characterId: 'char-aria',
  characterName: 'Aria',
  chatId: 'chat-1',
  textChannelId: '200000000000000001',
  voiceChannelId: undefined,
  active: true,
};

describe('Store', () => {
  it('creates the data directory and migrates an empty database to the latest version in WAL mode', () => {
    dir = path.join(dir, 'nested', 'data');
    const s = openStore();
    expect(fs.existsSync(path.join(dir, DB_FILE_NAME))).toBe(true);
    expect(s.schemaVersion).toBe(MIGRATIONS.length);
    expect(s.appliedMigrations).toHaveLength(MIGRATIONS.length);
    s.close();
    const raw = new DatabaseSync(path.join(dir, DB_FILE_NAME));
    const mode = raw.prepare('PRAGMA journal_mode').get() as { journal_mode: string };
    raw.close();
    expect(mode.journal_mode).toBe('wal');
  });

  it('keeps data across reopen and applies no migration twice', () => {
    const a = openStore();
    a.saveGuildSession(session);
    a.setVoiceOptOut(session.guildId, 'u1', true);
    a.setSetting(session.guildId, 'mirrorTranscripts', false);
    a.close();
    const b = openStore();
    expect(b.appliedMigrations).toEqual([]);
    expect(b.getGuildSession(session.guildId)).toMatchObject({ ...session, voiceChannelId: undefined });
    expect(b.listActiveGuildSessions().map((r) => r.guildId)).toEqual([session.guildId]);
    expect(b.isVoiceOptedOut(session.guildId, 'u1')).toBe(true);
    expect(b.getBooleanSetting(session.guildId, 'mirrorTranscripts', true)).toBe(false);
  });

  it('upserts a guild session keeping its creation time, and deactivates without deleting', () => {
    let t = 1000;
    const s = openStore({ now: () => t });
    s.saveGuildSession(session);
    t = 2000;
    s.saveGuildSession({ ...session, chatId: 'chat-2', voiceChannelId: '300000000000000001' });
    const rec = s.getGuildSession(session.guildId)!;
    expect(rec).toMatchObject({ chatId: 'chat-2', voiceChannelId: '300000000000000001', createdAt: 1000, updatedAt: 2000 });
    s.setGuildSessionActive(session.guildId, false);
    expect(s.getGuildSession(session.guildId)!.active).toBe(false);
    expect(s.listActiveGuildSessions()).toEqual([]);
  });

  it('rolls a transaction back when it throws', () => {
    const s = openStore();
    s.saveGuildSession(session);
    expect(() =>
      s.transaction(() => {
        s.setGuildSessionActive(session.guildId, false);
        s.linkMessage({ discordMessageId: 'd1', guildId: session.guildId, chatId: 'chat-1', voxtaMessageId: 'v1' });
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(s.getGuildSession(session.guildId)!.active).toBe(true);
    expect(s.findMessageLink('d1')).toBeUndefined();
  });

  it('leaves the schema at the last good version when a migration fails', () => {
    const broken = [...MIGRATIONS, { description: 'broken', sql: 'CREATE TABLE x (a); THIS IS NOT SQL;' }];
    expect(() => openStore({ migrations: broken })).toThrow(StoreError);
    const s = openStore();
    expect(s.schemaVersion).toBe(MIGRATIONS.length);
  });

  it('refuses a database from a newer bot with a plain message', () => {
    const s = openStore();
    s.close();
    const raw = new DatabaseSync(path.join(dir, DB_FILE_NAME));
    raw.exec('UPDATE schema_version SET version = 99');
    raw.close();
    expect(() => openStore()).toThrow(/newer than this bot knows/);
  });

  it('maps Discord message ids to Voxta ids and prunes old and excess links', () => {
    let t = 0;
    const s = openStore({ now: () => t });
    for (let i = 0; i < 10; i++) {
      t = i * 1000;
      s.linkMessage({ discordMessageId: `d${i}`, guildId: 'g1', chatId: 'c', voxtaMessageId: `v${i}` });
    }
    s.linkMessage({ discordMessageId: 'other', guildId: 'g2', chatId: 'c', voxtaMessageId: 'vx' });
    expect(s.findMessageLink('d3')?.voxtaMessageId).toBe('v3');
    t = 10_000;
    // Older than 8.5 s: d0, d1 go; then keep 5 newest per guild: d5..d9 stay.
    const removed = s.pruneMessageLinks(8_500, 5);
    expect(removed).toBe(5);
    expect(s.findMessageLink('d4')).toBeUndefined();
    expect(s.findMessageLink('d5')?.voxtaMessageId).toBe('v5');
    expect(s.findMessageLink('other')?.voxtaMessageId).toBe('vx');
    s.unlinkMessage('d5');
    expect(s.findMessageLink('d5')).toBeUndefined();
  });

  it('stores voice opt-outs per guild and forgets a guild entirely', () => {
    const s = openStore();
    s.saveGuildSession(session);
    s.setVoiceOptOut('g', 'u1', true);
    s.setVoiceOptOut('g', 'u1', true);
    s.setVoiceOptOut('g', 'u2', true);
    s.setVoiceOptOut('g', 'u2', false);
    expect(s.listVoiceOptOuts('g')).toEqual(['u1']);
    expect(s.isVoiceOptedOut('other', 'u1')).toBe(false);
    s.forgetGuild(session.guildId);
    expect(s.getGuildSession(session.guildId)).toBeUndefined();
  });

  it('keeps pending user messages per guild in order across reopen, marks them sent, deletes them, forgets them with the guild', () => {
    let t = 5000;
    const a = openStore({ now: () => t });
    a.saveGuildSession(session);
    const first = a.addPendingMessage({ guildId: session.guildId, chatId: 'chat-1', discordMessageId: 'd1', text: 'first' });
    t = 6000;
    const second = a.addPendingMessage({ guildId: session.guildId, chatId: undefined, discordMessageId: 'd2', text: 'Bob: second' });
    a.addPendingMessage({ guildId: 'other-guild', chatId: 'c9', discordMessageId: 'd3', text: 'elsewhere' });
    a.markPendingMessageSent(first, 'voxta-msg-7');
    a.close();
    const b = openStore();
    expect(b.listPendingMessages(session.guildId)).toEqual([
      { id: first, guildId: session.guildId, chatId: 'chat-1', discordMessageId: 'd1', text: 'first', sent: true, afterMessageId: 'voxta-msg-7', createdAt: 5000 },
      { id: second, guildId: session.guildId, chatId: undefined, discordMessageId: 'd2', text: 'Bob: second', sent: false, afterMessageId: undefined, createdAt: 6000 },
    ]);
    b.deletePendingMessages([first]);
    expect(b.listPendingMessages(session.guildId).map((m) => m.text)).toEqual(['Bob: second']);
    b.forgetGuild(session.guildId);
    expect(b.listPendingMessages(session.guildId)).toEqual([]);
    expect(b.listPendingMessages('other-guild').map((m) => m.text)).toEqual(['elsewhere']);
  });

  it('upgrades a database of the first schema version, keeping its sessions, and adds the pending messages', () => {
    const v1 = openStore({ migrations: MIGRATIONS.slice(0, 1) });
    v1.saveGuildSession(session);
    expect(v1.schemaVersion).toBe(1);
    v1.close();
    const s = openStore();
    expect(s.appliedMigrations).toEqual(MIGRATIONS.slice(1).map((m, i) => `${i + 2}: ${m.description}`));
    expect(s.getGuildSession(session.guildId)).toMatchObject({ chatId: 'chat-1', active: true });
    s.addPendingMessage({ guildId: session.guildId, chatId: 'chat-1', discordMessageId: undefined, text: 'x' });
    expect(s.listPendingMessages(session.guildId)).toHaveLength(1);
  });

  it('reports a closed store instead of crashing the process', () => {
    const s = openStore();
    s.close();
    expect(() => s.getGuildSession('x')).toThrow(StoreError);
  });
});
