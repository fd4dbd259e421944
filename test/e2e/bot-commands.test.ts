/**
 * End to end through the real discord.js client: the production entry (`src/index.ts`) runs in a
 * child process against the Discord and Voxta simulators; simulated members run slash commands
 * and type in the channel, exactly as users would.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CommandRejectedError, Perm, type InteractionHandle, type SimMessage } from '../../sim/discord/index.js';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { startE2E, type E2EEnv } from '../harness/env.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const COMMANDS = ['start', 'resume', 'stop', 'status', 'say', 'interrupt', 'join', 'leave', 'listen', 'transcripts'];

async function boot(opts: Parameters<typeof startE2E>[0] = {}, spawnEnv: Record<string, string> = {}) {
  env = await startE2E({ ...opts, discord: { voice: false, ...opts.discord } });
  const bot = await env.spawnBot({ env: { DISCORD_GUILD_ID: env.guild.id, ...spawnEnv } });
  await env.discord.waitForBotReady(15_000);
  await env.discord.waitForCommands(COMMANDS, env.guild.id, 15_000);
  return { env, bot };
}

/**
 * What the invoker finally sees: the original response, or, when the bot replaced a public
 * "thinking…" with a private answer (defer → delete → ephemeral follow-up), that follow-up.
 */
async function answer(handle: InteractionHandle): Promise<{ content: string; embeds: Array<Record<string, unknown>>; ephemeral: boolean; attachments: unknown[] }> {
  await handle.waitUntil(() => (handle.hasFinalContent || handle.followUps.length > 0 ? true : undefined), 15_000, 'an answer');
  await new Promise((r) => setTimeout(r, 250)); // let streamed edits settle
  const last = handle.followUps.at(-1);
  if (last) return { content: last.content, embeds: last.embeds as Array<Record<string, unknown>>, ephemeral: last.ephemeral, attachments: last.attachments };
  return { content: handle.content, embeds: handle.embeds as Array<Record<string, unknown>>, ephemeral: handle.ephemeral, attachments: handle.attachments };
}

const byBot = (e: E2EEnv) => (m: SimMessage) => m.authorId === e.discord.botUserId && m.interactionId === null;

describe('bot end to end (real discord.js, production entry)', () => {
  it('registers its commands, starts a chat from autocomplete, bridges text both ways and reports status', async () => {
    const { env } = await boot();
    const choices = await env.admin.autocomplete(env.text.id, 'start', 'character', 'ar');
    expect(choices).toEqual([{ name: 'Aria', value: ARIA_ID }]);

    const started = await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    expect(started.ephemeral).toBe(false);
    expect(String(started.embeds[0]?.title)).toBe('Started: Aria');
    expect(started.attachments).toHaveLength(1);
    expect(env.voxta!.sessions()).toHaveLength(1);

    env.alice.say(env.text.id, 'hello from discord');
    const reply = await env.discord.waitForMessage(env.text.id, (m) => byBot(env)(m) && m.content.includes('reply number 1'), 10_000);
    expect(reply.content).toBe('You said: hello from discord. This is Aria, reply number 1.');
    expect(env.discord.typingEvents.some((t) => t.channelId === env.text.id && t.userId === env.discord.botUserId)).toBe(true);

    env.bob.say(env.text.id, '/shrug');
    await env.voxta!.waitFor(() => env.voxta!.received.find((m) => m.payload.$type === 'send' && String(m.payload.text) === 'Bob: /shrug'), 5000, 'the attributed, escaped send');

    const status = await answer(await env.alice.runCommand(env.text.id, 'status'));
    expect(status.ephemeral).toBe(true);
    const fields = (status.embeds[0]?.fields as Array<{ name: string; value: string }>).map((f) => `${f.name}: ${f.value}`);
    expect(fields).toContain('Session: running');
    expect(fields).toContain('Voxta connection: ready');
    expect(fields.some((f) => f.startsWith('Message Content intent: available'))).toBe(true);
  }, 60_000);

  it('steers a running chat: /say, /interrupt, /listen for oneself, /transcripts for admins', async () => {
    const { env } = await boot();
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    const said = await answer(await env.admin.runCommand(env.text.id, 'say', { text: 'Welcome, everyone!' }));
    expect(said).toMatchObject({ ephemeral: true, content: 'Sent; the character will say it next.' });
    await env.voxta!.waitForClientMessage('characterSpeechRequest', { match: (p) => p.text === 'Welcome, everyone!' });
    await env.discord.waitForMessage(env.text.id, (m) => byBot(env)(m) && m.content === 'Welcome, everyone!', 10_000);

    const interrupted = await answer(await env.alice.runCommand(env.text.id, 'interrupt'));
    expect(interrupted).toMatchObject({ ephemeral: true, content: 'Interrupted.' });
    await env.voxta!.waitForClientMessage('interrupt');

    const off = await answer(await env.alice.runCommand(env.text.id, 'listen off'));
    expect(off).toMatchObject({ ephemeral: true, content: expect.stringMatching(/^From now on I will not listen to you in voice/) });
    await expect(env.alice.runCommand(env.text.id, 'transcripts off')).rejects.toThrow(CommandRejectedError);
    const tOff = await answer(await env.admin.runCommand(env.text.id, 'transcripts off'));
    expect(tOff.content).toBe('Voice conversations will no longer be posted in the text channel.');
    const status = await answer(await env.alice.runCommand(env.text.id, 'status'));
    const fields = (status.embeds[0]?.fields as Array<{ name: string; value: string }>).map((f) => `${f.name}: ${f.value}`);
    expect(fields).toContain('Voice transcripts: not mirrored to text');
  }, 60_000);

  it('hides state-changing commands from members without Manage Server and answers failures ephemerally', async () => {
    const { env } = await boot();
    await expect(env.alice.runCommand(env.text.id, 'start', { character: ARIA_ID })).rejects.toThrow(CommandRejectedError);
    const unknown = await answer(await env.admin.runCommand(env.text.id, 'start', { character: 'Nobody' }));
    expect(unknown).toMatchObject({ ephemeral: true, content: 'No character named “Nobody” on Voxta. Pick one from the list as you type.' });
    const quiet = env.guild.addTextChannel('read-only');
    quiet.setPermissionOverwrite(env.discord.botUserId, { deny: Perm.SendMessages });
    await new Promise((r) => setTimeout(r, 200));
    const cannotPost = await answer(await env.admin.runCommand(quiet.id, 'start', { character: ARIA_ID }));
    expect(cannotPost).toMatchObject({ ephemeral: true, content: 'I cannot post in that text channel (it is gone, or I lack access). Pick another one.' });
    expect(env.voxta!.sessions()).toHaveLength(0);
    const stop = await answer(await env.admin.runCommand(env.text.id, 'stop'));
    expect(stop).toMatchObject({ ephemeral: true, content: 'No chat is running in this server.' });
  }, 60_000);

  it('splits a long reply into messages of at most 2000 characters', async () => {
    const { env } = await boot({ voxta: { chunkDelayMs: 2 } });
    const sentences = Array.from({ length: 50 }, (_, i) => `Sentence ${i + 1} of a long answer that keeps going for quite a while to fill the page.`);
    env.voxta!.options.reply = () => sentences;
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    env.alice.say(env.text.id, 'tell me everything');
    await env.discord.waitForMessage(env.text.id, (m) => byBot(env)(m) && m.content.includes('Sentence 50 of'), 20_000);
    await new Promise((r) => setTimeout(r, 1500)); // the last throttled edit
    const parts = env.discord.messages(env.text.id).filter((m) => byBot(env)(m) && m.content.startsWith('Sentence'));
    expect(parts.length).toBeGreaterThanOrEqual(2);
    for (const p of parts) expect(p.content.length).toBeLessThanOrEqual(2000);
    expect(parts.map((p) => p.content).join(' ')).toBe(sentences.join(' '));
  }, 60_000);

  it('exits cleanly on SIGTERM and resumes the chat from SQLite on the next start', async () => {
    const { env, bot } = await boot();
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    const chatId = env.voxta!.sessions()[0]!.chatId;
    const early = env.alice.say(env.text.id, 'said before the restart');
    await env.discord.waitForMessage(env.text.id, (m) => byBot(env)(m) && m.content.includes('You said: said before the restart'), 10_000);
    await new Promise((r) => setTimeout(r, 300)); // the id link is stored after Voxta's echo
    const exit = await bot.kill('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    await env.voxta!.waitFor(() => env.voxta!.sessions().length === 0, 5000, 'the chat to close with the connection');

    const again = await env.spawnBot({ env: { DISCORD_GUILD_ID: env.guild.id } });
    await again.waitForLog(/chat resumed after restart/, 20_000);
    expect(env.voxta!.sessions().map((s) => s.chatId)).toEqual([chatId]);
    env.alice.say(env.text.id, 'still there?');
    await env.discord.waitForMessage(env.text.id, (m) => byBot(env)(m) && m.content.includes('You said: still there?'), 10_000);
    // An edit of a message from before the restart (not in the new process's cache) still maps.
    env.alice.edit(early.id, 'edited after the restart');
    const upd = await env.voxta!.waitForClientMessage('update', {}, 10_000);
    expect(upd.payload).toMatchObject({ text: 'edited after the restart' });
  }, 60_000);

  it('runs without the Message Content intent when Discord refuses it, and says so', async () => {
    const { env, bot } = await boot({ discord: { messageContent: false, rejectDisallowedIntents: true } });
    await bot.waitForLog(/Message Content Intent/);
    const status = await answer(await env.alice.runCommand(env.text.id, 'status'));
    const fields = (status.embeds[0]?.fields as Array<{ name: string; value: string }>).map((f) => `${f.name}: ${f.value}`);
    expect(fields.some((f) => f.startsWith('Message Content intent: OFF: text bridging is unavailable'))).toBe(true);
  }, 60_000);
});
