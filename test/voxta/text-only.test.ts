/**
 * `textOnly` sessions on a Voxta that treats us as local (the bot on the Voxta PC): the chat must
 * never switch on the PC's microphone, nor overhear the voice chat through Voxta's process-wide
 * audio pipeline. The simulator models both (SpeechToTextManager, VD-core).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, HOLT_ID, type VoxtaSim, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import type { VoxtaChatSession } from '../../src/voxta/chat-session.js';
import { openAudio, sendUtterance } from '../sim-voxta/helpers.js';
import { newSession, newSim, waitEvent } from './helpers.js';
import type WebSocket from 'ws';

let sims: VoxtaSim[] = [];
let sessions: VoxtaChatSession[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const s of sessions) await s.close({ stopChat: false }).catch(() => undefined);
  for (const s of sims) await s.close();
  sims = [];
  sessions = [];
});

async function localSim(extra: VoxtaSimOptions = {}): Promise<VoxtaSim> {
  const sim = await newSim({ localClients: 'loopback', maxChats: 4, ...extra });
  sims.push(sim);
  return sim;
}
function session(sim: VoxtaSim, opts: Parameters<typeof newSession>[1] = {}): VoxtaChatSession {
  const s = newSession(sim, opts);
  sessions.push(s);
  return s;
}
const infoOf = (sim: VoxtaSim, sessionId: string) => sim.sessions().find((s) => s.sessionId === sessionId)!;

describe('text-only Voxta sessions', () => {
  it('declare WebSocketStream, start with disableServices ["SpeechToText"], and get no microphone and no STT', async () => {
    const sim = await localSim();
    const text = session(sim, { textOnly: true });
    const chat = await text.startChat({ characterId: ARIA_ID });
    const auth = sim.received.find((r) => r.payload.$type === 'authenticate')!.payload;
    expect(auth).toMatchObject({ capabilities: { audioInput: 'WebSocketStream' } });
    expect(sim.received.find((r) => r.payload.$type === 'startChat')!.payload).toEqual({ $type: 'startChat', characterId: ARIA_ID, disableServices: ['SpeechToText'] });
    expect(chat.services.hasStt).toBe(false);
    expect(infoOf(sim, chat.sessionId)).toMatchObject({ sttSource: null, listening: false });
    expect(sim.serverMicrophone()).toEqual([]);
    expect(text.recording).toBeUndefined();
  });

  it('why: the old declaration (audioInput None) makes a local Voxta use its own microphone', async () => {
    const sim = await localSim();
    const legacy = session(sim, { audioInput: 'None' });
    const chat = await legacy.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => sim.serverMicrophone().length > 0, 3000, 'the server microphone');
    expect(sim.serverMicrophone()[0]).toMatchObject({ sessionId: chat.sessionId, on: true });
  });

  it('beside the one voice chat: the text chat overhears nothing, a legacy one hears the voice guild and the PC microphone', async () => {
    const sim = await localSim({ stt: { endSilenceMs: 90 } });
    const voice = session(sim);
    const requested = waitEvent(voice, 'recordingRequest');
    const voiceChat = await voice.startChat({ characterId: ARIA_ID });
    await requested;
    const text = session(sim, { textOnly: true });
    const textChat = await text.startChat({ characterId: HOLT_ID });
    const legacy = session(sim, { audioInput: 'None' });
    const legacyChat = await legacy.startChat({ characterId: HOLT_ID });
    await sim.waitFor(() => infoOf(sim, legacyChat.sessionId).listening, 3000, 'the legacy chat to listen');

    const ws = await openAudio(sim, voiceChat.sessionId);
    sockets.push(ws);
    sendUtterance(ws, 10, 5);
    await sim.waitFor(() => infoOf(sim, legacyChat.sessionId).overheardBytes >= 15 * 960, 3000, 'the legacy chat to overhear');
    expect(infoOf(sim, textChat.sessionId)).toMatchObject({ overheardBytes: 0, listening: false, sttSource: null });
    expect(infoOf(sim, voiceChat.sessionId)).toMatchObject({ sttSource: 'client', overheardBytes: 0 });
    expect(sim.serverMicrophone().map((r) => r.sessionId)).toEqual([legacyChat.sessionId]);
  });

  it('a reconnect resumes with disableServices too', async () => {
    const sim = await localSim();
    const text = session(sim, { textOnly: true });
    const chat = await text.startChat({ characterId: ARIA_ID });
    const reconnected = waitEvent(text, 'reconnected');
    sim.dropHubConnections();
    await reconnected;
    expect(sim.received.find((r) => r.payload.$type === 'resumeChat')!.payload).toEqual({ $type: 'resumeChat', chatId: chat.chatId, disableServices: ['SpeechToText'] });
    expect(sim.serverMicrophone()).toEqual([]);
  });

  it('on a server older than 2025-11 (disableServices ignored) it still never gets the PC microphone', async () => {
    const sim = await localSim({ disableServicesSupported: false });
    const text = session(sim, { textOnly: true });
    const chat = await text.startChat({ characterId: ARIA_ID });
    await sim.waitFor(() => infoOf(sim, chat.sessionId).listening, 3000, 'transcription to start');
    // It listens (client audio that never comes): the residual risk on old servers, see README.
    expect(infoOf(sim, chat.sessionId).sttSource).toBe('client');
    expect(sim.serverMicrophone()).toEqual([]);
  });
});
