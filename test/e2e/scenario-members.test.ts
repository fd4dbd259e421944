/**
 * Scenario: people come and go in the voice channel during a conversation (production bot in a
 * child process, both simulators, DAVE v1 so every join and leave is also an MLS group change).
 *
 * A member who leaves in the middle of a sentence must not keep the floor (the others are heard
 * as their own turns), Voxta is told who is present now, and what the leaver said before going
 * stays theirs. People joining and leaving while the character talks change the E2EE group under
 * the playing audio: it must keep flowing, encrypted.
 *
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Who the last context the bot sent Voxta says is in the voice channel ("present there now: …"). */
function presentInVoice(e: E2EEnv): string | undefined {
  for (const m of [...e.voxta!.received].reverse()) {
    const hit = /present there now: ([^."]*)\./.exec(JSON.stringify(m.payload));
    if (hit) return hit[1];
  }
  return undefined;
}

/**
 * Alice and Bob in voice; Alice starts a 2.5 s sentence and leaves the channel 0.9 s into it;
 * `pauseMs` later Bob says something. Returns what Voxta received and recognised.
 */
async function leaveMidSentence(pauseMs: number) {
  const { env, bot } = await boot({
    dave: 'v1',
    members: ['alice', 'bob'],
    voxta: { stt: { transcripts: (i) => `utterance ${i.index + 1}` }, tts: { enabled: false } },
  });
  const voxta = env.voxta!;
  await voxta.waitFor(() => /Alice/.test(presentInVoice(env) ?? '') && /Bob/.test(presentInVoice(env) ?? ''), 10_000, 'a context naming Alice and Bob');
  const speaking = env.alice.speak(tone(440, 2500), { sampleRate: 48_000, channels: 1 });
  await sleep(900);
  env.alice.leaveVoice();
  await speaking;
  await sleep(pauseMs);
  await env.bob.speak(tone(660, 900), { sampleRate: 48_000, channels: 1 });
  // Both turns, or (when they were merged) one: wait for the recogniser to finish.
  await voxta.waitFor(() => voxta.recognitions.length >= 1 && sends(env).length >= voxta.recognitions.filter((r) => r.text).length, 10_000, 'the transcripts');
  await sleep(1500);
  return { env, bot, voxta, recognitions: voxta.recognitions.map((r) => ({ text: r.text, voicedMs: r.voicedMs })), sent: sends(env) };
}

let afterLeave: Awaited<ReturnType<typeof leaveMidSentence>>['sent'] | undefined;

describe('scenario: members come and go in voice', () => {
  it('a member leaves mid-sentence: the group and Voxta’s context follow, the next speaker is heard as their own turn', async () => {
    const { env, bot, voxta, recognitions, sent } = await leaveMidSentence(1000);
    afterLeave = sent;
    const vs = env.discord.voiceServer;
    await vs.daveSettled(env.guild.id, 10_000);
    expect(vs.session(env.guild.id)!.daveUserIds).not.toContain(env.alice.id);
    // Two separate recognitions: Alice's cut-off sentence (~0.9 s) and Bob's (~0.9 s).
    expect(recognitions).toHaveLength(2);
    for (const r of recognitions) expect(r.voicedMs).toBeLessThan(1300);
    expect(sent).toHaveLength(2);
    // Bob is the only one left: his turn may go plain or named, but it is his.
    expect(sent[1]).toMatch(/^(Bob: )?utterance 2$/);
    await voxta.waitFor(() => presentInVoice(env) === 'Bob', 10_000, 'a context with Bob only');
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('members join and leave while the character speaks: every MLS change is followed, the voice keeps flowing, never in clear', async () => {
    const { env, bot } = await boot({
      dave: 'v1',
      voxta: { reply: () => ['A long answer that keeps going for a good few seconds, on purpose, so people can come and go meanwhile.'] },
    });
    const voxta = env.voxta!;
    const vs = env.discord.voiceServer;
    env.alice.say(env.text.id, 'tell me something long');
    const id = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'the answer');
    await voxta.waitFor(() => voxta.playback(id).starts.length >= 1, 10_000, 'the answer playing');
    await sleep(800);
    const from = Date.now();
    const epoch = vs.session(env.guild.id)!.daveEpoch!;
    env.bob.joinVoice(env.voice.id);
    await vs.daveSettled(env.guild.id, 10_000);
    expect(vs.session(env.guild.id)!.daveUserIds).toContain(env.bob.id);
    await sleep(800);
    env.bob.leaveVoice();
    await vs.daveSettled(env.guild.id, 10_000);
    expect(vs.session(env.guild.id)!.daveEpoch!).toBeGreaterThanOrEqual(epoch + 2);
    await sleep(800);
    const to = Date.now();
    await voxta.waitFor(() => voxta.playback(id).completes >= 1, 20_000, 'the answer to finish');

    const audio = vs.botAudio(env.guild.id);
    const during = audio.packets.filter((p) => !p.silence && p.at >= from && p.at <= to);
    expect(during.length).toBeGreaterThan((to - from) / 20 / 2);
    expect(during.every((p) => p.e2ee)).toBe(true);
    expect(audio.clearFrames).toBe(0);
    // A frame or two may be lost right at a key change (as on Discord); no more.
    expect(audio.daveFailures).toBeLessThanOrEqual(4);
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  // Presence is read when the transcript arrives: Alice left before Voxta finished recognising her
  // words and Bob is alone, yet her sentence must not go to Voxta as if Bob had said it.
  it('… and what the leaver said before going is still attributed to her', () => {
    expect(afterLeave?.[0]).toBe('Alice: utterance 1');
  });

  // The floor holder leaving mid-sentence still leaves an end-of-utterance silence before the next
  // speaker is forwarded, so Voxta hears two turns rather than one merged recognition.
  it('a member who speaks right after the floor holder left is still heard as a separate turn', async () => {
    const { recognitions } = await leaveMidSentence(0);
    expect(recognitions.map((r) => r.text)).toEqual(['utterance 1', 'utterance 2']);
  }, 90_000);
});
