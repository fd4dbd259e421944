import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ARIA_ID, HOLT_ID, type VoxtaSim } from '../../sim/voxta/index.js';
import type { VoxtaChatSession } from '../../src/voxta/chat-session.js';
import { VoxtaCapacityError, VoxtaChatLockedError, VoxtaHttpError, VoxtaNotFoundError, VoxtaStateError } from '../../src/voxta/errors.js';
import type { ReplyEndMessage, ServerMessage } from '../../src/voxta/messages.js';
import { attachPipeline, newSession, newSim, waitEvent, waitFor } from './helpers.js';

let sims: VoxtaSim[] = [];
let sessions: VoxtaChatSession[] = [];
afterEach(async () => {
  for (const s of sessions) await s.close({ stopChat: false }).catch(() => undefined);
  for (const s of sims) await s.close();
  sims = [];
  sessions = [];
});

async function setup(simOpts: Parameters<typeof newSim>[0] = {}, sessionOpts: Parameters<typeof newSession>[1] = {}) {
  const sim = await newSim(simOpts);
  sims.push(sim);
  const session = newSession(sim, sessionOpts);
  sessions.push(session);
  return { sim, session };
}

function extra(sim: VoxtaSim, sessionOpts: Parameters<typeof newSession>[1] = {}): VoxtaChatSession {
  const s = newSession(sim, sessionOpts);
  sessions.push(s);
  return s;
}

const completesBy = (sim: VoxtaSim) => {
  const counts = new Map<string, number>();
  for (const r of sim.received) if (r.payload.$type === 'speechPlaybackComplete') counts.set(String(r.payload.messageId), (counts.get(String(r.payload.messageId)) ?? 0) + 1);
  return counts;
};

describe('VoxtaChatSession against the simulator', () => {
  it('connects, authenticates as an app and waits for welcome', async () => {
    const { sim, session } = await setup();
    const states: string[] = [];
    session.on('state', (s) => states.push(s));
    const welcome = await session.connect();
    expect(welcome.apiVersion).toBe('2025-08');
    expect(session.state).toBe('ready');
    expect(states).toEqual(['connecting', 'ready']);
    const auth = sim.received.find((r) => r.payload.$type === 'authenticate')!.payload;
    expect(Object.keys(auth)[0]).toBe('$type');
    expect(auth).toMatchObject({
      client: 'Voxta.DiscordBot',
      scope: ['role:app'],
      capabilities: { audioInput: 'WebSocketStream', audioOutput: 'Url', acceptedAudioContentTypes: ['audio/x-wav', 'audio/wav'] },
    });
  });

  it('names the session and chat on its log lines while a chat is live', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    const { sim, session } = await setup({}, { log, logBindings: { guildId: 'g1' } });
    const chat = await session.startChat({ characterId: ARIA_ID });
    session.send('hello');
    await sim.waitForClientMessage('send');
    await session.stopChat();
    const started = lines.find((l) => l.msg === 'chat started')!;
    expect(started).toMatchObject({ guildId: 'g1', sessionId: chat.sessionId, chatId: chat.chatId });
    const closed = lines.find((l) => l.msg === 'chat closed')!;
    expect(closed).toMatchObject({ guildId: 'g1', sessionId: chat.sessionId, chatId: chat.chatId });
    // The next chat's lines carry the next chat's ids.
    const next = await session.startChat({ characterId: ARIA_ID });
    const second = lines.filter((l) => l.msg === 'chat started')[1]!;
    expect(second).toMatchObject({ sessionId: next.sessionId, chatId: next.chatId });
  });

  it('remembers the last recordingRequest of the live chat, for a voice pipeline that attaches late', async () => {
    const { session } = await setup({ stt: { enabled: true } });
    expect(session.recording).toBeUndefined();
    const enabled = waitFor<{ enabled: boolean }>(session, 'recordingRequest', (m) => m.enabled);
    await session.startChat({ characterId: ARIA_ID });
    await enabled;
    expect(session.recording).toBe(true);
    await session.stopChat();
    expect(session.recording).toBeUndefined();
  });

  it('full round trip: start → send → chunks → audio fetched → playback start/complete → second turn answered', async () => {
    const { sim, session } = await setup({ reply: (t) => [`You said ${t}.`, 'That is nice.'] });
    const pipeline = attachPipeline(session);
    const chat = await session.startChat({ characterId: ARIA_ID, contexts: [{ text: 'In the Discord server "Test".' }] });
    expect(chat.sessionId).toBeTruthy();
    expect(chat.characters.map((c) => c.name)).toEqual(['Aria']);
    expect(chat.services).toMatchObject({ hasTts: true, hasStt: true });
    expect(session.sessionId).toBe(chat.sessionId);

    const chunks: string[] = [];
    session.on('replyChunk', (c) => chunks.push(c.text));
    const firstEnd = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
    session.send('hello');
    const [end1] = await firstEnd;
    await sim.waitFor(() => sim.playback(end1.messageId).completes === 1, 3000, 'first complete');
    expect(chunks).toEqual(['You said hello.', 'That is nice.']);

    // Audio fetched, and the starts carry the true WAV durations.
    const served = sim.ttsServed.filter((t) => t.messageId === end1.messageId);
    expect(served).toHaveLength(2);
    const starts = sim.playback(end1.messageId).starts;
    expect(starts.map((s) => s.duration)).toEqual(served.map((t) => expect.closeTo(t.durationMs / 1000, 2)));
    expect(pipeline.fetched).toHaveLength(2);
    expect(sim.playback(end1.messageId).completes).toBe(1);

    // Second turn: answered only if the hold was released.
    const secondEnd = waitFor<ReplyEndMessage>(session, 'replyEnd', (e) => e.messageId !== end1.messageId);
    session.send('again');
    const end2 = await secondEnd;
    await sim.waitFor(() => sim.playback(end2.messageId).completes === 1, 3000, 'second complete');
    expect(sim.playback(end2.messageId).completes).toBe(1);
    expect(sim.heldSessions()).toHaveLength(0);
  });

  it('text-only (auto-acknowledge): one start per chunk with duration 0 and exactly one complete per reply', async () => {
    const { sim, session } = await setup({ tts: { enabled: false }, reply: () => ['One.', 'Two.', 'Three.'] }, { audioInput: 'None' });
    await session.startChat({ characterId: ARIA_ID });
    for (const text of ['a', 'b', 'c']) {
      const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
      session.send(text);
      const [e] = await end;
      await sim.waitFor(() => sim.playback(e.messageId).completes === 1, 3000, 'complete');
      expect(sim.playback(e.messageId).starts.map((s) => s.duration)).toEqual([0, 0, 0]);
    }
    expect([...completesBy(sim).values()].every((n) => n === 1)).toBe(true);
    expect(session.playback.stats).toMatchObject({ completesSent: 3, owed: 0 });
  });

  it('silence: URLs are acknowledged with duration 0 (no audio, as the official companion does) and completed once', async () => {
    const { sim, session } = await setup({ tts: { silenceUrls: true }, reply: () => ['Quiet one.', 'Quiet two.'] });
    await session.startChat({ characterId: ARIA_ID });
    const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
    session.send('shh');
    const [e] = await end;
    await sim.waitFor(() => sim.playback(e.messageId).completes === 1, 3000, 'complete');
    const chunks = sim.sent.filter((s) => (s.payload as ServerMessage).$type === 'replyChunk').map((s) => (s.payload as { audioUrl: string }).audioUrl);
    expect(chunks.every((u) => /^silence:\d+/.test(u))).toBe(true);
    expect(sim.playback(e.messageId).starts.map((s) => s.duration)).toEqual(chunks.map(() => 0));
    expect(sim.ttsRequests).toHaveLength(0); // never fetched
  });

  it('404 audio: typed error, start with duration 0, exactly one complete, next turn still answered', async () => {
    const { sim, session } = await setup({ tts: { status: 404 }, reply: () => ['Lost audio.'] });
    const pipeline = attachPipeline(session);
    await session.startChat({ characterId: ARIA_ID });
    const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
    session.send('hi');
    const [e] = await end;
    await sim.waitFor(() => sim.playback(e.messageId).completes === 1, 3000, 'complete');
    expect(pipeline.errors).toHaveLength(1);
    expect(pipeline.errors[0]!.error).toBeInstanceOf(VoxtaHttpError);
    expect((pipeline.errors[0]!.error as VoxtaHttpError).status).toBe(404);
    expect(sim.playback(e.messageId).starts.map((s) => s.duration)).toEqual([0]);
    sim.options.tts.status = 200;
    const next = waitFor<ReplyEndMessage>(session, 'replyEnd', (x) => x.messageId !== e.messageId);
    session.send('again');
    const e2 = await next;
    await sim.waitFor(() => sim.playback(e2.messageId).completes === 1, 3000, 'second complete');
  });

  it('502 audio is retried once', async () => {
    const { sim, session } = await setup({ tts: { status: 502 }, reply: () => ['Flaky.'] });
    const pipeline = attachPipeline(session);
    await session.startChat({ characterId: ARIA_ID });
    const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
    session.send('hi');
    const [e] = await end;
    await sim.waitFor(() => sim.playback(e.messageId).completes === 1, 3000, 'complete');
    expect(sim.ttsRequests.map((r) => r.status)).toEqual([502, 502]);
    expect((pipeline.errors[0]!.error as VoxtaHttpError).status).toBe(502);
  });

  it('interrupted while playing: interruptSpeech → exactly one complete, even when the pipeline drains later', async () => {
    const { sim, session } = await setup({ reply: () => ['A long sentence that plays for a while.'] });
    let holding = true;
    attachPipeline(session, { hold: () => holding });
    await session.startChat({ characterId: ARIA_ID });
    const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
    session.send('talk');
    const [e] = await end;
    await sim.waitFor(() => sim.playback(e.messageId).starts.length === 1, 3000, 'playback start');
    expect(sim.playback(e.messageId).completes).toBe(0); // still "playing": hold kept
    const interrupted = waitEvent(session, 'interruptSpeech');
    await session.interrupt();
    await interrupted;
    await sim.waitFor(() => sim.playback(e.messageId).completes === 1, 3000, 'complete after interrupt');
    holding = false;
    session.playback.drained(e.messageId); // the pipeline notices later: must not send a second one
    await new Promise((r) => setTimeout(r, 100));
    expect(sim.playback(e.messageId).completes).toBe(1);
  });

  it('interrupted while generating: replyCancelled then replyEnd → exactly one complete', async () => {
    const { sim, session } = await setup({ chunkDelayMs: 150, reply: () => ['One.', 'Two.', 'Three.', 'Four.', 'Five.'] });
    attachPipeline(session);
    await session.startChat({ characterId: ARIA_ID });
    const firstChunk = waitEvent(session, 'replyChunk');
    const cancelled = waitEvent(session, 'replyCancelled');
    const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
    session.send('go');
    await firstChunk;
    await session.interrupt();
    await cancelled;
    const [e] = await end;
    await sim.waitFor(() => sim.playback(e.messageId).completes === 1, 3000, 'complete');
    await new Promise((r) => setTimeout(r, 100));
    expect(sim.playback(e.messageId).completes).toBe(1);
  });

  it('resumes an existing chat with its history', async () => {
    const { sim, session } = await setup();
    const record = sim.createChat(HOLT_ID, { messages: [{ role: 'User', text: 'Hi Captain' }, { role: 'Assistant', text: 'Detective.' }] });
    const chat = await session.resumeChat({ chatId: record.id });
    expect(chat.chatId).toBe(record.id);
    expect(chat.messages.map((m) => m.text)).toEqual(['Hi Captain', 'Detective.']);
    expect(chat.characters[0]?.name).toBe('Captain Holt');
    expect(session.chatId).toBe(record.id);
  });

  it('stops the chat and waits for chatClosed; the connection stays ready', async () => {
    const { sim, session } = await setup();
    await session.startChat({ characterId: ARIA_ID });
    const closed = waitEvent(session, 'chatClosed');
    await session.stopChat();
    await closed;
    expect(session.chat).toBeUndefined();
    expect(session.state).toBe('ready');
    expect(sim.sessions()).toHaveLength(0);
    expect(() => session.send('nobody listens')).toThrow(VoxtaStateError);
    // A new chat can start on the same connection.
    await session.startChat({ characterId: HOLT_ID });
    expect(sim.sessions()).toHaveLength(1);
  });

  it('refuses a second chat on the same connection', async () => {
    const { session } = await setup();
    await session.startChat({ characterId: ARIA_ID });
    await expect(session.startChat({ characterId: HOLT_ID })).rejects.toBeInstanceOf(VoxtaStateError);
  });

  it('a third concurrent chat is refused with the typed capacity error', async () => {
    const { sim, session } = await setup({ maxChats: 2 });
    const second = extra(sim);
    const third = extra(sim);
    await session.startChat({ characterId: ARIA_ID });
    await second.startChat({ characterId: HOLT_ID });
    const err = await third.startChat({ characterId: ARIA_ID }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VoxtaCapacityError);
    expect((err as VoxtaCapacityError).limit).toBe(2);
    expect((err as Error).message).toMatch(/Cannot start more than 2 concurrent chats/);
    expect(third.chat).toBeUndefined();
    // After one stops, the third can start.
    await second.stopChat();
    await third.startChat({ characterId: ARIA_ID });
  });

  it('a chat open elsewhere is refused as locked; an unknown chat as not found', async () => {
    const { sim, session } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    const other = extra(sim);
    await expect(other.resumeChat({ chatId: chat.chatId })).rejects.toBeInstanceOf(VoxtaChatLockedError);
    await expect(other.resumeChat({ chatId: '11111111-2222-4333-8444-555555555555' })).rejects.toBeInstanceOf(VoxtaNotFoundError);
  });

  it('lists characters and chats over the hub', async () => {
    const { sim, session } = await setup();
    const chars = await session.loadCharacters();
    expect(chars.map((c) => c.name)).toEqual(['Aria', 'Captain Holt', 'Mira', 'Vex']);
    const a = sim.createChat(ARIA_ID);
    const chats = await session.loadChats(ARIA_ID);
    expect(chats.map((c) => c.id)).toContain(a.id);
  });

  it('unknown and malformed server payloads do not escape the client', async () => {
    const { sim, session } = await setup({ faults: { unknownTypes: true, malformedPayloads: true }, tts: { enabled: false } });
    const types: string[] = [];
    session.on('message', (m) => types.push(m.$type));
    await session.startChat({ characterId: ARIA_ID });
    for (const text of ['one', 'two']) {
      const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
      session.send(text);
      const [e] = await end;
      await sim.waitFor(() => sim.playback(e.messageId).completes === 1, 3000, 'complete');
    }
    expect(sim.sent.some((s) => (s.payload as { $type?: string }).$type === 'futureThing')).toBe(true);
    expect(types).not.toContain('futureThing');
    expect(session.stats.droppedMessages).toBeGreaterThanOrEqual(4);
    expect(session.state).toBe('ready');
  });

  it('a listener that throws does not break the client', async () => {
    const { sim, session } = await setup({ tts: { enabled: false } });
    session.on('replyChunk', () => {
      throw new Error('listener bug');
    });
    session.on('replyStart', async () => {
      throw new Error('async listener bug');
    });
    await session.startChat({ characterId: ARIA_ID });
    for (const text of ['one', 'two']) {
      const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
      session.send(text);
      const [e] = await end;
      await sim.waitFor(() => sim.playback(e.messageId).completes === 1, 3000, 'complete');
    }
    expect(session.stats.listenerErrors).toBeGreaterThanOrEqual(4);
  });

  it('warns on an unexpected apiVersion but connects', async () => {
    const { session } = await setup({ apiVersion: '2099-01' });
    const w = await session.connect();
    expect(w.apiVersion).toBe('2099-01');
    expect(session.state).toBe('ready');
  });

  it('refuses empty text (use requestReply) and sanitising is the caller’s job', async () => {
    const { session } = await setup();
    await session.startChat({ characterId: ARIA_ID });
    expect(() => session.send('   ')).toThrow(/empty/);
  });

  it('a message sent while the chat is still starting is delivered once, after chatStarted', async () => {
    const { sim, session } = await setup({ tts: { enabled: false } });
    const started = session.startChat({ characterId: ARIA_ID });
    await waitFor(session, 'state', (s: string) => s === 'ready');
    session.send('early bird');
    const chat = await started;
    await sim.waitFor(() => sim.chats().find((c) => c.id === chat.chatId)!.messages.some((m) => m.text === 'early bird'), 3000, 'stored');
    const sends = sim.received.filter((r) => r.payload.$type === 'send');
    expect(sends).toHaveLength(1);
    expect(sends[0]!.payload.sessionId).toBe(chat.sessionId);
    await sim.waitFor(() => session.stats.inFlight === 0, 3000, 'confirmed by the server echo');
  });

  it('messages of another session on the same connection are not taken for ours', async () => {
    const { sim, session } = await setup({ tts: { enabled: false } });
    await session.startChat({ characterId: ARIA_ID });
    const old = session.sessionId!;
    await session.stopChat();
    const chunks: string[] = [];
    session.on('replyChunk', (c) => chunks.push(c.sessionId));
    await session.startChat({ characterId: HOLT_ID });
    const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
    session.send('hi');
    await end;
    expect(chunks.every((id) => id === session.sessionId && id !== old)).toBe(true);
    void sim;
  });
});
