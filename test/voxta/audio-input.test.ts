import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, type VoxtaSim } from '../../sim/voxta/index.js';
import { attachAudioInput, AUDIO_SPEC_HEADER, FRAME_BYTES, type VoxtaAudioInput } from '../../src/voxta/audio-input.js';
import type { ReconnectedInfo, VoxtaChatSession } from '../../src/voxta/chat-session.js';
import type { SpeechRecognitionEndMessage } from '../../src/voxta/messages.js';
import { newSession, newSim, waitEvent } from './helpers.js';

let sims: VoxtaSim[] = [];
let sessions: VoxtaChatSession[] = [];
let inputs: VoxtaAudioInput[] = [];
afterEach(async () => {
  for (const i of inputs) i.close();
  for (const s of sessions) await s.close({ stopChat: false }).catch(() => undefined);
  for (const s of sims) await s.close();
  sims = [];
  sessions = [];
  inputs = [];
});

async function setup(simOpts: Parameters<typeof newSim>[0] = {}, inputOpts: Parameters<typeof attachAudioInput>[1] = {}) {
  const sim = await newSim(simOpts);
  sims.push(sim);
  const session = newSession(sim);
  sessions.push(session);
  const input = attachAudioInput(session, { reconnect: { initialDelayMs: 30, maxDelayMs: 200 }, ...inputOpts });
  inputs.push(input);
  return { sim, session, input };
}

/** A 440 Hz tone at 16 kHz, loud enough for the simulator's VAD. */
function tone(ms: number): Buffer {
  const n = (16_000 * ms) / 1000;
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16_000)), i * 2);
  return b;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('VoxtaAudioInput against the simulator', () => {
  it('opens on recordingRequest, sends the spec header first, then only 960-byte frames at a 30 ms cadence through silence', async () => {
    const { sim, session, input } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => (sim.audio(chat.sessionId)?.frameCount ?? 0) > 0, 3000, 'first frames');
    const rec = sim.audio(chat.sessionId)!;
    expect(rec.header).toEqual(AUDIO_SPEC_HEADER);
    expect(input.state).toBe('streaming');

    const before = { frames: rec.frameCount, at: performance.now() };
    await sleep(600);
    const window = performance.now() - before.at;
    const frames = rec.frameCount - before.frames;
    // One frame per 30 ms slot: never more than the slots that elapsed (no bursts), and the clock
    // keeps going with nothing written (generous lower bound: the test machine is shared).
    expect(frames).toBeLessThanOrEqual(Math.ceil(window / 30) + 1);
    expect(frames).toBeGreaterThanOrEqual(Math.floor((window / 30) * 0.5));
    expect(rec.nonStandardFrames).toBe(0);
    expect(rec.frames.every((f) => f.length === FRAME_BYTES)).toBe(true);
    expect(rec.frames.slice(-5).every((f) => f.every((b) => b === 0))).toBe(true); // silence = zeros
    expect(input.stats.silenceFrames).toBeGreaterThan(0);
    expect(input.stats.framesSent).toBe(rec.frameCount);
  });

  it('streams written speech unchanged, and the trailing zero frames let Voxta close the turn', async () => {
    const { sim, session, input } = await setup({ stt: { transcripts: ['hello from the voice channel'], endSilenceMs: 300 } });
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => (sim.audio(chat.sessionId)?.frameCount ?? 0) > 2, 3000, 'streaming');
    const speech = tone(450);
    const ended = waitEvent<[SpeechRecognitionEndMessage]>(session, 'speechRecognitionEnd', 5000);
    input.write(speech);
    const [end] = await ended;
    expect(end.text).toBe('hello from the voice channel');
    const all = Buffer.concat(sim.audio(chat.sessionId)!.frames);
    expect(all.indexOf(speech)).toBeGreaterThanOrEqual(0); // contiguous, byte-exact
    expect(input.stats.speechFrames).toBe(Math.ceil(speech.length / FRAME_BYTES));
    // What a writer can rely on to know its audio went out (the held input's delivery marks).
    expect(input.speechBytesSent).toBe(speech.length);
    expect(input.bufferedBytes).toBe(0);
  });

  it('sends a frame of speech as soon as it is complete instead of waiting for the next 30 ms slot', async () => {
    const { sim, session, input } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => (sim.audio(chat.sessionId)?.frameCount ?? 0) > 2, 3000, 'streaming');
    let sentOnWrite = 0;
    for (let i = 0; i < 8; i++) {
      await sleep(31); // about one slot: the clock has sent its frame, the next one is not due yet
      const before = input.stats.speechFrames;
      input.write(tone(30)); // exactly one frame of speech
      if (input.stats.speechFrames === before + 1) sentOnWrite++;
    }
    // Most writes go out at once (a write that lands just as a slot falls due is left to the clock).
    expect(sentOnWrite).toBeGreaterThanOrEqual(5);
    // Still one frame per slot on average: no more frames than slots elapsed, plus the one-slot lead.
    expect(input.stats.lateSkips).toBe(0);
  });

  it('accepts Int16Array input', async () => {
    const { sim, session, input } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => sim.audio(chat.sessionId)?.open === true, 3000, 'open');
    const samples = new Int16Array(480 * 4).map((_, i) => (i % 100) * 50 + 1);
    input.write(samples);
    const bytes = Buffer.from(samples.buffer);
    await sim.waitFor(() => Buffer.concat(sim.audio(chat.sessionId)!.frames).indexOf(bytes) >= 0, 3000, 'samples streamed');
  });

  it('stops frames on recordingRequest false, sends keepalives while paused, resumes on true', async () => {
    const { sim, session, input } = await setup({ reply: () => ['A spoken reply.'], chunkDelayMs: 5 }, { keepaliveMs: 80 });
    session.playback.setAutoAcknowledge(false); // keep the reply "playing" so recording stays off
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => input.state === 'streaming', 3000, 'streaming');
    const end = waitEvent<[{ messageId: string }]>(session, 'replyEnd');
    session.send('speak');
    const [e] = await end;
    await sim.waitFor(() => input.state === 'paused', 3000, 'paused');
    const rec = sim.audio(chat.sessionId)!;
    const frozen = rec.frameCount;
    await sleep(300);
    expect(rec.frameCount).toBe(frozen);
    expect(rec.keepalives).toBeGreaterThanOrEqual(2);
    expect(rec.open).toBe(true);
    // Playback done → Voxta asks for audio again → the same socket streams again.
    session.playback.replyEnded(e.messageId);
    session.playback.drained(e.messageId);
    await sim.waitFor(() => rec.frameCount > frozen + 3, 3000, 'streaming again');
    expect(rec.sockets).toBe(1);
  });

  it('closes the socket after a long pause and reopens (header first) on the next request', async () => {
    const { sim, session, input } = await setup({ reply: () => ['A spoken reply.'] }, { closeAfterPauseMs: 150 });
    session.playback.setAutoAcknowledge(false);
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => input.state === 'streaming', 3000, 'streaming');
    const end = waitEvent<[{ messageId: string }]>(session, 'replyEnd');
    session.send('speak');
    const [e] = await end;
    const rec = sim.audio(chat.sessionId)!;
    await sim.waitFor(() => !rec.open && input.state === 'idle', 3000, 'closed after the pause');
    session.playback.replyEnded(e.messageId);
    session.playback.drained(e.messageId);
    await sim.waitFor(() => rec.sockets === 2 && rec.open && input.state === 'streaming', 3000, 'reopened');
    expect(rec.nonStandardFrames).toBe(0);
  });

  it('reopens after the socket drops, sending the header first again', async () => {
    const { sim, session, input } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => (sim.audio(chat.sessionId)?.frameCount ?? 0) > 2, 3000, 'streaming');
    sim.dropAudioSockets();
    const rec = sim.audio(chat.sessionId)!;
    await sim.waitFor(() => rec.sockets === 2 && rec.open, 3000, 'reopened');
    const count = rec.frameCount;
    await sim.waitFor(() => rec.frameCount > count + 3, 3000, 'frames after reopen');
    expect(rec.closes.some((c) => c.code === 1008)).toBe(false); // the simulator closes 1008 when the header is not first
    expect(input.stats.reopens).toBe(1);
    expect(input.stats.drops).toBe(1);
  });

  it('moves to the new sessionId after the hub reconnects', async () => {
    const { sim, session, input } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => (sim.audio(chat.sessionId)?.frameCount ?? 0) > 2, 3000, 'streaming');
    const reconnected = waitEvent<[ReconnectedInfo]>(session, 'reconnected', 8000);
    sim.dropHubConnections();
    const [info] = await reconnected;
    expect(info.sessionId).not.toBe(chat.sessionId);
    await sim.waitFor(() => (sim.audio(info.sessionId!)?.frameCount ?? 0) > 2, 3000, 'frames for the new session');
    expect(sim.audio(info.sessionId!)!.header).toEqual(AUDIO_SPEC_HEADER);
    expect(input.sessionId).toBe(info.sessionId);
    expect(sim.audio(chat.sessionId)!.open).toBe(false);
  });

  it('bounds its buffer: old audio is dropped and counted', async () => {
    const { sim, session, input } = await setup({}, { maxBufferMs: 300 });
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => input.state === 'streaming', 3000, 'streaming');
    input.write(tone(1200));
    expect(input.stats.bufferedMs).toBeLessThanOrEqual(300);
    expect(input.stats.overflowDrops).toBeGreaterThanOrEqual(Math.floor((1200 - 300 - 60) / 30));
    void chat;
  });

  it('stops and closes with the chat', async () => {
    const { sim, session, input } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => sim.audio(chat.sessionId)?.open === true, 3000, 'open');
    await session.stopChat();
    await sim.waitFor(() => sim.audio(chat.sessionId)?.open === false, 3000, 'closed');
    expect(input.state).toBe('idle');
    expect(input.enabled).toBe(false);
    await session.close();
    expect(input.state).toBe('closed');
  });

  it('speech that piled up behind skipped slots is caught up, so a stall does not delay the rest of the utterance', async () => {
    const { sim, session, input } = await setup({}, { maxCatchUpFrames: 3 });
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => (sim.audio(chat.sessionId)?.frameCount ?? 0) > 2, 3000, 'streaming');
    // A speaker talks in 20 ms packets, like Discord delivers them.
    let talking = true;
    const feeder = setInterval(() => talking && input.write(tone(20)), 20);
    try {
      await sleep(200);
      const busyUntil = performance.now() + 400; // the event loop stalls mid-utterance (~13 slots missed)
      while (performance.now() < busyUntil) {
        /* stall */
      }
      input.write(tone(400)); // what Discord delivered during the stall arrives at once
      await sleep(20);
      expect(input.stats.lateSkips).toBeGreaterThanOrEqual(5);
      const piledUp = input.stats.bufferedMs;
      expect(piledUp).toBeGreaterThan(150); // several frames of backlog
      // Still talking, and the backlog comes back to about the pre-buffer: the delay does not stay
      // (without catching up it would stay at its peak for as long as the speaker talks).
      const deadline = performance.now() + 3000;
      while (input.stats.bufferedMs >= 120 && performance.now() < deadline) await sleep(50);
      expect(input.stats.bufferedMs).toBeLessThan(120);
      expect(input.stats.catchUpFrames).toBeGreaterThan(5);
    } finally {
      talking = false;
      clearInterval(feeder);
    }
  });

  it('after a stall it catches up with at most a few frames and skips the rest (no burst)', async () => {
    const { sim, session, input } = await setup({}, { maxCatchUpFrames: 3 });
    const chat = await session.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => (sim.audio(chat.sessionId)?.frameCount ?? 0) > 2, 3000, 'streaming');
    const before = input.stats.framesSent;
    const busyUntil = performance.now() + 330; // block the event loop: ~11 slots are missed
    while (performance.now() < busyUntil) {
      /* stall */
    }
    await new Promise((r) => setImmediate(r));
    await sleep(5);
    const afterStall = input.stats;
    expect(afterStall.lateSkips).toBeGreaterThanOrEqual(5);
    expect(afterStall.framesSent - before).toBeLessThanOrEqual(4);
  });
});
