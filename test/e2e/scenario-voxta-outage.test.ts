/**
 * Scenario: the Voxta server goes away in the middle of a voice conversation (a crash: every
 * socket cut, every session gone, the saved chat kept) and comes back a few seconds later on the
 * same address. The people in the server are told once that Voxta is gone and once that it is
 * back; what they typed meanwhile reaches the character once each, in order; the voice side picks
 * up on the new session (microphone reopened, speech heard, answers spoken); the bot never dies.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SimMessage } from '../../sim/discord/index.js';
import { fromBot, type E2EEnv } from '../harness/env.js';
import { boot as bootWorld, replyIds, sends, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const boot = (opts: Parameters<typeof bootWorld>[0] = {}) => bootWorld(opts, (e) => (env = e));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('scenario: the Voxta server drops mid-conversation (voice session)', () => {
  it('tells the channel once, loses no typed message, and voice carries on on the new session', async () => {
    const { env, bot, sessionId } = await boot({
      members: ['alice', 'bob'],
      voxta: {
        stt: { transcripts: ['are you back'] },
        reply: (t) => (t.includes('story') ? ['This is a long spoken answer that is still playing when the server goes away.'] : [`Got ${t.replace(/^\w+: /, '')}.`]),
      },
    });
    const voxta = env.voxta!;
    const chatId = voxta.sessions()[0]!.chatId;

    // Mid-reply: the character is talking when Voxta goes down.
    env.alice.say(env.text.id, 'tell me a story');
    const storyId = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'the story reply');
    await voxta.waitFor(() => voxta.playback(storyId).starts.length >= 1, 10_000, 'the story playing');
    await sleep(500);
    await voxta.stop();

    const lost = (m: SimMessage) => fromBot(env)(m) && m.content.startsWith('I lost the connection to Voxta');
    const back = (m: SimMessage) => fromBot(env)(m) && m.content.startsWith('Reconnected to Voxta');
    await env.discord.waitForMessage(env.text.id, lost, 10_000);
    env.alice.say(env.text.id, 'first while down');
    env.bob.say(env.text.id, 'second while down');
    env.alice.say(env.text.id, 'third while down');
    await sleep(2500);
    await voxta.start();

    await env.discord.waitForMessage(env.text.id, back, 45_000);
    const resumed = await voxta.waitFor(() => voxta.sessions().find((s) => s.state === 'active'), 10_000, 'the resumed session');
    expect(resumed.chatId).toBe(chatId);
    expect(resumed.sessionId).not.toBe(sessionId);

    // Every message typed during the outage arrives once, in order (attributed: two people talk).
    const wanted = ['first while down', 'second while down', 'third while down'];
    const delivered = () => sends(env).filter((t) => wanted.some((w) => t.endsWith(w)));
    await voxta.waitFor(() => delivered().length >= 3, 15_000, 'the three messages typed during the outage');
    await sleep(500);
    expect(delivered().map((t) => wanted.find((w) => t.endsWith(w)))).toEqual(wanted);
    expect(delivered()).toContain('Bob: second while down');
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('Got third while down.'), 15_000);

    // Told once each way.
    expect(env.discord.messages(env.text.id).filter(lost)).toHaveLength(1);
    expect(env.discord.messages(env.text.id).filter(back)).toHaveLength(1);

    // Voice carries on: the microphone is reopened on the new session, speech is heard and answered out loud.
    await voxta.waitFor(() => voxta.audio(resumed.sessionId)?.header, 10_000, 'the microphone on the new session');
    await voxta.waitFor(() => voxta.heldSessions().length === 0, 15_000, 'the replies to the typed messages acknowledged');
    await env.alice.speak(tone(440, 900), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).some((t) => t.endsWith('are you back')), 15_000, 'speech heard after the outage');
    const spoken = voxta.received.find((m) => m.payload.$type === 'send' && String(m.payload.text).endsWith('are you back'))!;
    expect(spoken.payload.sessionId).toBe(resumed.sessionId);
    const answerId = await voxta.waitFor(() => replyIds(env).find((id) => voxta.playback(id).starts.length > 0 && id !== storyId && voxta.sent.some((m) => m.at > spoken.at && (m.payload as { messageId?: string }).messageId === id)), 15_000, 'the spoken answer');
    await voxta.waitFor(() => voxta.playback(answerId).completes >= 1, 15_000, 'the spoken answer to complete');
    expect(voxta.playback(answerId).starts[0]!.duration).toBeGreaterThan(0);
    expect(bot.exit).toBeUndefined();
  }, 90_000);
});
