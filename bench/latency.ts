/**
 * Latency on loopback through the simulators, seen from the simulators (the honest end-to-end
 * view: everything the bot process does is inside the measured interval).
 *
 * 1. replyChunk → first Opus packet to Discord: the Voxta sim's `replyChunk` send time → the first
 *    non-silence RTP packet from the bot that the voice server received after it (TTS fetch over
 *    HTTP, WAV parse, encode, AudioPlayer tick, DAVE + transport encryption, UDP). One sample per
 *    reply (only the first chunk of a reply that starts from silence is a clean measurement).
 * 2. RTP packet received → its PCM on the Voxta audio socket: a member speaks a train of tone
 *    bursts; each burst's onset is placed in the middle of one 20 ms packet, and found again in the
 *    960-byte frames the Voxta sim received; latency = arrival of the frame holding the onset − the
 *    time the member's packet holding it was sent (so it includes UDP, decryption, decode, VAD,
 *    floor, the audio input's jitter buffer and its 30 ms cadence).
 * 3. Member's speech end → first reply audio: last packet carrying the last burst → first
 *    non-silence bot packet after it (dominated by the Voxta sim's end-of-speech silence, 600 ms).
 */
import { pino } from 'pino';
import { ARIA_ID, startVoxtaSim } from '../sim/voxta/index.js';
import { attachAudioInput } from '../src/voxta/audio-input.js';
import { VoxtaChatSession } from '../src/voxta/chat-session.js';
import { VoxtaEndpoint } from '../src/voxta/endpoint.js';
import type { BenchOptions } from './lib/options.js';
import type { Row, SectionResult } from './lib/report.js';
import { startLoopback, type LoopbackWorld } from './lib/e2e.js';
import { percentile, sleep, stat } from './lib/stats.js';

/** 48 kHz samples per 20 ms packet. */
const PKT = 960;
/**
 * Packets per burst period (160 ms: 60 ms tone, 100 ms silence). Not a multiple of the Voxta
 * socket's 30 ms frames, so the onsets fall at different places within a frame.
 */
const PERIOD = 8;
const ONSET_OFFSET = 160; // samples into the packet: far from both packet edges, whatever the codec delay
const BURST_SAMPLES = 2880; // 60 ms

/** A train of `bursts` 1 kHz tone bursts; burst k starts at packet PERIOD·k + 1, ONSET_OFFSET samples in. */
export function burstTrain(bursts: number): { pcm: Int16Array; onsetPackets: number[]; endPacket: number } {
  const packets = PERIOD * bursts + 2;
  const pcm = new Int16Array(packets * PKT);
  const onsetPackets: number[] = [];
  const fade = 48; // 1 ms
  for (let k = 0; k < bursts; k++) {
    const pkt = PERIOD * k + 1;
    onsetPackets.push(pkt);
    const start = pkt * PKT + ONSET_OFFSET;
    for (let i = 0; i < BURST_SAMPLES; i++) {
      const g = Math.min(1, i / fade, (BURST_SAMPLES - 1 - i) / fade);
      pcm[start + i] = Math.round(9000 * g * Math.sin((2 * Math.PI * 1000 * i) / 48000));
    }
  }
  const lastStart = (PERIOD * (bursts - 1) + 1) * PKT + ONSET_OFFSET;
  return { pcm, onsetPackets, endPacket: Math.floor((lastStart + BURST_SAMPLES - 1) / PKT) };
}

/**
 * Sample positions (16 kHz stream) where a burst starts: the first sample at or above `loud` with
 * none that loud in the `gapSamples` before it (bursts are 100 ms apart; the codec's pre-echo and
 * ramp stay well below `loud`).
 */
export function findOnsets(pcm: Int16Array, loud = 2500, gapSamples = 1200): number[] {
  const out: number[] = [];
  let lastLoud = -Infinity;
  for (let i = 0; i < pcm.length; i++) {
    if (Math.abs(pcm[i]!) < loud) continue;
    if (i - lastLoud > gapSamples) out.push(i);
    lastLoud = i;
  }
  return out;
}

interface LatencySamples {
  downlinkMs: number[];
  uplinkMs: number[];
  speechEndToReplyMs: number[];
  problems: string[];
}

function firstAudioAfter(world: LoopbackWorld, t: number): number | undefined {
  return world.botPackets.find((p) => !p.silence && p.at > t)?.at;
}

async function waitReplyPlayed(world: LoopbackWorld, afterSeq: number, timeoutMs: number): Promise<string> {
  const voxta = world.env.voxta!;
  const chunk = await voxta.waitFor(() => world.replyChunks.find((c) => c.seq > afterSeq), timeoutMs, 'a reply chunk');
  await voxta.waitFor(() => voxta.playback(chunk.messageId).completes >= 1, timeoutMs, 'speechPlaybackComplete');
  return chunk.messageId;
}

/** Waits until Voxta records again and the bot's frames are flowing (after a reply). */
async function waitListening(world: LoopbackWorld): Promise<void> {
  const voxta = world.env.voxta!;
  await voxta.waitFor(() => voxta.sessions().find((s) => s.sessionId === world.sessionId)?.recording, 10_000, 'recording on');
  const n = voxta.audio(world.sessionId)?.frameCount ?? 0;
  await voxta.waitFor(() => (voxta.audio(world.sessionId)?.frameCount ?? 0) >= n + 5, 10_000, 'audio frames flowing');
}

function downlinkSample(world: LoopbackWorld, messageId: string, s: LatencySamples): void {
  const chunk = world.replyChunks.find((c) => c.messageId === messageId);
  const audio = chunk && firstAudioAfter(world, chunk.at);
  if (chunk && audio !== undefined) s.downlinkMs.push(audio - chunk.at);
  else s.problems.push(`reply ${messageId}: no bot audio after its replyChunk`);
}

async function measureUtterance(world: LoopbackWorld, bursts: number, s: LatencySamples): Promise<void> {
  const { env } = world;
  const voxta = env.voxta!;
  const alice = env.alice;
  const train = burstTrain(bursts);
  await waitListening(world);
  const rec0 = voxta.audio(world.sessionId)!;
  const frameBase = rec0.frames.length;
  const sendBase = world.memberSends.length;
  const seq = voxta.seq();
  await alice.speak(train.pcm, { sampleRate: 48000, channels: 1 });
  const sends = world.memberSends.slice(sendBase).filter((m) => m.userId === alice.id);
  let messageId: string;
  try {
    messageId = await waitReplyPlayed(world, seq, 20_000);
  } catch (err) {
    s.problems.push(`utterance: ${(err as Error).message}`);
    return;
  }
  // Uplink: onsets in the frames Voxta received.
  const rec = voxta.audio(world.sessionId)!;
  const frames = rec.frames.slice(frameBase);
  const times = rec.frameTimes.slice(frameBase);
  const stream = new Int16Array(frames.length * 480);
  frames.forEach((f, i) => stream.set(new Int16Array(f.buffer.slice(f.byteOffset, f.byteOffset + 960)), i * 480));
  const onsets = findOnsets(stream);
  if (onsets.length !== bursts || sends.length < train.endPacket + 1) {
    s.problems.push(`utterance: found ${onsets.length} of ${bursts} burst onsets in the Voxta stream (${sends.length} packets sent); its uplink samples were skipped`);
  } else {
    for (let k = 0; k < bursts; k++) {
      const arrived = times[Math.floor(onsets[k]! / 480)]!;
      s.uplinkMs.push(arrived - sends[train.onsetPackets[k]!]!.at);
    }
  }
  const speechEnd = sends[train.endPacket]?.at;
  const reply = speechEnd === undefined ? undefined : firstAudioAfter(world, speechEnd);
  if (speechEnd !== undefined && reply !== undefined) s.speechEndToReplyMs.push(reply - speechEnd);
  downlinkSample(world, messageId, s);
}

async function measureTextReply(world: LoopbackWorld, i: number, s: LatencySamples): Promise<void> {
  const { env } = world;
  const seq = env.voxta!.seq();
  env.alice.say(env.text.id, `ping ${i}`);
  try {
    const messageId = await waitReplyPlayed(world, seq, 20_000);
    downlinkSample(world, messageId, s);
  } catch (err) {
    s.problems.push(`text reply ${i}: ${(err as Error).message}`);
  }
  await sleep(100);
}

/**
 * Diagnostic: the Voxta audio input alone (src/voxta/audio-input.ts), in this process against the
 * Voxta sim — `write()` of a 20 ms chunk → arrival of the 960-byte frame holding it — with the
 * deployed jitter pre-buffer (30 ms, one frame) and with 40 ms (two Discord packets), fed at the same
 * moments (both inputs get each chunk back to back). Also counts zero frames sent in the middle of
 * the speech (buffer underruns: a gap the recogniser hears). The gaps between bursts carry a little
 * noise, so a zero frame can only be padding.
 */
async function audioInputDiagnostic(o: BenchOptions): Promise<Row[]> {
  const bursts = o.quick ? 4 : 30;
  const sim = await startVoxtaSim({ chunkDelayMs: 5, maxChats: 4 });
  const log = pino({ level: 'silent' });
  const variants = [
    { name: 'deployed', prebufferMs: undefined },
    { name: 'twoPackets', prebufferMs: 40 },
  ];
  const setups: Array<{ name: string; session: VoxtaChatSession; input: ReturnType<typeof attachAudioInput>; sessionId: string }> = [];
  try {
    for (const v of variants) {
      const session = new VoxtaChatSession({ endpoint: new VoxtaEndpoint({ url: sim.url }) });
      const input = attachAudioInput(session, { prebufferMs: v.prebufferMs, log });
      const chat = await session.startChat({ characterId: ARIA_ID });
      setups.push({ name: v.name, session, input, sessionId: chat.sessionId });
    }
    for (const st of setups) await sim.waitFor(() => (sim.audio(st.sessionId)?.frameCount ?? 0) > 3, 5000, 'frames flowing');
    // 16 kHz burst train in 20 ms chunks; quiet noise (±40) between bursts.
    const train = burstTrain(bursts);
    const rnd = (() => {
      let a = 12345;
      return () => ((a = (a * 1103515245 + 12345) >>> 0) / 2 ** 32) * 80 - 40;
    })();
    const pcm = new Int16Array(train.pcm.length / 3);
    for (let i = 0; i < pcm.length; i++) pcm[i] = train.pcm[3 * i]! || Math.round(rnd()) || 1;
    const chunks = pcm.length / 320;
    const bases = setups.map((st) => sim.audio(st.sessionId)!.frames.length);
    const writeAt: number[] = [];
    const t0 = performance.now() + 20;
    for (let c = 0; c < chunks; c++) {
      const wait = t0 + c * 20 - performance.now();
      if (wait > 0) await sleep(wait);
      const chunk = pcm.subarray(c * 320, (c + 1) * 320);
      writeAt.push(performance.now());
      const order = c % 2 === 0 ? setups : [...setups].reverse();
      for (const st of order) st.input.write(chunk);
    }
    await sleep(400);
    const rows: Row[] = [];
    const results = setups.map((st, k) => {
      const rec = sim.audio(st.sessionId)!;
      const frames = rec.frames.slice(bases[k]);
      const times = rec.frameTimes.slice(bases[k]);
      const stream = new Int16Array(frames.length * 480);
      frames.forEach((f, i) => stream.set(new Int16Array(f.buffer.slice(f.byteOffset, f.byteOffset + 960)), i * 480));
      const onsets = findOnsets(stream);
      const lat: number[] = [];
      if (onsets.length === bursts) {
        for (let b = 0; b < bursts; b++) lat.push(times[Math.floor(onsets[b]! / 480)]! - writeAt[train.onsetPackets[b]!]!);
      }
      const nonZero = frames.map((f) => f.some((x) => x !== 0));
      const first = nonZero.indexOf(true);
      const last = nonZero.lastIndexOf(true);
      const underruns = first < 0 ? 0 : nonZero.slice(first, last + 1).filter((x) => !x).length;
      return { lat, underruns, onsets: onsets.length, lateSkips: st.input.stats.lateSkips };
    });
    const [dep, one] = results as [(typeof results)[0], (typeof results)[0]];
    const measured = dep.lat.length > 0 && one.lat.length > 0;
    rows.push({
      section: 'latency',
      figure: `diagnostic: Voxta audio input alone, write → frame at Voxta, p95 (n=${dep.lat.length}); pre-buffer 30 ms (deployed) vs 40 ms`,
      unit: 'ms',
      ours: measured ? percentile(dep.lat, 95) : `not measured (${dep.onsets}/${one.onsets} of ${bursts} onsets found)`,
      baseline: measured ? percentile(one.lat, 95) : undefined,
      ratio: measured ? percentile(dep.lat, 95) / percentile(one.lat, 95) : undefined,
      digits: 1,
    });
    rows.push({
      section: 'latency',
      figure: `diagnostic: zero frames inside the speech (underruns) / 30 ms slots skipped after a late timer, pre-buffer 30 ms (deployed) vs 40 ms`,
      unit: 'frames',
      ours: `${dep.underruns} / ${dep.lateSkips}`,
      baseline: `${one.underruns} / ${one.lateSkips}`,
    });
    return rows;
  } finally {
    for (const st of setups) {
      st.input.close();
      await st.session.close({ stopChat: false }).catch(() => undefined);
    }
    await sim.close();
  }
}

/**
 * How late a 20 ms timer fires in the bench process (where the simulators run) while the latency
 * run goes on: the machine's own scheduling noise, measured in the same run, to read the latency
 * tails against.
 */
function timerLateness(): { stop(): number[] } {
  const late: number[] = [];
  let due = performance.now() + 20;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    const now = performance.now();
    late.push(now - due);
    due = Math.max(due + 20, now + 1);
    timer = setTimeout(tick, due - now);
  };
  timer = setTimeout(tick, 20);
  return {
    stop() {
      clearTimeout(timer);
      return late;
    },
  };
}

export interface LatencyOptions extends BenchOptions {
  dave: 'off' | 'v1';
}

export async function benchLatency(o: LatencyOptions): Promise<SectionResult> {
  const utterances = o.quick ? 1 : 8;
  const bursts = o.quick ? 4 : 10;
  const textReplies = o.quick ? 2 : 24;
  const s: LatencySamples = { downlinkMs: [], uplinkMs: [], speechEndToReplyMs: [], problems: [] };
  o.progress(`latency: starting the simulators and the bot (DAVE ${o.dave})`);
  const world = await startLoopback({
    dave: o.dave,
    voxta: { reply: () => ['Okay.'], stt: { transcripts: (info) => `utterance ${info.index + 1}` }, tts: { sampleRate: 24000 } },
    // Many quick text turns by one member: no per-member rate limit in the way.
    botEnv: { BARGE_IN: 'off', TEXT_RATE_LIMIT: 'off' },
  });
  const noise = timerLateness();
  let lateness: number[] = [];
  try {
    for (let u = 0; u < utterances; u++) {
      o.progress(`latency: utterance ${u + 1}/${utterances} (${bursts} bursts)`);
      await measureUtterance(world, bursts, s);
    }
    o.progress(`latency: ${textReplies} text-triggered replies`);
    for (let i = 0; i < textReplies; i++) await measureTextReply(world, i, s);
  } finally {
    lateness = noise.stop();
    await world.close();
  }
  const rows: Row[] = [];
  const add = (figure: string, values: number[], target?: number) => {
    rows.push({
      section: 'latency',
      figure: `${figure}, p95 (n=${values.length})`,
      unit: 'ms',
      ours: values.length ? percentile(values, 95) : 'not measured',
      ...(target !== undefined ? { target: { on: 'ours' as const, op: '<=' as const, value: target } } : {}),
      digits: 1,
    });
    rows.push({ section: 'latency', figure: `${figure}, median (min–max)`, unit: 'ms', ours: values.length ? stat(values) : 'not measured', digits: 1 });
  };
  add('replyChunk → first Opus packet to Discord', s.downlinkMs, 40);
  add('RTP packet sent → its PCM on the Voxta socket', s.uplinkMs, 35);
  rows.push({
    section: 'latency',
    figure: `member speech end → first reply audio, median (min–max) (n=${s.speechEndToReplyMs.length})`,
    unit: 'ms',
    ours: s.speechEndToReplyMs.length ? stat(s.speechEndToReplyMs) : 'not measured',
    digits: 0,
  });
  rows.push({
    section: 'latency',
    figure: `machine noise: lateness of a 20 ms timer in the bench process during the run, p95 / max (n=${lateness.length})`,
    unit: 'ms',
    ours: lateness.length ? `${percentile(lateness, 95).toFixed(1)} / ${Math.max(...lateness).toFixed(1)}` : 'not measured',
  });
  o.progress('latency: diagnostic — the Voxta audio input alone, two pre-buffer settings');
  try {
    rows.push(...(await audioInputDiagnostic(o)));
  } catch (err) {
    s.problems.push(`audio input diagnostic: ${(err as Error).message.split('\n')[0]}`);
  }
  return {
    name: 'latency',
    rows,
    notes: [
      `Latency: production bot (child process, LOG_LEVEL=info, BARGE_IN=off) ↔ Discord sim (real voice server, DAVE ${o.dave}) and Voxta sim (chunk delay 5 ms, TTS 24 kHz tone WAVs over HTTP, end-of-speech 600 ms) on loopback; timestamps are performance.now() in the bench process, where both simulators run. ${utterances} spoken utterances × ${bursts} bursts, ${textReplies} text-triggered replies.`,
      'No same-run baseline exists for an end-to-end latency (there is no second bot to compare with); these are absolute figures. The uplink figure includes the audio input\'s 30 ms jitter pre-buffer (one frame) and its 30 ms frame cadence.',
      'Diagnostic rows: src/voxta/audio-input.ts alone in this process against the Voxta sim, two inputs fed the same 20 ms chunks at the same moments (paced by a timer), the deployed 30 ms pre-buffer (one frame) vs 40 ms (two Discord packets); "underruns" = all-zero frames sent between the first and last speech frame (the gaps carry noise, so a zero frame is padding).',
    ],
    details: { samples: s },
    ...(s.problems.length ? { notMeasured: s.problems.slice(0, 10) } : {}),
  };
}
