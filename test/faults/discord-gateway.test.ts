/**
 * Fault: the Discord gateway connection drops while a reply streams and a member keeps typing.
 * discord.js resumes the session and the simulator replays what was missed. The production bot
 * must deliver every message exactly once (a replayed MESSAGE_CREATE is not a second message),
 * finish the reply in its one Discord message, and not bother the channel about it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID } from '../../sim/voxta/index.js';
import type { E2EEnv } from '../harness/env.js';
import { answer, bootText, botPosts, sends, sleep } from './helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('fault: Discord gateway dropped mid-reply', () => {
  it('resumes; every message delivered once, the reply finished in one message, nothing posted about it', async () => {
    const { env: e, bot } = await bootText((x) => (env = x), {
      e2e: { voxta: { chunkDelayMs: 250, reply: (text) => [`Reply to ${text}, part one.`, 'Part two.', 'Part three.', 'Part four.'] } },
    });
    const voxta = e.voxta!;
    await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    const identifies = e.discord.identifies.length;

    e.alice.say(e.text.id, 'm1');
    await voxta.waitForServerMessage('replyChunk', { match: (p) => String(p.text).startsWith('Reply to m1') }, 10_000);
    e.discord.dropGatewayConnection(4000);
    // Typed while the bot is off the gateway: replayed to it on RESUME.
    e.alice.say(e.text.id, 'm2');
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content === 'Reply to m2, part one. Part two. Part three. Part four.', 20_000);
    e.alice.say(e.text.id, 'm3');
    await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content === 'Reply to m3, part one. Part two. Part three. Part four.', 20_000);
    await sleep(300);

    // It resumed (no new IDENTIFY), and nothing was lost or doubled.
    expect(e.discord.identifies.length).toBe(identifies);
    expect(sends(e)).toEqual(['m1', 'm2', 'm3']);
    const posts = botPosts(e).map((m) => m.content);
    // One Discord message per reply (m1's may have been cut by m2, Voxta's choice), nothing else.
    expect(posts.filter((c) => c.startsWith('Reply to m1'))).toHaveLength(1);
    expect(posts.filter((c) => c.startsWith('Reply to m2'))).toHaveLength(1);
    expect(posts.filter((c) => c.startsWith('Reply to m3'))).toHaveLength(1);
    expect(posts).toHaveLength(3);
    expect(bot.exit).toBeUndefined();
  }, 60_000);
});
