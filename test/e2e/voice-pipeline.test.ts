/**
 * Voice end to end: the production bot (child process, real discord.js + @discordjs/voice)
 * against the Discord simulator's real voice server (TLS gateway, UDP/RTP, AES-GCM, DAVE) and the
 * Voxta simulator (energy-VAD recogniser, tone TTS). Simulated members speak real Opus over RTP;
 * what the bot played is decoded back from its RTP by the voice server.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { E2EEnv } from '../harness/env.js';
import { boot as bootWorld, goertzel, replyIds, sends, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

async function boot(opts: Parameters<typeof bootWorld>[0] = {}) {
  const b = await bootWorld(opts, (e) => (env = e));
  return b;
}

describe('voice end to end (production bot, real @discordjs/voice, simulators)', () => {
  it('voice in → transcript sent; reply TTS played back in order with true durations and one complete (DAVE off)', async () => {
    const { env, bot } = await boot({
      voxta: { stt: { transcripts: ['hello there'] }, reply: () => ['Hi there.', 'Nice to meet you.'], tts: { sampleRate: 24000 } },
    });
    const voxta = env.voxta!;
    await env.alice.speak(tone(440, 900), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('hello there'), 10_000, 'the transcript as a send');
    // Alone in the channel: the plain text, as the text bridge does for a single speaker.
    expect(sends(env)).toEqual(['hello there']);

    const messageId = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'a reply');
    await voxta.waitFor(() => voxta.playback(messageId).completes >= 1, 15_000, 'speechPlaybackComplete');
    await new Promise((r) => setTimeout(r, 300));
    const pb = voxta.playback(messageId);
    expect(pb.completes).toBe(1);
    const served = voxta.ttsServed.filter((t) => t.messageId === messageId);
    expect(served).toHaveLength(2);
    // One start per chunk, in order, with the clip's true duration.
    expect(pb.starts.map((s) => s.startIndex)).toEqual([...pb.starts.map((s) => s.startIndex)].sort((a, b) => a - b));
    expect(pb.starts.map((s) => s.duration)).toEqual(served.map((t) => Math.round(t.durationMs) / 1000));

    // What the bot played, decoded from its RTP: the two tones, in order, at the served pitch.
    const audio = env.discord.voiceServer.botAudio(env.guild.id);
    expect(audio.transportFailures).toBe(0);
    const pcm = audio.pcm(48_000, 1);
    let first = pcm.findIndex((s) => Math.abs(s) > 500);
    expect(first).toBeGreaterThanOrEqual(0);
    const freqs = served.map((t) => t.frequency!);
    expect(new Set(freqs).size).toBe(2);
    for (const [i, t] of served.entries()) {
      const len = Math.round((t.durationMs / 1000) * 48_000);
      const mid = pcm.subarray(first + Math.round(len * 0.25), first + Math.round(len * 0.75));
      const want = goertzel(mid, 48_000, freqs[i]!);
      const other = goertzel(mid, 48_000, freqs[1 - i]!);
      expect(want, `clip ${i} at ${freqs[i]} Hz`).toBeGreaterThan(other * 100); // ≥ 20 dB
      // The reconstructed tone keeps its level (Opus at 48 kb/s; amplitude as served ±3 dB).
      const servedPower = goertzel(t.pcm.subarray(Math.round(t.pcm.length * 0.25), Math.round(t.pcm.length * 0.75)), t.sampleRate, freqs[i]!);
      expect(want / servedPower).toBeGreaterThan(0.5);
      expect(want / servedPower).toBeLessThan(2);
      first += len;
      // Skip the encoder's padding between clips (≤ 2 frames).
      while (first < pcm.length && Math.abs(pcm[first]!) < 300) first++;
    }
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('DAVE v1: speech in and out is end-to-end encrypted, and an MLS proposal for an unknown user is survived', async () => {
    const { env, bot } = await boot({
      dave: 'v1',
      voxta: { stt: { transcripts: ['encrypted hello', 'still here'] }, reply: () => ['Secret.'] },
    });
    const voxta = env.voxta!;
    await env.alice.speak(tone(500, 800), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('encrypted hello'), 10_000, 'the transcript');
    const messageId = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'a reply');
    await voxta.waitFor(() => voxta.playback(messageId).completes >= 1, 15_000, 'speechPlaybackComplete');
    const audio = env.discord.voiceServer.botAudio(env.guild.id);
    expect(audio.e2eeFrames).toBeGreaterThan(10);
    expect(audio.clearFrames).toBe(0);
    expect(audio.daveFailures).toBe(0);

    // The DAVE proposal that makes @discordjs/voice 0.19.2 throw inside its ws handler.
    env.discord.voiceServer.proposeUnknownUser(env.guild.id);
    await bot.waitForLog(/DAVE message could not be processed/, 10_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(bot.exit).toBeUndefined();
    // Still listening afterwards.
    await env.alice.speak(tone(500, 800), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('still here'), 15_000, 'a transcript after the fault');
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('barge-in: a member talking over the character stops playback, sends interrupt, and the reply completes once', async () => {
    const { env, bot } = await boot({
      botEnv: { BARGE_IN: 'anyone', BARGE_IN_MIN_MS: '300', BARGE_IN_GRACE_MS: '200' },
      voxta: {
        stt: { transcripts: ['tell me a story', 'stop'] },
        reply: () => ['Once upon a time there was a very long story that went on and on.', 'And it kept going for a long while after that.'],
      },
    });
    const voxta = env.voxta!;
    await env.alice.speak(tone(440, 700), { sampleRate: 48_000, channels: 1 });
    const messageId = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'a reply');
    await voxta.waitFor(() => voxta.playback(messageId).starts.length >= 1, 10_000, 'playback started');
    await new Promise((r) => setTimeout(r, 600));
    const before = env.discord.voiceServer.botAudio(env.guild.id).packets.filter((p) => !p.silence).length;
    const speaking = env.alice.speak(tone(600, 1200), { sampleRate: 48_000, channels: 1 });
    const interrupt = await voxta.waitForClientMessage('interrupt', {}, 5000);
    const stoppedAt = interrupt.at;
    await speaking;
    await voxta.waitFor(() => voxta.playback(messageId).completes >= 1, 10_000, 'the complete');
    await new Promise((r) => setTimeout(r, 500));
    expect(voxta.playback(messageId).completes).toBe(1);
    // What the member said over the character was kept and recognised once Voxta listened again.
    await voxta.waitFor(() => sends(env).includes('stop'), 10_000, 'the interrupting words as a transcript');
    // All of it, from its first word: the part said while Voxta was not recording was held and
    // replayed (without that, the first ~300 ms are lost).
    expect(voxta.recognitions.find((r) => r.text === 'stop')!.voicedMs).toBeGreaterThanOrEqual(1100);
    const packets = env.discord.voiceServer.botAudio(env.guild.id).packets.filter((p) => !p.silence);
    // Nothing of that reply is sent after the stop (allow the frame already prepared, one 20 ms tick).
    const after = packets.filter((p) => p.at > stoppedAt + 100);
    expect(after.filter((p) => p.at < stoppedAt + 2000)).toHaveLength(0);
    expect(packets.length).toBeGreaterThan(before);
    // The full reply was ~7 s of audio; far less was played.
    const served = voxta.ttsServed.filter((t) => t.messageId === messageId).reduce((s, t) => s + t.durationMs, 0);
    expect(packets.length * 20).toBeLessThan(served * 0.6);
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it("Voxta's own barge-in (interruptSpeech) stops playback without an interrupt from the bot (BARGE_IN=off)", async () => {
    const { env, bot } = await boot({
      botEnv: { BARGE_IN: 'off' },
      voxta: {
        stt: { transcripts: ['tell me a story', 'wait a moment'], bargeIn: true },
        reply: (t) => (t.includes('story') ? ['Once upon a time there was a very long story that went on and on.', 'And on.'] : ['Sure.']),
      },
    });
    const voxta = env.voxta!;
    await env.alice.speak(tone(440, 700), { sampleRate: 48_000, channels: 1 });
    const messageId = await voxta.waitFor(() => replyIds(env)[0], 10_000, 'a reply');
    await voxta.waitFor(() => voxta.playback(messageId).starts.length >= 1, 10_000, 'playback started');
    await new Promise((r) => setTimeout(r, 400));
    const speaking = env.alice.speak(tone(600, 1200), { sampleRate: 48_000, channels: 1 });
    const interrupted = await voxta.waitForServerMessage('interruptSpeech', { messageId }, 10_000);
    await speaking;
    await voxta.waitFor(() => voxta.playback(messageId).completes >= 1, 10_000, 'the complete');
    await voxta.waitFor(() => sends(env).includes('wait a moment'), 10_000, 'the interrupting transcript');
    await new Promise((r) => setTimeout(r, 300));
    expect(voxta.playback(messageId).completes).toBe(1);
    expect(voxta.received.filter((m) => m.payload.$type === 'interrupt')).toHaveLength(0);
    const late = env.discord.voiceServer.botAudio(env.guild.id).packets.filter((p) => !p.silence && p.at > interrupted.at + 150 && p.at < interrupted.at + 1500);
    expect(late).toHaveLength(0);
    expect(bot.exit).toBeUndefined();
  }, 90_000);

  it('two overlapping speakers: both transcripts arrive, attributed, in the order they started', async () => {
    const { env } = await boot({
      members: ['alice', 'bob'],
      voxta: { stt: { transcripts: ['alice speaking first', 'bob speaking second'] }, tts: { enabled: false } },
    });
    const voxta = env.voxta!;
    // Alice speaks 1.2 s; Bob starts 300 ms later and speaks 1 s (overlapping).
    const a = env.alice.speak(tone(440, 1200), { sampleRate: 48_000, channels: 1 });
    await new Promise((r) => setTimeout(r, 300));
    const b = env.bob.speak(tone(660, 1000), { sampleRate: 48_000, channels: 1 });
    await Promise.all([a, b]);
    await voxta.waitFor(() => sends(env).length >= 2, 15_000, 'two transcripts');
    expect(sends(env)).toEqual(['Alice: alice speaking first', 'Bob: bob speaking second']);
    // Both utterances were recognised separately (the arbiter left a pause between them).
    expect(voxta.recognitions.filter((r) => r.text).map((r) => r.text)).toEqual(['alice speaking first', 'bob speaking second']);
  }, 90_000);

  it('invalid and corrupted packets are counted and survived; speech afterwards is still recognised', async () => {
    const { env, bot } = await boot({ voxta: { stt: { transcripts: ['after the garbage'] } } });
    const voxta = env.voxta!;
    const garbage = Array.from({ length: 20 }, (_, i) => Buffer.from([0xff, 0xff, 0xff, i, 0xff, 0x00, 0x13, 0x37]));
    await env.discord.voiceServer.sendRawOpus(env.guild.id, env.alice.id, garbage);
    await bot.waitForLog(/invalid Opus packet dropped/, 10_000);
    // A packet whose transport encryption is broken destroys the receive stream: re-subscribed.
    env.discord.voiceServer.corruptNextPackets(env.guild.id, 1);
    await env.alice.speak(tone(440, 900), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('after the garbage'), 15_000, 'the transcript after invalid packets');
    await bot.waitForLog(/receive stream failed/, 1000);
    const decodeLines = bot.lines.filter((l) => /invalid Opus packet dropped/.test(l.line));
    expect(decodeLines.length).toBeGreaterThan(0);
    expect(bot.exit).toBeUndefined();
  }, 90_000);
});

describe('voice latency (reported, not asserted beyond sanity)', () => {
  it('replyChunk → first Opus packet on the wire, and RTP → Voxta input, over several turns', async () => {
    // Eight quick turns by one member: more than the default text rate limit lets through.
    const { env, bot } = await boot({ voxta: { reply: (t) => [`Okay ${t.length}.`], stt: { transcripts: ['one'] } }, botEnv: { TEXT_RATE_LIMIT: 'off' } });
    const voxta = env.voxta!;
    const latencies: number[] = [];
    for (let i = 0; i < 8; i++) {
      const before = replyIds(env).length;
      env.alice.say(env.text.id, `turn ${i}`);
      const id = await voxta.waitFor(() => replyIds(env)[before], 10_000, `reply ${i}`);
      await voxta.waitFor(() => voxta.playback(id).completes >= 1, 10_000, `complete ${i}`);
      const chunkAt = voxta.sent.find((m) => (m.payload as { $type?: string; messageId?: string }).$type === 'replyChunk' && (m.payload as { messageId?: string }).messageId === id)!.at;
      const first = env.discord.voiceServer.botAudio(env.guild.id).packets.find((p) => !p.silence && p.at >= chunkAt);
      expect(first).toBeDefined();
      latencies.push(first!.at - chunkAt);
    }
    // One spoken turn for the uplink figure.
    await env.alice.speak(tone(440, 800), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(env).includes('one'), 10_000, 'the transcript');
    await env.admin.runCommand(env.text.id, 'leave');
    const leaving = await bot.waitForLog(/voice: leaving/, 10_000);
    const stats = (leaving.json?.stats ?? {}) as Record<string, number>;
    const sorted = [...latencies].sort((a, b) => a - b);
    const p95 = sorted[Math.ceil(sorted.length * 0.95) - 1]!;
    console.log(
      `[voice latency] replyChunk→first packet on the wire (ms): ${latencies.join(', ')}; p50 ${sorted[Math.floor(sorted.length / 2)]}, p95 ${p95}; ` +
        `bot-side replyChunk→packet taken p50 ${stats.downlinkLatencyP50Ms?.toFixed(1)} p95 ${stats.downlinkLatencyP95Ms?.toFixed(1)} ` +
        `(of which download+parse p50 ${stats.fetchLatencyP50Ms?.toFixed(1)} p95 ${stats.fetchLatencyP95Ms?.toFixed(1)}); ` +
        `RTP→Voxta input p50 ${stats.uplinkLatencyP50Ms?.toFixed(3)} p95 ${stats.uplinkLatencyP95Ms?.toFixed(3)} (${stats.uplinkLatencySamples} samples)`,
    );
    expect(stats.uplinkLatencySamples).toBeGreaterThan(20);
    expect(stats.downlinkLatencySamples).toBeGreaterThanOrEqual(8);
    expect(p95).toBeLessThan(1000); // sanity only: the figures are for the benchmark report
  }, 90_000);
});
