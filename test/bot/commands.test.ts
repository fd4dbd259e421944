/**
 * Slash-command handlers and the per-guild orchestrator against the Voxta simulator, driven at the
 * interaction boundary (src/commands/types.ts) with a real store, the real Voxta client and REST.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAutocomplete, runCommand } from '../../src/commands/index.js';
import { ARIA_ID, HOLT_ID, startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import { FakeGuild, interaction, makeCore, waitUntil, type CoreHarness } from './fixtures.js';

let sim: VoxtaSim;
let h: CoreHarness;
let guild: FakeGuild;
let general: ReturnType<FakeGuild['addText']>;

beforeEach(async () => {
  sim = await startVoxtaSim({ chunkDelayMs: 1, capacityDelayMs: 50 });
  h = makeCore(sim.url);
  guild = new FakeGuild('110000000000000001', 'Test Server');
  general = guild.addText('general');
  h.guilds.set(guild.id, guild);
});
afterEach(async () => {
  await h.close();
  await sim.close();
});

async function start(g = guild, channelId = general.id, character = 'Aria', invoker = {}) {
  const ctx = interaction(h.core, g, channelId, 'start', { strings: { character }, invoker });
  await runCommand(ctx);
  return ctx;
}

describe('/start', () => {
  it('starts a chat, stores it and answers with an embed carrying the avatar and the chat id', async () => {
    const ctx = await start(guild, general.id, ARIA_ID);
    expect(ctx.deferred).toEqual({ ephemeral: false });
    const reply = ctx.replies.at(-1)!;
    expect(reply.ephemeral).toBeFalsy();
    const embed = reply.embeds![0]!;
    expect(embed.title).toContain('Aria');
    const rec = h.store.getGuildSession(guild.id)!;
    expect(rec).toMatchObject({ characterId: ARIA_ID, characterName: 'Aria', textChannelId: general.id, active: true });
    expect(rec.chatId).toBeTruthy();
    expect(JSON.stringify(embed.fields)).toContain(rec.chatId!);
    expect(embed.thumbnail?.url).toBe('attachment://avatar.png');
    const file = reply.files![0]!;
    expect(file.data.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(sim.sessions().map((s) => s.chatId)).toEqual([rec.chatId]);
    expect(h.core.session(guild.id).state).toBe('active');
  });

  it('posts the character’s greeting of a new chat in the bound channel, and acknowledges it', async () => {
    sim.options.greeting = true;
    await start(guild, general.id, ARIA_ID);
    await waitUntil(() => general.texts().includes('Hi, I am Aria. What shall we talk about?'), 'the greeting');
    await waitUntil(() => sim.received.some((m) => m.payload.$type === 'speechPlaybackComplete'), 'the greeting acknowledged');
    await waitUntil(() => sim.heldSessions().length === 0, 'the session released');
  });

  it('accepts a character name typed without picking from the list', async () => {
    const ctx = await start(guild, general.id, 'captain holt');
    expect(ctx.replies.at(-1)!.embeds![0]!.title).toContain('Captain Holt');
    expect(h.store.getGuildSession(guild.id)!.characterId).toBe(HOLT_ID);
  });

  it('answers an unknown character with an ephemeral sentence and stores nothing', async () => {
    const ctx = await start(guild, general.id, 'Nobody Here');
    expect(ctx.replies.at(-1)).toEqual({ ephemeral: true, content: expect.stringMatching(/^No character named “Nobody Here” on Voxta/) });
    expect(h.store.getGuildSession(guild.id)).toBeUndefined();
    expect(sim.sessions()).toHaveLength(0);
  });

  it('refuses a member without Manage Server or an admin role, and accepts an admin role from the allowlist', async () => {
    const ctx = await start(guild, general.id, 'Aria', { canManageGuild: false, roleIds: ['777000000000000001'] });
    expect(ctx.replies).toEqual([{ ephemeral: true, content: 'You need the Manage Server permission to do that.' }]);
    expect(sim.sessions()).toHaveLength(0);

    await h.close();
    h = makeCore(sim.url, { env: { ADMIN_ROLE_IDS: '777000000000000001' }, guilds: h.guilds });
    const ok = await start(guild, general.id, 'Aria', { canManageGuild: false, roleIds: ['777000000000000001'] });
    expect(ok.replies.at(-1)!.embeds?.[0]?.title).toContain('Aria');
  });

  it('refuses a second chat when VOXTA_MAX_CHATS is reached, in plain words', async () => {
    await h.close();
    h = makeCore(sim.url, { env: { VOXTA_MAX_CHATS: '1' }, guilds: h.guilds });
    await start();
    const other = new FakeGuild('110000000000000002', 'Other Server');
    const otherChannel = other.addText('chat');
    h.guilds.set(other.id, other);
    const ctx = await start(other, otherChannel.id);
    expect(ctx.replies.at(-1)).toEqual({ ephemeral: true, content: expect.stringMatching(/^Voxta already runs 1 chat, the most it allows/) });
    expect(h.store.getGuildSession(other.id)).toBeUndefined();
    expect(h.core.session(other.id).state).toBe('idle');
  });

  it('explains when Voxta itself is full (its own cap is lower than ours)', async () => {
    sim.options.maxChats = 1;
    sim.createChat(ARIA_ID);
    await start();
    const other = new FakeGuild('110000000000000003', 'Other Server');
    const otherChannel = other.addText('chat');
    h.guilds.set(other.id, other);
    const ctx = await start(other, otherChannel.id);
    expect(ctx.replies.at(-1)).toEqual({ ephemeral: true, content: expect.stringMatching(/^Voxta already runs 1 chats?, the most it allows/) });
    expect(h.core.admission.chatCount).toBe(1);
  });

  it('lets exactly one of two simultaneous /start win and keeps the store consistent', async () => {
    const [a, b] = await Promise.all([start(guild, general.id, 'Aria'), start(guild, general.id, 'Captain Holt')]);
    const replies = [a.replies.at(-1)!, b.replies.at(-1)!];
    const winners = replies.filter((r) => r.embeds);
    const losers = replies.filter((r) => r.ephemeral);
    expect(winners).toHaveLength(1);
    expect(losers[0]!.content).toMatch(/already being started/);
    const rec = h.store.getGuildSession(guild.id)!;
    expect(winners[0]!.embeds![0]!.title).toContain(rec.characterName);
    expect(sim.sessions()).toHaveLength(1);
    expect(sim.sessions()[0]!.chatId).toBe(rec.chatId);
  });

  it('says Voxta is not reachable when it is down, and leaves no session behind', async () => {
    await sim.stop();
    const ctx = await start(guild, general.id, ARIA_ID);
    expect(ctx.replies.at(-1)).toEqual({ ephemeral: true, content: expect.stringMatching(/^Voxta is not reachable at the moment/) });
    expect(h.store.getGuildSession(guild.id)).toBeUndefined();
    expect(h.core.admission.chatCount).toBe(0);
    await sim.start();
  });

  it('stops a chat it could not store, and says why in one sentence (no chat runs unseen)', async () => {
    h.store.close();
    const ctx = await start(guild, general.id, ARIA_ID);
    expect(ctx.replies.at(-1)).toEqual({
      ephemeral: true,
      content: 'I could not save this chat in my database (The database is closed), so I did not keep it running. Check the disk and DATA_DIR, then try again.',
    });
    expect(h.core.session(guild.id).state).toBe('idle');
    expect(h.core.admission.chatCount).toBe(0);
    await waitUntil(() => sim.sessions().length === 0, 'the chat to be stopped');
  });

  it('refuses /start while a chat runs', async () => {
    await start();
    const ctx = await start();
    expect(ctx.replies.at(-1)!.content).toMatch(/A chat with Aria is already running in this server\. Use \/stop first\./);
  });
});

describe('/stop, /resume, /status', () => {
  it('stops keeping the record, then resumes the same chat', async () => {
    await start();
    const chatId = h.store.getGuildSession(guild.id)!.chatId;
    const stop = interaction(h.core, guild, general.id, 'stop');
    await runCommand(stop);
    expect(stop.replies.at(-1)!.content).toMatch(/Stopped the chat with Aria/);
    expect(h.store.getGuildSession(guild.id)).toMatchObject({ active: false, chatId });
    await waitUntil(() => sim.sessions().length === 0, 'the Voxta session to close');

    const resume = interaction(h.core, guild, general.id, 'resume');
    await runCommand(resume);
    expect(resume.replies.at(-1)!.embeds![0]!.title).toBe('Resumed: Aria');
    expect(h.store.getGuildSession(guild.id)).toMatchObject({ active: true, chatId });
    expect(sim.sessions().map((s) => s.chatId)).toEqual([chatId]);
  });

  it('/resume with nothing stored says so', async () => {
    const ctx = interaction(h.core, guild, general.id, 'resume');
    await runCommand(ctx);
    expect(ctx.replies.at(-1)).toEqual({ ephemeral: true, content: 'There is no earlier chat to resume in this server. Start one with /start.' });
  });

  it('/resume refuses a chat id that is not one of the character’s chats', async () => {
    await start();
    await runCommand(interaction(h.core, guild, general.id, 'stop'));
    const ctx = interaction(h.core, guild, general.id, 'resume', { strings: { chat: 'not-a-chat' } });
    await runCommand(ctx);
    expect(ctx.replies.at(-1)).toEqual({ ephemeral: true, content: expect.stringMatching(/^No chat with that id for Aria/) });
  });

  it('/stop with nothing running answers ephemerally', async () => {
    const ctx = interaction(h.core, guild, general.id, 'stop');
    await runCommand(ctx);
    expect(ctx.replies).toEqual([{ ephemeral: true, content: 'No chat is running in this server.' }]);
  });

  it('/status shows the session, the Voxta connection and the Message Content state, ephemerally, to anyone', async () => {
    await start();
    const ctx = interaction(h.core, guild, general.id, 'status', { invoker: { canManageGuild: false } });
    await runCommand(ctx);
    const r = ctx.replies.at(-1)!;
    expect(r.ephemeral).toBe(true);
    const fields = Object.fromEntries(r.embeds![0]!.fields!.map((f) => [f.name, f.value]));
    expect(fields.Session).toBe('running');
    expect(fields.Character).toBe('Aria');
    expect(fields['Voxta connection']).toBe('ready');
    expect(fields['Message Content intent']).toMatch(/^available/);
    expect(fields.Capacity).toBe('1 of 2 chats, 0 of 1 voice channels in use');

    h.core.messageContentAvailable = false;
    const again = interaction(h.core, guild, general.id, 'status');
    await runCommand(again);
    const f2 = Object.fromEntries(again.replies.at(-1)!.embeds![0]!.fields!.map((f) => [f.name, f.value]));
    expect(f2['Message Content intent']).toMatch(/^OFF: text bridging is unavailable/);
  });
});

describe('autocomplete', () => {
  it('lists characters filtered by what was typed', async () => {
    let got: Array<{ name: string; value: string }> = [];
    await runAutocomplete({ core: h.core, commandName: 'start', guildId: guild.id, focused: { name: 'character', value: 'ar' }, respond: async (c) => void (got = c) });
    expect(got).toEqual([{ name: 'Aria', value: ARIA_ID }]);
    await runAutocomplete({ core: h.core, commandName: 'start', guildId: guild.id, focused: { name: 'character', value: '' }, respond: async (c) => void (got = c) });
    // Vex is marked explicit: not offered where it may not run (the default allows it nowhere).
    expect(got.map((c) => c.name)).toEqual(['Aria', 'Captain Holt', 'Mira']);
  });

  it('answers with an empty list instead of waiting for a Voxta that does not answer', async () => {
    await h.close();
    const never = { listCharacters: () => new Promise<never>(() => undefined), listChats: () => new Promise<never>(() => undefined), fetchBytes: () => new Promise<never>(() => undefined) };
    h = makeCore(sim.url, { guilds: h.guilds, rest: never });
    let got: unknown;
    await runAutocomplete({ core: h.core, commandName: 'start', guildId: guild.id, focused: { name: 'character', value: 'a' }, respond: async (c) => void (got = c) });
    expect(got).toEqual([]);
  }, 10_000);

  it('lists the stored character’s chats with readable labels for /resume', async () => {
    await start();
    const first = h.store.getGuildSession(guild.id)!.chatId!;
    await runCommand(interaction(h.core, guild, general.id, 'stop'));
    sim.createChat(ARIA_ID, { title: 'Old adventure' });
    let got: Array<{ name: string; value: string }> = [];
    await runAutocomplete({ core: h.core, commandName: 'resume', guildId: guild.id, focused: { name: 'chat', value: '' }, respond: async (c) => void (got = c) });
    expect(got.map((c) => c.value)).toContain(first);
    expect(got.find((c) => c.value === first)!.name).toMatch(/ — last used (just now|\d+ minutes? ago)/);
    expect(got.some((c) => c.name.startsWith('Old adventure — '))).toBe(true);
  });
});
