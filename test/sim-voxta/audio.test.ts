import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, HOLT_ID, startVoxtaSim, type VoxtaSim, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import {
  VOICE_CAPS,
  closed,
  connectAuthenticated,
  frame,
  openAudio,
  readReply,
  sendUtterance,
  startChat,
  type HubClient,
} from './helpers.js';
import type WebSocket from 'ws';

let sim: VoxtaSim | undefined;
const clients: HubClient[] = [];
const sockets: WebSocket[] = [];

async function setup(opts: VoxtaSimOptions = {}): Promise<VoxtaSim> {
  sim = await startVoxtaSim({ chunkDelayMs: 5, capacityDelayMs: 50, ...opts });
  return sim;
}
async function voiceClient(): Promise<HubClient> {
  const c = await connectAuthenticated(sim!, { capabilities: VOICE_CAPS });
  clients.push(c);
  return c;
}
async function audio(sessionId: string, opts?: Parameters<typeof openAudio>[2]): Promise<WebSocket> {
  const ws = await openAudio(sim!, sessionId, opts);
  sockets.push(ws);
  return ws;
}

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await sim?.close();
  sim = undefined;
});

describe('voxta-sim audio input and recognition', () => {
  it('records the header and frames, and recognises an utterance on the owning connection only', async () => {
    const s = await setup({ stt: { transcripts: ['hello bot how are you'] } });
    const owner = await voiceClient();
    const other = await voiceClient();
    const sessionId = (await startChat(owner, ARIA_ID)).sessionId as string;
    await startChat(other, HOLT_ID);
    await owner.next('recordingRequest', { match: (m) => m.enabled === true });
    await owner.next('recordingStatus', { match: (m) => m.enabled === true });

    const after = owner.mark();
    const ws = await audio(sessionId);
    sendUtterance(ws, 20, 25); // 150 ms of silence, 600 ms of tone, 750 ms of silence
    ws.send(Buffer.alloc(100)); // a non-standard frame
    const end = await owner.next('speechRecognitionEnd', { after });
    expect(end).toEqual({ $type: 'speechRecognitionEnd', text: 'hello bot how are you', reason: 'Complete' });
    const types = owner.messages.slice(after).map((m) => m.$type);
    expect(types.indexOf('speechRecognitionStart')).toBeLessThan(types.indexOf('speechRecognitionPartial'));
    expect(types.indexOf('speechRecognitionPartial')).toBeLessThan(types.indexOf('speechRecognitionEnd'));
    expect(other.all('speechRecognitionStart')).toEqual([]);
    expect(s.audio(sessionId)?.concurrentFrames).toBe(0);
    // Transcripts are never auto-sent as user messages.
    expect(owner.all('update', after)).toEqual([]);

    const rec = await s.waitFor(() => (s.audio(sessionId)?.frameCount === 51 ? s.audio(sessionId) : undefined), 2000, '51 frames');
    expect(rec.header).toMatchObject({ sampleRate: 16000, channels: 1, bitsPerSample: 16 });
    expect(rec.nonStandardFrames).toBe(1);
    expect(rec.frames[0]?.length).toBe(960);
    expect(rec.frameTimes).toHaveLength(51);
    expect(s.recognitions).toEqual([
      expect.objectContaining({ sessionId, voicedMs: 600, whole: true, cut: null, leadSilenceMs: 150, text: 'hello bot how are you', reason: 'Complete' }),
    ]);
  });

  it('counts time in frames, not wall clock: no end without trailing silent frames; silence markers count', async () => {
    const s = await setup({ stt: { endSilenceMs: 300 } });
    const c = await voiceClient();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    const after = c.mark();
    const ws = await audio(sessionId);
    sendUtterance(ws, 10, 5); // 150 ms of silence < 300 ms
    await c.next('speechRecognitionStart', { after });
    await new Promise((r) => setTimeout(r, 400));
    expect(c.all('speechRecognitionEnd', after)).toEqual([]);
    ws.send(JSON.stringify({ type: 'keepalive' }));
    ws.send(JSON.stringify({ type: 'silence', milliseconds: 150 }));
    const end = await c.next('speechRecognitionEnd', { after });
    expect(end.text).toBe('utterance 1 (0.3 s)');
    const rec = s.audio(sessionId)!;
    expect(rec.silenceMarkers).toEqual([150]);
    expect(rec.keepalives).toBe(1);
  });

  it('recording toggles off during a spoken reply and back on after the complete; audio is ignored meanwhile', async () => {
    const s = await setup();
    const c = await voiceClient();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    const ws = await audio(sessionId);
    let after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'speak' });
    const reply = await readReply(c, after);
    const types = c.messages.slice(after).map((m) => m.$type);
    expect(types.indexOf('recordingRequest')).toBeLessThan(types.indexOf('replyStart'));
    expect(c.all('recordingRequest', after)).toEqual([{ $type: 'recordingRequest', sessionId, enabled: false }]);
    expect(s.sessions()[0]?.recording).toBe(false);

    sendUtterance(ws, 10, 30);
    await s.waitFor(() => s.audio(sessionId)?.frameCount === 45, 2000, 'frames while not recording');
    expect(c.all('speechRecognitionStart', after)).toEqual([]);

    after = c.mark();
    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: reply.messageId });
    await c.next('recordingRequest', { after, match: (m) => m.enabled === true });
    await c.next('recordingStatus', { after, match: (m) => m.enabled === true });
    sendUtterance(ws, 10, 30);
    expect((await c.next('speechRecognitionEnd', { after })).reason).toBe('Complete');
  });

  it('whole or cut: speech already going on as recording starts is heard from mid-word (partial text); recording stopping mid-utterance cancels it', async () => {
    const s = await setup({ stt: { transcripts: ['the first full sentence', 'the second full sentence'] } });
    const c = await voiceClient();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    const ws = await audio(sessionId);
    let after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'speak' });
    const reply = await readReply(c, after);
    // The member talks while Voxta waits for the playback to complete (not recording)…
    sendUtterance(ws, 10, 0, 0);
    await s.waitFor(() => s.audio(sessionId)?.frameCount === 10, 2000, 'frames while not recording');
    after = c.mark();
    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: reply.messageId });
    await c.next('recordingRequest', { after, match: (m) => m.enabled === true });
    // …and goes on once it records: the recogniser never saw the onset.
    sendUtterance(ws, 10, 25, 0);
    const end = await c.next('speechRecognitionEnd', { after });
    expect(end).toEqual({ $type: 'speechRecognitionEnd', text: '… full sentence', reason: 'Complete' });
    expect(s.recognitions.at(-1)).toMatchObject({ whole: false, cut: 'start', leadSilenceMs: 0, voicedMs: 300 });

    // A whole utterance begins (lead silence), then a reply starts and recording stops mid-way.
    after = c.mark();
    sendUtterance(ws, 10, 0);
    await c.next('speechRecognitionStart', { after });
    await c.send({ $type: 'send', sessionId, text: 'typed meanwhile' });
    await c.next('recordingRequest', { after, match: (m) => m.enabled === false });
    expect(await c.next('speechRecognitionEnd', { after })).toEqual({ $type: 'speechRecognitionEnd', text: null, reason: 'Incomplete' });
    expect(s.recognitions.at(-1)).toMatchObject({ whole: false, cut: 'end', leadSilenceMs: 900, voicedMs: 300, text: null, reason: 'Incomplete' }); // 750 + 150 ms of silence before it
    // The cancelled utterance took no scripted sentence: the next whole one gets it.
    const held = await readReply(c, after);
    after = c.mark();
    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: held.messageId });
    await c.next('recordingRequest', { after, match: (m) => m.enabled === true });
    sendUtterance(ws, 10, 25);
    expect((await c.next('speechRecognitionEnd', { after })).text).toBe('the second full sentence');
    expect(s.recognitions.at(-1)).toMatchObject({ whole: true, cut: null });
  });

  it('tts.audioGapMs is sent on chunks with audio only', async () => {
    const s = await setup({ tts: { audioGapMs: 250 }, reply: () => ['One.', 'Two.'] });
    const c = await voiceClient();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    let after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'hi' });
    const reply = await readReply(c, after);
    expect(reply.chunks.map((m) => m.audioGapMs)).toEqual([250, 250]);
    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: reply.messageId });
    s.options.tts.enabled = false;
    after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'again' });
    const silent = await readReply(c, after);
    expect(silent.chunks.every((m) => !('audioGapMs' in m))).toBe(true);
  });

  it('no recording without a WebSocketStream audio input', async () => {
    await setup();
    const c = await connectAuthenticated(sim!);
    clients.push(c);
    const started = await startChat(c, ARIA_ID);
    expect((started.services as Record<string, unknown>).speechToText).not.toBeNull();
    await c.next('chatFlow');
    expect(c.all('recordingRequest')).toEqual([]);
  });

  it('barge-in: a partial during a streaming reply cancels it and sends interruptSpeech', async () => {
    const s = await setup({ chunkDelayMs: 150, stt: { bargeIn: true }, reply: () => ['A.', 'B.', 'C.', 'D.', 'E.', 'F.'] });
    const c = await voiceClient();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    const ws = await audio(sessionId);
    const after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'long answer please' });
    const first = await c.next('replyChunk', { after });
    expect(c.all('recordingRequest', after)).toEqual([]); // barge-in keeps listening
    sendUtterance(ws, 12, 0); // 360 ms of voice → first partial at 300 ms
    const interrupt = await c.next('interruptSpeech', { after });
    expect(interrupt.messageId).toBe(first.messageId);
    await c.next('replyCancelled', { after });
    await s.waitFor(() => s.heldSessions()[0]?.heldMessageId === first.messageId, 2000, 'hold on the cancelled reply');
  });

  it('barge-in while a finished reply is playing interrupts that message once', async () => {
    const s = await setup({ stt: { bargeIn: true } });
    const c = await voiceClient();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    const ws = await audio(sessionId);
    const after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'hi' });
    const reply = await readReply(c, after);
    await c.send({ $type: 'speechPlaybackStart', sessionId, messageId: reply.messageId, startIndex: 0, duration: 1 });
    sendUtterance(ws, 40, 25); // two partials, one interrupt
    await c.next('speechRecognitionEnd', { after });
    expect(c.all('interruptSpeech', after)).toEqual([{ $type: 'interruptSpeech', sessionId, messageId: reply.messageId }]);
    expect(c.all('replyCancelled', after)).toEqual([]);
    expect(s.heldSessions()).toHaveLength(1);
  });

  it('injectTranscript emits start, partial and end; null gives Empty', async () => {
    const s = await setup();
    const c = await voiceClient();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    let after = c.mark();
    s.injectTranscript(sessionId, 'typed by a test');
    expect(await c.next('speechRecognitionEnd', { after })).toMatchObject({ text: 'typed by a test', reason: 'Complete' });
    expect((await c.next('speechRecognitionPartial', { after })).text).toBe('typed by a test');
    after = c.mark();
    s.injectTranscript(sessionId, null);
    expect(await c.next('speechRecognitionEnd', { after })).toMatchObject({ text: null, reason: 'Empty' });
  });

  it('transcript functions receive index and voiced duration', async () => {
    const seen: { index: number; voicedMs: number; whole?: boolean }[] = [];
    await setup({ stt: { transcripts: (info) => (seen.push(info), info.index === 0 ? 'first' : null) } });
    const c = await voiceClient();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    const ws = await audio(sessionId);
    let after = c.mark();
    sendUtterance(ws, 5, 20);
    expect((await c.next('speechRecognitionEnd', { after })).text).toBe('first');
    after = c.mark();
    sendUtterance(ws, 7, 20);
    expect(await c.next('speechRecognitionEnd', { after })).toMatchObject({ text: null, reason: 'Empty' });
    expect(seen.map((i) => [i.index, i.voicedMs, i.whole])).toEqual([
      [0, 150, true],
      [1, 210, true],
    ]);
  });

  it('rejects bad headers, binary before the header and unknown sessions', async () => {
    await setup();
    const c = await voiceClient();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    const bad = await audio(sessionId, { spec: { contentType: 'audio/wav', sampleRate: 48000, channels: 2, bitsPerSample: 16 } });
    const badClose = await closed(bad);
    expect(badClose.code).toBe(1008);
    expect(badClose.reason).toMatch(/expected 16000\/1\/16/);

    const unknown = await audio('44444444-4444-4444-8444-444444444444');
    expect(await closed(unknown)).toMatchObject({ code: 1008, reason: 'Unknown sessionId' });

    const { default: WebSocket } = await import('ws');
    const raw = new WebSocket(`${sim!.url.replace('http', 'ws')}/ws/audio/input/stream?sessionId=${sessionId}`);
    sockets.push(raw);
    await new Promise((r) => raw.once('open', r));
    raw.send(frame(0));
    expect((await closed(raw)).reason).toMatch(/header first/);
  });

  it('flags frames streamed for two sessions at the same time', async () => {
    const s = await setup();
    const a = await voiceClient();
    const b = await voiceClient();
    const sa = (await startChat(a, ARIA_ID)).sessionId as string;
    const sb = (await startChat(b, HOLT_ID)).sessionId as string;
    const wa = await audio(sa);
    const wb = await audio(sb);
    for (let i = 0; i < 5; i++) {
      wa.send(frame(0));
      wb.send(frame(0));
    }
    await s.waitFor(() => s.audio(sa)?.frameCount === 5 && s.audio(sb)?.frameCount === 5, 2000, 'frames on both sockets');
    expect(s.audio(sa)!.concurrentFrames + s.audio(sb)!.concurrentFrames).toBeGreaterThan(0);
  });

  it('dropAudioSockets cuts the socket; the client can reopen', async () => {
    const s = await setup();
    const c = await voiceClient();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    const ws = await audio(sessionId);
    const gone = closed(ws);
    await s.waitFor(() => s.audio(sessionId)?.open, 2000, 'audio socket open');
    s.dropAudioSockets();
    expect((await gone).code).toBe(1006);
    await s.waitFor(() => s.audio(sessionId)?.open === false, 2000, 'audio socket closed');
    await audio(sessionId);
    await s.waitFor(() => s.audio(sessionId)?.sockets === 2 && s.audio(sessionId)?.open, 2000, 'second audio socket');
  });
});
