/**
 * Scenario: the life of a chat through the commands people use, end to end (production bot in a
 * child process, both simulators): `/stop` while the character is talking in voice, `/resume`
 * bringing the same chat back into the voice channel, and `/resume` with autocomplete picking an
 * earlier chat of the character.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { InteractionHandle } from '../../sim/discord/index.js';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { startE2E, fromBot, type E2EEnv } from '../harness/env.js';
import { boot as bootWorld, replyIds, sends, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const register = (x: E2EEnv) => (env = x);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the invoker finally sees: text, or an embed's title. */
async function answer(h: InteractionHandle): Promise<string> {
  await h.waitUntil(() => (h.hasFinalContent || h.followUps.length > 0 ? true : undefined), 20_000, 'an answer');
  await sleep(250);
  const m = h.finalMessage() ?? h.followUps.at(-1);
  const title = (m?.embeds[0] as { title?: string } | undefined)?.title;
  return [m?.content, title].filter(Boolean).join(' ');
}

describe('scenario: /stop and /resume', () => {
  it('/stop while the character talks: silence at once, voice left, chat closed; /resume brings the same chat back into voice, heard and answered', async () => {
    const { env: w, bot } = await bootWorld(
      {
        voxta: {
          stt: { transcripts: ['after the resume'] },
          reply: (t) => (t.includes('story') ? ['A long answer that keeps going for a good few seconds, on purpose, so it can be stopped.'] : ['Welcome back.']),
        },
      },
      register,
    );
    const voxta = w.voxta!;
    const vs = w.discord.voiceServer;
    const chatId = voxta.sessions()[0]!.chatId;

    w.alice.say(w.text.id, 'tell me a story');
    const story = await voxta.waitFor(() => replyIds(w)[0], 10_000, 'the story');
    await voxta.waitFor(() => voxta.playback(story).starts.length >= 1, 10_000, 'the story playing');
    await sleep(800);
    const stop = await w.admin.runCommand(w.text.id, 'stop');
    const stopped = await answer(stop);
    const final = stop.finalMessage()!;
    const stoppedAt = (final.editedAt ?? final.createdAt).getTime();
    expect(stopped).toBe('Stopped the chat with Aria. /resume picks it up again.');
    await w.discord.waitForBotVoice(w.guild.id, null, 5000);
    await voxta.waitFor(() => voxta.sessions().length === 0, 5000, 'the Voxta chat closed');
    await sleep(500);
    // The character fell silent with the stop (nothing after the answer but a frame in flight).
    expect(vs.botAudio(w.guild.id).packets.filter((p) => !p.silence && p.at > stoppedAt + 100)).toHaveLength(0);
    // No "disconnected" notice: leaving was asked for.
    expect(w.discord.messages(w.text.id).filter((m) => fromBot(w)(m) && m.content.includes('disconnected from the voice channel'))).toHaveLength(0);

    // Alice is still in the voice channel; the admin runs /resume from the text channel.
    const resumed = await answer(await w.admin.runCommand(w.text.id, 'resume'));
    expect(resumed).toContain('Resumed: Aria');
    await w.discord.waitForBotVoice(w.guild.id, w.voice.id, 15_000);
    const session = await voxta.waitFor(() => voxta.sessions().find((s) => s.state === 'active'), 10_000, 'the resumed session');
    expect(session.chatId).toBe(chatId);
    await voxta.waitFor(() => voxta.audio(session.sessionId)?.header, 10_000, 'the microphone on the resumed session');
    await sleep(300);
    await w.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(w).includes('after the resume'), 15_000, 'speech heard after /resume');
    const next = await voxta.waitFor(() => replyIds(w).find((id) => id !== story), 10_000, 'the answer');
    await voxta.waitFor(() => voxta.playback(next).completes >= 1, 15_000, 'the answer spoken');
    expect(voxta.playback(next).starts[0]!.duration).toBeGreaterThan(0);
    // The chat's history on Voxta runs on from before the stop.
    const history = voxta.chats().find((c) => c.id === chatId)!.messages.map((m) => m.text);
    expect(history.indexOf('after the resume')).toBeGreaterThan(history.indexOf('tell me a story'));
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('/resume with autocomplete picks an earlier chat of the character and carries on there', async () => {
    const e = await startE2E({ discord: { voice: false } });
    env = e;
    const voxta = e.voxta!;
    await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id } });
    await e.discord.waitForBotReady(15_000);
    await e.discord.waitForCommands(['start', 'stop', 'resume'], e.guild.id, 15_000);

    // Two chats with Aria, one after the other.
    await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    const first = voxta.sessions()[0]!.chatId;
    e.alice.say(e.text.id, 'about cats');
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('You said: about cats'), 10_000);
    await answer(await e.admin.runCommand(e.text.id, 'stop'));
    await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    const second = voxta.sessions()[0]!.chatId;
    expect(second).not.toBe(first);
    e.alice.say(e.text.id, 'about dogs');
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('You said: about dogs'), 10_000);
    await answer(await e.admin.runCommand(e.text.id, 'stop'));

    // Typing in the chat option lists both; pick the first chat.
    const choices = await e.admin.autocomplete(e.text.id, 'resume', 'chat', '');
    expect(choices.map((c) => c.value)).toEqual(expect.arrayContaining([first, second]));
    const resumed = await answer(await e.admin.runCommand(e.text.id, 'resume', { chat: first }));
    expect(resumed).toContain('Resumed: Aria');
    await voxta.waitFor(() => voxta.sessions()[0]?.chatId === first, 10_000, 'the first chat open again');
    e.alice.say(e.text.id, 'back to cats');
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('You said: back to cats'), 10_000);
    const texts = (id: string) => voxta.chats().find((c) => c.id === id)!.messages.map((m) => m.text);
    expect(texts(first)).toEqual(expect.arrayContaining(['about cats', 'back to cats']));
    expect(texts(second)).not.toContain('back to cats');
  }, 60_000);
});
