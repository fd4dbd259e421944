/**
 * The gateway side wired to the REAL voice server: @discordjs/voice joins through op 4 →
 * VOICE_STATE_UPDATE → VOICE_SERVER_UPDATE, reaches Ready over TLS, and hears a member speak.
 * (Receive only: the bot side plays nothing here, so this process holds one Opus encoder.)
 */
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { EndBehaviorType, VoiceConnectionStatus, entersState, joinVoiceChannel, type VoiceConnection } from '@discordjs/voice';
import type { Client } from 'discord.js';
import { tone } from '../audio/signals.js';
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

describe('discord-sim with the real voice server', () => {
  it.each(['off', 'v1'] as const)('dave %s: a real VoiceConnection becomes Ready and receives a member speaking', async (dave) => {
    world = await startWorld({ voice: undefined, dave, voiceHeartbeatIntervalMs: 1000 });
    const { sim, guild, voice, alice } = world;
    tls.setDefaultCACertificates([...tls.getCACertificates('default'), sim.caCertPem]);
    alice.joinVoice(voice.id);
    client = await loginClient(sim);
    const g = client.guilds.cache.get(guild.id)!;
    connection = joinVoiceChannel({ guildId: guild.id, channelId: voice.id, adapterCreator: g.voiceAdapterCreator, selfDeaf: false });
    await entersState(connection, VoiceConnectionStatus.Ready, 10_000);
    expect(sim.botVoiceState(guild.id)?.channelId).toBe(voice.id);
    expect(sim.voiceServer.session(guild.id)?.ready).toBe(true);
    expect(sim.voiceServer.session(guild.id)?.daveProtocolVersion).toBe(dave === 'v1' ? 1 : 0);
    await sim.voiceServer.daveSettled(guild.id);

    const stream = connection.receiver.subscribe(alice.id, { end: { behavior: EndBehaviorType.AfterSilence, duration: 300 } });
    const packets: Buffer[] = [];
    stream.on('data', (p: Buffer) => packets.push(p));
    const ended = new Promise((r) => stream.once('end', r));
    await alice.speak(tone(440, 300), { sampleRate: 48_000, channels: 1 });
    await ended;
    // 300 ms of speech = 15 frames of 20 ms (plus the silence tail the receiver may pass through).
    expect(packets.length).toBeGreaterThanOrEqual(15);

    connection.destroy();
    connection = undefined;
    await sim.waitForBotVoice(guild.id, null);
  });
});
