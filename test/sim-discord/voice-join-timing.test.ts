/**
 * Controllable voice joins: a delay between the bot's op 4 and VOICE_SERVER_UPDATE, and a gate a
 * test holds and releases, so "the voice join is still in flight" happens deterministically. A
 * join superseded while held (leave, or a move elsewhere) never completes. The real
 * @discordjs/voice stays in `signalling` while held and becomes Ready once released.
 */
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { VoiceConnectionStatus, entersState, joinVoiceChannel, type VoiceConnection } from '@discordjs/voice';
import type { Client } from 'discord.js';
import { RecordingVoiceBackend, type GatewayFrameRecord } from '../../sim/discord/index.js';
import { loginClient, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;
let connection: VoiceConnection | undefined;

afterEach(async () => {
  connection?.destroy();
  connection = undefined;
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

const dispatched = (frames: GatewayFrameRecord[], t: string) => frames.filter((f) => f.dir === 'out' && f.t === t);

describe('discord-sim voice join timing', () => {
  it('holds a join before VOICE_SERVER_UPDATE until released', async () => {
    const backend = new RecordingVoiceBackend();
    world = await startWorld({ voice: backend });
    const { sim, guild, voice } = world;
    client = await loginClient(sim);
    sim.holdVoiceJoins();
    client.guilds.cache.get(guild.id)!.shard.send({ op: 4, d: { guild_id: guild.id, channel_id: voice.id, self_mute: false, self_deaf: false } });
    const held = await sim.waitForHeldVoiceJoin(guild.id);
    expect(held).toMatchObject({ guildId: guild.id, channelId: voice.id, held: true });
    expect(sim.pendingVoiceJoins()).toHaveLength(1);
    // VOICE_STATE_UPDATE went out, VOICE_SERVER_UPDATE did not; the voice server was not asked yet.
    expect(dispatched(sim.gatewayFrames, 'VOICE_STATE_UPDATE')).toHaveLength(1);
    expect(dispatched(sim.gatewayFrames, 'VOICE_SERVER_UPDATE')).toHaveLength(0);
    expect(backend.calls.filter((c) => c.call === 'openSession')).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 100));
    expect(dispatched(sim.gatewayFrames, 'VOICE_SERVER_UPDATE')).toHaveLength(0);

    sim.releaseVoiceJoins();
    await new Promise((r) => setTimeout(r, 50));
    expect(dispatched(sim.gatewayFrames, 'VOICE_SERVER_UPDATE')).toHaveLength(1);
    expect(backend.calls.filter((c) => c.call === 'openSession')).toHaveLength(1);
    expect(sim.pendingVoiceJoins()).toEqual([]);
  });

  it('a held join superseded by a leave, or by a move, does not complete', async () => {
    const backend = new RecordingVoiceBackend();
    world = await startWorld({ voice: backend });
    const { sim, guild, voice } = world;
    const other = guild.addVoiceChannel('Other');
    client = await loginClient(sim);
    const shard = client.guilds.cache.get(guild.id)!.shard;
    const op4 = (channel_id: string | null) => shard.send({ op: 4, d: { guild_id: guild.id, channel_id, self_mute: false, self_deaf: false } });

    sim.holdVoiceJoins();
    op4(voice.id);
    await sim.waitForHeldVoiceJoin(guild.id);
    op4(null);
    await sim.waitForBotVoice(guild.id, null);
    sim.releaseVoiceJoins();
    await new Promise((r) => setTimeout(r, 50));
    expect(dispatched(sim.gatewayFrames, 'VOICE_SERVER_UPDATE')).toHaveLength(0);
    expect(backend.calls.filter((c) => c.call === 'openSession')).toHaveLength(0);

    sim.holdVoiceJoins();
    op4(voice.id);
    op4(other.id);
    await sim.waitForBotVoice(guild.id, other.id);
    sim.releaseVoiceJoins();
    await new Promise((r) => setTimeout(r, 50));
    const servers = dispatched(sim.gatewayFrames, 'VOICE_SERVER_UPDATE');
    expect(servers).toHaveLength(1);
    expect(backend.calls.filter((c) => c.call === 'openSession')).toEqual([expect.objectContaining({ channelId: other.id })]);
  });

  it('a join delay (option and runtime switch) separates VOICE_STATE_UPDATE from VOICE_SERVER_UPDATE', async () => {
    world = await startWorld({ voice: new RecordingVoiceBackend(), voiceJoinDelayMs: 250 });
    const { sim, guild, voice } = world;
    client = await loginClient(sim);
    const shard = client.guilds.cache.get(guild.id)!.shard;
    shard.send({ op: 4, d: { guild_id: guild.id, channel_id: voice.id, self_mute: false, self_deaf: false } });
    const deadline = Date.now() + 2000;
    while (dispatched(sim.gatewayFrames, 'VOICE_SERVER_UPDATE').length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const state = dispatched(sim.gatewayFrames, 'VOICE_STATE_UPDATE')[0]!;
    const server = dispatched(sim.gatewayFrames, 'VOICE_SERVER_UPDATE')[0]!;
    expect(server.at - state.at).toBeGreaterThanOrEqual(240);

    sim.setVoiceJoinDelay(0);
    shard.send({ op: 4, d: { guild_id: guild.id, channel_id: voice.id, self_mute: false, self_deaf: false } });
    await new Promise((r) => setTimeout(r, 50));
    const [, state2] = dispatched(sim.gatewayFrames, 'VOICE_STATE_UPDATE');
    const [, server2] = dispatched(sim.gatewayFrames, 'VOICE_SERVER_UPDATE');
    expect(server2!.at - state2!.at).toBeLessThan(50);
  });

  it('the real @discordjs/voice stays signalling while the join is held, and gets Ready when released', async () => {
    world = await startWorld({ voice: undefined, voiceHeartbeatIntervalMs: 1000 });
    const { sim, guild, voice } = world;
    tls.setDefaultCACertificates([...tls.getCACertificates('default'), sim.caCertPem]);
    client = await loginClient(sim);
    sim.holdVoiceJoins();
    connection = joinVoiceChannel({ guildId: guild.id, channelId: voice.id, adapterCreator: client.guilds.cache.get(guild.id)!.voiceAdapterCreator, selfDeaf: false });
    await sim.waitForHeldVoiceJoin(guild.id);
    await new Promise((r) => setTimeout(r, 100));
    expect(connection.state.status).toBe(VoiceConnectionStatus.Signalling);
    sim.releaseVoiceJoins();
    await entersState(connection, VoiceConnectionStatus.Ready, 10_000);
    expect(sim.voiceServer.session(guild.id)?.ready).toBe(true);
  });
});
