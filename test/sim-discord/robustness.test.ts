/**
 * Bad input and edge cases: malformed gateway frames and REST bodies get Discord's errors, the
 * rate limit is real and honoured by discord.js, a restarted bot starts out of voice, and scenario
 * mistakes fail with a clear SimError.
 */
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { Client, TextChannel } from 'discord.js';
import WebSocket from 'ws';
import { RecordingVoiceBackend, SimError } from '../../sim/discord/index.js';
import { loginClient, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

async function rawGateway(url: string): Promise<WebSocket> {
  const ws = new WebSocket(`${url}?v=10&encoding=json`);
  await once(ws, 'message');
  return ws;
}

describe('discord-sim robustness', () => {
  it('closes the gateway with 4002 on an undecodable frame and 4003 on a request before IDENTIFY', async () => {
    world = await startWorld();
    const a = await rawGateway(world.sim.gatewayUrl);
    a.send('{not json');
    expect(((await once(a, 'close')) as [number])[0]).toBe(4002);
    const b = await rawGateway(world.sim.gatewayUrl);
    b.send(JSON.stringify({ op: 4, d: { guild_id: '1', channel_id: null } }));
    expect(((await once(b, 'close')) as [number])[0]).toBe(4003);
  });

  it('answers malformed and unauthenticated REST requests with Discord errors', async () => {
    world = await startWorld();
    const url = `${world.sim.restUrl}/v10/channels/${world.text.id}/messages`;
    const auth = { authorization: `Bot ${world.sim.token}`, 'content-type': 'application/json' };
    const bad = await fetch(url, { method: 'POST', headers: auth, body: '{oops' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 50109 });
    const empty = await fetch(url, { method: 'POST', headers: auth, body: '{}' });
    expect(await empty.json()).toMatchObject({ code: 50006 });
    const anon = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"content":"x"}' });
    expect(anon.status).toBe(401);
    const unknown = await fetch(`${world.sim.restUrl}/v10/channels/123456789012345678/messages`, { method: 'POST', headers: auth, body: '{"content":"x"}' });
    expect(await unknown.json()).toMatchObject({ code: 10003 });
  });

  it('rate limits per bucket with real headers, and discord.js waits instead of failing', async () => {
    world = await startWorld({ rateLimit: { limit: 2, windowMs: 400 } });
    const url = `${world.sim.restUrl}/v10/channels/${world.text.id}/typing`;
    const headers = { authorization: `Bot ${world.sim.token}` };
    const r1 = await fetch(url, { method: 'POST', headers });
    expect(r1.headers.get('x-ratelimit-limit')).toBe('2');
    expect(r1.headers.get('x-ratelimit-remaining')).toBe('1');
    await fetch(url, { method: 'POST', headers });
    const r3 = await fetch(url, { method: 'POST', headers });
    expect(r3.status).toBe(429);
    expect(Number(r3.headers.get('retry-after'))).toBeGreaterThanOrEqual(0);
    await new Promise((r) => setTimeout(r, 450));

    client = await loginClient(world.sim);
    const channel = (await client.channels.fetch(world.text.id)) as TextChannel;
    for (let i = 0; i < 5; i++) await channel.send(`m${i}`);
    expect(world.sim.messages(world.text.id).map((m) => m.content)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(world.sim.requests.filter((r) => r.route === '/channels/:channelId/messages' && r.status === 429)).toHaveLength(0);
  });

  it("'discord' rate limits: 5 messages per 5 s per channel, with the headers discord.js plans by", async () => {
    world = await startWorld({ rateLimit: 'discord' });
    const url = `${world.sim.restUrl}/v10/channels/${world.text.id}/messages`;
    const headers = { authorization: `Bot ${world.sim.token}`, 'content-type': 'application/json' };
    const remaining: Array<string | null> = [];
    for (let i = 0; i < 5; i++) {
      const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ content: `m${i}` }) });
      expect(r.status).toBe(200);
      expect(r.headers.get('x-ratelimit-limit')).toBe('5');
      expect(Number(r.headers.get('x-ratelimit-reset-after'))).toBeLessThanOrEqual(5);
      remaining.push(r.headers.get('x-ratelimit-remaining'));
    }
    expect(remaining).toEqual(['4', '3', '2', '1', '0']);
    const sixth = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ content: 'm5' }) });
    expect(sixth.status).toBe(429);
    expect(Number(sixth.headers.get('retry-after'))).toBeGreaterThan(3);
    expect(await sixth.json()).toMatchObject({ message: 'You are being rate limited.', global: false });
    // Another channel is another bucket.
    const other = world.guild.addTextChannel('other');
    const elsewhere = await fetch(`${world.sim.restUrl}/v10/channels/${other.id}/messages`, { method: 'POST', headers, body: JSON.stringify({ content: 'x' }) });
    expect(elsewhere.status).toBe(200);
    expect(world.sim.messages(world.text.id)).toHaveLength(5);
  });

  it('a new session (bot restart) starts out of voice and closes the old voice session', async () => {
    const backend = new RecordingVoiceBackend();
    world = await startWorld({ voice: backend });
    const { sim, guild, voice } = world;
    client = await loginClient(sim);
    client.guilds.cache.get(guild.id)!.shard.send({ op: 4, d: { guild_id: guild.id, channel_id: voice.id, self_mute: false, self_deaf: false } });
    await sim.waitForBotVoice(guild.id, voice.id);
    await client.destroy();
    client = await loginClient(sim);
    await sim.waitForBotReady(5000, 2);
    expect(sim.identifies).toHaveLength(2);
    expect(sim.botVoiceState(guild.id)).toBeUndefined();
    expect(client.guilds.cache.get(guild.id)?.members.me?.voice.channelId ?? null).toBeNull();
    expect(backend.calls.at(-1)).toEqual({ call: 'closeSession', guildId: guild.id });
  });

  it('scenario mistakes throw a clear SimError', async () => {
    world = await startWorld();
    expect(() => world!.alice.say('999999999999999999', 'x')).toThrow(SimError);
    expect(() => world!.alice.joinVoice(world!.text.id)).toThrow(/not a voice channel/);
    expect(() => world!.alice.say(world!.text.id, 'x'.repeat(2001))).toThrow(/2000/);
    await expect(world.alice.speak(new Int16Array(960))).rejects.toThrow(/not in the bot's voice channel/);
    const muted = world.guild.addTextChannel('readonly');
    muted.setPermissionOverwrite(world.guild.everyoneRoleId, { deny: 1n << 11n });
    expect(() => world!.alice.say(muted.id, 'x')).toThrow(/cannot send/);
  });
});
