/**
 * Scenarios: connection hiccups that happen all the time on real Discord, during a voice
 * conversation, through the production bot (child process) and the simulators:
 *
 * - the main gateway connection drops (resumable close 4000) while the character is talking: the
 *   client RESUMEs, the voice connection is not disturbed (the reply plays on and completes once),
 *   and a message typed while the gateway was away is replayed and answered exactly once;
 * - the voice gateway stops acknowledging heartbeats (a half-dead connection): the client notices,
 *   reconnects and resumes the voice session; the character keeps being heard and members are
 *   still heard afterwards.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SimMessage } from '../../sim/discord/index.js';
import type { E2EEnv } from '../harness/env.js';
import { boot as bootWorld, replyIds, sends, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const boot = (opts: Parameters<typeof bootWorld>[0] = {}) => bootWorld(opts, (e) => (env = e));
const fromBot = (e: E2EEnv) => (m: SimMessage) => m.authorId === e.discord.botUserId && m.interactionId === null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STORY = 'A long answer that keeps going for a good few seconds, on purpose, so things can happen meanwhile.';

/** The longest pause (ms) between consecutive audible packets the bot sent after `since`. */
function longestGap(e: E2EEnv, since: number, until: number): number {
  const at = e.discord.voiceServer
    .botAudio(e.guild.id)
    .packets.filter((p) => !p.silence && p.at >= since && p.at <= until)
    .map((p) => p.at);
  let gap = 0;
  for (let i = 1; i < at.length; i++) gap = Math.max(gap, at[i]! - at[i - 1]!);
  return gap;
}

describe('scenario: gateway hiccups during a voice conversation', () => {
  it('main gateway dropped mid-reply: resumed (no new IDENTIFY), the spoken reply is not disturbed, a message typed meanwhile is answered once', async () => {
    const { env, bot } = await boot({
      voxta: { stt: { transcripts: ['still hearing me'] }, reply: (t) => (t.includes('story') ? [STORY] : [`Got ${t.replace(/^\w+: /, '')}.`]) },
    });
    const voxta = env.voxta!;
    const identifies = env.discord.identifies.length;
    const ssrc = env.discord.voiceServer.session(env.guild.id)!.ssrc;

    env.alice.say(env.text.id, 'tell me a story');
    const story = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'the story');
    await voxta.waitFor(() => voxta.playback(story).starts.length >= 1, 10_000, 'the story playing');
    await sleep(600);
    const droppedAt = Date.now();
    env.discord.dropGatewayConnection(4000);
    await voxta.waitFor(() => voxta.playback(story).completes >= 1, 20_000, 'the story to complete');
    const completedAt = Date.now();
    await sleep(300);
    expect(voxta.playback(story).completes).toBe(1);
    // The voice connection carried on by itself: same session, and no hole in the audio.
    expect(env.discord.voiceServer.session(env.guild.id)!.ssrc).toBe(ssrc);
    expect(longestGap(env, droppedAt - 500, completedAt)).toBeLessThan(200);
    expect(env.discord.identifies.length).toBe(identifies);

    // A message typed while the gateway is away reaches the bot when it resumes (replayed), once.
    env.discord.dropGatewayConnection(4000);
    env.alice.say(env.text.id, 'typed while the gateway was away');
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('Got typed while the gateway was away.'), 15_000);
    await sleep(1000);
    expect(sends(env).filter((t) => t.endsWith('typed while the gateway was away'))).toHaveLength(1);
    expect(env.discord.identifies.length).toBe(identifies);

    // Still heard by voice.
    await voxta.waitFor(() => voxta.heldSessions().length === 0, 15_000, 'the reply acknowledged');
    await env.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('still hearing me'), 15_000, 'speech after the gateway resumes');
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('voice heartbeats no longer acknowledged: the client reconnects and resumes, the character is heard again, members are still heard', async () => {
    const { env, bot } = await boot({
      discord: { voiceHeartbeatIntervalMs: 400 },
      voxta: { stt: { transcripts: ['after the zombie'] }, reply: (t) => (t.includes('story') ? [STORY] : ['Short.']) },
    });
    const voxta = env.voxta!;
    const vs = env.discord.voiceServer;

    env.alice.say(env.text.id, 'tell me a story');
    const story = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'the story');
    await voxta.waitFor(() => voxta.playback(story).starts.length >= 1, 10_000, 'the story playing');
    const disconnected = new Promise<{ code: number }>((resolve) => vs.events.once('botDisconnected', resolve));
    const resumed = new Promise<unknown>((resolve) => vs.events.once('botResumed', resolve));
    const readyAgain = new Promise<unknown>((resolve) => vs.events.once('botReady', resolve));
    vs.delayHeartbeatAcks(env.guild.id, Infinity);
    const closed = await Promise.race([disconnected, sleep(10_000).then(() => undefined)]);
    expect(closed, 'the bot never noticed the missing heartbeat ACKs').toBeDefined();
    vs.delayHeartbeatAcks(env.guild.id, 0);
    const back = await Promise.race([resumed.then(() => 'resumed'), readyAgain.then(() => 'rejoined'), sleep(20_000).then(() => undefined)]);
    expect(back, 'the voice connection did not come back').toBeDefined();
    const backAt = Date.now();

    // The character is heard again after the reconnection (the rest of the story, or the next reply).
    await voxta.waitFor(() => voxta.playback(story).completes >= 1, 25_000, 'the story to complete');
    await sleep(300);
    expect(voxta.playback(story).completes).toBe(1);
    env.alice.say(env.text.id, 'one more');
    const next = await voxta.waitFor(() => replyIds(env).find((id) => id !== story), 10_000, 'the next reply');
    await voxta.waitFor(() => voxta.playback(next).completes >= 1, 15_000, 'the next reply to complete');
    expect(vs.botAudio(env.guild.id).packets.some((p) => !p.silence && p.at > backAt)).toBe(true);

    await env.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('after the zombie'), 15_000, 'speech after the voice reconnection');
    expect(bot.exit).toBeUndefined();
  }, 90_000);
});
