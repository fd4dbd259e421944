/**
 * Scale: what one voice session and one text session cost the machine, and whether memory stays
 * bounded over a long conversation.
 *
 * 1. CPU share of one core for a full-duplex voice session with 3 speakers: the production bot
 *    (child process) while the character speaks a long reply AND three members talk at once,
 *    against the same bot idle in the same voice channel (nobody talks, nothing plays), windows
 *    interleaved idle/active. CPU = utime + stime of the bot process from /proc/<pid>/stat.
 * 2. Memory per idle text session: the bot's RSS (/proc/<pid>/status VmRSS, median of several
 *    reads) after 1 and after N text-only chats (N guilds); per session = (RSS_N − RSS_1)/(N − 1),
 *    so one-time costs (code paths compiled on first use) are not counted per session.
 * 3. Memory after a 30-minute conversation. Default: compressed — the pure pipeline pieces (the
 *    real Uplink with its receive stream, floor and VAD; openSpeech → progressivePackets → ClipStream)
 *    fed faster than real time with 30 simulated minutes of alternating speech and replies, heap
 *    measured after a full GC every 5 simulated minutes. `--long`: the real bot through the
 *    simulators for 30 real minutes (speech, reply, speech, …), its RSS sampled every minute.
 */
import { ARIA_ID } from '../sim/voxta/index.js';
import { openSpeech, progressivePackets } from '../src/voice/tts-stream.js';
import { VoxtaEndpoint } from '../src/voxta/endpoint.js';
import { startE2E } from '../test/harness/env.js';
import { processCpuMs, processRssMiB, startLoopback, type LoopbackWorld } from './lib/e2e.js';
import type { BenchOptions } from './lib/options.js';
import type { Row, SectionResult } from './lib/report.js';
import { discordPackets, speechLike, wavFile } from './lib/signals.js';
import { opusLiveCodecs } from '../src/audio/opus.js';
import { collectGarbage, sleep, stat } from './lib/stats.js';
import { playThroughClipStream, wavServer } from './downlink.js';
import { uplinkHarness } from './uplink.js';

const MiB = 1024 * 1024;

/** Sentences of roughly `seconds` of tone TTS (the Voxta sim speaks 60 ms per character). */
function longReply(seconds: number): string[] {
  const sentences: string[] = [];
  let left = seconds * 1000;
  while (left > 0) {
    sentences.push('This sentence is only here to keep the character talking a while.');
    left -= 66 * 60;
  }
  return sentences;
}

async function cpuWindow(pid: number, during: () => Promise<void>): Promise<number> {
  const c0 = processCpuMs(pid);
  const t0 = performance.now();
  await during();
  const c1 = processCpuMs(pid);
  return ((c1 - c0) / (performance.now() - t0)) * 100;
}

async function voiceSessionCpu(o: ScaleOptions, rows: Row[], notes: string[], details: Record<string, unknown>, notMeasured: string[]): Promise<void> {
  const windowSec = o.quick ? 1 : 10;
  const rounds = o.quick ? 1 : 3;
  o.progress(`scale: bot CPU, idle vs 3 speakers + playback (${rounds} × ${windowSec} s windows)`);
  let world: LoopbackWorld | undefined;
  try {
    world = await startLoopback({
      dave: o.dave,
      members: ['alice', 'bob', 'admin'],
      voxta: { reply: () => longReply(windowSec + (o.quick ? 1 : 3)), stt: { transcripts: () => 'hello everyone' }, tts: { sampleRate: 24000 } },
      botEnv: { BARGE_IN: 'off' },
    });
    const w = world;
    const pid = w.bot.pid!;
    const voxta = w.env.voxta!;
    const speech = [1, 2, 3].map((seed) => speechLike(48000, windowSec, seed));
    const idle: number[] = [];
    const active: number[] = [];
    await sleep(o.quick ? 200 : 1000);
    for (let r = 0; r < rounds; r++) {
      idle.push(await cpuWindow(pid, () => sleep(windowSec * 1000)));
      // The character starts a long reply; once its audio flows, three members talk over it.
      const seq = voxta.seq();
      w.env.alice.say(w.env.text.id, `tell me something long ${r}`);
      const chunk = await voxta.waitFor(() => w.replyChunks.find((c) => c.seq > seq), 15_000, 'a reply');
      await voxta.waitFor(() => w.botPackets.some((p) => !p.silence && p.at > chunk.at), 15_000, 'reply audio');
      active.push(
        await cpuWindow(pid, async () => {
          await Promise.all([w.env.alice, w.env.bob, w.env.admin].map((m, i) => m.speak(speech[i]!, { sampleRate: 48000, channels: 1 })));
        }),
      );
      const playing = w.botPackets.filter((p) => !p.silence && p.at > chunk.at).length;
      if (playing * 20 < windowSec * 1000 * 0.8) notMeasured.push(`round ${r + 1}: the reply played only ${playing * 20} ms during the ${windowSec} s window`);
      await voxta.waitFor(() => voxta.playback(chunk.messageId).completes >= 1, 60_000, 'the reply to finish');
      await sleep(500);
    }
    const a = stat(active);
    const i = stat(idle);
    rows.push({
      section: 'scale',
      figure: 'Bot CPU, full-duplex voice session, 3 speakers + playback (total process)',
      unit: '% of one core',
      ours: a,
      baseline: i,
      ratio: a.median / i.median,
      target: { on: 'ours', op: '<=', value: 2 },
      digits: 2,
    });
    rows.push({
      section: 'scale',
      figure: 'Bot CPU added by that session (active − idle, per round)',
      unit: '% of one core',
      ours: stat(active.map((x, k) => x - idle[k]!)),
      digits: 2,
    });
    details.cpuShare = { idle, active, windowSec };
    notes.push(
      `Scale CPU: bot process utime+stime (/proc, 10 ms ticks) over ${windowSec} s windows; baseline = the same bot idle in the voice channel (same run, windows alternated). Active = a TTS reply playing (24 kHz WAVs → Opus) while 3 members speak speech-like audio at once (each decoded, VAD, floor-arbitrated; Voxta stops recording while its reply plays, so the socket carries no frames then). DAVE ${o.dave}, LOG_LEVEL=info.`,
    );
  } catch (err) {
    notMeasured.push(`voice session CPU: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await world?.close();
  }
}

async function rssMedian(pid: number, samples = 5, gapMs = 400): Promise<number> {
  const v: number[] = [];
  for (let i = 0; i < samples; i++) {
    v.push(processRssMiB(pid));
    await sleep(gapMs);
  }
  return stat(v).median;
}

async function textSessionMemory(o: ScaleOptions, rows: Row[], notes: string[], details: Record<string, unknown>, notMeasured: string[]): Promise<void> {
  const n = o.quick ? 2 : 16;
  o.progress(`scale: memory per idle text session (${n} guilds)`);
  const env = await startE2E({ voxta: { maxChats: 100, chunkDelayMs: 5 } });
  try {
    const guilds = Array.from({ length: n }, (_, i) => {
      const g = env.discord.addGuild({ name: `Bench ${i + 1}` });
      return { text: g.addTextChannel('chat'), admin: g.addMember({ username: `owner${i + 1}`, permissions: 'admin' }) };
    });
    const bot = await env.spawnBot({ env: { VOXTA_MAX_CHATS: String(Math.min(100, n + 2)) }, logLevel: 'info' });
    const pid = bot.pid!;
    await env.discord.waitForBotReady(30_000);
    await env.discord.waitForCommands(['start'], undefined, 30_000);
    const voxta = env.voxta!;
    const settle = o.quick ? 200 : 2000;
    const reads = o.quick ? 2 : 5;
    await sleep(settle);
    const rss0 = await rssMedian(pid, reads);
    const rssAfter: number[] = [];
    for (const [i, g] of guilds.entries()) {
      const h = await g.admin.runCommand(g.text.id, 'start', { character: ARIA_ID });
      await h.waitForResponse();
      await voxta.waitFor(() => voxta.sessions().filter((s) => s.state === 'active').length >= i + 1, 20_000, `${i + 1} active Voxta sessions`);
      // One exchange per chat, as a real conversation would have.
      const seq = voxta.seq();
      g.admin.say(g.text.id, 'hello');
      await voxta.waitFor(() => voxta.sent.find((m) => m.seq > seq && (m.payload as { $type?: string }).$type === 'replyEnd'), 20_000, 'a reply');
      if (i === 0) {
        await sleep(settle);
        rssAfter.push(await rssMedian(pid, reads));
      }
    }
    await sleep(settle * 1.5);
    const rssN = await rssMedian(pid, reads + 2);
    const rss1 = rssAfter[0]!;
    const per = (rssN - rss1) / (n - 1);
    rows.push({
      section: 'scale',
      figure: `Memory per idle text session (marginal, ${n} chats)`,
      unit: 'MiB RSS',
      ours: per,
      baseline: undefined,
      target: { on: 'ours', op: '<=', value: 5 },
      digits: 2,
    });
    rows.push({ section: 'scale', figure: 'Bot RSS: 0 sessions / 1 session / all sessions', unit: 'MiB', ours: `${rss0.toFixed(1)} / ${rss1.toFixed(1)} / ${rssN.toFixed(1)}` });
    details.textSessions = { n, rss0, rss1, rssN, perSessionMiB: per, firstSessionMiB: rss1 - rss0 };
    notes.push(`Text sessions: ${n} guilds, each /start (text only) + one message and reply; RSS from /proc/<pid>/status (median of 5–7 reads). Per session = (RSS_N − RSS_1)/(N − 1); the first session also pays one-time costs (${(rss1 - rss0).toFixed(1)} MiB).`);
  } catch (err) {
    notMeasured.push(`text session memory: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await env.close();
  }
}

/** Compressed 30-minute conversation through the pure pipeline pieces (faster than real time). */
export async function compressedSoak(o: ScaleOptions, rows: Row[], notes: string[], details: Record<string, unknown>): Promise<void> {
  const minutes = o.quick ? 2 : 30;
  const turnSec = 5;
  o.progress(`scale: memory over a compressed ${minutes}-minute conversation (pure pipeline, faster than real time)`);
  const packets = discordPackets({ seconds: turnSec, seed: 5 });
  const wav = wavFile(speechLike(24000, turnSec, 6), 24000, 1);
  const { url, server } = await wavServer(wav);
  const endpoint = new VoxtaEndpoint({ url: new URL('/', url).href });
  const uplink = await uplinkHarness(packets);
  const checkpoints: Array<{ minute: number; heapMiB: number; externalMiB: number; rssMiB: number; opusCodecs: number }> = [];
  const checkpointEvery = 1;
  /**
   * Memory after full GCs. Several rounds with a short pause: ArrayBuffer backing stores are
   * released by the GC's (concurrent) sweeping, so one GC alone leaves several MiB of noise.
   */
  const measure = async (minute: number) => {
    for (let k = 0; k < 3; k++) {
      collectGarbage();
      await sleep(10);
    }
    const m = process.memoryUsage();
    // `external` already includes `arrayBuffers` (and the WASM memories of the codecs).
    checkpoints.push({ minute, heapMiB: m.heapUsed / MiB, externalMiB: m.external / MiB, rssMiB: m.rss / MiB, opusCodecs: opusLiveCodecs() });
  };
  try {
    let simulatedSec = 0;
    let nextCheckpoint = checkpointEvery;
    await measure(0);
    while (simulatedSec < minutes * 60) {
      uplink.runOurs(); // the member speaks turnSec
      uplink.advance(turnSec * 1000); // the character answers turnSec: no packets meanwhile
      const clip = await openSpeech(endpoint, url, new AbortController().signal);
      await playThroughClipStream(progressivePackets(clip), clip.durationSec);
      await sleep(25); // let the uplink's 20 ms floor tick run (ends utterances)
      simulatedSec += 2 * turnSec;
      if (simulatedSec >= nextCheckpoint * 60) {
        await measure(nextCheckpoint);
        nextCheckpoint += checkpointEvery;
      }
    }
  } finally {
    uplink.close();
    server.closeAllConnections();
    server.close();
  }
  const ref = checkpoints.find((c) => c.minute === Math.min(5, Math.floor(minutes / 2))) ?? checkpoints[0]!;
  const last = checkpoints[checkpoints.length - 1]!;
  const growth = last.heapMiB + last.externalMiB - (ref.heapMiB + ref.externalMiB);
  const after = checkpoints.filter((c) => c.minute >= ref.minute).map((c) => c.heapMiB + c.externalMiB);
  rows.push({
    section: 'scale',
    figure: `Heap+external growth, minute ${ref.minute} → ${last.minute} of a compressed conversation`,
    unit: 'MiB',
    ours: growth,
    target: { on: 'ours', op: '<=', value: 1 },
    digits: 2,
  });
  rows.push({
    section: 'scale',
    figure: `  heap+external after GC, min–max over minutes ${ref.minute}–${last.minute}; Opus codecs alive at the end (1 = the uplink's decoder)`,
    unit: 'MiB; codecs',
    ours: `${Math.min(...after).toFixed(2)}–${Math.max(...after).toFixed(2)}; ${last.opusCodecs}`,
  });
  details.soak = { minutes, turnSec, checkpoints };
  notes.push(
    `Memory soak (compressed, default): ${minutes} simulated minutes of ${turnSec} s member speech (real Uplink: receive stream → decode → VAD → floor → framing) alternating with ${turnSec} s replies (HTTP → openSpeech → progressivePackets → ClipStream), in this process; heapUsed + external (which includes ArrayBuffers and the codecs' WASM memories) after full GCs every simulated minute; bound: ≤ 1 MiB growth from minute ${ref.minute} to the end. The real-time 30-minute run through the bot is \`--long\`.`,
  );
}

/** --long: the real bot, 30 real minutes of conversation, RSS every minute. */
async function longSoak(o: ScaleOptions, rows: Row[], notes: string[], details: Record<string, unknown>, notMeasured: string[]): Promise<void> {
  const minutes = o.longMinutes ?? 30;
  o.progress(`scale: --long: ${minutes} real minutes of conversation through the bot`);
  let world: LoopbackWorld | undefined;
  try {
    world = await startLoopback({
      dave: o.dave,
      voxta: { reply: () => ['Sure.', 'That is a fine thing to say.'], stt: { transcripts: (i) => `turn ${i.index + 1}` }, tts: { sampleRate: 24000 } },
      botEnv: { BARGE_IN: 'off' },
    });
    const w = world;
    const pid = w.bot.pid!;
    const voxta = w.env.voxta!;
    const speech = speechLike(48000, 4, 11);
    const samples: Array<{ minute: number; rssMiB: number }> = [];
    const t0 = performance.now();
    let nextMinute = 0;
    let turns = 0;
    while (performance.now() - t0 < minutes * 60_000) {
      const minute = (performance.now() - t0) / 60_000;
      if (minute >= nextMinute) {
        samples.push({ minute: Math.round(minute), rssMiB: processRssMiB(pid) });
        nextMinute++;
        o.progress(`scale: --long: minute ${Math.round(minute)}, bot RSS ${samples[samples.length - 1]!.rssMiB.toFixed(1)} MiB, ${turns} turns`);
      }
      const seq = voxta.seq();
      await voxta.waitFor(() => voxta.sessions()[0]?.recording, 30_000, 'recording on');
      await w.env.alice.speak(speech, { sampleRate: 48000, channels: 1 });
      const chunk = await voxta.waitFor(() => w.replyChunks.find((c) => c.seq > seq), 30_000, 'a reply');
      await voxta.waitFor(() => voxta.playback(chunk.messageId).completes >= 1, 60_000, 'the reply to finish');
      turns++;
    }
    samples.push({ minute: minutes, rssMiB: processRssMiB(pid) });
    const at5 = samples.find((s) => s.minute >= Math.min(5, minutes / 2)) ?? samples[0]!;
    const end = samples[samples.length - 1]!;
    rows.push({
      section: 'scale',
      figure: `Bot RSS growth, minute ${at5.minute} → ${minutes} of a real-time conversation (${turns} turns)`,
      unit: 'MiB',
      ours: end.rssMiB - at5.rssMiB,
      target: { on: 'ours', op: '<=', value: 10 },
      digits: 1,
    });
    details.longSoak = { samples, turns };
    notes.push(`--long: the production bot through both simulators for ${minutes} real minutes (4 s of speech, a two-sentence spoken reply, repeat); RSS of the bot from /proc every minute; bound 10 MiB of RSS growth after minute ${at5.minute} (RSS includes allocator slack, so the bound is looser than the heap bound).`);
  } catch (err) {
    notMeasured.push(`--long soak: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await world?.close();
  }
}

export interface ScaleOptions extends BenchOptions {
  dave: 'off' | 'v1';
}

export async function benchScale(o: ScaleOptions): Promise<SectionResult> {
  const rows: Row[] = [];
  const notes: string[] = [];
  const details: Record<string, unknown> = {};
  const notMeasured: string[] = [];
  await voiceSessionCpu(o, rows, notes, details, notMeasured);
  await textSessionMemory(o, rows, notes, details, notMeasured);
  await compressedSoak(o, rows, notes, details);
  if (o.long) await longSoak(o, rows, notes, details, notMeasured);
  return { name: 'scale', rows, notes, details, ...(notMeasured.length ? { notMeasured } : {}) };
}
