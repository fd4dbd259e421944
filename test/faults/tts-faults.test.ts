/**
 * Fault: the character's speech cannot be fetched — TTS answering 404, then 502, then a download
 * slower than the whole reply — in a voice chat with the production bot. Each reply must be
 * completed exactly once toward Voxta (`speechPlaybackComplete`; otherwise Voxta waits forever),
 * its text still reaches the channel, and the chat goes on: the next turn is heard, answered
 * and played.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { E2EEnv } from '../harness/env.js';
import { bootVoice, replyIds, sleep, tone } from './helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('fault: TTS failures in a voice chat', () => {
  it('404, 502 and a download slower than the reply: each reply completes exactly once and the chat goes on', async () => {
    const boot = await bootVoice((x) => (env = x), {
      e2e: {
        voxta: {
          stt: { transcripts: ({ index }) => `turn ${index}` },
          reply: (text) => [`Answer to ${text}.`],
        },
      },
    });
    const e = boot.env;
    const voxta = e.voxta!;
    const byBot = (m: { authorId: string }) => m.authorId === e.discord.botUserId;

    /** One spoken turn; returns the reply's message id once Voxta saw its playback complete. */
    async function turn(label: string): Promise<string> {
      const before = replyIds(e).length;
      await e.alice.speak(tone(440, 700), { sampleRate: 48_000, channels: 1 });
      const id = await voxta.waitFor(() => replyIds(e)[before], 15_000, `the reply of the ${label} turn`);
      await voxta.waitFor(() => voxta.playback(id).completes >= 1, 15_000, `the ${label} reply completed`);
      return id;
    }

    voxta.options.tts.status = 404;
    const notFound = await turn('404');
    voxta.options.tts.status = 502;
    const badGateway = await turn('502');
    voxta.options.tts.status = 200;
    voxta.options.tts.delayMs = 1500; // longer than the whole reply, text and speech (17 characters ≈ 1 s)
    const slow = await turn('slow');
    voxta.options.tts.delayMs = 0;
    const normal = await turn('normal');
    await sleep(500);

    for (const id of [notFound, badGateway, slow, normal]) {
      expect(voxta.playback(id).completes, `completes of ${id}`).toBe(1);
      expect(voxta.playback(id).released, `hold released by ${id}`).toBe(true);
    }
    // Voxta was asked for the audio each time and answered as told.
    const statusOf = (id: string) => voxta.ttsRequests.filter((r) => voxta.sent.some((s) => (s.payload as { messageId?: string; audioUrl?: string }).messageId === id && String((s.payload as { audioUrl?: string }).audioUrl).includes(r.id))).map((r) => r.status);
    expect(statusOf(notFound)).toContain(404);
    expect(statusOf(badGateway)).toContain(502);
    // Failed downloads are acknowledged with no audio; the slow and the normal ones really played.
    expect(voxta.playback(notFound).starts.every((s) => s.duration === 0)).toBe(true);
    expect(voxta.playback(badGateway).starts.every((s) => s.duration === 0)).toBe(true);
    expect(voxta.playback(slow).starts.some((s) => s.duration > 0)).toBe(true);
    expect(voxta.playback(normal).starts.some((s) => s.duration > 0)).toBe(true);
    // The slow download really was slower than the reply: it arrived after the reply ended.
    const replyEndAt = voxta.sent.find((s) => (s.payload as { $type?: string; messageId?: string }).$type === 'replyEnd' && (s.payload as { messageId?: string }).messageId === slow)!.at;
    const servedAt = voxta.ttsServed.find((t) => t.messageId === slow)!.at;
    expect(servedAt - replyEndAt).toBeGreaterThan(1000);
    // Nothing the user said was lost, and every answer reached the channel as text.
    const userTurns = voxta.received.filter((m) => m.payload.$type === 'send').map((m) => String(m.payload.text));
    expect(userTurns).toEqual(['turn 0', 'turn 1', 'turn 2', 'turn 3']);
    for (const n of [0, 1, 2, 3]) {
      await e.discord.waitForMessage(e.text.id, (m) => byBot(m) && m.content.includes(`Answer to turn ${n}.`), 5000);
    }
    expect(boot.bot.exit).toBeUndefined();
  }, 90_000);
});
