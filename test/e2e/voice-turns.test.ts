/**
 * Voice turns against a Voxta that behaves like the real one: a new chat opens with the
 * character's greeting, TTS takes 1.5 s to serve each clip, and Voxta does not record
 * (`recordingRequest:false`) from a reply's first audio until its playback completed. A member
 * who starts talking right after the answer's text appeared — before its speech begins — must
 * not lose a word: the simulator's recogniser reports whether it heard the utterance WHOLE (from
 * its onset) and answers only a whole one with the scripted sentence.
 *
 * Production bot (child process) against both simulators. The scenarios do not depend on the
 * greeting being spoken (voice may be joined after the chat started): they wait for its playback
 * to be acknowledged, spoken or not, before the typed message.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { E2EEnv } from '../harness/env.js';
import { fromBot } from '../harness/env.js';
import { freePort, httpGet } from '../harness/http.js';
import { boot as bootWorld, replyIds, sends, tone } from '../voice/e2e-helpers.js';
import type { VoxtaSimOptions } from '../../sim/voxta/index.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const QUESTION = 'what was that about the weather';

/** The simulated server as the issue saw it: greeting on, TTS slow. */
function realisticVoxta(extra: VoxtaSimOptions = {}): VoxtaSimOptions {
  return {
    greeting: true,
    tts: { delayMs: 1500 },
    stt: { transcripts: [QUESTION] },
    reply: (t) => [`You said: ${t}.`, 'That is all I have to say about it.'],
    ...extra,
  };
}

/** Boots, waits for the greeting to be acknowledged, types a question, returns when its answer's text is out. */
async function toAnswerText(voxtaOpts: VoxtaSimOptions, botEnv: Record<string, string>) {
  const b = await bootWorld({ botEnv, voxta: voxtaOpts }, (x) => (env = x));
  const w = b.env;
  const voxta = w.voxta!;
  const greeting = await voxta.waitFor(() => replyIds(w)[0], 10_000, 'the greeting');
  await voxta.waitFor(() => voxta.playback(greeting).completes >= 1, 20_000, 'the greeting acknowledged');
  await voxta.waitFor(() => (voxta.sessions()[0]?.recording && !voxta.sessions()[0]?.held ? true : undefined), 10_000, 'Voxta listening after the greeting');
  w.alice.say(w.text.id, 'Tell me something.');
  const answer = await voxta.waitFor(() => replyIds(w)[1], 15_000, "the answer's text");
  return { ...b, voxta, greeting, answer };
}

/** Every reply the simulator streamed got exactly one speechPlaybackComplete. */
async function expectOneCompleteEach(w: E2EEnv): Promise<void> {
  const voxta = w.voxta!;
  const ids = replyIds(w);
  await voxta.waitFor(() => (ids.every((id) => voxta.playback(id).completes >= 1) ? true : undefined), 20_000, 'every reply acknowledged');
  await new Promise((r) => setTimeout(r, 300));
  expect(ids.map((id) => voxta.playback(id).completes)).toEqual(ids.map(() => 1));
}

describe('voice turns: no utterance lost between a reply and its speech', () => {
  it('an utterance begun after the answer’s text, before its speech, and going on into it is heard whole once Voxta listens, and answered', async () => {
    const { env: w, bot, voxta, answer } = await toAnswerText(realisticVoxta(), { BARGE_IN: 'off' });
    const spokeAt = Date.now();
    await w.alice.speak(tone(440, 2500), { sampleRate: 48_000, channels: 1 });
    // The scenario held: she began before the answer's speech and was still talking as it began.
    const firstStart = await voxta.waitFor(() => voxta.playback(answer).starts[0], 10_000, "the answer's speech");
    expect(firstStart.at).toBeGreaterThan(spokeAt);
    expect(firstStart.at).toBeLessThan(spokeAt + 2500);

    // Voxta got all of it, from its onset, once it recorded again (after the answer played).
    const heard = await voxta.waitFor(() => voxta.recognitions.find((r) => r.text !== null), 20_000, 'her utterance recognised');
    expect(heard).toMatchObject({ whole: true, cut: null, text: QUESTION });
    expect(heard.voicedMs).toBeGreaterThanOrEqual(2400);
    expect(heard.at).toBeGreaterThan(voxta.playback(answer).starts.at(-1)!.at);
    expect(voxta.recognitions.filter((r) => !r.whole)).toEqual([]);
    // …and the character answers it.
    await voxta.waitFor(() => (sends(w).includes(QUESTION) ? true : undefined), 10_000, 'the transcript sent');
    const third = await voxta.waitFor(() => replyIds(w)[2], 10_000, 'the answer to it');
    const thirdText = voxta.sent.filter((m) => (m.payload as { $type?: string; messageId?: string }).$type === 'replyChunk' && (m.payload as { messageId?: string }).messageId === third);
    expect(JSON.stringify(thirdText[0]!.payload)).toContain(`You said: ${QUESTION}`);
    // Without a barge-in the answer was heard to its end.
    expect(voxta.received.filter((m) => m.payload.$type === 'interrupt')).toHaveLength(0);
    await expectOneCompleteEach(w);
    expect(bot.exit).toBeUndefined();
  }, 120_000);

  it('an utterance that barges into the answer is delivered in full, including what was said before its speech began', async () => {
    const { env: w, bot, voxta, answer } = await toAnswerText(realisticVoxta(), { BARGE_IN: 'anyone', BARGE_IN_MIN_MS: '400', BARGE_IN_GRACE_MS: '300' });
    const spokeAt = Date.now();
    const speaking = w.alice.speak(tone(440, 3000), { sampleRate: 48_000, channels: 1 });
    const interrupt = await voxta.waitForClientMessage('interrupt', {}, 15_000);
    await speaking;
    const firstStart = voxta.playback(answer).starts[0]!;
    expect(firstStart.at).toBeGreaterThan(spokeAt); // she began before the speech…
    expect(interrupt.at).toBeGreaterThan(firstStart.at); // …and barged into it

    const heard = await voxta.waitFor(() => voxta.recognitions.find((r) => r.text !== null), 20_000, 'her utterance recognised');
    expect(heard).toMatchObject({ whole: true, cut: null, text: QUESTION });
    // All three seconds, not just what followed the barge-in or the start of the speech.
    expect(heard.voicedMs).toBeGreaterThanOrEqual(2900);
    expect(voxta.recognitions.filter((r) => !r.whole)).toEqual([]);
    await voxta.waitFor(() => (sends(w).includes(QUESTION) ? true : undefined), 10_000, 'the transcript sent');
    await voxta.waitFor(() => replyIds(w)[2], 10_000, 'the answer to it');
    // The interrupted answer: played in part, acknowledged once.
    const served = voxta.ttsServed.filter((t) => t.messageId === answer).reduce((s, t) => s + t.durationMs, 0);
    const played = voxta.playback(answer).starts.reduce((s, x) => s + x.duration * 1000, 0);
    expect(played).toBeLessThan(served);
    await expectOneCompleteEach(w);
    expect(bot.exit).toBeUndefined();
  }, 120_000);

  it('an utterance Voxta can no longer get (its session gone) is counted and shown as not heard', async () => {
    const healthPort = await freePort();
    const { env: w, bot, voxta } = await toAnswerText(realisticVoxta({ reply: () => ['A rather long answer, so that there is time to lose the session while it is spoken.'] }), {
      BARGE_IN: 'off',
      HEALTH_PORT: String(healthPort),
    });
    await w.alice.speak(tone(440, 1200), { sampleRate: 48_000, channels: 1 });
    // Held while the answer is synthesised; Voxta goes away before it listens again.
    await voxta.stop();
    await voxta.start();
    await w.discord.waitForMessage(w.text.id, (m) => fromBot(w)(m) && m.content === '🎙️ **Alice**: (not heard; please say it again)', 30_000);
    const line = await bot.waitForLogMsg(/could not be delivered to Voxta/, (j) => j.reason === 'session', 5000);
    expect(line.json?.speakerId).toBe(w.alice.id);
    expect((await httpGet(healthPort, '/metrics')).body).toMatch(/^voxta_discord_voice_utterances_unheard 1$/m);
    expect(voxta.recognitions.filter((r) => r.text !== null)).toEqual([]);
    // Nothing is owed to the dead session, and nothing was acknowledged twice.
    expect(replyIds(w).map((id) => voxta.playback(id).completes).every((n) => n <= 1)).toBe(true);
    expect(bot.exit).toBeUndefined();
  }, 120_000);
});

describe('voice turns: protocol details against the simulator', () => {
  it('silence:<ms> audio URLs are acknowledged with duration 0 at once, with no dead air, and the reply completes once', async () => {
    const b = await bootWorld({ voxta: { tts: { silenceUrls: true }, reply: () => ['Quiet one.', 'Quiet two.'] } }, (x) => (env = x));
    const w = b.env;
    const voxta = w.voxta!;
    w.alice.say(w.text.id, 'hello');
    const id = await voxta.waitFor(() => replyIds(w)[0], 10_000, 'a reply');
    await voxta.waitFor(() => voxta.playback(id).completes >= 1, 10_000, 'its complete');
    const urls = voxta.sent
      .filter((m) => (m.payload as { $type?: string; messageId?: string }).$type === 'replyChunk' && (m.payload as { messageId?: string }).messageId === id)
      .map((m) => (m.payload as { audioUrl: string }).audioUrl);
    expect(urls.every((u) => /^silence:\d+$/.test(u))).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(voxta.playback(id).starts.map((s) => s.duration)).toEqual([0, 0]);
    expect(voxta.playback(id).completes).toBe(1);
    // Nothing was played for it: not even silence frames.
    expect(w.discord.voiceServer.botAudio(w.guild.id).packets).toHaveLength(0);
    expect(voxta.ttsRequests).toHaveLength(0);
    // The chat goes on at once: the next message is answered.
    w.alice.say(w.text.id, 'again');
    const next = await voxta.waitFor(() => replyIds(w)[1], 10_000, 'the next reply');
    await voxta.waitFor(() => voxta.playback(next).completes >= 1, 10_000, 'its complete');
    expect(b.bot.exit).toBeUndefined();
  }, 90_000);

  it('replyChunk.audioGapMs is honoured: at least that much silence between clips, the clips whole, one complete', async () => {
    const b = await bootWorld({ voxta: { tts: { audioGapMs: 400 }, reply: () => ['First sentence here.', 'Second one.'] } }, (x) => (env = x));
    const w = b.env;
    const voxta = w.voxta!;
    w.alice.say(w.text.id, 'hello');
    const id = await voxta.waitFor(() => replyIds(w)[0], 10_000, 'a reply');
    await voxta.waitFor(() => voxta.playback(id).completes >= 1, 15_000, 'its complete');
    const served = voxta.ttsServed.filter((t) => t.messageId === id);
    expect(served).toHaveLength(2);
    // What the bot sent: clip 1, then ≥ 400 ms (20 frames) of silence frames, then clip 2.
    const packets = w.discord.voiceServer.botAudio(w.guild.id).packets;
    const kinds = packets.map((p) => (p.silence ? 's' : 'a')).join('');
    const runs = kinds.match(/a+|s+/g)!;
    const audioRuns = runs.filter((r) => r[0] === 'a');
    const between = runs.slice(runs.indexOf(audioRuns[0]!) + 1, runs.lastIndexOf(audioRuns.at(-1)!));
    const gapFrames = between.filter((r) => r[0] === 's').reduce((n, r) => n + r.length, 0);
    expect(gapFrames).toBeGreaterThanOrEqual(20);
    expect(gapFrames).toBeLessThan(40); // the gap, not a pause of its own on top
    // Both clips played in full (the gap takes nothing off them), each reported with its true duration.
    expect(voxta.playback(id).starts.map((s) => s.duration)).toEqual(served.map((t) => Math.round(t.durationMs) / 1000));
    await new Promise((r) => setTimeout(r, 300));
    expect(voxta.playback(id).completes).toBe(1);
    expect(b.bot.exit).toBeUndefined();
  }, 90_000);
});
