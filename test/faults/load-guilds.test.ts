/**
 * Load: 20 guilds issue commands at the same moment against one production bot. Every command
 * gets its answer within Discord's limits; with VOXTA_MAX_CHATS=2 exactly two chats start and
 * the other 18 guilds get the plain capacity sentence, visible only to the admin who asked
 * (ephemeral). Nothing is left half-started: the refused guilds have no stored session, no
 * Voxta session, and can still talk to the bot (/status answers everywhere).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SimChannelHandle, SimMemberHandle } from '../../sim/discord/index.js';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { startE2E, type E2EEnv } from '../harness/env.js';
import { answer, storedSessions } from './helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const CAPACITY = 'Voxta already runs 2 chats, the most it allows (VOXTA_MAX_CHATS). Try again when another server has stopped its chat.';

describe('load: 20 guilds at once', () => {
  it('answers every guild; exactly VOXTA_MAX_CHATS=2 chats start, 18 get the capacity sentence (ephemeral)', async () => {
    // The Voxta side allows more: the bot's own admission is what must refuse, in plain words.
    const e = await startE2E({ discord: { voice: false }, voxta: { maxChats: 50 } });
    env = e;
    const guilds: Array<{ id: string; text: SimChannelHandle; admin: SimMemberHandle }> = [{ id: e.guild.id, text: e.text, admin: e.admin }];
    for (let i = 1; i < 20; i++) {
      const g = e.discord.addGuild({ name: `Server ${i + 1}` });
      guilds.push({ id: g.id, text: g.addTextChannel('general'), admin: g.addMember({ username: `admin${i}`, permissions: 'admin' }) });
    }
    const bot = await e.spawnBot({ env: { VOXTA_MAX_CHATS: '2' } }); // global commands: every guild
    await e.discord.waitForBotReady(15_000);
    await e.discord.waitForCommands(['start', 'status'], undefined, 15_000);

    const handles = await Promise.all(guilds.map((g) => g.admin.runCommand(g.text.id, 'start', { character: ARIA_ID })));
    const answers = await Promise.all(handles.map((h) => answer(h, 30_000)));
    // Every interaction was acknowledged in time (none expired at Discord's 3 s limit).
    expect(handles.filter((h) => h.expired)).toHaveLength(0);

    const started = answers.map((a, i) => ({ a, g: guilds[i]! })).filter(({ a }) => a.embeds[0]?.title === 'Started: Aria');
    const refused = answers.map((a, i) => ({ a, g: guilds[i]! })).filter(({ a }) => a.content === CAPACITY);
    expect(started).toHaveLength(2);
    expect(refused).toHaveLength(18);
    expect(refused.every(({ a }) => a.ephemeral)).toBe(true);
    expect(started.every(({ a }) => !a.ephemeral)).toBe(true);

    // Exactly two chats run on Voxta and in the store; the refused guilds left nothing behind.
    const voxta = e.voxta!;
    expect(voxta.sessions().filter((s) => s.state === 'active')).toHaveLength(2);
    expect(voxta.received.filter((m) => m.payload.$type === 'startChat')).toHaveLength(2);
    const active = storedSessions(e.dataDir).filter((s) => s.active === 1);
    expect(active.map((s) => s.guild_id).sort()).toEqual(started.map(({ g }) => g.id).sort());

    // A second wave: every guild asks /status at once and every one is answered.
    const statusHandles = await Promise.all(guilds.map((g) => g.admin.runCommand(g.text.id, 'status')));
    const statuses = await Promise.all(statusHandles.map((h) => answer(h, 30_000)));
    expect(statusHandles.filter((h) => h.expired)).toHaveLength(0);
    expect(statuses.every((s) => (s.embeds[0] ?? s.content) !== undefined)).toBe(true);
    const sessionField = (i: number) => JSON.stringify(statuses[i]!.embeds[0] ?? {});
    for (let i = 0; i < guilds.length; i++) {
      const isStarted = started.some(({ g }) => g.id === guilds[i]!.id);
      expect(sessionField(i)).toContain(isStarted ? 'running' : 'no chat running');
    }
    // The started chats work.
    for (const { g } of started) g.admin.say(g.text.id, `hello from ${g.id}`);
    for (const { g } of started) {
      await e.discord.waitForMessage(g.text.id, (m) => m.authorId === e.discord.botUserId && m.content.includes(`You said: hello from ${g.id}`), 10_000);
    }
    expect(bot.exit).toBeUndefined();
  }, 60_000);

  it('when Voxta itself is full (its cap 2, the bot allows 20), the other 18 guilds are told plainly and nothing is left half-started', async () => {
    const e = await startE2E({ discord: { voice: false }, voxta: { maxChats: 2, capacityDelayMs: 50 } });
    env = e;
    const guilds: Array<{ id: string; text: SimChannelHandle; admin: SimMemberHandle }> = [{ id: e.guild.id, text: e.text, admin: e.admin }];
    for (let i = 1; i < 20; i++) {
      const g = e.discord.addGuild({ name: `Server ${i + 1}` });
      guilds.push({ id: g.id, text: g.addTextChannel('general'), admin: g.addMember({ username: `admin${i}`, permissions: 'admin' }) });
    }
    const bot = await e.spawnBot({ env: { VOXTA_MAX_CHATS: '20' } });
    await e.discord.waitForBotReady(15_000);
    await e.discord.waitForCommands(['start'], undefined, 15_000);

    const handles = await Promise.all(guilds.map((g) => g.admin.runCommand(g.text.id, 'start', { character: ARIA_ID })));
    const answers = await Promise.all(handles.map((h) => answer(h, 30_000)));
    expect(handles.filter((h) => h.expired)).toHaveLength(0);
    const started = answers.filter((a) => a.embeds[0]?.title === 'Started: Aria');
    const refused = answers.filter((a) => a.embeds[0]?.title !== 'Started: Aria');
    expect(started).toHaveLength(2);
    expect(refused).toHaveLength(18);
    // Voxta's own refusal ("Cannot start more than 2 concurrent chats") or its "another chat is
    // still starting" answer, each turned into one plain sentence, shown only to the asker.
    const sentences = new Set(refused.map((a) => a.content));
    for (const s of sentences) {
      expect([
        'Voxta already runs 2 chats, the most it allows. Stop one (here with /stop, or in the Voxta app) and try again.',
        'Voxta is busy starting or closing another chat. Try again in a few seconds.',
      ]).toContain(s);
    }
    expect(refused.every((a) => a.ephemeral)).toBe(true);
    expect(e.voxta!.sessions().filter((s) => s.state === 'active')).toHaveLength(2);
    expect(storedSessions(e.dataDir).filter((s) => s.active === 1)).toHaveLength(2);
    expect(bot.exit).toBeUndefined();
  }, 60_000);
});
