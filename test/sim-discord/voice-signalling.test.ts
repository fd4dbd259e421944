/**
 * Voice signalling on the gateway side with the real discord.js client and a recording voice
 * backend: op 4 → VOICE_STATE_UPDATE (bot, with session id) strictly before VOICE_SERVER_UPDATE,
 * leave → VOICE_STATE_UPDATE with a null channel, members joining the bot's channel are announced
 * to the voice server.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Events, type Client, type VoiceState } from 'discord.js';
import { RecordingVoiceBackend } from '../../sim/discord/index.js';
import { loginClient, nextEvent, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

describe('discord-sim voice signalling', () => {
  it('answers op 4 with VOICE_STATE_UPDATE then VOICE_SERVER_UPDATE, and a leave with a null channel', async () => {
    const backend = new RecordingVoiceBackend('127.0.0.1:4444');
    world = await startWorld({ voice: backend });
    const { sim, guild, voice, alice, boss } = world;
    alice.joinVoice(voice.id);
    client = await loginClient(sim);
    const g = client.guilds.cache.get(guild.id)!;

    const rawOrder: string[] = [];
    const serverUpdate = new Promise<Record<string, unknown>>((resolve) => {
      client!.on(Events.Raw, (p: { t?: string; d?: Record<string, unknown> }) => {
        if (p.t === 'VOICE_STATE_UPDATE' || p.t === 'VOICE_SERVER_UPDATE') rawOrder.push(p.t);
        if (p.t === 'VOICE_SERVER_UPDATE' && p.d) resolve(p.d);
      });
    });
    const botState = nextEvent<[VoiceState, VoiceState]>(client, Events.VoiceStateUpdate, (_o, n) => n.id === sim.botUserId);
    g.shard.send({ op: 4, d: { guild_id: guild.id, channel_id: voice.id, self_mute: false, self_deaf: true } });
    const [, now] = await botState;
    const server = await serverUpdate;

    expect(rawOrder).toEqual(['VOICE_STATE_UPDATE', 'VOICE_SERVER_UPDATE']);
    expect(now.channelId).toBe(voice.id);
    expect(now.selfDeaf).toBe(true);
    expect(g.members.me?.voice.channelId).toBe(voice.id);
    const open = backend.calls.find((c) => c.call === 'openSession');
    expect(open).toMatchObject({ guildId: guild.id, channelId: voice.id, botUserId: sim.botUserId });
    expect(now.sessionId).toBe(open && 'sessionId' in open ? open.sessionId : undefined);
    expect(server).toMatchObject({ guild_id: guild.id, endpoint: '127.0.0.1:4444', token: open && 'token' in open ? open.token : undefined });
    expect(sim.botVoiceState(guild.id)).toMatchObject({ channelId: voice.id, selfDeaf: true });
    // alice was already in the channel: announced after the session opened.
    expect(backend.calls.map((c) => c.call)).toEqual(['openSession', 'memberJoined']);

    // Someone joins and leaves the bot's channel.
    const bossJoined = nextEvent<[VoiceState, VoiceState]>(client, Events.VoiceStateUpdate, (_o, n) => n.id === boss.id && n.channelId === voice.id);
    boss.joinVoice(voice.id);
    await bossJoined;
    boss.leaveVoice();
    expect(backend.calls.slice(-2)).toEqual([
      { call: 'memberJoined', guildId: guild.id, userId: boss.id },
      { call: 'memberLeft', guildId: guild.id, userId: boss.id },
    ]);

    const left = nextEvent<[VoiceState, VoiceState]>(client, Events.VoiceStateUpdate, (_o, n) => n.id === sim.botUserId && n.channelId === null);
    g.shard.send({ op: 4, d: { guild_id: guild.id, channel_id: null, self_mute: false, self_deaf: false } });
    await left;
    expect(sim.botVoiceState(guild.id)).toBeUndefined();
    expect(backend.calls.at(-1)).toEqual({ call: 'closeSession', guildId: guild.id });
  });

  it('the bot kicked from voice by the server, and a deleted voice channel, disconnect it', async () => {
    const backend = new RecordingVoiceBackend();
    world = await startWorld({ voice: backend });
    const { sim, guild, voice } = world;
    client = await loginClient(sim);
    const g = client.guilds.cache.get(guild.id)!;
    g.shard.send({ op: 4, d: { guild_id: guild.id, channel_id: voice.id, self_mute: false, self_deaf: false } });
    await sim.waitForBotVoice(guild.id, voice.id);
    const kicked = nextEvent<[VoiceState, VoiceState]>(client, Events.VoiceStateUpdate, (_o, n) => n.id === sim.botUserId && n.channelId === null);
    sim.disconnectBotFromVoice(guild.id);
    await kicked;
    expect(backend.calls.at(-1)).toEqual({ call: 'closeSession', guildId: guild.id });

    g.shard.send({ op: 4, d: { guild_id: guild.id, channel_id: voice.id, self_mute: false, self_deaf: false } });
    await sim.waitForBotVoice(guild.id, voice.id);
    const deleted = nextEvent(client, Events.ChannelDelete);
    sim.deleteChannel(voice.id);
    await deleted;
    expect(sim.botVoiceState(guild.id)).toBeUndefined();
    expect(g.members.me?.voice.channelId ?? null).toBeNull();
  });

  it('ignores op 4 for a channel the bot may not connect to', async () => {
    const backend = new RecordingVoiceBackend();
    world = await startWorld({ voice: backend });
    const { sim, guild } = world;
    const closed = guild.addVoiceChannel('Private');
    closed.setPermissionOverwrite(sim.botUserId, { deny: 1n << 20n });
    client = await loginClient(sim);
    client.guilds.cache.get(guild.id)!.shard.send({ op: 4, d: { guild_id: guild.id, channel_id: closed.id, self_mute: false, self_deaf: false } });
    await new Promise((r) => setTimeout(r, 200));
    expect(sim.botVoiceState(guild.id)).toBeUndefined();
    expect(backend.calls).toEqual([]);
  });
});
