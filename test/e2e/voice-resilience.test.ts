/**
 * Voice end to end, when things go wrong: kicked from the channel (4014), voice-gateway closes the
 * library recovers from, a Voxta reconnect mid-reply, TTS that 404s, and members who opted out.
 * Same setup as voice-pipeline.test.ts: the production bot in a child process, both simulators.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { E2EEnv } from '../harness/env.js';
import { boot as bootWorld, replyIds, sends, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const boot = (opts: Parameters<typeof bootWorld>[0] = {}) => bootWorld(opts, (e) => (env = e));
const byBot = (e: E2EEnv) => (m: { authorId: string }) => m.authorId === e.discord.botUserId;

describe('voice resilience (production bot, simulators)', () => {
  it('kicked from the voice channel (4014): voice ends cleanly, the text channel is told once, text chat goes on', async () => {
    const { env, bot } = await boot({ voxta: { reply: () => ['Still here.'] } });
    env.discord.disconnectBotFromVoice(env.guild.id);
    await env.discord.waitForMessage(env.text.id, (m) => byBot(env)(m) && m.content.includes('disconnected from the voice channel'), 10_000);
    await bot.waitForLog(/voice: voice ended/, 5000);
    // The bot does not try to come back on its own.
    await new Promise((r) => setTimeout(r, 1500));
    expect(env.discord.botVoiceState(env.guild.id)?.channelId ?? null).toBeNull();
    const notices = env.discord.messages(env.text.id).filter((m) => byBot(env)(m) && m.content.includes('disconnected from the voice channel'));
    expect(notices).toHaveLength(1);
    // Text goes on, and replies are acknowledged again by the session itself (no hold left behind).
    env.alice.say(env.text.id, 'are you there?');
    await env.discord.waitForMessage(env.text.id, (m) => byBot(env)(m) && m.content.includes('Still here.'), 10_000);
    const voxta = env.voxta!;
    const id = replyIds(env).at(-1)!;
    await voxta.waitFor(() => voxta.playback(id).completes >= 1, 5000, 'the text reply completed');
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('voice gateway closed with 4006 (session invalid): the connection recovers and the bot still hears and speaks', async () => {
    const { env, bot } = await boot({ voxta: { stt: { transcripts: ['after the reconnect'] }, reply: () => ['Welcome back.'] } });
    const voxta = env.voxta!;
    const ready = () => env.discord.voiceServer.session(env.guild.id)?.ready === true;
    env.discord.voiceServer.closeBotSocket(env.guild.id, 4006);
    await voxta.waitFor(() => bot.lines.some((l) => /"from":"ready"/.test(l.line)), 5000, 'the connection leaving Ready');
    await voxta.waitFor(() => (ready() ? true : undefined), 15_000, 'the voice session ready again');
    await new Promise((r) => setTimeout(r, 300));
    await env.alice.speak(tone(440, 900), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('after the reconnect'), 15_000, 'the transcript after recovery');
    const id = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'a reply');
    await voxta.waitFor(() => voxta.playback(id).completes >= 1, 15_000, 'playback after recovery');
    expect(voxta.playback(id).starts[0]?.duration).toBeGreaterThan(0);
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('Voxta reconnects mid-reply: playback owed to the dead session is dropped, the new session is heard and answered', async () => {
    const { env, bot } = await boot({
      voxta: {
        stt: { transcripts: ['first question', 'second question'] },
        reply: (text) => (text.includes('first') ? ['A long answer that takes several seconds to say out loud, really.'] : ['Short.']),
      },
    });
    const voxta = env.voxta!;
    await env.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    const first = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'the first reply');
    await voxta.waitFor(() => voxta.playback(first).starts.length >= 1, 10_000, 'playback started');
    const oldSession = voxta.sessions()[0]!.sessionId;
    voxta.dropHubConnections();
    const newSession = await voxta.waitFor(() => voxta.sessions().find((s) => s.sessionId !== oldSession && s.state === 'active')?.sessionId, 20_000, 'the resumed session');
    await voxta.waitFor(() => voxta.audio(newSession)?.header, 10_000, 'the microphone on the new session');
    // Nothing more of the dead session's reply is played: the bot's RTP goes quiet.
    await new Promise((r) => setTimeout(r, 400));
    const quietFrom = Date.now();
    await new Promise((r) => setTimeout(r, 600));
    const late = env.discord.voiceServer.botAudio(env.guild.id).packets.filter((p) => !p.silence && p.at > quietFrom);
    expect(late).toHaveLength(0);
    // The new session hears the member and its reply plays and completes once.
    await env.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('second question'), 15_000, 'the transcript on the new session');
    const second = await voxta.waitFor(() => replyIds(env).find((id) => id !== first), 10_000, 'the second reply');
    await voxta.waitFor(() => voxta.playback(second).completes >= 1, 15_000, 'the second reply completed');
    await new Promise((r) => setTimeout(r, 300));
    expect(voxta.playback(second).completes).toBe(1);
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('TTS answering 404 or non-audio: logged with ids, acknowledged with duration 0, the reply still completes once, people told once', async () => {
    const { env, bot } = await boot({ voxta: { stt: { transcripts: ['say something'] }, reply: () => ['One.', 'Two.'], tts: { status: 404 } } });
    const voxta = env.voxta!;
    await env.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    const id = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'a reply');
    await voxta.waitFor(() => voxta.playback(id).completes >= 1, 10_000, 'the complete');
    await new Promise((r) => setTimeout(r, 300));
    const pb = voxta.playback(id);
    expect(pb.completes).toBe(1);
    expect(pb.starts.map((s) => s.duration)).toEqual([0, 0]);
    const line = await bot.waitForLog(/TTS download failed/, 1000);
    expect(line.json).toMatchObject({ guildId: env.guild.id, messageId: id });
    expect(String(line.json?.sessionId)).toMatch(/.+/);
    // The people in voice are told once (two failed sentences, one notice) instead of silence.
    const told = (m: { content: string }) => m.content.includes('could not play the character');
    await env.discord.waitForMessage(env.text.id, (m) => byBot(env)(m) && told(m), 5000);
    expect(env.discord.messages(env.text.id).filter((m) => byBot(env)(m) && told(m))).toHaveLength(1);
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('a member who opted out (/listen off) is never forwarded; others still are', async () => {
    const { env, sessionId } = await boot({ members: ['alice', 'bob'], voxta: { stt: { transcripts: ['bob talking'] }, tts: { enabled: false } } });
    const voxta = env.voxta!;
    const off = await env.alice.runCommand(env.text.id, 'listen off');
    await off.waitForResponse();
    const framesBefore = voxta.audio(sessionId)!.frameCount;
    await env.alice.speak(tone(440, 1000, 48_000, 12_000), { sampleRate: 48_000, channels: 1 });
    await new Promise((r) => setTimeout(r, 1200));
    // Alice's loud second of speech produced no voice at Voxta's input: every frame since is silence.
    const rec = voxta.audio(sessionId)!;
    const since = rec.frames.slice(-(rec.frameCount - framesBefore));
    expect(since.length).toBeGreaterThan(20);
    expect(since.every((f) => f.every((b) => b === 0))).toBe(true);
    expect(voxta.recognitions).toHaveLength(0);
    await env.bob.speak(tone(660, 900), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).length >= 1, 10_000, "bob's transcript");
    // Two humans in the channel (the bot core passes humansInChannel): the attributed form.
    expect(sends(env)).toEqual(['Bob: bob talking']);
  }, 90_000);
});
