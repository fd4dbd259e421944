/**
 * Fault: the Voxta server crashes in the middle of a reply and comes back on the same port
 * (`sim.stop()` then `sim.start()`: every socket and session gone, chats kept). The production
 * bot in a child process must resume the chat, deliver every user message exactly once — also
 * those typed while Voxta was down — and tell the channel once that it lost Voxta and once that
 * it is back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SimChannelHandle, SimMemberHandle } from '../../sim/discord/index.js';
import { ARIA_ID, HOLT_ID } from '../../sim/voxta/index.js';
import type { E2EEnv } from '../harness/env.js';
import { answer, bootText, bootVoice, botPosts, chatUserTexts, freePort, httpGet, replyIds, sends, sleep, tone } from './helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('fault: Voxta killed and restarted mid-reply', () => {
  it('resumes the chats, delivers every message exactly once, tells each channel once each way', async () => {
    const port = await freePort();
    let second: { text: SimChannelHandle; admin: SimMemberHandle } | undefined;
    const { env: e, bot } = await bootText((x) => (env = x), {
      // A reply slow enough to be cut in the middle: five chunks, 250 ms apart.
      e2e: { voxta: { chunkDelayMs: 250, reply: (text) => [`Reply to ${text}, part one.`, 'Part two.', 'Part three.', 'Part four.', 'Part five.'] } },
      botEnv: { HEALTH_PORT: String(port), HEALTH_HOST: '127.0.0.1' },
      globalCommands: true,
      // A second guild with its own chat: every session must come back, each told once.
      before: (x) => {
        const g = x.discord.addGuild({ name: 'Second Server' });
        second = { text: g.addTextChannel('chat'), admin: g.addMember({ username: 'boss2', permissions: 'admin' }) };
      },
    });
    const voxta = e.voxta!;
    const started = await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    expect(started.embeds[0]?.title).toBe('Started: Aria');
    const chatId = voxta.sessions()[0]!.chatId;
    const firstSession = voxta.sessions()[0]!.sessionId;
    const other = second!;
    expect((await answer(await other.admin.runCommand(other.text.id, 'start', { character: HOLT_ID }))).embeds[0]?.title).toBe('Started: Captain Holt');
    const otherChatId = voxta.sessions().find((s) => s.characterId === HOLT_ID)!.chatId;

    // The first message gets a reply that streams…
    e.alice.say(e.text.id, 'm1');
    await voxta.waitForServerMessage('replyChunk', { match: (p) => String(p.text).startsWith('Reply to m1') }, 10_000);
    expect(voxta.sessions().find((s) => s.characterId === ARIA_ID)!.generating).toBe(true);
    // …and Voxta dies in the middle of it.
    await voxta.stop();
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.startsWith('I lost the connection to Voxta'), 10_000);
    await e.discord.waitForMessage(other.text.id, (m) => m.authorId === e.discord.botUserId && m.content.startsWith('I lost the connection to Voxta'), 10_000);
    // Messages typed during the outage.
    e.alice.say(e.text.id, 'm2');
    e.bob.say(e.text.id, 'm3');
    other.admin.say(other.text.id, 'o1');
    // (Readiness during an outage is checked in health.test.ts.)
    await sleep(1000);

    await voxta.start();
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.startsWith('Reconnected to Voxta'), 20_000);
    // The same chat is resumed in a new session, and what was typed meanwhile reaches it.
    const resumed = await voxta.waitFor(() => voxta.sessions().find((s) => s.characterId === ARIA_ID && s.state === 'active'), 10_000, 'the resumed session');
    expect(resumed.chatId).toBe(chatId);
    expect(resumed.sessionId).not.toBe(firstSession);
    expect(voxta.received.some((m) => m.payload.$type === 'resumeChat' && m.payload.chatId === chatId)).toBe(true);
    await voxta.waitFor(() => chatUserTexts(e, chatId).length >= 3, 15_000, 'the three user messages stored in the chat');
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.includes('Reply to') && m.content.includes('m3'), 20_000);
    e.alice.say(e.text.id, 'm4');
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.includes('Reply to') && m.content.includes('m4'), 20_000);
    await e.discord.waitForMessage(other.text.id, (m) => m.authorId === e.discord.botUserId && m.content.includes('Reply to o1'), 20_000);
    await sleep(300);
    // The second guild's chat came back too, with what was typed there meanwhile.
    expect(voxta.sessions().filter((s) => s.state === 'active').map((s) => s.chatId).sort()).toEqual([chatId, otherChatId].sort());
    expect(chatUserTexts(e, otherChatId)).toEqual(['o1']);
    for (const prefix of ['I lost the connection to Voxta', 'Reconnected to Voxta']) {
      expect(botPosts(e, other.text.id).filter((m) => m.content.startsWith(prefix))).toHaveLength(1);
    }

    // Nothing lost, nothing doubled: each message reached Voxta once, in order.
    const userSends = sends(e);
    // (Once two people talk, the bot prefixes the speaker: "Bob: m3".)
    expect(userSends.filter((t) => /m\d$/.test(t)).map((t) => t.slice(-2))).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(userSends.filter((t) => /m\d$/.test(t))[2]).toBe('Bob: m3');
    expect(chatUserTexts(e, chatId).filter((t) => /m\d$/.test(t))).toHaveLength(4);
    for (const m of ['m1', 'm2', 'm3', 'm4']) expect(chatUserTexts(e, chatId).filter((t) => t.endsWith(m))).toHaveLength(1);
    // Told once each way. (The reply cut by the crash stays as far as it got: "Reply to m1, part one.")
    const notices = botPosts(e).map((m) => m.content);
    expect(notices.filter((c) => c.startsWith('I lost the connection to Voxta'))).toHaveLength(1);
    expect(notices.filter((c) => c.startsWith('Reconnected to Voxta'))).toHaveLength(1);
    const up = await httpGet(port, '/readyz');
    expect(up.status).toBe(200);
    expect(bot.exit).toBeUndefined();
  }, 60_000);

  it('in a voice chat, while the character speaks: the chat comes back with the microphone, the next question is heard once and answered', async () => {
    let asked = 0; // across sessions (the simulator's own index restarts with each session)
    const { env: e, bot, sessionId } = await bootVoice((x) => (env = x), {
      e2e: {
        voxta: {
          stt: { transcripts: () => `question ${asked++}` },
          // The first answer is long (seconds of speech, cut by the crash), later ones short.
          reply: (text) => (text === 'question 0' ? [`A long answer to ${text}, one that takes quite a while to say out loud.`] : ['Short one.']),
        },
      },
    });
    const voxta = e.voxta!;
    const chatId = voxta.sessions()[0]!.chatId;
    await e.alice.speak(tone(440, 700), { sampleRate: 48_000, channels: 1 });
    const first = await voxta.waitFor(() => replyIds(e)[0], 10_000, 'the first reply');
    await voxta.waitFor(() => (voxta.playback(first).starts.some((s) => s.duration > 0) ? true : undefined), 10_000, 'the character speaking');

    await voxta.stop(); // mid-speech: sessions, sockets and TTS jobs gone
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.startsWith('I lost the connection to Voxta'), 10_000);
    await sleep(500);
    await voxta.start();
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.startsWith('Reconnected to Voxta'), 20_000);
    const resumed = await voxta.waitFor(() => voxta.sessions().find((s) => s.sessionId !== sessionId && s.state === 'active'), 10_000, 'the resumed session');
    expect(resumed.chatId).toBe(chatId);
    await voxta.waitFor(() => voxta.audio(resumed.sessionId)?.header, 10_000, 'the microphone on the resumed session');

    await sleep(300);
    await e.alice.speak(tone(523, 700), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => (sends(e).includes('question 1') ? true : undefined), 15_000, 'the question after the restart');
    const second = await voxta.waitFor(() => replyIds(e).find((id) => id !== first), 10_000, 'the second reply');
    await voxta.waitFor(() => (voxta.playback(second).completes >= 1 ? true : undefined), 20_000, 'the second reply played');
    await sleep(300);
    expect(voxta.playback(second).completes).toBe(1);
    expect(voxta.playback(second).starts.some((s) => s.duration > 0)).toBe(true);
    // What was owed to the crashed session is forgotten, not sent to the new one.
    expect(voxta.playback(first).completes).toBe(0);
    // Nothing lost or doubled; told once each way.
    expect(sends(e)).toEqual(['question 0', 'question 1']);
    expect(chatUserTexts(e, chatId)).toEqual(['question 0', 'question 1']);
    const notices = botPosts(e).map((m) => m.content);
    expect(notices.filter((c) => c.startsWith('I lost the connection to Voxta'))).toHaveLength(1);
    expect(notices.filter((c) => c.startsWith('Reconnected to Voxta'))).toHaveLength(1);
    expect(bot.exit).toBeUndefined();
  }, 60_000);

  /** Voxta comes back from a restart with the bot's API key no longer valid (rotated by its owner). */
  async function restartWithRotatedKey() {
    const { env: e, bot } = await bootText((x) => (env = x), { e2e: { voxta: { apiKey: 'old-key-0123456789' } }, botEnv: { VOXTA_API_KEY: 'old-key-0123456789' } });
    const voxta = e.voxta!;
    await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    await voxta.stop();
    voxta.options.apiKey = 'new-key-9876543210';
    await voxta.start();
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && /credentials/.test(m.content), 15_000);
    await sleep(500);
    return { e, bot, notices: botPosts(e).map((m) => m.content) };
  }

  it('comes back refusing the bot’s API key: the channel is told plainly that the credentials were refused; the bot stays up', async () => {
    const { e, bot, notices } = await restartWithRotatedKey();
    expect(notices.filter((c) => /Voxta refused my credentials/.test(c))).toHaveLength(1);
    // The key never appears anywhere the users can see.
    expect(e.discord.messages(e.text.id).some((m) => m.content.includes('old-key') || m.content.includes('new-key'))).toBe(false);
    expect(bot.exit).toBeUndefined();
  }, 30_000);

  // KNOWN BUG (src/bot/guild-session.ts onVoxtaFailed + src/bot/bot-core.ts resumeStored): when
  // the reconnect fails on refused credentials, the channel gets three notices that contradict
  // each other: "I lost the connection … reconnecting", then "I could not get the connection to
  // Voxta back. I will keep trying to resume this chat; /stop cancels that.", then at once
  // "I could not resume the chat with Aria after restarting: Voxta refused my credentials. Start a
  // new one with /start." — it does not keep trying, nothing restarted, and the stored chat is
  // deactivated (a bot restarted with the fixed key will not resume it). Expected: one plain
  // notice naming the refused credentials, no promise to keep trying.
  it('comes back refusing the bot’s API key: no contradictory notices ("I will keep trying", "after restarting")', async () => {
    const { notices } = await restartWithRotatedKey();
    expect(notices.filter((c) => /keep trying/.test(c))).toEqual([]);
    expect(notices.filter((c) => /after restarting/.test(c))).toEqual([]);
  }, 30_000);
});
