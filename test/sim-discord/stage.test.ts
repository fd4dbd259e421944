/**
 * Stage channels with the real discord.js client: joining makes you audience (suppress), the bot
 * may only unsuppress itself with Mute Members, raises its hand with setRequestToSpeak, a
 * moderator (the scenario) lets it speak; and, with the real voice server, what a suppressed
 * speaker sends is heard by no one (the bot's frames are recorded as unheard, a suppressed
 * member's never reach the bot).
 */
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AudioPlayerStatus,
  EndBehaviorType,
  NoSubscriberBehavior,
  StreamType,
  VoiceConnectionStatus,
  createAudioPlayer,
  createAudioResource,
  entersState,
  joinVoiceChannel,
  type VoiceConnection,
} from '@discordjs/voice';
import { ChannelType, Events, type Client, type VoiceState } from 'discord.js';
import { Perm, RecordingVoiceBackend } from '../../sim/discord/index.js';
import { encodeDiscordFrames, toDiscordFrames } from '../../sim/discord/voice/audio-frames.js';
import { tone } from '../audio/signals.js';
import { loginClient, nextEvent, startWorld, type World } from './helpers.js';

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

describe('discord-sim stage channels', () => {
  it('audience on join; unsuppressing needs Mute Members; raising a hand; a moderator approves', async () => {
    const backend = new RecordingVoiceBackend();
    world = await startWorld({ voice: backend });
    const { sim, guild, alice } = world;
    const stage = guild.addStageChannel('Stage');
    alice.joinVoice(stage.id);
    const c = await loginClient(sim);
    client = c;
    const g = c.guilds.cache.get(guild.id)!;
    expect(g.channels.cache.get(stage.id)?.type).toBe(ChannelType.GuildStageVoice);
    expect(g.voiceStates.cache.get(alice.id)?.suppress).toBe(true);

    const joined = nextEvent<[VoiceState, VoiceState]>(c, Events.VoiceStateUpdate, (_o, n) => n.id === sim.botUserId && n.channelId === stage.id);
    g.shard.send({ op: 4, d: { guild_id: guild.id, channel_id: stage.id, self_mute: false, self_deaf: false } });
    await joined;
    const me = g.members.me!;
    expect(me.voice.suppress).toBe(true);
    expect(sim.botVoiceState(guild.id)?.suppress).toBe(true);
    expect(backend.calls).toContainEqual({ call: 'setSuppressed', guildId: guild.id, userId: sim.botUserId, suppressed: true });
    expect(backend.calls).toContainEqual({ call: 'setSuppressed', guildId: guild.id, userId: alice.id, suppressed: true });

    // Without Mute Members the bot cannot make itself a speaker.
    await expect(me.voice.setSuppressed(false)).rejects.toMatchObject({ code: 50013 });
    // It can raise its hand (Request to Speak is an @everyone permission by default).
    const hand = nextEvent<[VoiceState, VoiceState]>(c, Events.VoiceStateUpdate, (_o, n) => n.id === sim.botUserId && n.requestToSpeakTimestamp !== null);
    await me.voice.setRequestToSpeak(true);
    await hand;
    expect(sim.voiceState(guild.id, sim.botUserId)?.requestToSpeakTimestamp).not.toBeNull();

    const approved = nextEvent<[VoiceState, VoiceState]>(c, Events.VoiceStateUpdate, (_o, n) => n.id === sim.botUserId && n.suppress === false);
    sim.approveSpeaker(guild.id, sim.botUserId);
    await approved;
    expect(me.voice.suppress).toBe(false);
    expect(backend.calls.at(-1)).toEqual({ call: 'setSuppressed', guildId: guild.id, userId: sim.botUserId, suppressed: false });
    // Suppressing yourself is always allowed; it also lowers the hand.
    await me.voice.setSuppressed(true);
    expect(sim.voiceState(guild.id, sim.botUserId)).toMatchObject({ suppress: true, requestToSpeakTimestamp: null });

    // A stage moderator (Mute Members) unsuppresses itself and invites a member to speak.
    stage.setPermissionOverwrite(sim.botUserId, { allow: Perm.MuteMembers });
    await me.voice.setSuppressed(false);
    expect(sim.voiceState(guild.id, sim.botUserId)?.suppress).toBe(false);
    const invited = nextEvent<[VoiceState, VoiceState]>(c, Events.VoiceStateUpdate, (_o, n) => n.id === alice.id && n.suppress === false);
    await g.voiceStates.cache.get(alice.id)!.setSuppressed(false);
    const [, aliceNow] = await invited;
    // Discord stamps a request_to_speak_timestamp on unsuppressed humans (not on bots).
    expect(aliceNow.requestToSpeakTimestamp).not.toBeNull();

    // Moving to a plain voice channel: no suppression there, and the stage route answers 50024.
    g.shard.send({ op: 4, d: { guild_id: guild.id, channel_id: world.voice.id, self_mute: false, self_deaf: false } });
    await sim.waitForBotVoice(guild.id, world.voice.id);
    expect(sim.botVoiceState(guild.id)?.suppress).toBe(false);
    await expect(c.rest.patch(`/guilds/${guild.id}/voice-states/@me`, { body: { suppress: false } })).rejects.toMatchObject({ code: 50024 });
  });

  it('real voice: the bot is not heard while suppressed, a suppressed member never reaches the bot', async () => {
    world = await startWorld({ voice: undefined, voiceHeartbeatIntervalMs: 1000 });
    const { sim, guild, alice } = world;
    tls.setDefaultCACertificates([...tls.getCACertificates('default'), sim.caCertPem]);
    const stage = guild.addStageChannel('Stage');
    stage.setPermissionOverwrite(sim.botUserId, { allow: Perm.MuteMembers });
    alice.joinVoice(stage.id);
    const c = await loginClient(sim);
    client = c;
    const g = c.guilds.cache.get(guild.id)!;
    connection = joinVoiceChannel({ guildId: guild.id, channelId: stage.id, adapterCreator: g.voiceAdapterCreator, selfDeaf: false });
    await entersState(connection, VoiceConnectionStatus.Ready, 10_000);
    expect(g.members.me?.voice.suppress).toBe(true);

    // Pre-encoded Opus (StreamType.Opus): the bot side needs no encoder of its own in this process.
    const frames = encodeDiscordFrames(toDiscordFrames(tone(440, 200), 48_000, 1));
    const player = createAudioPlayer({ behaviors: { noSubscriber: NoSubscriberBehavior.Play } });
    connection.subscribe(player);
    const play = async () => {
      player.play(createAudioResource(Readable.from(frames), { inputType: StreamType.Opus }));
      await entersState(player, AudioPlayerStatus.Playing, 2000);
      await entersState(player, AudioPlayerStatus.Idle, 5000);
    };
    await play();
    const whileSuppressed = sim.voiceServer.botAudio(guild.id);
    expect(whileSuppressed.unheardFrames).toBeGreaterThanOrEqual(frames.length - 1);
    expect(whileSuppressed.heardFrames).toBe(0);

    await g.members.me!.voice.setSuppressed(false);
    await play();
    const after = sim.voiceServer.botAudio(guild.id);
    expect(after.heardFrames).toBeGreaterThanOrEqual(frames.length - 1);
    expect(after.pcm(48_000, 1, { heardOnly: true }).length).toBeLessThan(after.pcm().length);

    // Alice is audience: what she says is not delivered to the bot.
    const packets: Buffer[] = [];
    const stream = connection.receiver.subscribe(alice.id, { end: { behavior: EndBehaviorType.Manual } });
    stream.on('data', (p: Buffer) => packets.push(p));
    await alice.speak(tone(660, 200));
    await new Promise((r) => setTimeout(r, 100));
    expect(packets).toHaveLength(0);
    expect(sim.voiceServer.unheardMemberFrames(guild.id, alice.id)).toBeGreaterThanOrEqual(10);
    sim.approveSpeaker(guild.id, alice.id);
    await alice.speak(tone(660, 200));
    await new Promise((r) => setTimeout(r, 100));
    expect(packets.length).toBeGreaterThanOrEqual(10);
    stream.destroy();
  });
});
