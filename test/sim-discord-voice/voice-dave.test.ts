import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import {
  AudioPlayerStatus,
  createAudioPlayer,
  entersState,
  joinVoiceChannel,
  NoSubscriberBehavior,
  VoiceConnectionStatus,
  type VoiceConnection,
} from '@discordjs/voice';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodePackets } from '../../sim/discord/voice/audio-frames.js';
import { startVoiceServer, type VoiceServer } from '../../sim/discord/voice/index.js';
import { gatewayAdapter, goertzel, opusToneResource, settle, tone, waitFor } from './helpers.js';

const CHANNEL = '1300000000000000001';
const BOT = '1100000000000000001';
const ALICE = '1100000000000000002';
const BOB = '1100000000000000003';

/** The bot's davey session (internal to @discordjs/voice 0.19.2): ground truth for "really E2EE". */
function botDavey(connection: VoiceConnection): {
  ready: boolean;
  getDecryptionStats(userId: string): { successes: number; failures: number; passthroughs: number } | null;
  getEncryptionStats(): { successes: number; failures: number } | null;
  getUserIds(): string[];
  voicePrivacyCode: string;
} {
  const state = connection.state as unknown as { networking: { state: { dave?: { session?: unknown } } } };
  return state.networking.state.dave!.session as ReturnType<typeof botDavey>;
}

async function playTone(voice: VoiceServer, connection: VoiceConnection, freq: number, seconds: number): Promise<number> {
  const player = createAudioPlayer({ behaviors: { noSubscriber: NoSubscriberBehavior.Play } });
  const sub = connection.subscribe(player);
  const { resource, frames } = opusToneResource(freq, seconds);
  player.play(resource);
  await entersState(player, AudioPlayerStatus.Playing, 2_000);
  await entersState(player, AudioPlayerStatus.Idle, 3_000);
  sub?.unsubscribe();
  const guildId = connection.joinConfig.guildId;
  await settle(() => voice.botAudio(guildId).packets.filter((p) => !p.silence).length >= frames);
  return frames;
}

async function hear(voice: VoiceServer, connection: VoiceConnection, guildId: string, userId: string, freq: number, seconds: number): Promise<Int16Array> {
  const received: Buffer[] = [];
  const stream = connection.receiver.subscribe(userId);
  const onData = (b: Buffer) => received.push(b);
  stream.on('data', onData);
  const expected = Math.ceil(seconds * 50) + 5;
  await voice.speak(guildId, userId, tone(freq, seconds), { sampleRate: 48_000, channels: 1 });
  await settle(() => received.length >= expected);
  stream.off('data', onData);
  expect(received.length).toBe(expected);
  return decodePackets(received, 48_000, 1).pcm;
}

describe('voice server, DAVE v1 (MLS external sender, members are real davey sessions)', () => {
  let voice: VoiceServer;
  let connection: VoiceConnection | undefined;

  beforeAll(async () => {
    voice = await startVoiceServer({ dave: 'v1', helloIntervalMs: 500 });
    setDefaultCACertificates([...getCACertificates('default'), voice.caCertPem]);
  });
  afterEach(() => {
    if (connection && connection.state.status !== VoiceConnectionStatus.Destroyed) connection.destroy();
    connection = undefined;
  });
  afterAll(async () => {
    await voice?.stop();
  });

  it('bot joins a member’s group by welcome; audio is E2EE both ways; later joins and leaves re-key', async () => {
    const guild = '1200000000000000001';
    voice.memberJoined(guild, ALICE);
    const { adapterCreator } = gatewayAdapter(voice, BOT);
    connection = joinVoiceChannel({ guildId: guild, channelId: CHANNEL, adapterCreator, selfDeaf: false });
    const transitioned = new Promise<number>((resolve) => connection!.once('transitioned', resolve));
    await entersState(connection, VoiceConnectionStatus.Ready, 5_000);
    expect(await transitioned).toBeGreaterThan(0);
    await voice.daveSettled(guild);
    expect(voice.session(guild)).toMatchObject({ daveProtocolVersion: 1, daveEpoch: 1 });
    const dave = botDavey(connection);
    expect(dave.ready).toBe(true);
    expect(dave.getUserIds().sort()).toEqual([ALICE, BOT].sort());
    expect(connection.voicePrivacyCode).toMatch(/\d/);
    // Binary DAVE frames seen: op 25 out, op 26 in, op 30 out (welcome), op 23 in, op 22 out.
    const ops = voice.frames(guild).map((f) => `${f.dir}${f.op}`);
    for (const op of ['out25', 'in26', 'out30', 'in23', 'out22']) expect(ops).toContain(op);

    // Bot → member: every non-silence frame carried DAVE and Alice's davey decrypted it.
    const frames = await playTone(voice, connection, 440, 0.4);
    let rec = voice.botAudio(guild);
    expect(rec.e2eeFrames).toBe(frames);
    expect(rec.clearFrames).toBe(0);
    expect(rec.daveFailures).toBe(0);
    expect(rec.packets.filter((p) => !p.silence).every((p) => p.e2ee)).toBe(true);
    const pcm = rec.pcm();
    expect(goertzel(pcm, 440)).toBeGreaterThan(100 * goertzel(pcm, 1000));
    expect(dave.getEncryptionStats()?.successes).toBeGreaterThanOrEqual(frames);

    // Member → bot: decrypted by the bot's davey (not passed through).
    const heard = await hear(voice, connection, guild, ALICE, 880, 0.3);
    expect(goertzel(heard, 880)).toBeGreaterThan(100 * goertzel(heard, 440));
    expect(dave.getDecryptionStats(ALICE)).toMatchObject({ successes: 15, failures: 0, passthroughs: 0 });

    // Bob joins while the bot's socket is down (4015): op 11, op 27 and op 29 wait in the server's
    // buffer and are replayed after RESUMED from the client's seq_ack. Alice, the longest-standing
    // member, commits; the bot's own commit for the same proposals is ignored.
    const resumed = waitFor<{ guildId: string; replayed: number }>(voice.events, 'botResumed', (e) => e.guildId === guild);
    voice.closeBotSocket(guild, 4015);
    voice.memberJoined(guild, BOB);
    expect((await resumed).replayed).toBeGreaterThanOrEqual(3);
    await voice.daveSettled(guild);
    expect(dave.getUserIds().sort()).toEqual([ALICE, BOB, BOT].sort());
    // Alice leaves: the bot is now the longest-standing member and commits the Remove itself.
    voice.memberLeft(guild, ALICE);
    await voice.daveSettled(guild);
    expect(dave.getUserIds().sort()).toEqual([BOB, BOT].sort());
    expect(voice.session(guild)?.daveEpoch).toBe(3);
    expect(voice.frames(guild).some((f) => f.dir === 'in' && f.op === 28)).toBe(true); // the bot's own commit
    const bobHeard = await hear(voice, connection, guild, BOB, 660, 0.3);
    expect(goertzel(bobHeard, 660)).toBeGreaterThan(100 * goertzel(bobHeard, 880));
    expect(dave.getDecryptionStats(BOB)).toMatchObject({ successes: 15, failures: 0, passthroughs: 0 });
  });

  it('bot alone founds the group and commits the Adds and Removes (op 28) of members who come and go', async () => {
    const guild = '1200000000000000002';
    const { adapterCreator } = gatewayAdapter(voice, BOT);
    connection = joinVoiceChannel({ guildId: guild, channelId: CHANNEL, adapterCreator, selfDeaf: false });
    await entersState(connection, VoiceConnectionStatus.Ready, 5_000);
    await voice.daveSettled(guild);
    expect(voice.session(guild)?.daveUserIds).toEqual([BOT]);
    // Two joins in the same tick: the first goes into the bot's commit at once, the second waits
    // for that transition and goes into the next one; then Bob leaves again.
    voice.memberJoined(guild, ALICE);
    voice.memberJoined(guild, BOB);
    await voice.daveSettled(guild);
    const ops = voice.frames(guild).map((f) => `${f.dir}${f.op}`);
    for (const op of ['out11', 'out27', 'in28', 'out29', 'in23', 'out22']) expect(ops).toContain(op);
    expect(ops.filter((o) => o === 'in28')).toHaveLength(2);
    expect(botDavey(connection).getUserIds().sort()).toEqual([ALICE, BOB, BOT].sort());
    voice.memberLeft(guild, BOB);
    await voice.daveSettled(guild);
    expect(botDavey(connection).getUserIds().sort()).toEqual([ALICE, BOT].sort());
    expect(voice.session(guild)?.daveEpoch).toBe(3);

    const frames = await playTone(voice, connection, 523, 0.3);
    const rec = voice.botAudio(guild);
    expect(rec).toMatchObject({ e2eeFrames: frames, clearFrames: 0, daveFailures: 0 });
    const heard = await hear(voice, connection, guild, ALICE, 880, 0.3);
    expect(goertzel(heard, 880)).toBeGreaterThan(100 * goertzel(heard, 440));
    expect(botDavey(connection).getDecryptionStats(ALICE)).toMatchObject({ successes: 15, failures: 0, passthroughs: 0 });

    // 4006: a new voice session (the client rejoins): a new group is formed; Alice is already
    // there, so this time she founds it and welcomes the bot.
    voice.closeBotSocket(guild, 4006);
    await entersState(connection, VoiceConnectionStatus.Signalling, 2_000);
    await entersState(connection, VoiceConnectionStatus.Ready, 5_000);
    await voice.daveSettled(guild);
    expect(voice.session(guild)).toMatchObject({ daveEpoch: 1, daveUserIds: [ALICE, BOT] });
    const again = await hear(voice, connection, guild, ALICE, 660, 0.2);
    expect(goertzel(again, 660)).toBeGreaterThan(100 * goertzel(again, 880));
    expect(botDavey(connection).getDecryptionStats(ALICE)).toMatchObject({ successes: 10, failures: 0, passthroughs: 0 });
  });
});
