/**
 * The simulator's model of where Voxta's speech-to-text listens (SpeechToTextManager,
 * VD-core): a LOCAL connection that does not stream its own audio gets the Voxta PC's
 * microphone, and every transcribing session hears every voice session's audio (the audio
 * pipeline is process-wide). Tests choose local or remote with `localClients`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, HOLT_ID, startVoxtaSim, type VoxtaSim, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import { connectAuthenticated, idsOf, openAudio, sendUtterance, startChat, TEXT_CAPS, VOICE_CAPS, type HubClient } from './helpers.js';
import type WebSocket from 'ws';

let sim: VoxtaSim | undefined;
const clients: HubClient[] = [];
const sockets: WebSocket[] = [];

async function setup(opts: VoxtaSimOptions = {}): Promise<VoxtaSim> {
  sim = await startVoxtaSim({ chunkDelayMs: 2, capacityDelayMs: 50, maxChats: 4, ...opts });
  return sim;
}
async function client(capabilities: object): Promise<HubClient> {
  const c = await connectAuthenticated(sim!, { capabilities });
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await sim?.close();
  sim = undefined;
});

describe('voxta-sim: which microphone a session’s speech-to-text uses', () => {
  it('a local client declaring audioInput None gets the Voxta PC’s microphone: recordingStatus without recordingRequest, recorded on and off', async () => {
    const s = await setup({ localClients: 'loopback' });
    const c = await client(TEXT_CAPS);
    const { sessionId } = idsOf(await startChat(c, ARIA_ID));
    await c.next('recordingStatus', { match: (m) => m.enabled === true });
    expect(c.all('recordingRequest')).toHaveLength(0);
    expect(s.sessions()[0]).toMatchObject({ sttSource: 'serverMicrophone', listening: true, voice: false });
    expect(s.connections()[0]).toMatchObject({ local: true });
    await c.send({ $type: 'stopChat', sessionId });
    await c.next('chatClosed');
    expect(s.serverMicrophone().map((r) => [r.sessionId, r.on])).toEqual([
      [sessionId, true],
      [sessionId, false],
    ]);
  });

  it('the same client as a remote connection gets no transcription at all', async () => {
    const s = await setup(); // localClients: 'none'
    const c = await client(TEXT_CAPS);
    await startChat(c, ARIA_ID);
    await c.next('chatFlow', { match: (m) => m.state === 'WaitingForUserInput' });
    expect(s.sessions()[0]).toMatchObject({ sttSource: null, listening: false });
    expect(s.serverMicrophone()).toEqual([]);
    expect(c.all('recordingStatus')).toHaveLength(0);
  });

  it('a local client streaming its audio (WebSocketStream) is heard through its socket, unless Voxta does not prefer client capability', async () => {
    let s = await setup({ localClients: 'loopback' });
    let c = await client(VOICE_CAPS);
    await startChat(c, ARIA_ID);
    await c.next('recordingRequest', { match: (m) => m.enabled === true });
    expect(s.sessions()[0]!.sttSource).toBe('client');
    expect(s.serverMicrophone()).toEqual([]);
    await c.close();
    await s.close();

    s = await setup({ localClients: 'loopback', audioInputService: { preferClientCapability: false } });
    c = await client(VOICE_CAPS);
    await startChat(c, ARIA_ID);
    await c.next('recordingStatus', { match: (m) => m.enabled === true });
    expect(s.sessions()[0]!.sttSource).toBe('serverMicrophone');
    expect(s.serverMicrophone()).toHaveLength(1);
  });

  it('disableServices ["SpeechToText"] keeps a local text chat silent (API 2025-11); a server that ignores it uses the microphone', async () => {
    let s = await setup({ localClients: 'loopback' });
    let c = await client(TEXT_CAPS);
    const started = await startChat(c, ARIA_ID, { disableServices: ['SpeechToText'] });
    expect((started.services as Record<string, unknown>).speechToText).toBeNull();
    await c.next('chatFlow', { match: (m) => m.state === 'WaitingForUserInput' });
    expect(s.sessions()[0]).toMatchObject({ sttSource: null, disableServices: ['SpeechToText'] });
    expect(s.serverMicrophone()).toEqual([]);
    await c.close();
    await s.close();

    s = await setup({ localClients: 'loopback', disableServicesSupported: false });
    c = await client(TEXT_CAPS);
    await startChat(c, ARIA_ID, { disableServices: ['SpeechToText'] });
    await c.next('recordingStatus', { match: (m) => m.enabled === true });
    expect(s.serverMicrophone().map((r) => r.on)).toEqual([true]);
  });

  it('the pipeline is process-wide: a second transcribing session overhears the voice session; one without STT hears nothing', async () => {
    const s = await setup({ stt: { endSilenceMs: 90 } });
    const voice = await client(VOICE_CAPS);
    const { sessionId: voiceId } = idsOf(await startChat(voice, ARIA_ID));
    await voice.next('recordingRequest', { match: (m) => m.enabled === true });
    // A second chat that also transcribes (it streams nothing itself).
    const listener = await client(VOICE_CAPS);
    const { sessionId: listenerId } = idsOf(await startChat(listener, HOLT_ID));
    await listener.next('recordingRequest', { match: (m) => m.enabled === true });
    // A text-only chat as this project declares it: WebSocketStream, never streamed, STT disabled.
    const text = await client(VOICE_CAPS);
    const { sessionId: textId } = idsOf(await startChat(text, ARIA_ID, { disableServices: ['SpeechToText'] }));
    const ws = await openAudio(s, voiceId);
    sockets.push(ws);
    sendUtterance(ws, 10, 5);
    const heard = await s.waitFor(() => s.sessions().find((x) => x.sessionId === listenerId && x.overheardBytes >= 15 * 960), 3000, 'the listener to overhear');
    expect(heard.overheardFrom).toEqual([voiceId]);
    const silent = s.sessions().find((x) => x.sessionId === textId)!;
    expect(silent).toMatchObject({ sttSource: null, listening: false, overheardBytes: 0 });
    expect(s.sessions().find((x) => x.sessionId === voiceId)!.overheardBytes).toBe(0);
  });
});
