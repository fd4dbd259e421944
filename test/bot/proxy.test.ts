/**
 * Proxy bots (PluralKit, Tupperbox) at the core's boundary: a proxied message reaches Voxta once,
 * under the proxied name, whatever the order of repost and deletion; ordinary messages still go
 * (a little later where a proxy bot lives); other webhooks and the bot's own are never bridged.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/commands/index.js';
import type { IncomingWebhookMessage } from '../../src/bot/proxy-gate.js';
import { ARIA_ID, startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import { FakeGuild, humanMessage, interaction, makeCore, snowflake, waitUntil, type CoreHarness, type FakeWebhooks, type RecordingChannel } from './fixtures.js';

const PLURALKIT = '466378653216014359';
const ALICE = '500000000000000001';
const HOLD_MS = 150;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let sim: VoxtaSim;
let h: CoreHarness;
let guild: FakeGuild;
let general: RecordingChannel;
let hooks: FakeWebhooks;

async function boot(opts: { pluralKitMember?: boolean } = {}) {
  sim = await startVoxtaSim({ chunkDelayMs: 1, capacityDelayMs: 50 });
  h = makeCore(sim.url, { proxyHoldMs: HOLD_MS });
  guild = new FakeGuild('130000000000000001', 'Plural Server');
  general = guild.addText('general');
  hooks = guild.enableWebhooks();
  if (opts.pluralKitMember !== false) guild.members.add(PLURALKIT);
  h.guilds.set(guild.id, guild);
  await runCommand(interaction(h.core, guild, general.id, 'start', { strings: { character: ARIA_ID } }));
  expect(h.core.session(guild.id).state).toBe('active');
}

beforeEach(() => undefined);
afterEach(async () => {
  await h?.close();
  await sim?.close();
});

const sends = () => sim.received.filter((m) => m.payload.$type === 'send').map((m) => String(m.payload.text));

function repost(webhookId: string, name: string, content: string): IncomingWebhookMessage {
  return { ...humanMessage(general.id, `proxy:${name.toLowerCase()}`, name, content), webhookId };
}

/** PluralKit's order: the member's message, the repost ~0.3 s later, the original deleted 1 s after that. */
async function proxied(text: string, as: string, order: 'postFirst' | 'deleteFirst' = 'postFirst') {
  const hook = [...hooks.hooks.values()].find((w) => w.creatorId === PLURALKIT) ?? hooks.addForeign(general.id, PLURALKIT);
  const original = humanMessage(general.id, ALICE, 'Alice', text);
  await h.core.humanMessage(guild.id, original);
  await sleep(30);
  if (order === 'deleteFirst') h.core.messageDeleted(guild.id, general.id, original.id);
  const copy = repost(hook.id, as, text.replace(/^luna:\s*/i, ''));
  h.core.webhookMessage(guild.id, copy);
  if (order === 'postFirst') {
    await sleep(HOLD_MS / 2);
    h.core.messageDeleted(guild.id, general.id, original.id);
  }
  return { original, copy };
}

describe('proxy bots', () => {
  it('PluralKit’s order (repost first, original deleted later): Voxta gets the message once, as “Luna: …”', async () => {
    await boot();
    await proxied('luna: hello everyone', 'Luna');
    await waitUntil(() => sends().length >= 1, 'the send');
    await sleep(HOLD_MS * 2);
    expect(sends()).toEqual(['Luna: hello everyone']);
    // Its later deletion (by the proxy) does not delete the Voxta message.
    expect(sim.received.some((m) => m.payload.$type === 'deleteMessage')).toBe(false);
  });

  it('the other order (original deleted first, then the repost): once, under the proxied name', async () => {
    await boot();
    await proxied('hello there', 'Luna', 'deleteFirst');
    await waitUntil(() => sends().length >= 1, 'the send');
    await sleep(HOLD_MS * 2);
    expect(sends()).toEqual(['Luna: hello there']);
  });

  it('without Manage Webhooks the repost is recognised by its text', async () => {
    await boot();
    hooks.manageWebhooks = false;
    await proxied('hello without permissions', 'Luna');
    await waitUntil(() => sends().length >= 1, 'the send');
    await sleep(HOLD_MS * 2);
    expect(sends()).toEqual(['Luna: hello without permissions']);
  });

  it('ordinary messages still go, in order, after the short hold; other webhooks and the bot’s own are ignored', async () => {
    await boot();
    const t = Date.now();
    await h.core.humanMessage(guild.id, humanMessage(general.id, ALICE, 'Alice', 'first'));
    await h.core.humanMessage(guild.id, humanMessage(general.id, ALICE, 'Alice', 'second'));
    const integration = hooks.addForeign(general.id, '900000000000000099', 'GitHub');
    h.core.webhookMessage(guild.id, repost(integration.id, 'GitHub', 'first'));
    await waitUntil(() => sends().length === 2, 'both sends');
    expect(Date.now() - t).toBeGreaterThanOrEqual(HOLD_MS - 5);
    expect(sends()).toEqual(['first', 'second']);
    // A reply the bot posted through its own webhook comes back as a webhook message: never bridged.
    await waitUntil(() => general.byWebhook().some((p) => p.content.includes('reply number 2')), 'the replies');
    const own = general.posted.find((p) => p.webhook)!;
    h.core.webhookMessage(guild.id, repost(own.webhook!.id, 'Aria', own.content));
    await sleep(HOLD_MS * 2);
    expect(sends()).toEqual(['first', 'second']);
  });

  it('a message edited while it is held goes out with its new text', async () => {
    await boot();
    const msg = humanMessage(general.id, ALICE, 'Alice', 'helo');
    await h.core.humanMessage(guild.id, msg);
    h.core.messageEdited(guild.id, general.id, msg.id, 'Alice', 'hello');
    await waitUntil(() => sends().length === 1, 'the send');
    expect(sends()).toEqual(['hello']);
  });

  it('a repost that comes after its original went out corrects the name instead of answering twice', async () => {
    await boot({ pluralKitMember: false }); // no proxy bot known: the original goes at once
    const hook = hooks.addForeign(general.id, PLURALKIT);
    const original = humanMessage(general.id, ALICE, 'Alice', 'late hello');
    await h.core.humanMessage(guild.id, original);
    await waitUntil(() => sends().length === 1, 'the original');
    const stored = await sim.waitForServerMessage('update', { match: (p) => p.text === 'late hello' });
    // The bot has taken in Voxta's echo (the link from the Discord message to the Voxta one).
    await waitUntil(() => h.store.findMessageLink(original.id), 'the echo linked to the original');
    h.core.webhookMessage(guild.id, { ...repost(hook.id, 'Luna', 'late hello'), id: snowflake() });
    await sim.waitForClientMessage('update', { match: (p) => p.text === 'Luna: late hello' && p.messageId === (stored.payload as { messageId: string }).messageId });
    h.core.messageDeleted(guild.id, general.id, original.id);
    await sleep(HOLD_MS * 2);
    expect(sends()).toEqual(['late hello']);
    expect(sim.received.some((m) => m.payload.$type === 'deleteMessage')).toBe(false);
    // From now on this server is known to have a proxy: the next one is held and replaced.
    await proxied('luna: and now in time', 'Luna');
    await waitUntil(() => sends().length === 2, 'the second send');
    expect(sends()[1]).toBe('Luna: and now in time');
  });
});
