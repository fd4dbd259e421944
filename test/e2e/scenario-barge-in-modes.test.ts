/**
 * Scenario: BARGE_IN=floor end to end (production bot in a child process, both simulators). Only
 * the member the character is answering can cut it off by talking; someone else talking over the
 * character does not stop it (a side conversation in the channel must not silence the reply),
 * while the member who asked can.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { E2EEnv } from '../harness/env.js';
import { boot as bootWorld, replyIds, sends, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LONG = 'A long answer that keeps going for a good few seconds, on purpose, so people can talk over it.';

describe('scenario: barge-in modes', () => {
  it('BARGE_IN=floor: another member talking over the answer does not stop it; the member being answered does', async () => {
    const { env: w, bot } = await bootWorld(
      {
        members: ['alice', 'bob'],
        botEnv: { BARGE_IN: 'floor' },
        voxta: { stt: { transcripts: ['first question', 'second question'] }, reply: () => [LONG] },
      },
      (x) => (env = x),
    );
    const voxta = w.voxta!;
    const vs = w.discord.voiceServer;
    const interrupts = () => voxta.received.filter((m) => m.payload.$type === 'interrupt').length;

    // Alice asks; while the answer plays, Bob talks over it for a second: it goes on to the end.
    await w.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    const first = await voxta.waitFor(() => replyIds(w)[0], 10_000, 'the first answer');
    await voxta.waitFor(() => voxta.playback(first).starts.length >= 1, 10_000, 'the first answer playing');
    await sleep(800);
    await w.bob.speak(tone(660, 1200), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => voxta.playback(first).completes >= 1, 20_000, 'the first answer to finish');
    expect(interrupts()).toBe(0);
    const served = voxta.ttsServed.filter((t) => t.messageId === first).reduce((s, t) => s + t.durationMs, 0);
    const played = vs.botAudio(w.guild.id).packets.filter((p) => !p.silence).length * 20;
    expect(played).toBeGreaterThan(served * 0.9);
    expect(bot.output()).not.toMatch(/barge-in/);

    // Alice asks again and talks over the answer herself: it stops.
    await sleep(800);
    await w.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(w).some((t) => t.endsWith('second question')), 15_000, 'the second question');
    const second = await voxta.waitFor(() => replyIds(w).find((id) => id !== first), 10_000, 'the second answer');
    await voxta.waitFor(() => voxta.playback(second).starts.length >= 1, 10_000, 'the second answer playing');
    await sleep(800);
    await w.alice.speak(tone(440, 1000), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => (interrupts() >= 1 ? true : undefined), 5000, 'an interrupt');
    await bot.waitForLog(/barge-in/, 2000);
    await voxta.waitFor(() => voxta.playback(second).completes >= 1, 10_000, 'the second answer acknowledged');
    expect(bot.exit).toBeUndefined();
  }, 90_000);
});
