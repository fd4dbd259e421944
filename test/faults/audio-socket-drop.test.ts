/**
 * Fault: Voxta's audio input socket is cut (no close frame) while a member is speaking, through
 * the production bot in a voice channel. The bot must reopen it on the same session (spec header
 * first, then whole 960-byte frames again), and speech after the drop must be recognised and
 * reach the chat. The drop is invisible to the members: nothing alarming is posted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { E2EEnv } from '../harness/env.js';
import { bootVoice, botPosts, sends, sleep, tone } from './helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('fault: audio socket dropped mid-utterance', () => {
  it('reopens the socket on the same session and recognises the speech that follows', async () => {
    const { env: e, bot, sessionId } = await bootVoice((x) => (env = x), {
      e2e: { voxta: { stt: { transcripts: ({ index }) => `utterance ${index}` }, tts: { enabled: false } } },
    });
    const voxta = e.voxta!;
    const audio = () => voxta.audio(sessionId)!;
    expect(audio().sockets).toBe(1);
    const postsBefore = botPosts(e).length;

    // Alice talks for two seconds; 700 ms in, Voxta's end of the audio socket goes away.
    const speaking = e.alice.speak(tone(440, 2000), { sampleRate: 48_000, channels: 1 });
    await sleep(700);
    expect(audio().open).toBe(true);
    const framesAtDrop = audio().frameCount;
    const droppedAt = Date.now();
    voxta.dropAudioSockets();
    await speaking;

    // Reopened on the same session, header first, whole frames again.
    await voxta.waitFor(() => (audio().sockets >= 2 && audio().open ? true : undefined), 10_000, 'the audio socket reopened');
    expect(audio().header).toMatchObject({ sampleRate: 16000, channels: 1, bitsPerSample: 16 });
    await voxta.waitFor(() => (audio().frameCount > framesAtDrop + 20 ? true : undefined), 5000, 'frames flowing again');
    expect(audio().nonStandardFrames).toBe(0);

    // The cut utterance is recognised whole: the speech around the drop was kept and delivered
    // after the reopen (voiced length ≈ the full two seconds), after the drop.
    const cut = await voxta.waitFor(() => voxta.recognitions.find((r) => r.text !== null), 10_000, 'the cut utterance recognised');
    expect(cut.at).toBeGreaterThan(droppedAt);
    expect(cut.sessionId).toBe(sessionId);
    expect(cut.voicedMs).toBeGreaterThanOrEqual(1900);
    await voxta.waitFor(() => (sends(e).includes(cut.text!) ? true : undefined), 10_000, 'the cut utterance delivered to the chat');

    // A new utterance after the drop is recognised and sent too.
    await sleep(1500); // a clear pause, so it is an utterance of its own
    const before = voxta.recognitions.length;
    await e.alice.speak(tone(523, 900), { sampleRate: 48_000, channels: 1 });
    const rec = await voxta.waitFor(() => voxta.recognitions.slice(before).find((r) => r.text !== null), 10_000, 'speech recognised after the drop');
    expect(rec.sessionId).toBe(sessionId);
    await voxta.waitFor(() => (sends(e).includes(rec.text!) ? true : undefined), 10_000, 'the transcript delivered to the chat');
    expect(sends(e)).toEqual([cut.text, rec.text]);

    // Members were not bothered: no notice about it in the text channel.
    const posted = botPosts(e).slice(postsBefore).map((m) => m.content);
    expect(posted.filter((c) => /lost|error|problem|could not|reconnect/i.test(c))).toEqual([]);
    expect(bot.exit).toBeUndefined();
  }, 60_000);
});
