import { HubConnectionState } from '@microsoft/signalr';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, startVoxtaSim, type VoxtaSim, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import { connectAuthenticated, connectHub, startChat, type HubClient } from './helpers.js';

let sim: VoxtaSim | undefined;
const clients: HubClient[] = [];
const raws: WebSocket[] = [];

async function setup(opts: VoxtaSimOptions = {}): Promise<VoxtaSim> {
  sim = await startVoxtaSim({ chunkDelayMs: 5, capacityDelayMs: 50, ...opts });
  return sim;
}

afterEach(async () => {
  for (const ws of raws.splice(0)) ws.terminate();
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await sim?.close();
  sim = undefined;
});

/** A raw WebSocket on /hub collecting text frames. */
async function rawHub(s: VoxtaSim): Promise<{ ws: WebSocket; frames: string[]; waitFrames: (n: number) => Promise<string[]> }> {
  const ws = new WebSocket(`${s.url.replace('http', 'ws')}/hub`);
  raws.push(ws);
  const frames: string[] = [];
  ws.on('message', (d) => frames.push(d.toString()));
  await new Promise((r) => ws.once('open', r));
  const waitFrames = (n: number) => s.waitFor(() => frames.length >= n && frames, 2000, `${n} frames`);
  return { ws, frames, waitFrames };
}

describe('voxta-sim SignalR hub', () => {
  it.each([false, true])('the real @microsoft/signalr client connects (skipNegotiation=%s) and authenticates', async (skip) => {
    const s = await setup({ apiVersion: '2099-01' });
    const c = await connectHub(s, { skipNegotiation: skip });
    clients.push(c);
    expect(c.conn.state).toBe(HubConnectionState.Connected);
    expect(c.conn.connectionId ?? null).toBe(skip ? null : s.connections()[0]?.connectionId);
    await c.invoke({ $type: 'authenticate', client: 'T', scope: ['role:app'], capabilities: { audioInput: 'None', audioOutput: 'Url' } });
    const welcome = await c.next('welcome');
    expect(welcome).toMatchObject({ apiVersion: '2099-01', voxtaServerVersion: '1.0.0-beta.152-sim', user: { name: 'User' } });
    expect(Object.keys(welcome)[0]).toBe('$type');
    await c.next('configuration');
    expect(s.received[0]?.payload.$type).toBe('authenticate');
    expect(s.received[0]?.invocationId).toBeDefined();
    expect(s.connections()[0]).toMatchObject({ authenticated: true, client: 'T', open: true });
  });

  it('rejects messages before authenticate and unknown types, with completion errors', async () => {
    const s = await setup();
    const c = await connectHub(s);
    clients.push(c);
    await expect(c.invoke({ $type: 'loadCharactersList' })).rejects.toThrow(/Not authenticated/);
    expect((await c.next('error')).message).toMatch(/send "authenticate" before "loadCharactersList"/);
    await c.invoke({ $type: 'authenticate', client: 'T', scope: ['role:app'] });
    await expect(c.invoke({ $type: 'doSomethingNew' })).rejects.toThrow('Unknown message type: doSomethingNew');
    await expect(c.conn.invoke('SendMessage', 'not an object')).rejects.toThrow(/expects one object/);
    await c.invoke({ $type: 'loadCharactersList' });
    const list = await c.next('charactersListLoaded');
    expect((list.characters as { name: string }[]).map((x) => x.name)).toEqual(['Aria', 'Captain Holt', 'Mira', 'Vex']);
    expect(s.received.map((r) => r.payload.$type)).toEqual(['loadCharactersList', 'authenticate', 'doSomethingNew', '<invalid>', 'loadCharactersList']);
    s.faults.invocationError = 'hub is grumpy';
    await expect(c.invoke({ $type: 'registerApp', label: 'x' })).rejects.toThrow('hub is grumpy');
  });

  it('raw protocol: exact handshake answer, several records per frame, pings, ReceiveMessage shape', async () => {
    const s = await setup({ pingIntervalMs: 50 });
    const { ws, frames, waitFrames } = await rawHub(s);
    ws.send('{"protocol":"json","version":1}\x1e');
    await waitFrames(1);
    expect(frames[0]).toBe('{}\x1e');
    // Two invocations in one frame, the second split across two frames.
    const auth = JSON.stringify({ type: 1, target: 'SendMessage', arguments: [{ $type: 'authenticate', client: 'raw' }] });
    const load = JSON.stringify({ type: 1, invocationId: '7', target: 'SendMessage', arguments: [{ $type: 'loadCharactersList' }] });
    ws.send(auth + '\x1e' + load.slice(0, 20));
    ws.send(load.slice(20) + '\x1e');
    const completion = await s.waitFor(() => frames.find((f) => f.includes('"type":3')), 2000, 'completion');
    expect(JSON.parse(completion.slice(0, -1))).toEqual({ type: 3, invocationId: '7', result: null });
    const records = frames.flatMap((f) => f.split('\x1e').filter(Boolean)).map((r) => JSON.parse(r) as Record<string, unknown>);
    const events = records.filter((r) => r.type === 1);
    expect(events[0]).toMatchObject({ type: 1, target: 'ReceiveMessage', arguments: [{ $type: 'welcome' }] });
    expect(events.map((e) => (e.arguments as { $type: string }[])[0]!.$type)).toContain('charactersListLoaded');
    await s.waitFor(() => frames.some((f) => f === '{"type":6}\x1e'), 2000, 'a ping');
    expect(frames.every((f) => f.endsWith('\x1e'))).toBe(true);
  });

  it('a bad handshake or garbage record closes the connection', async () => {
    const s = await setup();
    const a = await rawHub(s);
    const aClosed = new Promise<number>((r) => a.ws.once('close', (code) => r(code)));
    a.ws.send('{"protocol":"messagepack","version":1}\x1e');
    await a.waitFrames(1);
    expect(JSON.parse(a.frames[0]!.slice(0, -1))).toHaveProperty('error');
    expect(await aClosed).toBe(1002);

    const b = await rawHub(s);
    const bClosed = new Promise<number>((r) => b.ws.once('close', (code) => r(code)));
    b.ws.send('{"protocol":"json","version":1}\x1e');
    b.ws.send('this is not json\x1e');
    expect(await bClosed).toBe(1002);

    const c = await rawHub(s);
    const cClosed = new Promise<number>((r) => c.ws.once('close', (code) => r(code)));
    c.ws.send('{"protocol":"json","version":1}\x1e');
    c.ws.send('x'.repeat(1024 * 1024 + 10));
    expect(await cClosed).toBe(1008);
  });

  it('closeHubConnections(allowReconnect) makes the client reconnect with a new connection; the session is gone', async () => {
    const s = await setup();
    const c = await connectAuthenticated(s, { reconnect: true });
    clients.push(c);
    await startChat(c, ARIA_ID);
    const reconnected = new Promise<string | undefined>((r) => c.conn.onreconnected((id) => r(id)));
    s.closeHubConnections({ allowReconnect: true, error: 'maintenance' });
    const newId = await reconnected;
    expect(newId).toBeDefined();
    expect(s.sessions()).toEqual([]);
    // The new connection must authenticate again.
    await expect(c.invoke({ $type: 'loadCharactersList' })).rejects.toThrow(/Not authenticated/);
  });

  it('dropHubConnections terminates without a close frame', async () => {
    const s = await setup();
    const c = await connectAuthenticated(s);
    clients.push(c);
    const closedErr = new Promise<Error | undefined>((r) => c.conn.onclose((e) => r(e)));
    s.dropHubConnections();
    const err = await closedErr;
    expect(err).toBeInstanceOf(Error);
    await s.waitFor(() => s.connections().every((x) => !x.open), 2000, 'connections closed');
  });

  it('drops a client that stays silent past clientTimeoutMs', async () => {
    const s = await setup({ pingIntervalMs: 50, clientTimeoutMs: 200 });
    const { ws } = await rawHub(s);
    const closedCode = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.send('{"protocol":"json","version":1}\x1e');
    expect(await closedCode).toBe(1006);
  });

  it('negotiate answers the standard shape and unknown connection tokens are refused', async () => {
    const s = await setup();
    const res = await fetch(`${s.url}/hub/negotiate?negotiateVersion=1`, { method: 'POST' });
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ negotiateVersion: 1, availableTransports: [{ transport: 'WebSockets', transferFormats: ['Text', 'Binary'] }] });
    expect(typeof body.connectionToken).toBe('string');
    const ws = new WebSocket(`${s.url.replace('http', 'ws')}/hub?id=nope`);
    ws.on('error', () => undefined);
    const status = await new Promise<number>((r) => ws.once('unexpected-response', (_req, resp) => r(resp.statusCode ?? 0)));
    expect(status).toBe(404);
  });
});
