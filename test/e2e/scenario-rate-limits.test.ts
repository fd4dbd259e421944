/**
 * Scenario: a busy channel under Discord's real per-route rate limits (the simulator's 'discord'
 * preset: 5 messages and 5 edits per 5 s per channel, truthful X-RateLimit headers, 429 beyond).
 * The production bot (child process, real discord.js REST queue) must forward every member's
 * message at once, in order, and post every reply complete and in order — late when Discord makes
 * it wait, but never lost, garbled or retried into duplicates — and never run into a 429.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SimMessage } from '../../sim/discord/index.js';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { startE2E, type E2EEnv } from '../harness/env.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LONG = Array.from({ length: 40 }, (_, i) => `Sentence ${i + 1} of a long answer that keeps going for quite a while to fill the page.`);

describe('scenario: Discord rate limits', () => {
  it('eight quick messages and a 3 500-character reply: all forwarded at once and in order, every reply complete and in order, no 429', async () => {
    const e = await startE2E({
      discord: { voice: false, rateLimit: 'discord' },
      voxta: { chunkDelayMs: 30, reply: (t) => (t.includes('everything') ? LONG : [`Reply to ${t}.`, 'More words here.', 'And the end.']) },
    });
    env = e;
    const voxta = e.voxta!;
    await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id } });
    await e.discord.waitForBotReady(15_000);
    await e.discord.waitForCommands(['start'], e.guild.id, 15_000);
    await (await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID })).waitForResponse();
    await voxta.waitFor(() => voxta.sessions()[0], 10_000, 'the chat');
    const fromBot = (m: SimMessage) => m.authorId === e.discord.botUserId && m.interactionId === null;

    // Voxta (like the simulator) aborts a reply still being generated when the next message comes:
    // each message waits until Voxta finished the previous reply (tens of ms; at least 150 ms
    // apart), so every reply is complete on Voxta's side and only Discord makes the bot wait.
    const repliesEnded = () => voxta.sent.filter((m) => (m.payload as { $type?: string }).$type === 'replyEnd').length;
    const t0 = Date.now();
    const said: string[] = [];
    const saidAt: number[] = [];
    for (let i = 1; i <= 8; i++) {
      const ended = repliesEnded();
      (i % 2 ? e.alice : e.bob).say(e.text.id, `q${i}`);
      said.push(`q${i}`);
      saidAt.push(Date.now());
      await Promise.all([sleep(150), voxta.waitFor(() => repliesEnded() > ended, 5000, `Voxta's reply to q${i}`)]);
    }
    e.alice.say(e.text.id, 'tell me everything');
    said.push('tell me everything');
    saidAt.push(Date.now());

    // Forwarded at once (incoming messages do not wait for the bot's rate-limited REST calls), in order.
    await voxta.waitFor(() => voxta.received.filter((m) => m.payload.$type === 'send').length >= said.length, 5000, 'every message forwarded');
    const sends = voxta.received.filter((m) => m.payload.$type === 'send');
    expect(sends.map((m) => String(m.payload.text).replace(/^\w+: /, ''))).toEqual(said);
    for (const [i, m] of sends.entries()) expect(m.at - saidAt[i]!, `${said[i]} forwarded late`).toBeLessThan(1000);

    // Every reply shows up complete, in order, once (Discord makes the later ones wait).
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(m) && m.content.includes('Sentence 40 of'), 40_000);
    await sleep(2500); // the last rate-limited edits
    const posts = e.discord.messages(e.text.id).filter((m) => fromBot(m) && m.createdAt.getTime() >= t0);
    const short = posts.filter((m) => m.content.startsWith('Reply to'));
    expect(short.map((m) => m.content)).toEqual(said.slice(0, 8).map((q, i) => `Reply to ${i === 0 ? '' : i % 2 ? 'Bob: ' : 'Alice: '}${q}. More words here. And the end.`));
    const long = posts.filter((m) => m.content.startsWith('Sentence'));
    expect(long.length).toBeGreaterThanOrEqual(2);
    for (const p of long) expect(p.content.length).toBeLessThanOrEqual(2000);
    expect(long.map((p) => p.content).join(' ')).toBe(LONG.join(' '));
    // The limits really applied (some replies waited) and the bot never hit one head-on.
    expect(Math.max(...short.map((m) => m.createdAt.getTime())) - t0).toBeGreaterThan(4000);
    expect(e.discord.requests.filter((r) => r.status === 429)).toHaveLength(0);
  }, 90_000);
});
