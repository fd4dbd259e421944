import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, HOLT_ID, startVoxtaSim, type VoxtaSim, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import { VOICE_CAPS, authHeader, closed, connectAuthenticated, connectHub, idsOf, openAudio, readReply, startChat, type HubClient } from './helpers.js';

let sim: VoxtaSim | undefined;
const clients: HubClient[] = [];
const sockets: WebSocket[] = [];

async function setup(opts: VoxtaSimOptions = {}): Promise<VoxtaSim> {
  sim = await startVoxtaSim({ chunkDelayMs: 5, capacityDelayMs: 50, ...opts });
  return sim;
}

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await sim?.close();
  sim = undefined;
});

function upgradeStatus(url: string, headers?: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, headers ? { headers } : undefined);
    ws.on('error', () => undefined);
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('open', () => {
      ws.terminate();
      reject(new Error(`upgrade to ${url} was accepted`));
    });
  });
}

describe('voxta-sim authentication', () => {
  it('API key: 401 without it on negotiate, hub, REST, TTS and audio; accepted as Bearer and access_token', async () => {
    const s = await setup({ apiKey: 'sekret-key' });
    const ws = s.url.replace('http', 'ws');
    expect((await fetch(`${s.url}/hub/negotiate?negotiateVersion=1`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${s.url}/api/characters`)).status).toBe(401);
    expect((await fetch(`${s.url}/api/characters`, { headers: authHeader('wrong') })).status).toBe(401);
    expect((await fetch(`${s.url}/api/tts/gens/x`)).status).toBe(401);
    expect(await upgradeStatus(`${ws}/hub`)).toBe(401);
    expect(await upgradeStatus(`${ws}/ws/audio/input/stream?sessionId=x`)).toBe(401);
    await expect(connectHub(s)).rejects.toThrow(/401/);
    await expect(connectHub(s, { skipNegotiation: true, token: 'wrong' })).rejects.toThrow();

    const chars = (await (await fetch(`${s.url}/api/characters/`, { headers: authHeader('sekret-key') })).json()) as {
      characters: { id: string; thumbnailUrl: string }[];
    };
    expect(chars.characters).toHaveLength(4);
    const thumb = await fetch(s.url + chars.characters[0]!.thumbnailUrl, { headers: authHeader('sekret-key') });
    expect(thumb.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await thumb.arrayBuffer()).subarray(1, 4).toString()).toBe('PNG');
    expect((await fetch(`${s.url}/api/characters?access_token=sekret-key`)).status).toBe(200);
    expect((await fetch(`${s.url}/api/characters/${HOLT_ID}`, { headers: authHeader('sekret-key') })).status).toBe(200);
    expect((await fetch(`${s.url}/api/characters/nope`, { headers: authHeader('sekret-key') })).status).toBe(404);

    for (const skipNegotiation of [false, true]) {
      const c = await connectAuthenticated(s, { token: 'sekret-key', skipNegotiation, capabilities: VOICE_CAPS });
      clients.push(c);
    }
    const sessionId = (await startChat(clients[0]!, ARIA_ID)).sessionId as string;
    const audio = await openAudio(s, sessionId, { headers: authHeader('sekret-key') });
    sockets.push(audio);
    await s.waitFor(() => s.audio(sessionId)?.header, 2000, 'audio header');
  });

  it('each API key is its own user: separate caps, and the audio socket must belong to the session owner', async () => {
    const s = await setup({ apiKey: ['key-one', 'key-two'], maxChats: 1 });
    const one = await connectAuthenticated(s, { token: 'key-one', capabilities: VOICE_CAPS });
    const two = await connectAuthenticated(s, { token: 'key-two', capabilities: VOICE_CAPS });
    clients.push(one, two);
    const sessionId = (await startChat(one, ARIA_ID)).sessionId as string;
    await startChat(two, HOLT_ID); // not refused: another user
    const foreign = await openAudio(s, sessionId, { headers: authHeader('key-two') });
    sockets.push(foreign);
    expect(await closed(foreign)).toMatchObject({ code: 1008, reason: 'Session belongs to another user' });
    const own = await openAudio(s, sessionId, { query: '&access_token=key-one' });
    sockets.push(own);
    await s.waitFor(() => s.audio(sessionId)?.header, 2000, 'audio header');
  });

  it('Basic auth (reverse proxy)', async () => {
    const s = await setup({ basicAuth: { username: 'bob', password: 'pw' } });
    const basic = `Basic ${Buffer.from('bob:pw').toString('base64')}`;
    const res = await fetch(`${s.url}/api/chats`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect((await fetch(`${s.url}/api/chats`, { headers: { Authorization: basic } })).status).toBe(200);
    const c = await connectAuthenticated(s, { headers: { Authorization: basic } });
    clients.push(c);
    expect(s.connections()[0]?.userKey).toBe('basic:bob');
  });

  it('authenticationRequired fault', async () => {
    const s = await setup({ faults: { authenticationRequired: true } });
    const c = await connectHub(s);
    clients.push(c);
    await c.send({ $type: 'authenticate', client: 'T', scope: ['role:app'] });
    await c.next('authenticationRequired');
    expect(c.all('welcome')).toEqual([]);
  });
});

describe('voxta-sim restart', () => {
  it('stop() loses connections, sessions and TTS jobs but keeps chats; start() serves the same port', async () => {
    const s = await setup();
    const c = await connectAuthenticated(s);
    clients.push(c);
    const { sessionId, chatId } = idsOf(await startChat(c, ARIA_ID));
    const after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'before the crash' });
    const r = await readReply(c, after);
    const audioUrl = r.chunks[0]!.audioUrl as string;
    const port = s.port;
    const closedErr = new Promise((resolve) => c.conn.onclose(resolve));

    await s.stop();
    await closedErr;
    await expect(fetch(`${s.url}/api/chats`)).rejects.toThrow();
    await s.start();
    expect(s.port).toBe(port);
    expect(s.sessions()).toEqual([]);
    expect((await fetch(s.url + audioUrl)).status).toBe(404);

    const again = await connectAuthenticated(s);
    clients.push(again);
    const a2 = again.mark();
    await again.send({ $type: 'resumeChat', chatId });
    const resumed = await again.next('chatStarted', { after: a2 });
    expect((resumed.messages as { text: string }[])[0]?.text).toBe('before the crash');
  });
});
