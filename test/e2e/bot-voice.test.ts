/**
 * The orchestrator's voice side end to end: `/start` from a voice channel joins it (real voice
 * server of the Discord simulator), voice admission turns a second guild text-only with a plain
 * note, `/leave` and `/stop` leave voice, and voice members reach Voxta's context.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Perm, type InteractionHandle } from '../../sim/discord/index.js';
import { ARIA_ID, HOLT_ID } from '../../sim/voxta/index.js';
import { startE2E, type E2EEnv } from '../harness/env.js';
import { boot as bootVoice, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

async function answer(handle: InteractionHandle) {
  await handle.waitUntil(() => (handle.hasFinalContent || handle.followUps.length > 0 ? true : undefined), 20_000, 'an answer');
  await new Promise((r) => setTimeout(r, 250));
  const last = handle.followUps.at(-1);
  const m = last ?? { content: handle.content, embeds: handle.embeds, ephemeral: handle.ephemeral };
  return { content: m.content, embeds: m.embeds as Array<{ title?: string; description?: string; fields?: Array<{ name: string; value: string }> }>, ephemeral: m.ephemeral };
}

describe('bot voice orchestration end to end', () => {
  it('joins the invoker’s voice channel on /start, tells Voxta who is there, and leaves on /leave and /stop', async () => {
    const e = await startE2E();
    env = e;
    await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id } });
    await env.discord.waitForBotReady(15_000);
    await env.discord.waitForCommands(['start', 'leave', 'join', 'stop'], env.guild.id, 15_000);
    env.admin.joinVoice(env.voice.id);
    env.alice.joinVoice(env.voice.id);

    const started = await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    const fields = started.embeds[0]!.fields!;
    expect(fields.find((f) => f.name === 'Voice channel')!.value).toBe(`<#${env.voice.id}>`);
    await env.discord.waitForBotVoice(env.guild.id, env.voice.id);
    // Voxta hears where it is and who is present (sent at start and on joins, debounced).
    const ctx = await e.voxta!.waitFor(
      () => e.voxta!.received.find((m) => JSON.stringify(m.payload).includes('present there now: Admin, Alice') || JSON.stringify(m.payload).includes('present there now: Alice, Admin')),
      10_000,
      'a context naming the voice members',
    );
    expect(JSON.stringify(ctx.payload)).toContain('Voxta Lounge');

    const left = await answer(await env.admin.runCommand(env.text.id, 'leave'));
    expect(left.content).toBe('Left the voice channel; the chat goes on in text.');
    await env.discord.waitForBotVoice(env.guild.id, null);

    const joined = await answer(await env.admin.runCommand(env.text.id, 'join'));
    expect(joined.content).toContain(`Joined <#${env.voice.id}>`);
    await env.discord.waitForBotVoice(env.guild.id, env.voice.id);

    await answer(await env.admin.runCommand(env.text.id, 'stop'));
    await env.discord.waitForBotVoice(env.guild.id, null);
  }, 90_000);

  it('runs text-only, saying why, when it may not speak in the voice channel', async () => {
    const e = await startE2E();
    env = e;
    e.voice.setPermissionOverwrite(e.discord.botUserId, { deny: Perm.Speak });
    await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id } });
    await e.discord.waitForBotReady(15_000);
    await e.discord.waitForCommands(['start'], e.guild.id, 15_000);
    e.admin.joinVoice(e.voice.id);
    const started = await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    expect(started.embeds[0]!.description).toBe('I cannot join: I lack the Speak permission in that voice channel, so this chat is text-only.');
    expect(e.discord.botVoiceState(e.guild.id)?.channelId ?? null).toBeNull();
  }, 60_000);

  it('runs a second guild text-only when voice is busy, and says so in plain words', async () => {
    env = await startE2E();
    const other = env.discord.addGuild({ name: 'Second Server' });
    const otherText = other.addTextChannel('chat');
    const otherVoice = other.addVoiceChannel('Talk');
    const otherAdmin = other.addMember({ username: 'boss2', permissions: 'admin' });
    await env.spawnBot();
    await env.discord.waitForBotReady(15_000);
    await env.discord.waitForCommands(['start'], undefined, 15_000);
    env.admin.joinVoice(env.voice.id);
    await answer(await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID }));
    await env.discord.waitForBotVoice(env.guild.id, env.voice.id);

    otherAdmin.joinVoice(otherVoice.id);
    const second = await answer(await otherAdmin.runCommand(otherText.id, 'start', { character: HOLT_ID }));
    expect(second.embeds[0]!.title).toBe('Started: Captain Holt');
    expect(second.embeds[0]!.description).toMatch(/^Voice is busy in another server .* so this chat is text-only for now\./);
    expect(second.embeds[0]!.fields!.find((f) => f.name === 'Voice channel')!.value).toBe('none (text only)');
    expect(env.discord.botVoiceState(other.id)?.channelId ?? null).toBeNull();
  }, 90_000);

  it('mirrors voice turns into the text channel, and keeps them out with /transcripts off', async () => {
    const { env: e } = await bootVoice({ voxta: { stt: { transcripts: ['hello by voice', 'second by voice'] }, reply: () => ['Heard you.'] } }, (x) => (env = x));
    const fromBot = (m: { authorId: string; interactionId: string | null }) => m.authorId === e.discord.botUserId && m.interactionId === null;
    await e.alice.speak(tone(440, 900), { sampleRate: 48_000, channels: 1 });
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(m) && m.content === '🎙️ **Alice**: hello by voice', 15_000);
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(m) && m.content === 'Heard you.', 15_000);
    const voxta = e.voxta!;
    await voxta.waitFor(() => voxta.heldSessions().length === 0 && voxta.received.some((m) => m.payload.$type === 'speechPlaybackComplete'), 15_000, 'the spoken reply to finish');

    await answer(await e.admin.runCommand(e.text.id, 'transcripts off'));
    const before = e.discord.messages(e.text.id).filter(fromBot).length;
    const replyEnds = () => voxta.sent.filter((m) => (m.payload as { $type?: string }).$type === 'replyEnd').length;
    const endsBefore = replyEnds();
    await e.alice.speak(tone(440, 900), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => voxta.received.some((m) => m.payload.$type === 'send' && m.payload.text === 'second by voice'), 15_000, 'the second transcript');
    await voxta.waitFor(() => replyEnds() > endsBefore, 15_000, 'the second reply');
    await new Promise((r) => setTimeout(r, 1500));
    expect(e.discord.messages(e.text.id).filter(fromBot).length).toBe(before);
  }, 90_000);
});
