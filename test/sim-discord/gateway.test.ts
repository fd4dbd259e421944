/**
 * The simulator's REST + gateway, driven by the real discord.js client in-process: login, READY
 * and GUILD_CREATE caching, heartbeats, messages both ways, guild/channel removal, resume.
 */
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelType, DiscordAPIError, Events, GatewayIntentBits, type Client, type Message, type TextChannel } from 'discord.js';
import WebSocket from 'ws';
import { DEFAULT_INTENTS, loginClient, nextEvent, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

describe('discord-sim gateway with a real discord.js client', () => {
  it('logs in and caches the guild, its channels, roles and the members Discord would send', async () => {
    world = await startWorld();
    const { sim, guild, text, voice, alice, boss } = world;
    alice.joinVoice(voice.id);
    const c = await loginClient(sim);
    client = c;

    expect(c.user.id).toBe(sim.botUserId);
    const g = c.guilds.cache.get(guild.id);
    expect(g?.name).toBe('Test Guild');
    expect(g?.channels.cache.get(text.id)?.type).toBe(ChannelType.GuildText);
    expect(g?.channels.cache.get(voice.id)?.type).toBe(ChannelType.GuildVoice);
    // Without the presences intent Discord sends the bot and the members in voice only.
    expect(g?.members.cache.has(sim.botUserId)).toBe(true);
    expect(g?.members.cache.has(alice.id)).toBe(true);
    expect(g?.members.cache.has(boss.id)).toBe(false);
    expect(g?.voiceStates.cache.get(alice.id)?.channelId).toBe(voice.id);
    // The bot's managed role gives it what it needs, and discord.js computes it from the roles.
    const me = g?.members.me;
    expect(me?.permissionsIn(text.id).has('SendMessages')).toBe(true);
    expect(me?.permissionsIn(voice.id).has('Connect')).toBe(true);
    expect(me?.permissions.has('Administrator')).toBe(false);

    const identify = sim.identifies.at(-1);
    expect(identify?.intents).toBe(DEFAULT_INTENTS.reduce((a, b) => a | b, 0));
    // The token never lands in the recorded frames.
    expect(JSON.stringify(sim.gatewayFrames)).not.toContain(sim.token);
    expect(sim.requests.map((r) => `${r.method} ${r.route}`)).toContain('GET /gateway/bot');
  });

  it('answers heartbeats (the client measures a ping)', async () => {
    world = await startWorld({ heartbeatIntervalMs: 300 });
    client = await loginClient(world.sim);
    await nextEvent(world.sim.gateway, 'frame', (f: { dir: string; op: number }) => f.dir === 'out' && f.op === 11, 3000);
    await new Promise((r) => setTimeout(r, 50));
    expect(client.ws.ping).toBeGreaterThanOrEqual(0);
  });

  it('unanswered heartbeats make the client treat the link as a zombie and resume', async () => {
    world = await startWorld({ heartbeatIntervalMs: 200 });
    client = await loginClient(world.sim);
    const resumed = once(world.sim.gateway, 'resumed');
    world.sim.setGatewayHeartbeatAcks(false);
    await resumed;
    world.sim.setGatewayHeartbeatAcks(true);
    expect(world.sim.identifies).toHaveLength(1);
    const created = nextEvent<[Message]>(client, Events.MessageCreate);
    world.alice.say(world.text.id, 'still here');
    expect((await created)[0].content).toBe('still here');
  });

  it('sends every member when the presences intent is requested', async () => {
    world = await startWorld();
    client = await loginClient(world.sim, [...DEFAULT_INTENTS, GatewayIntentBits.GuildPresences]);
    const g = client.guilds.cache.get(world.guild.id);
    expect(g?.members.cache.has(world.boss.id)).toBe(true);
    expect(g?.members.cache.get(world.boss.id)?.permissions.has('Administrator')).toBe(true);
  });

  it('refuses a wrong token over REST (401) and over the gateway (4004)', async () => {
    world = await startWorld();
    const { Client: DjsClient } = await import('discord.js');
    const bad = new DjsClient({ intents: DEFAULT_INTENTS, rest: { api: world.sim.restUrl } });
    await expect(bad.login('AAAAAAAAAAAAAAAAAAAAAAAA.BBBBBB.CCCCCCCCCCCCCCCCCCCCCCCCCCC')).rejects.toThrow();
    await bad.destroy();

    const ws = new WebSocket(`${world.sim.gatewayUrl}?v=10&encoding=json`);
    const [hello] = (await once(ws, 'message')) as [Buffer];
    expect(JSON.parse(hello.toString()).op).toBe(10);
    ws.send(JSON.stringify({ op: 2, d: { token: 'wrong', intents: 1, properties: {} } }));
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(4004);
  });

  it('delivers member messages with content, edits and deletes', async () => {
    world = await startWorld();
    client = await loginClient(world.sim);
    const created = nextEvent<[Message]>(client, Events.MessageCreate);
    const said = world.alice.say(world.text.id, 'hello bot');
    const [msg] = await created;
    expect(msg.id).toBe(said.id);
    expect(msg.content).toBe('hello bot');
    expect(msg.author.id).toBe(world.alice.id);
    expect(msg.member?.displayName).toBe('Alice');

    const updated = nextEvent<[Message, Message]>(client, Events.MessageUpdate);
    world.alice.edit(said.id, 'hello again');
    const [, after] = await updated;
    expect(after.content).toBe('hello again');

    const deleted = nextEvent<[Message]>(client, Events.MessageDelete);
    world.alice.delete(said.id);
    const [gone] = await deleted;
    expect(gone.id).toBe(said.id);
    expect(world.sim.messages(world.text.id)).toHaveLength(0);
    expect(world.sim.messages(world.text.id, { includeDeleted: true })[0]?.history.map((h) => h.content)).toEqual(['hello bot']);
  });

  it('member replies reference the message; nicknames win over display names', async () => {
    world = await startWorld();
    const c = await loginClient(world.sim);
    client = c;
    const carl = world.guild.addMember({ username: 'carl', displayName: 'Carl', nick: 'Captain' });
    const first = world.alice.say(world.text.id, 'question?');
    const created = nextEvent<[Message]>(c, Events.MessageCreate, (m) => m.author.id === carl.id);
    carl.say(world.text.id, 'answer!', { replyTo: first.id });
    const [msg] = await created;
    expect(msg.reference?.messageId).toBe(first.id);
    expect(msg.member?.displayName).toBe('Captain');
    expect(carl.displayName).toBe('Captain');
  });

  it('strips message content when the MessageContent intent is not requested', async () => {
    world = await startWorld();
    client = await loginClient(world.sim, [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages]);
    const created = nextEvent<[Message]>(client, Events.MessageCreate);
    world.alice.say(world.text.id, 'secret words');
    const [msg] = await created;
    expect(msg.content).toBe('');
    // ...except when the bot is mentioned.
    const mention = nextEvent<[Message]>(client, Events.MessageCreate);
    world.alice.say(world.text.id, `<@${world.sim.botUserId}> hi`);
    expect((await mention)[0].content).toBe(`<@${world.sim.botUserId}> hi`);
  });

  it('strips message content when the app does not have the intent enabled', async () => {
    world = await startWorld({ messageContent: false });
    client = await loginClient(world.sim);
    const created = nextEvent<[Message]>(client, Events.MessageCreate);
    world.alice.say(world.text.id, 'secret words');
    expect((await created)[0].content).toBe('');
  });

  it('closes with 4014 for a disabled privileged intent when asked to behave strictly', async () => {
    world = await startWorld({ messageContent: false, rejectDisallowedIntents: true });
    const { Client: DjsClient } = await import('discord.js');
    const c = new DjsClient({ intents: DEFAULT_INTENTS, rest: { api: world.sim.restUrl } });
    await expect(c.login(world.sim.token)).rejects.toThrow(/disallowed/i);
    await c.destroy();
  });

  it('stores messages the client sends, edits (with history) and deletes', async () => {
    world = await startWorld();
    client = await loginClient(world.sim);
    const channel = (await client.channels.fetch(world.text.id)) as TextChannel;
    await channel.sendTyping();
    expect(world.sim.typingEvents.map((t) => [t.channelId, t.userId])).toEqual([[world.text.id, world.sim.botUserId]]);

    const sent = await channel.send({ content: 'first', embeds: [{ title: 'Card', description: 'hi' }], files: [{ attachment: Buffer.from('abc'), name: 'a.txt' }] });
    const stored = world.sim.messages(world.text.id)[0];
    expect(stored?.id).toBe(sent.id);
    expect(stored?.embeds).toMatchObject([{ title: 'Card' }]);
    expect(stored?.attachments[0]?.filename).toBe('a.txt');
    expect(stored?.attachments[0]?.data.toString()).toBe('abc');
    expect(sent.attachments.first()?.name).toBe('a.txt');
    // The attachment URL serves the bytes.
    expect(await (await fetch(sent.attachments.first()?.url ?? '')).text()).toBe('abc');

    const edited = await sent.edit('second');
    expect(edited.content).toBe('second');
    expect(stored?.history.map((h) => h.content)).toEqual(['first']);
    await edited.delete();
    expect(world.sim.messages(world.text.id)).toHaveLength(0);

    const tooLong = channel.send('x'.repeat(2001));
    await expect(tooLong).rejects.toBeInstanceOf(DiscordAPIError);
    await expect(tooLong).rejects.toMatchObject({ code: 50035 });
  });

  it('the bot sees its own messages come back as MESSAGE_CREATE, like on Discord', async () => {
    world = await startWorld();
    client = await loginClient(world.sim);
    const channel = (await client.channels.fetch(world.text.id)) as TextChannel;
    const own = nextEvent<[Message]>(client, Events.MessageCreate);
    await channel.send('echo');
    expect((await own)[0].author.id).toBe(world.sim.botUserId);
  });

  it('refuses to send where the bot lacks permission (50013)', async () => {
    world = await startWorld();
    const locked = world.guild.addTextChannel('locked');
    locked.setPermissionOverwrite(world.sim.botUserId, { deny: 1n << 11n });
    client = await loginClient(world.sim);
    const channel = (await client.channels.fetch(locked.id)) as TextChannel;
    await expect(channel.send('hi')).rejects.toMatchObject({ code: 50013 });
  });

  it('GUILD_DELETE and CHANNEL_DELETE reach the client', async () => {
    world = await startWorld();
    client = await loginClient(world.sim);
    const chDel = nextEvent(client, Events.ChannelDelete);
    world.sim.deleteChannel(world.text.id);
    const [ch] = (await chDel) as [{ id: string }];
    expect(ch.id).toBe(world.text.id);

    const gDel = nextEvent(client, Events.GuildDelete);
    world.sim.removeBotFromGuild(world.guild.id);
    const [g] = (await gDel) as [{ id: string }];
    expect(g.id).toBe(world.guild.id);
    expect(client.guilds.cache.has(world.guild.id)).toBe(false);
    // The REST side agrees: the guild is gone for the bot.
    await expect(client.guilds.fetch(world.guild.id)).rejects.toMatchObject({ code: 10004 });

    const gAdd = nextEvent(client, Events.GuildCreate);
    world.sim.addBotToGuild(world.guild.id);
    await gAdd;
    expect(client.guilds.cache.has(world.guild.id)).toBe(true);
  });

  it('new guilds, channels and members appear live', async () => {
    world = await startWorld();
    client = await loginClient(world.sim, [...DEFAULT_INTENTS, GatewayIntentBits.GuildMembers]);
    const chAdd = nextEvent(client, Events.ChannelCreate);
    const ch = world.guild.addTextChannel('news');
    expect(((await chAdd) as [{ id: string }])[0].id).toBe(ch.id);
    const mAdd = nextEvent(client, Events.GuildMemberAdd);
    const bob = world.guild.addMember({ username: 'bob' });
    expect(((await mAdd) as [{ id: string }])[0].id).toBe(bob.id);
    const mRemove = nextEvent(client, Events.GuildMemberRemove);
    bob.leaveGuild();
    expect(((await mRemove) as [{ id: string }])[0].id).toBe(bob.id);
    const gAdd = nextEvent(client, Events.GuildCreate);
    const second = world.sim.addGuild({ name: 'Second' });
    expect(((await gAdd) as [{ id: string }])[0].id).toBe(second.id);
  });

  it('resumes after a dropped connection and replays what was missed', async () => {
    world = await startWorld({ heartbeatIntervalMs: 5000 });
    client = await loginClient(world.sim);
    const identifiesBefore = world.sim.identifies.length;
    const resumed = once(world.sim.gateway, 'resumed');
    world.sim.dropGatewayConnection(4000);
    // Said while the socket is down: delivered on RESUME.
    const created = nextEvent<[Message]>(client, Events.MessageCreate, () => true, 8000);
    world.alice.say(world.text.id, 'while you were away');
    await resumed;
    expect((await created)[0].content).toBe('while you were away');
    expect(world.sim.identifies.length).toBe(identifiesBefore);
  });

  it('fetches members over REST (one) and over the gateway (all, with the members intent)', async () => {
    world = await startWorld();
    const c = await loginClient(world.sim, [...DEFAULT_INTENTS, GatewayIntentBits.GuildMembers]);
    client = c;
    const g = c.guilds.cache.get(world.guild.id)!;
    expect(g.members.cache.has(world.alice.id)).toBe(false);
    const alice = await g.members.fetch(world.alice.id);
    expect(alice.displayName).toBe('Alice');
    const all = await g.members.fetch();
    expect([...all.keys()].sort()).toEqual([world.guild.owner.id, world.sim.botUserId, world.alice.id, world.boss.id].sort());
    await expect(g.members.fetch('123456789012345678')).rejects.toMatchObject({ code: 10007 });
  });

  it('sends nothing about a guild the bot has left, and its commands are gone for members', async () => {
    world = await startWorld();
    const c = await loginClient(world.sim);
    client = c;
    await c.application.commands.set([{ name: 'ping', description: 'Ping' }], world.guild.id);
    const events: string[] = [];
    c.on(Events.Raw, (p: { t?: string }) => {
      if (p.t) events.push(p.t);
    });
    const gDel = nextEvent(c, Events.GuildDelete);
    world.sim.removeBotFromGuild(world.guild.id);
    await gDel;
    world.alice.say(world.text.id, 'anyone?');
    world.alice.joinVoice(world.voice.id);
    await expect(world.alice.runCommand(world.text.id, 'ping')).rejects.toThrow(/not in guild/);
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toEqual(['GUILD_DELETE']);
  });

  it('logs and answers 404 for routes it does not implement', async () => {
    world = await startWorld();
    client = await loginClient(world.sim);
    await expect(client.rest.get('/guilds/1/emojis')).rejects.toMatchObject({ status: 404 });
    expect(world.sim.requests.at(-1)).toMatchObject({ route: null, path: '/guilds/1/emojis', status: 404 });
  });
});
