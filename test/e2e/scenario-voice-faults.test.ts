/**
 * Scenarios: the voice connection under faults the other e2e files do not cover, through the
 * production bot (child process, real discord.js + @discordjs/voice) and the simulators.
 *
 * - a DAVE MLS proposal for a user the voice server never announced (@discordjs/voice 0.19.2
 *   throws out of its websocket handler): the process lives, and the voice link is still a working
 *   one afterwards — a member who joins LATER is added to the E2EE group and heard (a "zombie"
 *   connection whose websocket stopped reading would never learn about them), and the character's
 *   replies stay end-to-end encrypted;
 * - a voice-gateway close 4015 (voice server crashed) in the middle of a spoken reply, with DAVE:
 *   the client resumes the same session and the reply keeps playing, still end-to-end encrypted,
 *   and completes once;
 * - a voice-gateway close 4014 (kicked) with two guilds in voice: only that guild's voice ends,
 *   it is said once in its text channel, its text chat goes on, the other guild keeps talking, and
 *   /join brings the bot back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SimMessage } from '../../sim/discord/index.js';
import { ARIA_ID, HOLT_ID } from '../../sim/voxta/index.js';
import { startE2E, fromBot, type E2EEnv } from '../harness/env.js';
import { boot as bootWorld, replyIds, sends, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const boot = (opts: Parameters<typeof bootWorld>[0] = {}) => bootWorld(opts, (e) => (env = e));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('scenario: voice faults (production bot, simulators)', () => {
  it('DAVE proposal for an unannounced user: the bot survives, a member joining afterwards is added to the E2EE group and heard, replies stay encrypted', async () => {
    const { env, bot } = await boot({
      dave: 'v1',
      voxta: { stt: { transcripts: ['bob joined after the fault'] }, reply: () => ['Hello Bob, nice to hear you.'] },
    });
    const voxta = env.voxta!;
    const vs = env.discord.voiceServer;
    const epochBefore = vs.session(env.guild.id)!.daveEpoch!;

    vs.proposeUnknownUser(env.guild.id);
    await sleep(1000);
    expect(bot.exit, `the bot process died:\n${bot.output().slice(-3000)}`).toBeUndefined();

    // A member who arrives after the fault: the voice websocket must still read op 11 and the
    // MLS proposal/commit for Bob, or Bob could never be decrypted (and never heard).
    env.bob.joinVoice(env.voice.id);
    await vs.daveSettled(env.guild.id, 20_000);
    const session = vs.session(env.guild.id)!;
    expect(session.daveUserIds).toContain(env.bob.id);
    expect(session.daveEpoch!).toBeGreaterThan(epochBefore);

    const framesBefore = vs.botAudio(env.guild.id).e2eeFrames;
    await env.bob.speak(tone(330, 900), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).some((t) => t.includes('bob joined after the fault')), 15_000, 'Bob’s transcript after the fault');
    // Two humans in the channel now: the turn is attributed.
    expect(sends(env)).toContain('Bob: bob joined after the fault');

    const id = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'a reply');
    await voxta.waitFor(() => voxta.playback(id).completes >= 1, 15_000, 'the spoken reply to complete');
    const audio = vs.botAudio(env.guild.id);
    expect(audio.e2eeFrames - framesBefore).toBeGreaterThan(10);
    expect(audio.clearFrames).toBe(0);
    expect(audio.daveFailures).toBe(0);

    // The guild still answers in text too.
    env.alice.say(env.text.id, 'and in text?');
    await env.discord.waitForMessage(env.text.id, (m) => fromBot(env)(m) && m.content.includes('Hello Bob'), 10_000);
    expect(bot.exit).toBeUndefined();
    expect(bot.output()).toMatch(/DAVE message could not be processed|rejoining the voice channel/);
  }, 90_000);

  it('voice gateway closed with 4015 mid-reply (DAVE v1): the session is resumed, the reply keeps playing end-to-end encrypted and completes once, speech is still heard', async () => {
    const { env, bot } = await boot({
      dave: 'v1',
      voxta: {
        stt: { transcripts: ['after the resume'] },
        reply: (t) => (t.includes('story') ? ['A long answer that keeps going for a good few seconds, on purpose, so it can be cut.'] : ['Short.']),
      },
    });
    const voxta = env.voxta!;
    const vs = env.discord.voiceServer;
    const ssrc = vs.session(env.guild.id)!.ssrc;
    const identifies = () => vs.frames(env.guild.id).filter((f) => f.dir === 'in' && f.op === 0).length;
    const identifiesBefore = identifies();

    env.alice.say(env.text.id, 'tell me a story');
    const id = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'the reply');
    await voxta.waitFor(() => voxta.playback(id).starts.length >= 1, 10_000, 'playback started');
    await sleep(800);
    const resumed = new Promise<{ replayed: number }>((resolve) => vs.events.once('botResumed', resolve));
    const closedAt = Date.now();
    vs.closeBotSocket(env.guild.id, 4015);
    await Promise.race([resumed, sleep(10_000).then(() => Promise.reject(new Error('no op 7 resume within 10 s')))]);

    // Same session: no new IDENTIFY, same SSRC; the reply goes on after the resume.
    expect(identifies()).toBe(identifiesBefore);
    expect(vs.session(env.guild.id)!.ssrc).toBe(ssrc);
    await voxta.waitFor(() => vs.botAudio(env.guild.id).packets.some((p) => !p.silence && p.at > closedAt + 300), 5000, 'audio after the resume');
    // Still end-to-end encrypted with the same group's keys after the resume.
    const afterResume = () => vs.botAudio(env.guild.id).packets.filter((p) => !p.silence && p.at > closedAt + 300);
    await voxta.waitFor(() => voxta.playback(id).completes >= 1, 20_000, 'the reply to complete');
    await sleep(300);
    expect(voxta.playback(id).completes).toBe(1);
    // Most of the ~5 s reply was played (a few frames around the close may be lost).
    const served = voxta.ttsServed.filter((t) => t.messageId === id).reduce((s, t) => s + t.durationMs, 0);
    const played = vs.botAudio(env.guild.id).packets.filter((p) => !p.silence).length * 20;
    expect(played).toBeGreaterThan(served * 0.8);
    expect(afterResume().length).toBeGreaterThan(10);
    expect(afterResume().every((p) => p.e2ee)).toBe(true);
    expect(vs.botAudio(env.guild.id).daveFailures).toBe(0);

    await env.alice.speak(tone(440, 900), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('after the resume'), 15_000, 'the transcript after the resume');
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('kicked with 4014 while two guilds are in voice: only that guild’s voice ends, said once; its text goes on; the other guild keeps talking; /join brings it back', async () => {
    const e = await startE2E({ voxta: { stt: { transcripts: (i) => `utterance ${i.index + 1}` }, reply: (t) => [`Echo ${t.length}.`] } });
    env = e;
    const voxta = e.voxta!;
    const other = e.discord.addGuild({ name: 'Second Server' });
    const otherText = other.addTextChannel('chat');
    const otherVoice = other.addVoiceChannel('Talk');
    const carol = other.addMember({ username: 'carol', displayName: 'Carol', permissions: 'admin' });
    const bot = await e.spawnBot({ env: { VOXTA_MAX_VOICE_SESSIONS: '2' } });
    await e.discord.waitForBotReady(15_000);
    await e.discord.waitForCommands(['start', 'join'], undefined, 15_000);
    e.admin.joinVoice(e.voice.id);
    carol.joinVoice(otherVoice.id);
    await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID });
    await carol.runCommand(otherText.id, 'start', { character: HOLT_ID });
    await e.discord.waitForBotVoice(e.guild.id, e.voice.id, 15_000);
    await e.discord.waitForBotVoice(other.id, otherVoice.id, 15_000);
    await voxta.waitFor(() => voxta.sessions().length === 2 && voxta.sessions().every((s) => voxta.audio(s.sessionId)?.header), 15_000, 'two microphone streams');
    const sessionOf = (text: string) => voxta.received.find((m) => m.payload.$type === 'send' && m.payload.text === text)?.payload.sessionId;
    const otherSession = voxta.sessions().find((s) => s.characterId === HOLT_ID)!.sessionId;

    e.discord.voiceServer.closeBotSocket(e.guild.id, 4014);
    const kickedNotice = (m: SimMessage) => fromBot(e)(m) && m.content.includes('disconnected from the voice channel');
    await e.discord.waitForMessage(e.text.id, kickedNotice, 10_000);
    await sleep(1500);
    expect(e.discord.messages(e.text.id).filter(kickedNotice)).toHaveLength(1);
    expect(e.discord.messages(otherText.id).filter(kickedNotice)).toHaveLength(0);
    // Voice really ended for the first guild (the bot told Discord it left), not for the second.
    expect(e.discord.botVoiceState(e.guild.id)?.channelId ?? null).toBeNull();
    expect(e.discord.botVoiceState(other.id)?.channelId).toBe(otherVoice.id);

    // The other guild still hears and answers by voice.
    await carol.speak(tone(500, 900), { sampleRate: 48_000, channels: 1 });
    const heard = await voxta.waitFor(() => voxta.recognitions.find((r) => r.sessionId === otherSession && r.text), 15_000, 'Carol heard');
    await voxta.waitFor(() => sessionOf(heard.text!), 10_000, 'Carol’s transcript sent');
    expect(sessionOf(heard.text!)).toBe(otherSession);

    // The kicked guild's text chat goes on.
    e.alice.say(e.text.id, 'still typing here');
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.startsWith('Echo'), 10_000);

    // /join brings voice back in the first guild, and it hears again.
    const join = await e.admin.runCommand(e.text.id, 'join');
    await join.waitForResponse();
    await e.discord.waitForBotVoice(e.guild.id, e.voice.id, 15_000);
    const firstSession = voxta.sessions().find((s) => s.characterId === ARIA_ID)!.sessionId;
    await voxta.waitFor(() => voxta.audio(firstSession)?.header, 10_000, 'the first guild’s microphone stream again');
    await sleep(300);
    await e.admin.speak(tone(440, 900), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => voxta.recognitions.find((r) => r.sessionId === firstSession && r.text && r.at > heard.at), 15_000, 'the first guild heard again after /join');
    expect(bot.exit).toBeUndefined();
  }, 90_000);
});
