/**
 * Fresh member data: GUILD_MEMBER_UPDATE reaches only a client with the Guild Members intent
 * (except updates about the bot itself, which Discord always sends), while a REST fetch of the
 * member always returns the current roles.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Events, GatewayIntentBits, type Client, type GuildMember } from 'discord.js';
import { DEFAULT_INTENTS, loginClient, nextEvent, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

describe('discord-sim member updates and intents', () => {
  it('without Guild Members the role change is not pushed, but GET /guilds/:id/members/:userId has it', async () => {
    world = await startWorld();
    const { sim, guild, alice } = world;
    const dj = guild.addRole({ name: 'DJ' });
    const c = await loginClient(sim, DEFAULT_INTENTS);
    client = c;
    const g = c.guilds.cache.get(guild.id)!;
    const cached = await g.members.fetch(alice.id);
    expect(cached.roles.cache.has(dj.id)).toBe(false);
    const updates: string[] = [];
    c.on(Events.GuildMemberUpdate, (_o, n: GuildMember) => updates.push(n.id));

    alice.addRole(dj.id);
    await new Promise((r) => setTimeout(r, 150));
    expect(updates).toEqual([]);
    expect(sim.gatewayFrames.filter((f) => f.dir === 'out' && f.t === 'GUILD_MEMBER_UPDATE')).toEqual([]);
    // The cache is stale; the REST fetch is not.
    expect(g.members.cache.get(alice.id)?.roles.cache.has(dj.id)).toBe(false);
    const fresh = await g.members.fetch({ user: alice.id, force: true });
    expect(fresh.roles.cache.has(dj.id)).toBe(true);
    alice.removeRole(dj.id);
    expect((await g.members.fetch({ user: alice.id, force: true })).roles.cache.has(dj.id)).toBe(false);

    // Updates about the bot itself come regardless of the intent (Discord's documented exception).
    const mine = nextEvent<[GuildMember, GuildMember]>(c, Events.GuildMemberUpdate, (_o, n) => n.id === sim.botUserId);
    guild.botMember.addRole(dj.id);
    const [, me] = await mine;
    expect(me.roles.cache.has(dj.id)).toBe(true);
    expect(updates).toEqual([sim.botUserId]);
  });

  it('with Guild Members the role change is pushed', async () => {
    world = await startWorld();
    const { sim, guild, alice } = world;
    const dj = guild.addRole({ name: 'DJ' });
    const c = await loginClient(sim, [...DEFAULT_INTENTS, GatewayIntentBits.GuildMembers]);
    client = c;
    await c.guilds.cache.get(guild.id)!.members.fetch(alice.id);
    const pushed = nextEvent<[GuildMember, GuildMember]>(c, Events.GuildMemberUpdate, (_o, n) => n.id === alice.id);
    alice.addRole(dj.id);
    const [before, after] = await pushed;
    expect(before.roles.cache.has(dj.id)).toBe(false);
    expect(after.roles.cache.has(dj.id)).toBe(true);
  });
});
