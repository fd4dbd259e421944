/**
 * Shutdown: SIGTERM while the character is speaking in a voice channel. The production bot must
 * send the playback complete it owes for the reply (else Voxta would wait for it), leave the
 * voice channel, keep its stored state, and exit 0 within 10 s. The next start resumes the same
 * chat, back in the voice channel, and a member is heard and answered again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { E2EEnv } from '../harness/env.js';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { answer, bootText, bootVoice, chatUserTexts, replyIds, sends, sleep, storedSessions, tone } from './helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('shutdown on SIGTERM', () => {
  it('sends the owed playback complete, leaves voice, keeps state, exits 0 within 10 s; the next start resumes', async () => {
    let asked = 0; // across sessions (the simulator's own index restarts with each session)
    const { env: e, bot, sessionId } = await bootVoice((x) => (env = x), {
      e2e: {
        voxta: {
          stt: { transcripts: () => `question ${asked++}` },
          // The first answer is long (its speech lasts seconds: 60 ms per character), later ones short.
          reply: (text) => (text === 'question 0' ? [`Here is a long answer to ${text}, one that takes quite a while to say out loud, really.`] : ['Short one.']),
        },
      },
    });
    const voxta = e.voxta!;
    const chatId = voxta.sessions()[0]!.chatId;
    await e.alice.speak(tone(440, 700), { sampleRate: 48_000, channels: 1 });
    const id = await voxta.waitFor(() => replyIds(e)[0], 10_000, 'the reply');
    // The character is speaking: playback started, not completed.
    await voxta.waitFor(() => (voxta.playback(id).starts.some((s) => s.duration > 0) ? true : undefined), 10_000, 'playback started');
    await voxta.waitFor(() => (e.discord.voiceServer.botAudio(e.guild.id).packets.some((p) => !p.silence) ? true : undefined), 5000, 'the bot speaking');
    expect(voxta.playback(id).completes).toBe(0);
    expect(voxta.heldSessions().map((s) => s.sessionId)).toEqual([sessionId]);
    const storedBefore = storedSessions(e.dataDir);

    const t0 = Date.now();
    const exit = await bot.kill('SIGTERM', 12_000);
    const took = Date.now() - t0;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(took).toBeLessThan(10_000); // the documented deadline (the bot's own hard stop is 9 s)
    expect(bot.output()).toMatch(/shut down cleanly/);

    // Owed: exactly one complete for the reply that was playing, sent before the connection went.
    expect(voxta.playback(id).completes).toBe(1);
    expect(voxta.playback(id).released).toBe(true);
    // Voice left (op 4 with no channel), state kept for the next start.
    await e.discord.waitForBotVoice(e.guild.id, null, 5000);
    expect(storedSessions(e.dataDir)).toEqual(storedBefore);
    expect(storedSessions(e.dataDir)).toEqual([expect.objectContaining({ active: 1, chat_id: chatId, voice_channel_id: e.voice.id })]);

    // The next start resumes the chat and rejoins voice; the member is heard and answered.
    const again = await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id } });
    await again.waitForLog(/chat resumed after restart/, 20_000);
    await e.discord.waitForBotVoice(e.guild.id, e.voice.id, 15_000);
    const resumed = await voxta.waitFor(() => voxta.sessions().find((s) => s.state === 'active'), 5000, 'the resumed session');
    expect(resumed.chatId).toBe(chatId);
    await voxta.waitFor(() => voxta.audio(resumed.sessionId)?.header, 10_000, 'the microphone on the resumed session');
    await sleep(300);
    const before = replyIds(e).length;
    await e.alice.speak(tone(523, 700), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => (sends(e).includes('question 1') ? true : undefined), 10_000, 'the member heard after the restart');
    const next = await voxta.waitFor(() => replyIds(e)[before], 10_000, 'a reply after the restart');
    await voxta.waitFor(() => (voxta.playback(next).completes === 1 ? true : undefined), 20_000, 'that reply played and completed');
    expect(sends(e)).toEqual(['question 0', 'question 1']);
  }, 90_000);

  it('with Voxta unreachable at that moment: still exits 0 within 10 s keeping the chat, and resumes it once Voxta is back', async () => {
    const { env: e, bot } = await bootText((x) => (env = x));
    const voxta = e.voxta!;
    await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    const chatId = voxta.sessions()[0]!.chatId;
    await voxta.stop();
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.startsWith('I lost the connection to Voxta'), 10_000);

    const t0 = Date.now();
    const exit = await bot.kill('SIGTERM', 12_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(bot.output()).toMatch(/shut down cleanly/);
    expect(storedSessions(e.dataDir)).toEqual([expect.objectContaining({ active: 1, chat_id: chatId })]);

    await voxta.start();
    const again = await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id } });
    await again.waitForLog(/chat resumed after restart/, 20_000);
    expect(voxta.sessions().map((s) => s.chatId)).toEqual([chatId]);
    e.alice.say(e.text.id, 'after the restart');
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.includes('You said: after the restart'), 10_000);
    expect(chatUserTexts(e, chatId)).toEqual(['after the restart']);
  }, 60_000);

  // KNOWN BUG (src/bot/guild-session.ts / src/voxta/chat-session.ts send queue, shutdown path in
  // src/bot/bot-core.ts): while Voxta is down the bot tells the channel "Messages you send meanwhile
  // will be delivered once it is back" and queues them in memory. A planned restart (SIGTERM)
  // in that window drops the queue: the message never reaches the chat after the next start and
  // the user is not told. Expected: the pending messages kept (SQLite) and delivered on resume,
  // or the user told they were not delivered.
  it('a message queued while Voxta is down survives a SIGTERM restart and is delivered on resume', async () => {
    const { env: e, bot } = await bootText((x) => (env = x));
    const voxta = e.voxta!;
    await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    const chatId = voxta.sessions()[0]!.chatId;
    await voxta.stop();
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.startsWith('I lost the connection to Voxta'), 10_000);
    e.alice.say(e.text.id, 'said while Voxta is down');
    await sleep(300);
    expect(await bot.kill('SIGTERM', 12_000)).toEqual({ code: 0, signal: null });
    await voxta.start();
    const again = await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id } });
    await again.waitForLog(/chat resumed after restart/, 20_000);
    await voxta.waitFor(() => (chatUserTexts(e, chatId).includes('said while Voxta is down') ? true : undefined), 3000, 'the queued message delivered after the restart');
  }, 30_000);
});
