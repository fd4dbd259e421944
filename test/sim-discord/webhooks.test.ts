/**
 * Webhooks with the real discord.js client: created with Manage Webhooks (name rules, 15 per
 * channel, avatar bytes kept and served by the CDN), executed with username/avatar overrides,
 * files and threads, their messages fetched, edited and deleted, moved, deleted by a moderator,
 * WEBHOOKS_UPDATE, and the webhook rate limits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Events, GatewayIntentBits, WebhookClient, type Client, type Message, type TextChannel, type ThreadChannel } from 'discord.js';
import { DEFAULT_BOT_PERMISSIONS, Perm } from '../../sim/discord/index.js';
import { DEFAULT_INTENTS, loginClient, nextEvent, pngBytes, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;
let hookClient: WebhookClient | undefined;

afterEach(async () => {
  hookClient?.destroy();
  hookClient = undefined;
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

const WEBHOOK_INTENTS = [...DEFAULT_INTENTS, GatewayIntentBits.GuildWebhooks];
const BOT_WITH_WEBHOOKS = DEFAULT_BOT_PERMISSIONS | Perm.ManageWebhooks;

async function setup(opts: Parameters<typeof startWorld>[0] = {}): Promise<{ w: World; c: Client<true>; channel: TextChannel }> {
  world = await startWorld({ botPermissions: BOT_WITH_WEBHOOKS, ...opts });
  const c = await loginClient(world.sim, WEBHOOK_INTENTS, { rest: { api: world.sim.restUrl, cdn: world.sim.cdnUrl } });
  client = c;
  return { w: world, c, channel: c.channels.cache.get(world.text.id) as TextChannel };
}

describe('discord-sim webhooks with a real discord.js client', () => {
  it('creates a webhook with an avatar (bytes kept, served by the CDN) and posts as another name', async () => {
    const { w, c, channel } = await setup();
    const aria = pngBytes(16, 16, [10, 200, 30]);
    const updated = nextEvent<[TextChannel]>(c, 'webhooksUpdate');
    const hook = await channel.createWebhook({ name: 'Aria', avatar: aria });
    expect((await updated)[0].id).toBe(channel.id);
    expect(hook.token).toHaveLength(68);
    expect(hook.owner?.id).toBe(w.sim.botUserId);
    expect(hook.applicationId).toBe(w.sim.applicationId);
    const [stored] = w.sim.webhooks(channel.id);
    expect(stored).toMatchObject({ id: hook.id, name: 'Aria', creatorId: w.sim.botUserId, channelId: channel.id, guildId: w.guild.id });
    expect(stored?.avatar?.equals(aria)).toBe(true);
    expect(hook.avatar).toBe(stored?.avatarHash);

    // discord.js builds the avatar URL from rest.cdn; the simulated CDN serves the very bytes.
    const avatarUrl = hook.avatarURL({ extension: 'png' }) as string;
    expect(avatarUrl.startsWith(w.sim.cdnUrl)).toBe(true);
    const res = await fetch(avatarUrl);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await res.arrayBuffer()).equals(aria)).toBe(true);
    expect(w.sim.cdnRequests.at(-1)).toMatchObject({ resource: 'avatar', status: 200 });

    // The bot sees its own webhook message come back with webhook_id and the effective author.
    const echoed = nextEvent<[Message]>(c, Events.MessageCreate, (m) => m.webhookId === hook.id);
    const sent = await hook.send({ content: 'Hello, I am Nova today.', username: 'Nova' });
    const [seen] = await echoed;
    expect(seen.id).toBe(sent.id);
    expect(seen.webhookId).toBe(hook.id);
    expect(seen.author).toMatchObject({ id: hook.id, username: 'Nova', bot: true, avatar: stored?.avatarHash });
    expect(seen.member).toBeNull();
    const msg = w.sim.messages(channel.id).find((m) => m.id === sent.id);
    expect(msg?.webhook?.username).toBe('Nova');
    expect(msg?.webhook?.avatar?.equals(aria)).toBe(true);

    // Without a username override the webhook's own name is used.
    const plain = await hook.send('plain');
    expect(w.sim.messages(channel.id).find((m) => m.id === plain.id)?.webhook?.username).toBe('Aria');
  });

  it('fetches, edits and deletes its messages; files, allowed mentions and ?wait', async () => {
    const { w, channel } = await setup();
    const hook = await channel.createWebhook({ name: 'Narrator' });
    const sent = await hook.send({ content: `<@${w.alice.id}> look`, files: [{ attachment: Buffer.from('notes'), name: 'notes.txt' }], allowedMentions: { parse: [] } });
    const stored = w.sim.messages(channel.id).find((m) => m.id === sent.id)!;
    expect(stored.attachments[0]?.data.toString()).toBe('notes');
    expect(sent.attachments.first()?.name).toBe('notes.txt');
    expect(stored.mentionUserIds).toEqual([]); // allowed_mentions said: nobody

    expect((await hook.fetchMessage(sent.id)).content).toBe(`<@${w.alice.id}> look`);
    const edited = await hook.editMessage(sent.id, { content: 'edited by the webhook' });
    expect(edited.content).toBe('edited by the webhook');
    expect(stored.history.map((h) => h.content)).toEqual([`<@${w.alice.id}> look`]);
    await hook.deleteMessage(sent.id);
    expect(stored.deleted).toBe(true);

    // Without ?wait=true Discord answers 204 and no message body.
    const raw = await fetch(`${w.sim.restUrl}/v10/webhooks/${hook.id}/${hook.token}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ content: 'fire and forget' }) });
    expect(raw.status).toBe(204);
    expect(w.sim.messages(channel.id).at(-1)?.content).toBe('fire and forget');
    // A wrong token is 50027; a message of another webhook is unknown to this one.
    const wrong = await fetch(`${w.sim.restUrl}/v10/webhooks/${hook.id}/${'x'.repeat(68)}?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ content: 'x' }) });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ code: 50027 });
    const other = await channel.createWebhook({ name: 'Other' });
    const theirs = await other.send('theirs');
    await expect(hook.editMessage(theirs.id, 'mine now')).rejects.toMatchObject({ code: 10008 });
  });

  it('posts into a thread of its channel with WebhookClient and threadId', async () => {
    const { w, c, channel } = await setup();
    const created = nextEvent<[ThreadChannel]>(c, Events.ThreadCreate);
    const thread = w.text.addThread('side plot');
    const [t] = await created;
    const hook = await channel.createWebhook({ name: 'Aria' });
    hookClient = new WebhookClient({ id: hook.id, token: hook.token as string }, { rest: { api: w.sim.restUrl } });

    const inThread = nextEvent<[Message]>(c, Events.MessageCreate, (m) => m.webhookId === hook.id);
    const sent = await hookClient.send({ content: 'in the thread', threadId: thread.id, username: 'Aria' });
    expect(sent.channel_id).toBe(thread.id);
    const [seen] = await inThread;
    expect(seen.channelId).toBe(t.id);
    expect(seen.channel.isThread()).toBe(true);
    expect(w.sim.messages(thread.id).map((m) => m.content)).toEqual(['in the thread']);

    // The message lives in the thread: without thread_id it is not found in the webhook's channel.
    await expect(hookClient.editMessage(sent.id, { content: 'x' })).rejects.toMatchObject({ code: 10008 });
    await hookClient.editMessage(sent.id, { content: 'edited in the thread', threadId: thread.id });
    expect(w.sim.messages(thread.id)[0]?.content).toBe('edited in the thread');
    expect((await hookClient.fetchMessage(sent.id, { threadId: thread.id })).content).toBe('edited in the thread');

    // A thread of another channel is refused.
    const elsewhere = w.guild.addTextChannel('elsewhere').addThread('foreign');
    await expect(hookClient.send({ content: 'x', threadId: elsewhere.id })).rejects.toMatchObject({ code: 10003 });
  });

  it('refuses bad names, a missing permission, invalid avatars and a 16th webhook', async () => {
    const { w, c, channel } = await setup();
    for (const name of ['Clyde fan', 'my DISCORD bot', '', 'x'.repeat(81)]) {
      await expect(channel.createWebhook({ name })).rejects.toMatchObject({ code: 50035 });
    }
    const bad = await fetch(`${w.sim.restUrl}/v10/channels/${channel.id}/webhooks`, {
      method: 'POST',
      headers: { authorization: `Bot ${w.sim.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Ok', avatar: `data:image/png;base64,${Buffer.from('not an image').toString('base64')}` }),
    });
    expect(await bad.json()).toMatchObject({ code: 50035, errors: { avatar: { _errors: [{ code: 'IMAGE_INVALID' }] } } });
    // An override username follows the same rules.
    const hook = await channel.createWebhook({ name: 'Fine' });
    await expect(hook.send({ content: 'x', username: 'Clyde' })).rejects.toMatchObject({ code: 50035 });

    const locked = w.guild.addTextChannel('locked');
    locked.setPermissionOverwrite(w.sim.botUserId, { deny: Perm.ManageWebhooks });
    const lockedChannel = (await c.channels.fetch(locked.id)) as TextChannel;
    await expect(lockedChannel.createWebhook({ name: 'Nope' })).rejects.toMatchObject({ code: 50013 });
    await expect(lockedChannel.fetchWebhooks()).rejects.toMatchObject({ code: 50013 });

    for (let i = w.sim.webhooks(channel.id).length; i < 15; i++) await channel.createWebhook({ name: `hook ${i}` });
    await expect(channel.createWebhook({ name: 'one too many' })).rejects.toMatchObject({ code: 30007, message: 'Maximum number of webhooks reached (15)' });
    expect(w.sim.webhooks(channel.id)).toHaveLength(15);
  });

  it('lists, fetches (with and without token), edits, moves and deletes webhooks', async () => {
    const { w, c, channel } = await setup();
    const hook = await channel.createWebhook({ name: 'Aria' });
    expect([...(await channel.fetchWebhooks()).keys()]).toEqual([hook.id]);
    expect([...(await c.guilds.cache.get(w.guild.id)!.fetchWebhooks()).keys()]).toEqual([hook.id]);
    expect((await c.fetchWebhook(hook.id)).owner?.id).toBe(w.sim.botUserId);
    const viaToken = await c.rest.get(`/webhooks/${hook.id}/${hook.token}`, { auth: false });
    expect(viaToken).toMatchObject({ id: hook.id, name: 'Aria' });
    expect(viaToken).not.toHaveProperty('user');

    // Edit with the token (name + avatar): discord.js uses PATCH /webhooks/:id/:token without auth.
    const nova = pngBytes(8, 8, [0, 0, 255]);
    const renamed = nextEvent<[TextChannel]>(c, 'webhooksUpdate');
    await hook.edit({ name: 'Nova', avatar: nova });
    await renamed;
    expect(w.sim.webhooks(channel.id)[0]).toMatchObject({ name: 'Nova' });
    expect(w.sim.webhooks(channel.id)[0]?.avatar?.equals(nova)).toBe(true);
    expect(w.sim.requests.at(-1)).toMatchObject({ method: 'PATCH', route: '/webhooks/:webhookId/:token' });

    // Moving needs the authenticated route; both channels get WEBHOOKS_UPDATE.
    const other = w.guild.addTextChannel('other');
    const moved: string[] = [];
    c.on('webhooksUpdate', (ch) => moved.push(ch.id));
    await hook.edit({ channel: other.id });
    await new Promise((r) => setTimeout(r, 100));
    expect(moved.sort()).toEqual([channel.id, other.id].sort());
    expect(w.sim.webhooks(other.id).map((x) => x.id)).toEqual([hook.id]);

    await hook.delete();
    expect(w.sim.webhooks()).toEqual([]);
    await expect(c.fetchWebhook(hook.id)).rejects.toMatchObject({ code: 10015 });
  });

  it('a moderator deleting the webhook: WEBHOOKS_UPDATE, then 10015 Unknown Webhook', async () => {
    const { w, c, channel } = await setup();
    const hook = await channel.createWebhook({ name: 'Aria' });
    const gone = nextEvent<[TextChannel]>(c, 'webhooksUpdate');
    w.sim.deleteWebhook(hook.id);
    expect((await gone)[0].id).toBe(channel.id);
    await expect(hook.send('still there?')).rejects.toMatchObject({ code: 10015 });
  });

  it("'discord' rate limits: 5 executes per 2 s per webhook, truthful headers, then 429", async () => {
    const { w, channel } = await setup({ rateLimit: 'discord' });
    const hook = await channel.createWebhook({ name: 'Aria' });
    const url = `${w.sim.restUrl}/v10/webhooks/${hook.id}/${hook.token}?wait=true`;
    const post = (content: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ content }) });
    const remaining: Array<string | null> = [];
    for (let i = 0; i < 5; i++) {
      const r = await post(`m${i}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('x-ratelimit-limit')).toBe('5');
      remaining.push(r.headers.get('x-ratelimit-remaining'));
    }
    expect(remaining).toEqual(['4', '3', '2', '1', '0']);
    const sixth = await post('m5');
    expect(sixth.status).toBe(429);
    expect(Number(sixth.headers.get('retry-after'))).toBeLessThanOrEqual(2);
  });

  it('the per-channel webhook message limit applies across webhooks (429, scope shared); discord.js waits it out', async () => {
    const { w, channel } = await setup({ rateLimit: { limit: 50, windowMs: 1000, webhookMessagesPerChannel: { limit: 3, windowMs: 600 } } });
    const a = await channel.createWebhook({ name: 'A' });
    const b = await channel.createWebhook({ name: 'B' });
    await a.send('1');
    await b.send('2');
    await a.send('3');
    const raw = await fetch(`${w.sim.restUrl}/v10/webhooks/${b.id}/${b.token}?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ content: 'too many' }) });
    expect(raw.status).toBe(429);
    expect(raw.headers.get('x-ratelimit-scope')).toBe('shared');
    expect(await raw.json()).toMatchObject({ global: false });
    // discord.js treats it as an unexpected 429: waits retry_after and retries, successfully.
    await b.send('4');
    expect(w.sim.messages(channel.id).map((m) => m.content)).toEqual(['1', '2', '3', '4']);
  });
});
