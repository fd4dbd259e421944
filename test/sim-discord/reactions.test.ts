/**
 * Reactions the bot puts on messages (⏳ while a message waits for Voxta, ✂️ when it was cut,
 * ❌ when it could not be delivered), driven by the real discord.js client.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DiscordAPIError, Events, type Client, type Message, type TextChannel } from 'discord.js';
import { loginClient, nextEvent, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

describe('discord-sim reactions with a real discord.js client', () => {
  it('stores the bot reacting to a member message and removing its reaction', async () => {
    world = await startWorld();
    const { sim, text, alice } = world;
    client = await loginClient(sim);
    const arrived = nextEvent<[Message]>(client, Events.MessageCreate, (m) => m.author.id === alice.id);
    alice.say(text.id, 'hello');
    const [message] = await arrived;

    const reaction = await message.react('⏳');
    expect(reaction.me).toBe(true);
    const stored = () => sim.messages(text.id).find((m) => m.id === message.id)!;
    expect([...stored().reactions.keys()]).toEqual(['⏳']);
    expect([...stored().reactions.get('⏳')!]).toEqual([sim.botUserId]);

    await message.reactions.resolve('⏳')!.users.remove(client.user!.id);
    expect(stored().reactions.size).toBe(0);

    // The reaction shows in the message as fetched again.
    await message.react('✂️');
    const fetched = await (client.channels.cache.get(text.id) as TextChannel).messages.fetch({ message: message.id, force: true });
    expect(fetched.reactions.cache.get('✂️')?.count).toBe(1);
  });

  it('refuses a new reaction without Add Reactions (50013) and an unknown custom emoji', async () => {
    world = await startWorld();
    const { sim, text, alice } = world;
    text.setPermissionOverwrite(sim.botUserId, { allow: 0n, deny: 1n << 6n });
    client = await loginClient(sim);
    const arrived = nextEvent<[Message]>(client, Events.MessageCreate, (m) => m.author.id === alice.id);
    alice.say(text.id, 'hello');
    const [message] = await arrived;
    await expect(message.react('⏳')).rejects.toMatchObject({ code: 50013 });
    await expect(message.react('custom:123456789012345678')).rejects.toBeInstanceOf(DiscordAPIError);
  });
});
