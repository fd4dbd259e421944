/**
 * Fault: the bot process is killed (SIGKILL: no shutdown code runs) in the middle of a reply,
 * with chats running in two guilds, and started again on the same DATA_DIR. Like a real Voxta
 * server (which notices a dead socket late), the simulator keeps the dead connection's chat
 * locked — here until the test releases it, so "the restarted bot meets the lock" is a fact of the
 * scenario, not a race against a busy machine — and the bot must say so once and retry. The SQLite state must be
 * intact, both chats resumed (same chat ids), nothing the users said lost or doubled.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, HOLT_ID } from '../../sim/voxta/index.js';
import { startE2E, type E2EEnv } from '../harness/env.js';
import { answer, botPosts, chatUserTexts, sends, sleep, storedSessions } from './helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('fault: bot killed (SIGKILL) mid-conversation and restarted', () => {
  it('keeps the stored state, resumes both chats after the lock clears, tells each channel once, loses nothing', async () => {
    const e = await startE2E({
      discord: { voice: false },
      voxta: {
        chunkDelayMs: 200,
        reply: (text) => [`Reply to ${text}, part one.`, 'Part two.', 'Part three.', 'Part four.'],
        maxChats: 10,
      },
    });
    env = e;
    const voxta = e.voxta!;
    const other = e.discord.addGuild({ name: 'Second Server' });
    const otherText = other.addTextChannel('chat');
    const otherAdmin = other.addMember({ username: 'boss2', permissions: 'admin' });
    const bot = await e.spawnBot(); // global commands: both guilds
    await e.discord.waitForBotReady(15_000);
    await e.discord.waitForCommands(['start', 'stop'], undefined, 15_000);
    await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    await answer(await otherAdmin.runCommand(otherText.id, 'start', { character: HOLT_ID }));
    const chatId = voxta.sessions().find((s) => s.characterId === ARIA_ID)!.chatId;
    const otherChatId = voxta.sessions().find((s) => s.characterId === HOLT_ID)!.chatId;
    otherAdmin.say(otherText.id, 'o1');
    await e.discord.waitForMessage(otherText.id, (m) => m.authorId === e.discord.botUserId && m.content.includes('Reply to o1') && m.content.includes('Part four'), 10_000);
    const m1 = e.alice.say(e.text.id, 'm1');
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.includes('Reply to m1') && m.content.includes('Part four'), 10_000);
    e.alice.say(e.text.id, 'm2');
    // Killed while the reply to m2 streams.
    await voxta.waitForServerMessage('replyChunk', { match: (p) => String(p.text).startsWith('Reply to m2') }, 10_000);
    const before = storedSessions(e.dataDir);
    expect(before).toHaveLength(2);
    expect(before).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ guild_id: e.guild.id, active: 1, chat_id: chatId, character_id: ARIA_ID, text_channel_id: e.text.id }),
        expect.objectContaining({ guild_id: other.id, active: 1, chat_id: otherChatId, character_id: HOLT_ID, text_channel_id: otherText.id }),
      ]),
    );
    // The dead connection's chats stay locked until released below.
    voxta.holdDeadChatLocks();
    await bot.kill('SIGKILL');
    expect(bot.exit?.signal).toBe('SIGKILL');

    // The database survived the crash as it was.
    expect(storedSessions(e.dataDir)).toEqual(before);

    const again = await e.spawnBot();
    // The first attempt meets the lock: each channel is told once that the bot keeps trying.
    await voxta.waitFor(
      () => botPosts(e).some((m) => m.content.startsWith('I could not resume')) && botPosts(e, otherText.id).some((m) => m.content.startsWith('I could not resume')),
      15_000,
      'the lock notice in both channels',
    );
    // A message typed while the resume is pending is held, and delivered once the chat is back.
    const m3 = e.alice.say(e.text.id, 'm3 while resuming');
    const m3Marks = () => e.discord.messages(e.text.id).find((m) => m.id === m3.id)!.reactions;
    await voxta.waitFor(() => m3Marks().get('⏳')?.has(e.discord.botUserId), 5000, 'm3 marked ⏳ (held)');
    voxta.releaseDeadChatLocks();
    await voxta.waitFor(() => (voxta.sessions().filter((s) => s.state === 'active').length === 2 ? true : undefined), 30_000, 'both chats resumed');
    expect(voxta.sessions().map((s) => s.chatId).sort()).toEqual([chatId, otherChatId].sort());
    e.alice.say(e.text.id, 'm4');
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.includes('Reply to m4'), 15_000);
    await sleep(300);

    // Nothing said was lost or doubled.
    const history = chatUserTexts(e, chatId);
    expect(history.filter((t) => t === 'm1')).toHaveLength(1);
    expect(history.filter((t) => t === 'm2')).toHaveLength(1);
    expect(history.filter((t) => t === 'm4')).toHaveLength(1);
    expect(history.filter((t) => t === 'm3 while resuming')).toHaveLength(1);
    expect(history.indexOf('m3 while resuming')).toBeLessThan(history.indexOf('m4'));
    expect(chatUserTexts(e, otherChatId)).toEqual(['o1']);
    expect(sends(e).filter((t) => t === 'm2')).toHaveLength(1);
    // Told once, and nothing alarming besides.
    const posts = botPosts(e).map((m) => m.content);
    const waited = (guildId: string) => again.lines.some((l) => l.json?.msg === 'resume: failed; will retry' && l.json.guildId === guildId);
    expect(waited(e.guild.id), 'the first resume attempt met the lock').toBe(true);
    const LOCK_NOTICE = 'I could not resume the chat with Aria yet (the chat is still open from before, and Voxta frees it within a minute); I will keep trying.';
    expect(posts.filter((c) => c.startsWith('I could not resume'))).toEqual([LOCK_NOTICE]);
    expect(botPosts(e, otherText.id).filter((m) => m.content.startsWith('I could not resume'))).toHaveLength(1);
    otherAdmin.say(otherText.id, 'o2');
    await e.discord.waitForMessage(otherText.id, (m) => m.authorId === e.discord.botUserId && m.content.includes('Reply to o2'), 15_000);
    // The Discord↔Voxta message links survived too: editing a message from before the crash
    // updates the very Voxta message it created.
    const m1VoxtaId = voxta.chats().find((c) => c.id === chatId)!.messages.find((m) => m.role === 'User' && m.text === 'm1')!.messageId;
    e.alice.edit(m1.id, 'm1, edited after the crash');
    const upd = await voxta.waitForClientMessage('update', { match: (p) => p.text === 'm1, edited after the crash' }, 10_000);
    expect(upd.payload).toMatchObject({ messageId: m1VoxtaId });
    expect(storedSessions(e.dataDir).map((r) => [r.guild_id, r.active, r.chat_id]).sort()).toEqual(
      [
        [e.guild.id, 1, chatId],
        [other.id, 1, otherChatId],
      ].sort(),
    );
    expect(again.exit).toBeUndefined();
  }, 60_000);
});
