import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, HOLT_ID, type VoxtaSim } from '../../sim/voxta/index.js';
import { VoxtaChatSession } from '../../src/voxta/chat-session.js';
import { VoxtaEndpoint } from '../../src/voxta/endpoint.js';
import { VoxtaAuthError, VoxtaHttpError, VoxtaUnreachableError, VoxtaUrlError } from '../../src/voxta/errors.js';
import { VoxtaRest } from '../../src/voxta/rest.js';
import { classifyAudioUrl, fetchSpeech, unfetchedDurationSec } from '../../src/voxta/tts.js';
import { memoryLogger, newSim, wavDurationSec } from './helpers.js';

const KEY = 'sk-test-0123456789abcdef';
let sims: VoxtaSim[] = [];
afterEach(async () => {
  for (const s of sims) await s.close();
  sims = [];
});
async function sim(extra: Parameters<typeof newSim>[0] = {}) {
  const s = await newSim(extra);
  sims.push(s);
  return s;
}

describe('classifyAudioUrl', () => {
  it('tells no audio, silence and fetchable URLs apart', () => {
    expect(classifyAudioUrl('')).toEqual({ kind: 'none' });
    expect(classifyAudioUrl(null)).toEqual({ kind: 'none' });
    expect(classifyAudioUrl('silence:680')).toEqual({ kind: 'silence', ms: 680 });
    // TTS off for that chunk: acknowledged as nothing played (duration 0), as the official client does.
    expect(unfetchedDurationSec(classifyAudioUrl('silence:680'))).toBe(0);
    expect(classifyAudioUrl('/api/tts/gens/abc')).toEqual({ kind: 'fetch', url: '/api/tts/gens/abc' });
    expect(classifyAudioUrl('https://x.example/a.wav')).toEqual({ kind: 'fetch', url: 'https://x.example/a.wav' });
    expect(classifyAudioUrl('file:///etc/passwd')).toEqual({ kind: 'none' });
    expect(classifyAudioUrl('//evil.example/a')).toEqual({ kind: 'none' });
  });
});

describe('VoxtaRest against the simulator', () => {
  it('lists characters with the API key', async () => {
    const s = await sim({ apiKey: KEY });
    const rest = new VoxtaRest(new VoxtaEndpoint({ url: s.url, apiKey: KEY }));
    const chars = await rest.listCharacters();
    expect(chars.map((c) => c.name)).toEqual(['Aria', 'Captain Holt', 'Mira', 'Vex']);
    expect(await rest.getCharacter(HOLT_ID)).toMatchObject({ id: HOLT_ID, name: 'Captain Holt' });
    expect(await rest.getCharacter('00000000-0000-4000-8000-000000000000')).toBeUndefined();
  });

  it('lists a character’s chats, most recently used first', async () => {
    const s = await sim();
    const never = s.createChat(ARIA_ID, { title: 'never used' });
    const older = s.createChat(ARIA_ID, { title: 'older' });
    const newer = s.createChat(ARIA_ID, { title: 'newer' });
    s.createChat(HOLT_ID, { title: 'other character' });
    const session = new VoxtaChatSession({ endpoint: new VoxtaEndpoint({ url: s.url }), audioInput: 'None' });
    try {
      for (const c of [older, newer]) {
        await session.resumeChat({ chatId: c.id });
        await new Promise((r) => setTimeout(r, 5));
        await session.stopChat();
      }
    } finally {
      await session.close();
    }
    const chats = await new VoxtaRest(new VoxtaEndpoint({ url: s.url })).listChats(ARIA_ID);
    expect(chats.map((c) => c.id)).toEqual([newer.id, older.id, never.id]);
    expect(chats[0]!.lastSessionTimestamp).toBeGreaterThan(chats[1]!.lastSessionTimestamp);
  });

  it('typed errors: 401 → VoxtaAuthError, unreachable → VoxtaUnreachableError, non-http → VoxtaUrlError', async () => {
    const s = await sim({ apiKey: KEY });
    const wrong = new VoxtaRest(new VoxtaEndpoint({ url: s.url, apiKey: 'not-the-key-123' }));
    await expect(wrong.listCharacters()).rejects.toBeInstanceOf(VoxtaAuthError);
    const none = new VoxtaRest(new VoxtaEndpoint({ url: s.url }));
    await expect(none.listCharacters()).rejects.toMatchObject({ status: 401 });
    const port = s.port;
    await s.close();
    const gone = new VoxtaRest(new VoxtaEndpoint({ url: `http://127.0.0.1:${port}` }));
    const err = await gone.listCharacters().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VoxtaUnreachableError);
    expect((err as VoxtaUnreachableError).reason).toBe('refused');
    await expect(gone.fetchBytes('data:audio/wav;base64,AAAA')).rejects.toBeInstanceOf(VoxtaUrlError);
  });

  it('times out plainly', async () => {
    const s = await sim({ tts: { delayMs: 2000 } });
    const rest = new VoxtaRest(new VoxtaEndpoint({ url: s.url }));
    const err = await rest.fetchBytes('/api/tts/gens/whatever', { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VoxtaUnreachableError);
    expect((err as VoxtaUnreachableError).reason).toBe('timeout');
  });

  it('works through Basic auth taken from the URL', async () => {
    const s = await sim({ basicAuth: { username: 'proxy', password: 'pr0xy-pass-word' } });
    const url = s.url.replace('http://', 'http://proxy:pr0xy-pass-word@');
    const ep = new VoxtaEndpoint({ url });
    expect((await new VoxtaRest(ep).listCharacters()).length).toBe(4);
    const session = new VoxtaChatSession({ endpoint: ep, audioInput: 'None' });
    try {
      const w = await session.connect();
      expect(w.apiVersion).toBe('2025-08');
    } finally {
      await session.close();
    }
  });
});

describe('fetchSpeech against the simulator', () => {
  it('downloads a real WAV with auth', async () => {
    const s = await sim({ apiKey: KEY, reply: () => ['Hello there.'] });
    const ep = new VoxtaEndpoint({ url: s.url, apiKey: KEY });
    const session = new VoxtaChatSession({ endpoint: ep, audioInput: 'None' });
    try {
      await session.startChat({ characterId: ARIA_ID });
      const chunk = new Promise<string>((resolve) => session.once('replyChunk', (c) => resolve(c.audioUrl)));
      session.send('hi');
      const url = await chunk;
      const kind = classifyAudioUrl(url);
      expect(kind.kind).toBe('fetch');
      const { bytes, contentType } = await fetchSpeech(ep, url);
      expect(contentType).toMatch(/audio\/(x-)?wav/);
      const served = s.ttsServed[0]!;
      expect(wavDurationSec(bytes)).toBeCloseTo(served.durationMs / 1000, 2);
      // Without the key: refused.
      await expect(fetchSpeech(new VoxtaEndpoint({ url: s.url }), url)).rejects.toBeInstanceOf(VoxtaAuthError);
    } finally {
      await session.close();
    }
  });

  it('404 is a typed error; 502 is retried once', async () => {
    const s = await sim();
    const ep = new VoxtaEndpoint({ url: s.url });
    const e404 = await fetchSpeech(ep, '/api/tts/gens/unknown').catch((e: unknown) => e);
    expect(e404).toBeInstanceOf(VoxtaHttpError);
    expect((e404 as VoxtaHttpError).status).toBe(404);
    expect((e404 as Error).message).toBe('Voxta answered HTTP 404 for /api/tts/gens/unknown');
    s.options.tts.status = 502;
    const e502 = await fetchSpeech(ep, '/api/tts/gens/x', { retryDelayMs: 10 }).catch((e: unknown) => e);
    expect((e502 as VoxtaHttpError).status).toBe(502);
    expect(s.ttsRequests.filter((r) => r.id === 'x').map((r) => r.status)).toEqual([502, 502]);
  });
});

describe('secrets', () => {
  it('never appear in logs or error messages, on success or failure', async () => {
    const SECRET = 'sk-very-secret-abcdef-987654';
    const BASIC = 'basic-pass-zyx-42';
    const s = await sim({ apiKey: SECRET });
    const { log, lines } = memoryLogger();
    const errors: string[] = [];
    // Success path, with everything at trace level (SignalR's own log included).
    const ok = new VoxtaChatSession({ endpoint: new VoxtaEndpoint({ url: s.url, apiKey: SECRET }), log });
    try {
      await ok.startChat({ characterId: ARIA_ID });
      await ok.stopChat();
    } finally {
      await ok.close();
    }
    // Failure paths: wrong key on the hub, REST, TTS; a dead port; Basic auth in the URL.
    const wrongKey = 'sk-wrong-key-000111222';
    for (const ep of [new VoxtaEndpoint({ url: s.url, apiKey: wrongKey }), new VoxtaEndpoint({ url: s.url.replace('http://', `http://me:${BASIC}@`) })]) {
      const bad = new VoxtaChatSession({ endpoint: ep, log });
      await bad.connect().catch((e: unknown) => errors.push(String((e as Error).message), String((e as Error).stack)));
      await bad.close();
      await new VoxtaRest(ep).listCharacters().catch((e: unknown) => errors.push(String((e as Error).message)));
      await fetchSpeech(ep, '/api/tts/gens/abc').catch((e: unknown) => errors.push(String((e as Error).message)));
    }
    const port = s.port;
    await s.close();
    const dead = new VoxtaChatSession({ endpoint: new VoxtaEndpoint({ url: `http://127.0.0.1:${port}`, apiKey: SECRET }), log });
    await dead.connect().catch((e: unknown) => errors.push(String((e as Error).message)));
    await dead.close();

    expect(lines.length).toBeGreaterThan(10);
    expect(errors.length).toBeGreaterThanOrEqual(7);
    for (const text of [...lines, ...errors]) {
      for (const secret of [SECRET, wrongKey, BASIC, Buffer.from(`me:${BASIC}`).toString('base64')]) expect(text).not.toContain(secret);
    }
    expect(errors.some((e) => /refused the credentials/.test(e))).toBe(true);
  });
});
