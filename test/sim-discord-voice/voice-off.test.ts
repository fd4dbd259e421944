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

const GUILD = '1200000000000000001';
const CHANNEL = '1300000000000000001';
const BOT = '1100000000000000001';
const MEMBER = '1100000000000000002';

describe('voice server, DAVE off, with the real @discordjs/voice', () => {
  let voice: VoiceServer;
  let connection: VoiceConnection | undefined;

  beforeAll(async () => {
    voice = await startVoiceServer({ dave: 'off', helloIntervalMs: 500 });
    // In-process bot: trust the throwaway CA (adds it; the system CAs stay trusted).
    setDefaultCACertificates([...getCACertificates('default'), voice.caCertPem]);
  });
  afterEach(() => {
    if (connection && connection.state.status !== VoiceConnectionStatus.Destroyed) connection.destroy();
    connection = undefined;
  });
  afterAll(async () => {
    await voice?.stop();
  });

  it('reaches Ready, carries audio both ways, resumes after 4015 and disconnects on 4014', async () => {
    voice.memberJoined(GUILD, MEMBER); // already in the channel when the bot joins
    const { adapterCreator, sent } = gatewayAdapter(voice, BOT);
    connection = joinVoiceChannel({ guildId: GUILD, channelId: CHANNEL, adapterCreator, selfDeaf: false });
    await entersState(connection, VoiceConnectionStatus.Ready, 5_000);
    expect(sent[0]?.d).toMatchObject({ guild_id: GUILD, channel_id: CHANNEL, self_deaf: false });
    expect(voice.session(GUILD)).toMatchObject({ ready: true, daveProtocolVersion: 0 });
    const out = voice.frames(GUILD).filter((f) => f.dir === 'out').map((f) => f.op);
    expect(out.slice(0, 3)).toEqual([2, 4, 11]); // READY, SESSION_DESCRIPTION, CLIENTS_CONNECT

    // Bot → simulator: 440 Hz for 0.4 s.
    const player = createAudioPlayer({ behaviors: { noSubscriber: NoSubscriberBehavior.Play } });
    connection.subscribe(player);
    const { resource, frames } = opusToneResource(440, 0.4);
    player.play(resource);
    await entersState(player, AudioPlayerStatus.Playing, 2_000);
    await entersState(player, AudioPlayerStatus.Idle, 3_000);
    await settle(() => voice.botAudio(GUILD).clearFrames >= frames);
    const rec = voice.botAudio(GUILD);
    expect(rec.clearFrames).toBe(frames);
    expect(rec.e2eeFrames).toBe(0);
    const pcm = rec.pcm();
    expect(goertzel(pcm, 440)).toBeGreaterThan(100 * goertzel(pcm, 1000));
    expect(voice.botSpeaking(GUILD).map((s) => s.speaking)).toEqual([1, 0]);

    // Simulator → bot: the member says 880 Hz (16 kHz mono input, resampled by the simulator).
    const received: Buffer[] = [];
    const stream = connection.receiver.subscribe(MEMBER);
    stream.on('data', (b: Buffer) => received.push(b));
    await voice.speak(GUILD, MEMBER, tone(880, 0.4, 16_000), { sampleRate: 16_000, channels: 1 });
    await settle(() => received.length >= 25);
    expect(received.length).toBe(20 + 5); // 20 frames of tone + 5 silence frames
    const heard = decodePackets(received, 48_000, 1).pcm;
    expect(goertzel(heard, 880)).toBeGreaterThan(100 * goertzel(heard, 440));

    // 4015: the client resumes (op 7 → op 9) and audio keeps flowing on the same session.
    const ssrcBefore = voice.session(GUILD)!.ssrc;
    voice.closeBotSocket(GUILD, 4015);
    await waitFor(voice.events, 'botResumed');
    await entersState(connection, VoiceConnectionStatus.Ready, 2_000);
    expect(voice.session(GUILD)!.ssrc).toBe(ssrcBefore);
    const inOps = voice.frames(GUILD).filter((f) => f.dir === 'in').map((f) => f.op);
    expect(inOps).toContain(7);
    expect(voice.frames(GUILD).some((f) => f.dir === 'out' && f.op === 9)).toBe(true);
    const before = received.length;
    await voice.speak(GUILD, MEMBER, tone(880, 0.2), { sampleRate: 48_000, channels: 1 });
    await settle(() => received.length - before >= 15);
    expect(received.length - before).toBe(10 + 5);

    // 4014: kicked → Disconnected (no automatic rejoin).
    voice.closeBotSocket(GUILD, 4014);
    await entersState(connection, VoiceConnectionStatus.Disconnected, 2_000);
    expect(connection.state).toMatchObject({ status: 'disconnected', closeCode: 4014 });
  });

  it('resumes after unacknowledged heartbeats, rejoins after 4006; dropped, invalid and corrupt packets', async () => {
    const guild = '1200000000000000002';
    voice.memberJoined(guild, MEMBER);
    const { adapterCreator, sent } = gatewayAdapter(voice, BOT);
    connection = joinVoiceChannel({ guildId: guild, channelId: CHANNEL, adapterCreator, selfDeaf: false });
    await entersState(connection, VoiceConnectionStatus.Ready, 5_000);

    // No heartbeat ACKs: after 3 misses the client closes its socket itself (code 1005) and resumes.
    voice.delayHeartbeatAcks(guild, Infinity);
    const disconnected = waitFor<{ guildId: string; code: number }>(voice.events, 'botDisconnected', (e) => e.guildId === guild);
    await waitFor(voice.events, 'botResumed', (e: { guildId: string }) => e.guildId === guild);
    expect((await disconnected).code).toBe(1005);
    voice.delayHeartbeatAcks(guild, 0);

    // 4006: not resumable → the client goes back to signalling and sends op 4 again → new session.
    const ssrcBefore = voice.session(guild)!.ssrc;
    voice.closeBotSocket(guild, 4006);
    await entersState(connection, VoiceConnectionStatus.Signalling, 2_000);
    await entersState(connection, VoiceConnectionStatus.Ready, 5_000);
    expect(sent.filter((p) => p.d.channel_id === CHANNEL)).toHaveLength(2);
    expect(voice.session(guild)!.ssrc).not.toBe(ssrcBefore);
    expect(connection.rejoinAttempts).toBe(0);
    const received: Buffer[] = [];
    const stream = connection.receiver.subscribe(MEMBER);
    stream.on('data', (b: Buffer) => received.push(b));
    const streamError = new Promise<Error>((resolve) => stream.once('error', resolve));
    await voice.speak(guild, MEMBER, tone(880, 0.1), { sampleRate: 48_000, channels: 1 });
    await settle(() => received.length >= 10);
    expect(received).toHaveLength(5 + 5);

    // Dropped packets simply never arrive (the receive stream has no sequence numbers to notice).
    voice.dropNextPackets(guild, 2);
    await voice.speak(guild, MEMBER, tone(880, 0.1), { sampleRate: 48_000, channels: 1 });
    await settle(() => received.length >= 18);
    expect(received).toHaveLength(10 + 8);

    // Invalid Opus goes through untouched (both encryption layers are transparent to it).
    const junk = [Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), Buffer.from([0x01])];
    await voice.sendRawOpus(guild, MEMBER, junk);
    await settle(() => received.length >= 20);
    expect(received.slice(-2)).toEqual(junk);

    // One corrupted packet: @discordjs/voice 0.19.2 destroys the whole subscription (gotcha 6).
    voice.corruptNextPackets(guild, 1);
    await voice.speak(guild, MEMBER, tone(880, 0.1), { sampleRate: 48_000, channels: 1 });
    expect((await streamError).message).toMatch(/authenticate/i);
    expect(stream.destroyed).toBe(true);
    expect(received).toHaveLength(20);
  });
});
