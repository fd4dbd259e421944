/**
 * Faults and bad input end to end (production entry in a child process, both simulators): Voxta
 * dropping mid-chat, edits and deletions, two admins racing `/start`, deleted channels, removal
 * from a guild, the health endpoint, and shutdown on signals.
 */
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import type { InteractionHandle } from '../../sim/discord/index.js';
import { ARIA_ID, HOLT_ID } from '../../sim/voxta/index.js';
import { DB_FILE_NAME } from '../../src/store/store.js';
import { startE2E, fromBot, type E2EEnv } from '../harness/env.js';
import { freePort, httpGet } from '../harness/http.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

async function boot(spawnEnv: Record<string, string> = {}, voxta: NonNullable<Parameters<typeof startE2E>[0]>['voxta'] = {}) {
  env = await startE2E({ discord: { voice: false }, voxta });
  const bot = await env.spawnBot({ env: { DISCORD_GUILD_ID: env.guild.id, ...spawnEnv } });
  await env.discord.waitForBotReady(15_000);
  await env.discord.waitForCommands(['start', 'stop'], env.guild.id, 15_000);
  return { env, bot };
}

async function answer(handle: InteractionHandle) {
  await handle.waitUntil(() => (handle.hasFinalContent || handle.followUps.length > 0 ? true : undefined), 20_000, 'an answer');
  await new Promise((r) => setTimeout(r, 250));
  const last = handle.followUps.at(-1);
  const m = last ?? { content: handle.content, embeds: handle.embeds, ephemeral: handle.ephemeral };
  return { content: m.content, embeds: m.embeds as Array<{ title?: string }>, ephemeral: m.ephemeral };
}


function storedSession(e: E2EEnv): { active: number; chat_id: string | null } | undefined {
  const db = new DatabaseSync(path.join(e.dataDir, DB_FILE_NAME), { readOnly: true });
  try {
    return db.prepare('SELECT active, chat_id FROM guild_sessions WHERE guild_id = ?').get(e.guild.id) as { active: number; chat_id: string | null } | undefined;
  } finally {
    db.close();
  }
}

describe('bot resilience end to end', () => {
  it('announces a Voxta outage once, delivers messages sent meanwhile in order, and says when it is back', async () => {
    const { env } = await boot();
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    env.voxta!.dropHubConnections();
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.startsWith('I lost the connection to Voxta'), 10_000);
    env.alice.say(env.text.id, 'one');
    env.alice.say(env.text.id, 'two');
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.startsWith('Reconnected to Voxta'), 15_000);
    await env.voxta!.waitFor(() => env.voxta!.received.filter((m) => m.payload.$type === 'send').length >= 2, 10_000, 'both sends');
    const sends = env.voxta!.received.filter((m) => m.payload.$type === 'send').map((m) => m.payload.text);
    expect(sends).toEqual(['one', 'two']);
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('You said: two'), 10_000);
    const notices = env.discord.messages(env.text.id).filter((m) => fromBot(env)(m) && /connection to Voxta|Reconnected/.test(m.content));
    expect(notices).toHaveLength(2);
  }, 60_000);

  it('maps an edited and a deleted Discord message to Voxta update and deleteMessage', async () => {
    const { env } = await boot();
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    const msg = env.alice.say(env.text.id, 'I like cats');
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('You said: I like cats'), 10_000);
    const echo = await env.voxta!.waitForServerMessage('update', { match: (p) => p.role === 'User' });
    await new Promise((r) => setTimeout(r, 200)); // the link is stored right after the echo
    env.alice.edit(msg.id, 'I like dogs');
    const upd = await env.voxta!.waitForClientMessage('update', {}, 10_000);
    expect(upd.payload).toMatchObject({ messageId: (echo.payload as { messageId: string }).messageId, text: 'I like dogs' });
    env.alice.delete(msg.id);
    const del = await env.voxta!.waitForClientMessage('deleteMessage', {}, 10_000);
    expect(del.payload).toMatchObject({ messageId: (echo.payload as { messageId: string }).messageId });
  }, 60_000);

  it('lets one of two admins racing /start win and answers the other clearly', async () => {
    const { env } = await boot();
    const admin2 = env.guild.addMember({ username: 'admin2', displayName: 'Admin Two', permissions: 'admin' });
    const [a, b] = await Promise.all([
      env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }),
      admin2.runCommand(env.text.id, 'start', { character: HOLT_ID }),
    ]);
    const answers = await Promise.all([answer(a), answer(b)]);
    const won = answers.filter((x) => x.embeds[0]?.title?.startsWith('Started: '));
    const lost = answers.filter((x) => x.ephemeral);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.content).toMatch(/already being started|already running/);
    expect(env.voxta!.sessions()).toHaveLength(1);
    expect(storedSession(env)).toMatchObject({ active: 1, chat_id: env.voxta!.sessions()[0]!.chatId });
  }, 60_000);

  it('ends the session cleanly when the bound channel is deleted, and forgets a guild it was removed from', async () => {
    const { env, bot } = await boot();
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    env.text.delete();
    await env.voxta!.waitFor(() => env.voxta!.sessions().length === 0, 10_000, 'the chat to stop');
    await bot.waitForLog(/bound text channel deleted/);
    await env.voxta!.waitFor(() => storedSession(env)?.active === 0, 5000, 'the stored session to be marked stopped');

    const general2 = env.guild.addTextChannel('general-2');
    await new Promise((r) => setTimeout(r, 200));
    await answer(await env.admin.runCommand(general2.id, 'start', { character: ARIA_ID }));
    env.discord.removeBotFromGuild(env.guild.id);
    await env.voxta!.waitFor(() => env.voxta!.sessions().length === 0, 10_000, 'the chat to stop after removal');
    await bot.waitForLog(/removed from a guild/);
    expect(storedSession(env)).toBeUndefined();
  }, 60_000);

  it('serves health, readiness and metrics; shuts down on SIGTERM with exit 0 keeping the chat for the next start', async () => {
    const port = await freePort();
    const { env, bot } = await boot({ HEALTH_PORT: String(port), HEALTH_HOST: '127.0.0.1' });
    expect(await httpGet(port, '/healthz')).toMatchObject({ status: 200 });
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    env.alice.say(env.text.id, 'hi');
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('You said: hi'), 10_000);
    const ready = await httpGet(port, '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toMatchObject({ ready: true, discord: 'ready', voxta: 'reachable', guilds: [{ guildId: env.guild.id, state: 'active', voxta: 'ready' }] });
    // The reply's playback complete goes out at replyEnd, a moment after its first words.
    await env.voxta!.waitFor(() => env.voxta!.heldSessions().length === 0 && env.voxta!.received.some((m) => m.payload.$type === 'speechPlaybackComplete'), 5000, 'the reply acknowledged');
    const metrics = (await httpGet(port, '/metrics')).body;
    expect(metrics).toContain('voxta_discord_sessions{state="active"} 1');
    expect(metrics).toContain('voxta_discord_turns_total{source="text"} 1');
    expect(metrics).toMatch(/voxta_discord_turn_latency_seconds_count 1/);
    expect(metrics).toContain('voxta_discord_playback_completes{kind="owed"} 0\nvoxta_discord_playback_completes{kind="sent"} 1');

    const exit = await bot.kill('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(bot.output()).toMatch(/shut down cleanly/);
    expect(storedSession(env)).toMatchObject({ active: 1 });
    // Every reply was acknowledged: no session is left waiting for a playback complete.
    expect(env.voxta!.heldSessions()).toHaveLength(0);
  }, 60_000);

  it('survives SIGKILL mid-conversation: the next start resumes the chat and nothing said is lost', async () => {
    // Like real Voxta, the dead connection's chat stays locked after the kill: here until the test
    // releases it, so the restarted bot meets the lock whatever the machine's speed.
    const { env, bot } = await boot();
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    const chatId = env.voxta!.sessions()[0]!.chatId;
    env.alice.say(env.text.id, 'before the crash');
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('You said: before the crash'), 10_000);
    env.voxta!.holdDeadChatLocks();
    await bot.kill('SIGKILL');
    const again = await env.spawnBot({ env: { DISCORD_GUILD_ID: env.guild.id } });
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.startsWith('I could not resume the chat with Aria yet (the chat is still open from before'), 15_000);
    const held = env.alice.say(env.text.id, 'while resuming'); // held for the chat, not dropped
    const marks = () => env.discord.messages(env.text.id).find((m) => m.id === held.id)!.reactions;
    await env.voxta!.waitFor(() => marks().get('⏳')?.has(env.discord.botUserId), 5000, 'the held message marked ⏳');
    env.voxta!.releaseDeadChatLocks();
    await again.waitForLog(/chat resumed after restart/, 30_000);
    expect(env.voxta!.sessions().map((s) => s.chatId)).toEqual([chatId]);
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('You said: while resuming'), 10_000);
    env.alice.say(env.text.id, 'after the crash');
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('You said: after the crash'), 10_000);
    const history = env.voxta!.chats().find((c) => c.id === chatId)!.messages.filter((m) => m.role === 'User').map((m) => m.text);
    expect(history).toEqual(['before the crash', 'while resuming', 'after the crash']);
  }, 60_000);

  it('a message typed while Voxta is down survives SIGTERM: delivered once after the restart, its ⏳ cleared by the new process', async () => {
    const { env, bot } = await boot();
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    const chatId = env.voxta!.sessions()[0]!.chatId;
    await env.voxta!.stop();
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.startsWith('I lost the connection to Voxta'), 10_000);
    const held = env.alice.say(env.text.id, 'typed while Voxta is down');
    const marked = () => env.discord.messages(env.text.id).find((m) => m.id === held.id)!.reactions;
    await env.voxta!.waitFor(() => (marked().get('⏳')?.has(env.discord.botUserId) ? true : undefined), 5000, 'the ⏳ mark');
    expect(await bot.kill('SIGTERM', 12_000)).toEqual({ code: 0, signal: null });
    await env.voxta!.start();
    const again = await env.spawnBot({ env: { DISCORD_GUILD_ID: env.guild.id } });
    await again.waitForLog(/chat resumed after restart/, 20_000);
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('You said: typed while Voxta is down'), 10_000);
    await env.voxta!.waitFor(() => (marked().has('⏳') ? undefined : true), 5000, 'the ⏳ cleared');
    expect(marked().has('❌')).toBe(false);
    env.alice.say(env.text.id, 'after the restart');
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('You said: after the restart'), 10_000);
    const history = env.voxta!.chats().find((c) => c.id === chatId)!.messages.filter((m) => m.role === 'User').map((m) => m.text);
    expect(history).toEqual(['typed while Voxta is down', 'after the restart']);
    expect(env.voxta!.received.filter((m) => m.payload.$type === 'send').map((m) => m.payload.text)).toEqual(['typed while Voxta is down', 'after the restart']);
  }, 60_000);

  it('exits at once on a second signal', async () => {
    const { env, bot } = await boot();
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    // The second signal arrives while the graceful shutdown is still closing the Voxta chat.
    process.kill(bot.pid!, 'SIGTERM');
    process.kill(bot.pid!, 'SIGINT');
    const exit = await bot.exited;
    expect(exit).toEqual({ code: 1, signal: null });
    expect(bot.output()).toMatch(/second signal: exiting now/);
    expect(bot.output()).not.toMatch(/shut down cleanly/);
  }, 30_000);
});
