import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startVoiceServer, type VoiceServer } from '../../sim/discord/voice/index.js';

/** Raw protocol checks with a plain ws client (no @discordjs/voice): handshake rules and bad input. */
const GUILD = '1200000000000000001';
const BOT = '1100000000000000001';

type Msg = { op: number; d: Record<string, unknown>; seq?: number };

function connect(voice: VoiceServer): Promise<{ ws: WebSocket; messages: Msg[]; closed: Promise<number>; next(op: number): Promise<Msg> }> {
  const ws = new WebSocket(`wss://${voice.endpoint}/?v=8`, { ca: voice.caCertPem });
  const messages: Msg[] = [];
  const waiters: { op: number; resolve: (m: Msg) => void }[] = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const m = JSON.parse(data.toString()) as Msg;
    messages.push(m);
    for (const w of waiters.filter((x) => x.op === m.op)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(m);
    }
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  const next = (op: number) => {
    const seen = messages.find((m) => m.op === op);
    return seen ? Promise.resolve(seen) : new Promise<Msg>((resolve) => waiters.push({ op, resolve }));
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, messages, closed, next }));
    ws.once('error', reject);
  });
}

describe('voice gateway protocol (raw client)', () => {
  let voice: VoiceServer;
  beforeAll(async () => {
    voice = await startVoiceServer({ dave: 'off', helloIntervalMs: 1_000 });
  });
  afterAll(async () => {
    await voice?.stop();
  });

  it('says HELLO, acks heartbeats with their nonce, and walks identify → ready → session description', async () => {
    const { token } = voice.openSession({ guildId: GUILD, channelId: '1300000000000000001', botUserId: BOT, sessionId: 's1' });
    const c = await connect(voice);
    expect((await c.next(8)).d).toEqual({ heartbeat_interval: 1_000, v: 8 });
    c.ws.send(JSON.stringify({ op: 3, d: { t: 12345, seq_ack: -1 } }));
    expect((await c.next(6)).d).toEqual({ t: 12345 });

    c.ws.send(JSON.stringify({ op: 0, d: { server_id: GUILD, user_id: BOT, session_id: 's1', token, max_dave_protocol_version: 1 } }));
    const ready = await c.next(2);
    expect(ready.d).toMatchObject({ ip: '127.0.0.1', modes: ['aead_aes256_gcm_rtpsize', 'aead_xchacha20_poly1305_rtpsize'] });
    expect(ready.seq).toBe(1);

    // IP discovery over UDP, exactly as VoiceUDPSocket.performIPDiscovery / parseLocalPacket.
    const udp = createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const reply = new Promise<Buffer>((r) => udp.once('message', (m) => r(m)));
    const req = Buffer.alloc(74);
    req.writeUInt16BE(1, 0);
    req.writeUInt16BE(70, 2);
    req.writeUInt32BE(ready.d.ssrc as number, 4);
    udp.send(req, ready.d.port as number, '127.0.0.1');
    const res = await reply;
    expect(res.length).toBe(74);
    expect(res.readUInt16BE(0)).toBe(2);
    expect(res.readUInt32BE(4)).toBe(ready.d.ssrc);
    expect(res.subarray(8, res.indexOf(0, 8)).toString()).toBe('127.0.0.1');
    expect(res.readUInt16BE(72)).toBe(udp.address().port);
    udp.close();

    c.ws.send(JSON.stringify({ op: 1, d: { protocol: 'udp', data: { address: '127.0.0.1', port: 1, mode: 'aead_aes256_gcm_rtpsize' } } }));
    const desc = await c.next(4);
    expect(desc.d).toMatchObject({ mode: 'aead_aes256_gcm_rtpsize', dave_protocol_version: 0 });
    expect(desc.d.secret_key).toHaveLength(32);
    expect(desc.seq).toBe(2);
    expect(voice.session(GUILD)).toMatchObject({ ready: true, connected: true });
    c.ws.close();
  });

  it('refuses a wrong token (4004), a frame before identify (4003), bad JSON (4002) and an unknown mode (4016)', async () => {
    const { token } = voice.openSession({ guildId: GUILD, channelId: '1300000000000000001', botUserId: BOT, sessionId: 's2' });
    const errors: string[] = [];
    voice.events.on('protocolError', (e: { message: string }) => errors.push(e.message));

    const a = await connect(voice);
    a.ws.send(JSON.stringify({ op: 0, d: { server_id: GUILD, user_id: BOT, session_id: 's2', token: 'wrong', max_dave_protocol_version: 1 } }));
    expect(await a.closed).toBe(4004);

    const b = await connect(voice);
    b.ws.send(JSON.stringify({ op: 1, d: {} }));
    expect(await b.closed).toBe(4003);

    const c = await connect(voice);
    c.ws.send('{not json');
    expect(await c.closed).toBe(4002);

    const d = await connect(voice);
    d.ws.send(JSON.stringify({ op: 0, d: { server_id: GUILD, user_id: BOT, session_id: 's2', token, max_dave_protocol_version: 0 } }));
    await d.next(2);
    d.ws.send(JSON.stringify({ op: 1, d: { protocol: 'udp', data: { address: '127.0.0.1', port: 1, mode: 'xsalsa20_poly1305' } } }));
    expect(await d.closed).toBe(4016);
    expect(errors).toHaveLength(4);
    expect(errors.join('\n')).toMatch(/wrong token[\s\S]*before identify[\s\S]*invalid JSON[\s\S]*encryption mode/);
  });

  it('a DAVE v1 server closes a client without DAVE with 4017', async () => {
    const v1 = await startVoiceServer({ dave: 'v1' });
    try {
      const { token } = v1.openSession({ guildId: GUILD, channelId: '1300000000000000001', botUserId: BOT, sessionId: 's3' });
      const c = await new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`wss://${v1.endpoint}/?v=8`, { ca: v1.caCertPem });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
      const closed = new Promise<number>((r) => c.on('close', (code) => r(code)));
      c.send(JSON.stringify({ op: 0, d: { server_id: GUILD, user_id: BOT, session_id: 's3', token, max_dave_protocol_version: 0 } }));
      expect(await closed).toBe(4017);
    } finally {
      await v1.stop();
    }
  });
});
