/**
 * Scenarios: connection hiccups that happen all the time on real Discord, during a voice
 * conversation, through the production bot (child process) and the simulators:
 *
 * - the main gateway connection drops (resumable close 4000) while the character is talking: the
 *   client RESUMEs, the voice connection is not disturbed (the reply plays on and completes once),
 *   and a message typed while the gateway was away is replayed and answered exactly once;
 * - the voice gateway stops acknowledging heartbeats (a half-dead connection): the client notices,
 *   reconnects and resumes the voice session; the character keeps being heard and members are
 *   still heard afterwards;
 * - the main gateway session cannot be resumed (close 4007: discord.js identifies anew): Discord
 *   drops the old session's voice connection with 4014. Nobody kicked the bot, the chat is still
 *   running and people are still in the channel: it comes back to voice by itself.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { fromBot, type E2EEnv } from '../harness/env.js';
import { boot as bootWorld, replyIds, sends, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const boot = (opts: Parameters<typeof bootWorld>[0] = {}) => bootWorld(opts, (e) => (env = e));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STORY = 'A longer answer that goes on for a few seconds, on purpose.';

/** The bot's voice session on the simulated voice server was closed (by Discord's side or by the bot). */
function vsClosed(e: E2EEnv): boolean {
  return e.discord.voiceServer.session(e.guild.id)?.connected !== true;
}

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
    // (A rejoin would leave a hole of a second or more; event-loop jitter on a busy machine stays well below.)
    expect(longestGap(env, droppedAt - 500, completedAt)).toBeLessThan(500);
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

  it('voice heartbeats no longer acknowledged (DAVE v1): the client reconnects and resumes, the character is heard again (E2EE), members are still heard', async () => {
    const { env, bot } = await boot({
      dave: 'v1',
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
    const after = vs.botAudio(env.guild.id).packets.filter((p) => !p.silence && p.at > backAt);
    expect(after.length).toBeGreaterThan(10);
    expect(after.every((p) => p.e2ee)).toBe(true);

    await env.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('after the zombie'), 15_000, 'speech after the voice reconnection');
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  // Discord also closes voice with 4014 when the MAIN GATEWAY SESSION was dropped (its docs list "the
  // main gateway session was dropped" under 4014), e.g. when a session cannot be resumed (close
  // 4007/1000, op 9 INVALID_SESSION after a long outage). A kick comes without a new READY; a session
  // reset comes with one, and then the bot rejoins by itself instead of going text-only.
  it('main gateway session not resumable: Discord drops the old voice session (4014); the bot rejoins voice by itself', async () => {
    const { env, bot } = await boot({ voxta: { stt: { transcripts: ['back in voice'] }, reply: () => ['Ok.'] } });
    const voxta = env.voxta!;
    const identifies = env.discord.identifies.length;
    env.discord.dropGatewayConnection(4007);
    await voxta.waitFor(() => env.discord.identifies.length > identifies, 20_000, 'a new IDENTIFY (session not resumed)');
    // The session reset cost the bot its voice connection (Discord's side)…
    await voxta.waitFor(() => (vsClosed(env) ? true : undefined), 10_000, 'the old voice session closed');
    // …and it comes back by itself, and hears the member again.
    await env.discord.waitForBotVoice(env.guild.id, env.voice.id, 6000);
    await voxta.waitFor(() => env.discord.voiceServer.session(env.guild.id)?.ready, 10_000, 'a new voice session');
    await sleep(300);
    await env.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('back in voice'), 15_000, 'speech after the rejoin');
    expect(env.discord.messages(env.text.id).filter((m) => fromBot(env)(m) && m.content.includes('Run /join'))).toHaveLength(0);
    expect(bot.exit).toBeUndefined();
  }, 90_000);
});
