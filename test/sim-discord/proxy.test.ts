/**
 * PluralKit-like proxying seen by the real discord.js client: the member's message, the proxy
 * bot's webhook repost (webhook_id, proxied name and avatar), the deletion of the original; the
 * proxy bot is a guild member and the owner of the webhook it created.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Events, GatewayIntentBits, type Client, type Message, type PartialMessage } from 'discord.js';
import { DEFAULT_BOT_PERMISSIONS, PLURALKIT_USER_ID, Perm } from '../../sim/discord/index.js';
import { DEFAULT_INTENTS, loginClient, pngBytes, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

type Seen = { event: 'create' | 'delete'; id: string; author?: string; webhookId?: string | null; at: number };

function record(c: Client): Seen[] {
  const seen: Seen[] = [];
  c.on(Events.MessageCreate, (m: Message) => seen.push({ event: 'create', id: m.id, author: m.author.username, webhookId: m.webhookId, at: Date.now() }));
  c.on(Events.MessageDelete, (m: Message | PartialMessage) => seen.push({ event: 'delete', id: m.id, at: Date.now() }));
  return seen;
}

describe('discord-sim proxy bots (PluralKit, Tupperbox)', () => {
  it('PluralKit: the original, then the webhook repost as the proxied name and avatar, then the deletion', async () => {
    world = await startWorld({ botPermissions: DEFAULT_BOT_PERMISSIONS | Perm.ManageWebhooks });
    const { sim, guild, text, alice } = world;
    const pk = guild.addProxyBot();
    expect(pk.id).toBe(PLURALKIT_USER_ID);
    expect(pk.username).toBe('PluralKit');
    const c = await loginClient(sim, [...DEFAULT_INTENTS, GatewayIntentBits.GuildWebhooks]);
    client = c;
    const seen = record(c);
    const luna = pngBytes(12, 12, [250, 250, 0]);

    const result = await alice.sayProxied(text.id, 'Hi, Luna here', { as: 'Luna', avatar: luna, delayMs: 50, deleteDelayMs: 150 });
    await new Promise((r) => setTimeout(r, 50));

    expect(seen.map((s) => [s.event, s.id])).toEqual([
      ['create', result.originalId],
      ['create', result.proxiedId],
      ['delete', result.originalId],
    ]);
    expect(seen[0]).toMatchObject({ author: 'alice', webhookId: null });
    expect(seen[1]).toMatchObject({ author: 'Luna', webhookId: result.webhookId });
    // PluralKit waits before deleting the trigger; the bot had a window where both existed.
    expect((seen[2]?.at ?? 0) - (seen[1]?.at ?? 0)).toBeGreaterThanOrEqual(100);

    expect(result.proxied.webhook).toMatchObject({ username: 'Luna', webhookId: result.webhookId });
    expect(result.proxied.webhook?.avatar?.equals(luna)).toBe(true);
    expect(result.original.deleted).toBe(true);
    expect(sim.messages(text.id).map((m) => m.content)).toEqual(['Hi, Luna here']);

    // The webhook belongs to the proxy bot (created on first use, reused after).
    const [hook] = sim.webhooks(text.id);
    expect(hook).toMatchObject({ id: result.webhookId, creatorId: PLURALKIT_USER_ID, name: 'PluralKit Proxy Webhook' });
    const fetched = await c.fetchWebhook(result.webhookId);
    expect(fetched.owner?.id).toBe(PLURALKIT_USER_ID);
    expect(fetched.owner?.bot).toBe(true);
    // Another application's webhook: its token is not given to our bot.
    expect(fetched.token).toBeNull();
    await alice.sayProxied(text.id, 'again', { as: 'Luna', delayMs: 10, deleteDelayMs: 10 });
    expect(sim.webhooks(text.id)).toHaveLength(1);
    // The proxy bot is a member the bot can look up.
    expect((await c.guilds.cache.get(guild.id)!.members.fetch(PLURALKIT_USER_ID)).user.bot).toBe(true);
  });

  it('Tupperbox, deleting first, inside a thread', async () => {
    world = await startWorld();
    const { sim, guild, text, alice } = world;
    const tupper = guild.addProxyBot({ userId: '431544605209788416', name: 'Tupperbox' });
    const thread = text.addThread('roleplay');
    const c = await loginClient(sim);
    client = c;
    const seen = record(c);
    const result = await alice.sayProxied(thread.id, '*waves*', { as: 'Captain', via: tupper.id, order: 'deleteFirst', delayMs: 30 });
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.map((s) => [s.event, s.id])).toEqual([
      ['create', result.originalId],
      ['delete', result.originalId],
      ['create', result.proxiedId],
    ]);
    expect(result.proxied.channelId).toBe(thread.id);
    // Threads have no webhooks of their own: the parent's is used with thread_id.
    expect(sim.webhooks(text.id)[0]).toMatchObject({ creatorId: '431544605209788416', name: 'Tupperbox Proxy Webhook' });
  });
});
