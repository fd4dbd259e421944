/**
 * Threads with the real discord.js client: THREAD_CREATE (and threads in GUILD_CREATE) cached as
 * ThreadChannels under their parent, messages both ways, Send Messages in Threads, private
 * threads invisible to a bot that is neither member nor moderator, THREAD_DELETE; and the nsfw
 * flag of text, voice and stage channels.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelType, Events, type Client, type Message, type StageChannel, type TextChannel, type ThreadChannel, type VoiceChannel } from 'discord.js';
import { Perm } from '../../sim/discord/index.js';
import { loginClient, nextEvent, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

describe('discord-sim threads with a real discord.js client', () => {
  it('a public thread: THREAD_CREATE, messages from members and from the bot, counters', async () => {
    world = await startWorld();
    const { sim, text, alice } = world;
    const c = await loginClient(sim);
    client = c;
    const created = nextEvent<[ThreadChannel, boolean]>(c, Events.ThreadCreate);
    const thread = text.addThread('side plot', { by: alice });
    const [t, newlyCreated] = await created;
    expect(newlyCreated).toBe(true);
    expect(t.id).toBe(thread.id);
    expect(t.type).toBe(ChannelType.PublicThread);
    expect(t.parentId).toBe(text.id);
    expect(t.ownerId).toBe(alice.id);
    expect(t.archived).toBe(false);
    expect((c.channels.cache.get(text.id) as TextChannel).threads.cache.has(thread.id)).toBe(true);
    expect(thread.parentId).toBe(text.id);

    const arrived = nextEvent<[Message]>(c, Events.MessageCreate);
    alice.say(thread.id, 'inside the thread');
    const [m] = await arrived;
    expect(m.channelId).toBe(thread.id);
    expect(m.channel.isThread()).toBe(true);
    expect(m.content).toBe('inside the thread');

    const reply = await t.send('the bot answers in the thread');
    expect(sim.messages(thread.id).map((x) => x.content)).toEqual(['inside the thread', 'the bot answers in the thread']);
    expect(sim.messages(text.id)).toEqual([]);
    const fetched = (await c.channels.fetch(thread.id, { force: true })) as ThreadChannel;
    expect(fetched.messageCount).toBe(2);
    // The bot posted: it is a thread member now, and the channel object says so.
    expect(fetched.joined).toBe(true);
    await reply.delete();
  });

  it('threads that exist at login come in GUILD_CREATE', async () => {
    world = await startWorld();
    const thread = world.text.addThread('old thread');
    client = await loginClient(world.sim);
    const t = client.channels.cache.get(thread.id) as ThreadChannel | undefined;
    expect(t?.isThread()).toBe(true);
    expect(t?.parentId).toBe(world.text.id);
    // ...but not as guild channels (GET /guilds/:id/channels has no threads either, like Discord).
    const listed = await client.guilds.cache.get(world.guild.id)!.channels.fetch();
    expect(listed.has(thread.id)).toBe(false);
  });

  it('sending in a thread needs Send Messages in Threads, not Send Messages', async () => {
    world = await startWorld();
    const { sim, text, guild } = world;
    const thread = text.addThread('quiet');
    text.setPermissionOverwrite(sim.botUserId, { deny: Perm.SendMessagesInThreads });
    client = await loginClient(sim);
    const t = client.channels.cache.get(thread.id) as ThreadChannel;
    await expect(t.send('x')).rejects.toMatchObject({ code: 50013 });
    // Send Messages denied but Send Messages in Threads allowed: the thread works, the channel not.
    text.setPermissionOverwrite(sim.botUserId, { deny: Perm.SendMessages, allow: Perm.SendMessagesInThreads });
    await t.send('ok in the thread');
    await expect((client.channels.cache.get(text.id) as TextChannel).send('x')).rejects.toMatchObject({ code: 50013 });
    expect(guild.channel('quiet').kind).toBe('thread');
  });

  it('a private thread is invisible to the bot until it is added; THREAD_DELETE when deleted', async () => {
    world = await startWorld();
    const { sim, text, alice } = world;
    const c = await loginClient(sim);
    client = c;
    const raw: string[] = [];
    c.on(Events.Raw, (p: { t?: string }) => {
      if (p.t) raw.push(p.t);
    });
    const secret = text.addThread('secret', { type: 'private', by: alice });
    alice.say(secret.id, 'nobody else sees this');
    await new Promise((r) => setTimeout(r, 150));
    expect(raw).not.toContain('THREAD_CREATE');
    expect(raw).not.toContain('MESSAGE_CREATE');
    expect(c.channels.cache.has(secret.id)).toBe(false);
    await expect(c.channels.fetch(secret.id)).rejects.toMatchObject({ code: 50001 });

    const added = nextEvent<[ThreadChannel]>(c, Events.ThreadCreate);
    secret.addThreadMember(sim.botUserId);
    const [t] = await added;
    expect(t.type).toBe(ChannelType.PrivateThread);
    const arrived = nextEvent<[Message]>(c, Events.MessageCreate);
    alice.say(secret.id, 'now the bot is in');
    expect((await arrived)[0].content).toBe('now the bot is in');

    const deleted = nextEvent<[ThreadChannel]>(c, Events.ThreadDelete);
    secret.delete();
    expect((await deleted)[0].id).toBe(secret.id);
    expect(c.channels.cache.has(secret.id)).toBe(false);
  });
});

describe('discord-sim age-restricted (nsfw) channels', () => {
  it('text, voice and stage channels carry nsfw; setNsfw sends CHANNEL_UPDATE; threads inherit it', async () => {
    world = await startWorld();
    const { sim, guild } = world;
    const adults = guild.addTextChannel('adults', { nsfw: true });
    const lateVoice = guild.addVoiceChannel('late night', { nsfw: true });
    const stage = guild.addStageChannel('Stage', { nsfw: true });
    const thread = adults.addThread('in an nsfw channel');
    const c = await loginClient(sim);
    client = c;
    expect((c.channels.cache.get(adults.id) as TextChannel).nsfw).toBe(true);
    expect((c.channels.cache.get(lateVoice.id) as VoiceChannel).nsfw).toBe(true);
    expect((c.channels.cache.get(stage.id) as StageChannel).nsfw).toBe(true);
    expect((c.channels.cache.get(world.text.id) as TextChannel).nsfw).toBe(false);
    expect(thread.nsfw).toBe(true);

    const updated = nextEvent<[TextChannel, TextChannel]>(c, Events.ChannelUpdate);
    adults.setNsfw(false);
    const [before, after] = await updated;
    expect(before.nsfw).toBe(true);
    expect(after.nsfw).toBe(false);
    expect(thread.nsfw).toBe(false);
    const rest = (await c.channels.fetch(lateVoice.id, { force: true })) as VoiceChannel;
    expect(rest.nsfw).toBe(true);
    expect(() => thread.setNsfw(true)).toThrow(/parent/);
  });
});
