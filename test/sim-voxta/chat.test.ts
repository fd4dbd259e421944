import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, HOLT_ID, MIRA_ID, startVoxtaSim, type VoxtaSim, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import { connectAuthenticated, idsOf, parseWavHeader, readReply, startChat, type HubClient } from './helpers.js';

let sim: VoxtaSim | undefined;
const clients: HubClient[] = [];

async function setup(opts: VoxtaSimOptions = {}): Promise<VoxtaSim> {
  sim = await startVoxtaSim({ chunkDelayMs: 5, capacityDelayMs: 50, ...opts });
  return sim;
}
async function client(): Promise<HubClient> {
  const c = await connectAuthenticated(sim!);
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await sim?.close();
  sim = undefined;
});

describe('voxta-sim chat flow', () => {
  it('round trip: start, send, chunks with offsets, TTS WAV, playback, complete releases the hold, second turn', async () => {
    const s = await setup({ tts: { sampleRate: 22050 } });
    const c = await client();
    const started = await startChat(c, ARIA_ID);
    const sessionId = started.sessionId as string;
    expect(started.services).toMatchObject({ textGen: { serviceName: 'SimTextGen' }, textToSpeech: { serviceName: 'SimToneTTS' } });
    // Start sequence order.
    const order = c.messages.map((m) => m.$type);
    expect(order.indexOf('chatStarting')).toBeLessThan(order.indexOf('chatLoadingMessage'));
    expect(order.indexOf('chatsSessionsUpdated')).toBeLessThan(order.indexOf('chatStarted'));
    await c.next('chatFlow', { match: (m) => m.state === 'WaitingForUserInput' });

    let after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'Hello there', doReply: true });
    const userUpdate = await c.next('update', { after, match: (m) => m.role === 'User' });
    expect(userUpdate.text).toBe('Hello there');
    const reply = await readReply(c, after);
    expect(reply.chunks.length).toBe(2);
    const full = (await c.next('update', { after, match: (m) => m.messageId === reply.messageId })).text as string;
    expect(full).toBe('You said: Hello there. This is Aria, reply number 1.');
    for (const chunk of reply.chunks) {
      expect(full.slice(chunk.startIndex as number, chunk.endIndex as number)).toBe(chunk.text);
      expect(chunk.audioUrl).toMatch(/^\/api\/tts\/gens\/[0-9a-f-]{36}$/);
    }
    expect(s.heldSessions().map((h) => h.sessionId)).toEqual([sessionId]);

    // Download and check the WAV: rate, 16-bit mono, duration ~60 ms per character.
    const chunk0 = reply.chunks[0]!;
    const res = await fetch(s.url + (chunk0.audioUrl as string));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('audio/x-wav');
    const wav = parseWavHeader(Buffer.from(await res.arrayBuffer()));
    expect(wav).toMatchObject({ sampleRate: 22050, channels: 1, bitsPerSample: 16 });
    expect(wav.durationMs).toBeCloseTo(Math.max(300, (chunk0.text as string).length * 60), -1);
    expect(s.ttsServed.at(-1)).toMatchObject({ messageId: reply.messageId, text: chunk0.text, sampleRate: 22050 });
    // Re-fetch is allowed.
    expect((await fetch(s.url + (chunk0.audioUrl as string))).status).toBe(200);

    await c.send({ $type: 'speechPlaybackStart', sessionId, messageId: reply.messageId, startIndex: 0, endIndex: 10, duration: wav.durationMs / 1000 });
    await c.next('speechPlaybackStart', { after, match: (m) => m.messageId === reply.messageId });
    after = c.mark();
    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: reply.messageId });
    await c.next('speechPlaybackComplete', { after });
    await c.next('chatFlow', { after, match: (m) => m.state === 'WaitingForUserInput' });
    expect(s.heldSessions()).toEqual([]);
    expect(s.playback(reply.messageId)).toMatchObject({ completes: 1, released: true, starts: [{ startIndex: 0, endIndex: 10 }] });

    after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'Again' });
    const second = await readReply(c, after);
    expect(second.chunks[1]?.text).toBe('This is Aria, reply number 2.');
    // Voxta writes $type first in every payload.
    for (const m of s.sent) expect(Object.keys(m.payload as object)[0]).toBe('$type');
  });

  it('the hold blocks the next user message until speechPlaybackComplete', async () => {
    const s = await setup();
    const c = await client();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    let after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'one' });
    const first = await readReply(c, after);
    after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'two' });
    await s.waitFor(() => s.sessions()[0]?.queued === 1, 2000, 'the second send to be queued');
    await new Promise((r) => setTimeout(r, 100));
    expect(c.all('update', after)).toEqual([]);
    expect(c.all('replyStart', after)).toEqual([]);
    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: first.messageId });
    const userUpdate = await c.next('update', { after, match: (m) => m.role === 'User' });
    expect(userUpdate.text).toBe('two');
    await readReply(c, after);
  });

  it('a complete for another message does not release the hold', async () => {
    const s = await setup();
    const c = await client();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    const after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'hi' });
    await readReply(c, after);
    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: '11111111-1111-4111-8111-111111111111' });
    await c.next('speechPlaybackComplete', { after });
    expect(s.heldSessions()).toHaveLength(1);
  });

  it('trigger replies, /commands, characterSpeechRequest, pause, updateContext, typing', async () => {
    await setup();
    const c = await client();
    const sessionId = (await startChat(c, HOLT_ID)).sessionId as string;
    let after = c.mark();
    await c.send({ $type: 'send', sessionId, text: '/foo bar' });
    expect((await c.next('chatSessionError', { after })).message).toBe('Command foo is not supported');

    await c.send({ $type: 'send', sessionId, text: '' });
    const trig = await readReply(c, after);
    expect(c.all('update', after).filter((m) => m.role === 'User')).toEqual([]);
    // A trigger while held is dropped.
    const mid = c.mark();
    await c.send({ $type: 'send', sessionId, text: '*' });
    await c.send({ $type: 'typingStart', sessionId });
    await c.send({ $type: 'typingEnd', sessionId, sent: false });
    await c.send({ $type: 'pauseChat', sessionId, pause: true });
    expect((await c.next('chatPaused', { after: mid })).paused).toBe(true);
    await c.send({ $type: 'updateContext', sessionId, contextKey: 'discord', contexts: [{ text: 'in a server' }], setFlags: ['in_voice'] });
    expect((await c.next('contextUpdated', { after: mid })).flags).toEqual([{ name: 'in_voice' }]);
    expect(c.all('replyStart', mid)).toEqual([]);

    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: trig.messageId });
    after = c.mark();
    await c.send({ $type: 'characterSpeechRequest', sessionId, text: 'Welcome back! Good to see you.' });
    const speech = await readReply(c, after);
    expect(speech.chunks.map((m) => m.text)).toEqual(['Welcome back!', 'Good to see you.']);
    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: speech.messageId });

    after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'just noting', doReply: false });
    expect((await c.next('update', { after })).text).toBe('just noting');
    await c.next('chatFlow', { after, match: (m) => m.state === 'WaitingForUserInput' });
    expect(c.all('replyGenerating', after)).toEqual([]);
    expect(c.all('error')).toEqual([]);
  });

  it('interrupt cancels a streaming reply and sends interruptSpeech for tracked playback', async () => {
    const s = await setup({ chunkDelayMs: 100, reply: () => ['One.', 'Two.', 'Three.', 'Four.', 'Five.'] });
    const c = await client();
    const sessionId = (await startChat(c, MIRA_ID)).sessionId as string;
    const after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'talk' });
    const chunk = await c.next('replyChunk', { after });
    await c.send({ $type: 'speechPlaybackStart', sessionId, messageId: chunk.messageId, startIndex: 0, duration: 0.3 });
    await c.send({ $type: 'interrupt', sessionId });
    await c.next('replyCancelled', { after });
    const end = await c.next('replyEnd', { after });
    const interrupt = await c.next('interruptSpeech', { after });
    expect(interrupt.messageId).toBe(chunk.messageId);
    expect(end.messageId).toBe(chunk.messageId);
    expect(c.all('replyChunk', after).length).toBeLessThan(5);
    expect(s.heldSessions()[0]?.heldMessageId).toBe(chunk.messageId);
  });

  it('stop, resume with history, chats over REST and loadChatsList', async () => {
    const s = await setup();
    const c = await client();
    const started = await startChat(c, ARIA_ID);
    const { sessionId, chatId } = idsOf(started);
    let after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'remember me' });
    const r = await readReply(c, after);
    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: r.messageId });
    after = c.mark();
    await c.send({ $type: 'stopChat', sessionId });
    expect(await c.next('chatClosed', { after })).toMatchObject({ sessionId, chatId });
    expect(s.sessions()).toEqual([]);

    const resumed = await (async () => {
      const a = c.mark();
      await c.send({ $type: 'resumeChat', chatId });
      return c.next('chatStarted', { after: a });
    })();
    expect(resumed.chatId).toBe(chatId);
    expect(resumed.sessionId).not.toBe(sessionId);
    const texts = (resumed.messages as { text: string; role: string }[]).map((m) => `${m.role}:${m.text}`);
    expect(texts).toEqual(['User:remember me', 'Assistant:You said: remember me. This is Aria, reply number 1.']);

    const rest = (await (await fetch(`${s.url}/api/chats?characterId=${ARIA_ID}`)).json()) as { chats: Record<string, unknown>[] };
    expect(rest.chats).toHaveLength(1);
    expect(rest.chats[0]).toMatchObject({ id: chatId, favorite: false, scenarioId: null, characters: [{ id: ARIA_ID, name: 'Aria' }] });
    expect(typeof rest.chats[0]!.lastSessionTimestamp).toBe('string');

    after = c.mark();
    await c.send({ $type: 'loadChatsList', characterId: ARIA_ID });
    expect((await c.next('chatsListLoaded', { after })).chats).toEqual([{ id: chatId, created: 'just now' }]);
  });

  it('resuming a chat whose last message is the user’s answers it', async () => {
    const s = await setup();
    const chat = s.createChat(MIRA_ID, { messages: [{ role: 'User', text: 'anyone there?' }] });
    const c = await client();
    const after = c.mark();
    await c.send({ $type: 'resumeChat', chatId: chat.id });
    await readReply(c, after);
    expect(c.all('update', after).at(-1)?.text).toBe('You said: anyone there? This is Mira, reply number 1.');
  });

  it('one session per connection, per-user cap and the chat lock', async () => {
    const s = await setup({ maxChats: 2 });
    const a = await client();
    const b = await client();
    const third = await client();
    const startedA = await startChat(a, ARIA_ID);
    await expect(a.invoke({ $type: 'startChat', characterId: HOLT_ID })).rejects.toThrow(/already has chat session/);

    // Chat lock: b resumes a's chat.
    let after = b.mark();
    await b.send({ $type: 'resumeChat', chatId: startedA.chatId });
    expect((await b.next('error', { after })).message).toBe('Chat session already exists for this chat');
    await startChat(b, HOLT_ID);

    after = third.mark();
    await third.send({ $type: 'startChat', characterId: MIRA_ID });
    expect((await third.next('error', { after })).message).toBe('Cannot start more than 2 concurrent chats.');
    expect(s.sessions()).toHaveLength(2);

    // A slot freed while waiting is taken (capacity wait).
    s.options.capacityDelayMs = 2000;
    after = third.mark();
    await third.send({ $type: 'startChat', characterId: MIRA_ID });
    await b.send({ $type: 'stopChat' });
    expect((await third.next('chatStarted', { after })).characters).toEqual([expect.objectContaining({ name: 'Mira' })]);
  });

  it('a closed hub connection disposes its session; the lock frees after chatLockReleaseDelayMs', async () => {
    const s = await setup({ chatLockReleaseDelayMs: 300 });
    const a = await client();
    const { chatId } = idsOf(await startChat(a, ARIA_ID));
    s.dropHubConnections();
    await s.waitFor(() => s.sessions()[0]?.state === 'disposing', 2000, 'session disposing');
    const b = await client();
    let after = b.mark();
    await b.send({ $type: 'resumeChat', chatId });
    await b.next('error', { after, match: (m) => m.message === 'Chat session already exists for this chat' });
    await s.waitFor(() => s.sessions().length === 0, 2000, 'lock release');
    after = b.mark();
    await b.send({ $type: 'resumeChat', chatId });
    expect((await b.next('chatStarted', { after })).chatId).toBe(chatId);
  });

  it('fault switches: error mid reply, unknown types, malformed payloads, silence URLs, TTS 404/502', async () => {
    const s = await setup({ reply: () => ['First part.', 'Second part.', 'Third part.'] });
    const c = await client();
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;

    s.faults.errorMidReply = true;
    s.faults.unknownTypes = true;
    s.faults.malformedPayloads = true;
    let after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'x' });
    const r = await readReply(c, after);
    expect(r.chunks.filter((m) => m.messageId)).toHaveLength(1);
    await c.next('chatSessionError', { after });
    await c.next('replyCancelled', { after });
    await c.next('futureThing', { after });
    expect(c.messages.slice(after)).toEqual(expect.arrayContaining(['not an object', 42]));
    expect(s.heldSessions()).toHaveLength(1);

    s.faults.errorMidReply = s.faults.unknownTypes = s.faults.malformedPayloads = false;
    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: r.messageId });
    s.options.tts.silenceUrls = true;
    after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'y' });
    const silent = await readReply(c, after);
    expect(silent.chunks.map((m) => m.audioUrl)).toEqual(['silence:660', 'silence:720', 'silence:660']);

    await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId: silent.messageId });
    s.options.tts.silenceUrls = false;
    after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'z' });
    const audible = await readReply(c, after);
    const url = s.url + (audible.chunks[0]!.audioUrl as string);
    s.options.tts.status = 502;
    expect((await fetch(url)).status).toBe(502);
    s.options.tts.status = 200;
    expect((await fetch(`${s.url}/api/tts/gens/00000000-0000-4000-8000-000000000000`)).status).toBe(404);
    s.options.tts.delayMs = 150;
    const t0 = Date.now();
    expect((await fetch(url)).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(s.ttsRequests.map((t) => t.status)).toEqual([502, 404, 200]);
  });

  it('TTS off: empty audioUrl and no textToSpeech service', async () => {
    await setup({ tts: { enabled: false } });
    const c = await client();
    const started = await startChat(c, ARIA_ID);
    expect((started.services as Record<string, unknown>).textToSpeech).toBeNull();
    const after = c.mark();
    await c.send({ $type: 'send', sessionId: started.sessionId, text: 'q' });
    const r = await readReply(c, after);
    expect(r.chunks.every((m) => m.audioUrl === '')).toBe(true);
  });

  it('greeting on new chats', async () => {
    await setup({ greeting: true });
    const c = await client();
    const after = c.mark();
    await c.send({ $type: 'startChat', characterId: HOLT_ID });
    const r = await readReply(c, after);
    expect(r.chunks.map((m) => m.text)).toEqual(['Captain Holt speaking.', 'State your business.']);
  });

  it('subscribeToChat and session messages with a wrong sessionId', async () => {
    await setup();
    const a = await client();
    const b = await client();
    const started = await startChat(a, ARIA_ID);
    let after = b.mark();
    await b.send({ $type: 'subscribeToChat', sessionId: started.sessionId });
    expect((await b.next('chatStarted', { after })).sessionId).toBe(started.sessionId);
    await b.next('contextUpdated', { after });
    await b.send({ $type: 'subscribeToChat', sessionId: '22222222-2222-4222-8222-222222222222' });
    expect((await b.next('chatClosed', { after })).chatId).toBe('00000000-0000-0000-0000-000000000000');
    await expect(b.invoke({ $type: 'send', sessionId: started.sessionId, text: 'hijack' })).rejects.toThrow(/another connection/);
    await expect(a.invoke({ $type: 'send', text: 'no id' })).rejects.toThrow(/Missing SessionId/);
    after = a.mark();
    await expect(a.invoke({ $type: 'stopChat', sessionId: '33333333-3333-4333-8333-333333333333' })).rejects.toThrow(/another session is in progress/);
    await a.next('error', { after });
  });
});
