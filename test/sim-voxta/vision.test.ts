/**
 * The simulated vision endpoints, driven by the real SignalR client for the hub side and by raw
 * node:http requests for the upload side (so malformed and oversized uploads can be made).
 */
import http from 'node:http';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, startVoxtaSim, type VoxtaSim, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import { connectAuthenticated, readReply, startChat, TEXT_CAPS, type HubClient, type Msg } from './helpers.js';

const KEY = 'vx-sim-vision-key-1';
const OTHER_KEY = 'vx-sim-vision-key-2';
const VISION_CAPS = { ...TEXT_CAPS, visionCapture: 'PostImage', visionSources: ['Screen'] };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(vision: VoxtaSimOptions['vision'] = {}): Promise<{ sim: VoxtaSim; c: HubClient; sessionId: string }> {
  const sim = await startVoxtaSim({ chunkDelayMs: 2, pingIntervalMs: 1000, apiKey: [KEY, OTHER_KEY], vision: { enabled: true, ...vision } });
  cleanups.push(() => sim.close());
  const c = await connectAuthenticated(sim, { token: KEY, capabilities: VISION_CAPS });
  cleanups.push(() => c.close());
  const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
  return { sim, c, sessionId };
}

/** Sends a user message that mentions a picture and resolves with the capture request. */
async function ask(c: HubClient, sessionId: string, text = 'look at this picture'): Promise<Msg> {
  const after = c.mark();
  await c.send({ $type: 'send', sessionId, text, doReply: true });
  return c.next('visionCaptureRequest', { after });
}

function multipart(parts: Array<{ name: string; filename?: string; type?: string; data: Buffer }>): { body: Buffer; contentType: string } {
  const boundary = `----vision-test-${Math.random().toString(36).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n`;
    if (p.type) head += `Content-Type: ${p.type}\r\n`;
    chunks.push(Buffer.from(`${head}\r\n`), p.data, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

interface RawResult {
  status: number;
  body: string;
}

/** A raw HTTP request; `chunked` streams the body without Content-Length. */
function raw(sim: VoxtaSim, method: string, path: string, opts: { body?: Buffer; contentType?: string; token?: string; chunked?: boolean } = {}): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.contentType) headers['Content-Type'] = opts.contentType;
    if (opts.body && !opts.chunked) headers['Content-Length'] = String(opts.body.length);
    const req = http.request(`${sim.url}${path}`, { method, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    if (opts.body && opts.chunked) {
      // 64 KiB at a time: the server must stop buffering at its limit, not after the whole body.
      for (let i = 0; i < opts.body.length; i += 65536) req.write(opts.body.subarray(i, i + 65536));
    } else if (opts.body) req.write(opts.body);
    req.end();
  });
}

const sendPath = (req: Msg, q: Record<string, string> = {}) =>
  `/api/vision/requests/${String(req.visionCaptureRequestId)}/send?${new URLSearchParams({ sessionId: String(req.sessionId), source: String(req.source), ...q })}`;

async function jpegBytes(w = 40, h = 30): Promise<Buffer> {
  return sharp({ create: { width: w, height: h, channels: 3, background: 'teal' } }).jpeg().toBuffer();
}

describe('simulated vision: capture requests and the upload endpoint', () => {
  it('accepts a multipart JPEG from the session owner and answers with its size and hash', async () => {
    const { sim, c, sessionId } = await setup();
    const req = await ask(c, sessionId);
    expect(req).toMatchObject({ $type: 'visionCaptureRequest', sessionId, source: 'Screen' });
    expect(Object.keys(req)[0]).toBe('$type');
    const jpg = await jpegBytes(40, 30);
    const after = c.mark();
    const { body, contentType } = multipart([{ name: 'file', filename: 'shot.jpg', type: 'image/jpeg', data: jpg }]);
    expect(await raw(sim, 'POST', sendPath(req, { label: 'screen' }), { body, contentType, token: KEY })).toMatchObject({ status: 200 });
    const { chunks } = await readReply(c, after);
    const text = chunks.map((m) => m.text).join(' ');
    expect(text).toMatch(/I see your picture: 40x30 image\/jpeg, sha256 [0-9a-f]{8}\./);
    expect(sim.visionUploads[0]).toMatchObject({ via: 'capture', label: 'screen', fileName: 'shot.jpg', width: 40, height: 30 });
    expect(sim.visionUploads[0]!.bytes.equals(jpg)).toBe(true);
  });

  it('enforces auth, ownership, method, source, part name and content type', async () => {
    const { sim, c, sessionId } = await setup();
    const req = await ask(c, sessionId);
    const jpg = await jpegBytes();
    const good = multipart([{ name: 'file', filename: 'a.jpg', type: 'image/jpeg', data: jpg }]);
    expect((await raw(sim, 'POST', sendPath(req), { ...good, token: undefined })).status).toBe(401);
    expect((await raw(sim, 'POST', sendPath(req), { ...good, token: OTHER_KEY })).status).toBe(404); // another user
    expect((await raw(sim, 'POST', sendPath(req, { sessionId: '00000000-0000-4000-8000-000000000000' }), { ...good, token: KEY })).status).toBe(404);
    expect((await raw(sim, 'GET', sendPath(req), { token: KEY })).status).toBe(405);
    expect((await raw(sim, 'POST', sendPath(req, { source: 'Eyes' }), { ...good, token: KEY })).status).toBe(400);
    const wrongName = multipart([{ name: 'image', filename: 'a.jpg', type: 'image/jpeg', data: jpg }]);
    expect((await raw(sim, 'POST', sendPath(req), { ...wrongName, token: KEY })).status).toBe(400);
    expect((await raw(sim, 'POST', sendPath(req), { body: jpg, contentType: 'image/jpeg', token: KEY })).status).toBe(415);
    const gif = await sharp({ create: { width: 4, height: 4, channels: 3, background: 'red' } }).gif().toBuffer();
    expect((await raw(sim, 'POST', sendPath(req), { ...multipart([{ name: 'file', filename: 'a.gif', type: 'image/gif', data: gif }]), token: KEY })).status).toBe(415);
    const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: 'red' } }).png().toBuffer();
    const lying = await raw(sim, 'POST', sendPath(req), { ...multipart([{ name: 'file', filename: 'a.jpg', type: 'image/jpeg', data: png }]), token: KEY });
    expect([lying.status, lying.body]).toEqual([415, 'The bytes are image/png, not the declared image/jpeg']);
    expect(sim.visionUploads).toHaveLength(0);
    // Still pending after all that: the owner's proper upload goes through.
    expect((await raw(sim, 'POST', sendPath(req), { ...good, token: KEY })).status).toBe(200);
    expect(sim.visionUploads).toHaveLength(1);
  });

  it('refuses oversized uploads with 413, declared or streamed, without keeping them', async () => {
    const { sim, c, sessionId } = await setup({ maxUploadBytes: 100 * 1024 });
    const req = await ask(c, sessionId);
    const huge = multipart([{ name: 'file', filename: 'big.jpg', type: 'image/jpeg', data: Buffer.alloc(3 * 1024 * 1024, 0xff) }]);
    expect((await raw(sim, 'POST', sendPath(req), { ...huge, token: KEY })).status).toBe(413);
    expect((await raw(sim, 'POST', sendPath(req), { ...huge, token: KEY, chunked: true })).status).toBe(413);
    expect(sim.visionUploads).toHaveLength(0);
    expect(sim.visionRequests[0]!.outcome).toBe('pending');
  });

  it('cancel (DELETE) releases the reply at once; the request is then gone', async () => {
    const { sim, c, sessionId } = await setup();
    const req = await ask(c, sessionId);
    const after = c.mark();
    expect((await raw(sim, 'DELETE', `/api/vision/requests/${String(req.visionCaptureRequestId)}?sessionId=${sessionId}`, { token: KEY })).status).toBe(200);
    const { chunks } = await readReply(c, after);
    expect(chunks.map((m) => m.text).join(' ')).not.toContain('I see');
    expect(sim.visionRequests[0]!.outcome).toBe('cancelled');
    const late = multipart([{ name: 'file', filename: 'a.jpg', type: 'image/jpeg', data: await jpegBytes() }]);
    expect((await raw(sim, 'POST', sendPath(req), { ...late, token: KEY })).status).toBe(404);
  });

  it('a request expires after captureTimeoutMs and the message is answered without a picture', async () => {
    const { sim, c, sessionId } = await setup({ captureTimeoutMs: 200 });
    const after = c.mark();
    await ask(c, sessionId);
    const { chunks } = await readReply(c, after, 3000);
    expect(chunks.map((m) => m.text).join(' ')).not.toContain('I see');
    expect(sim.visionRequests[0]!.outcome).toBe('expired');
  });

  it('asks only clients that declared PostImage for that source', async () => {
    const sim = await startVoxtaSim({ chunkDelayMs: 2, vision: { enabled: true } });
    cleanups.push(() => sim.close());
    const c = await connectAuthenticated(sim, { capabilities: { ...TEXT_CAPS, visionCapture: 'PostImage', visionSources: ['Eyes'] } });
    cleanups.push(() => c.close());
    const sessionId = (await startChat(c, ARIA_ID)).sessionId as string;
    let after = c.mark();
    await c.send({ $type: 'send', sessionId, text: '/capture Screen' }); // Screen not declared: ignored, as Voxta
    await c.send({ $type: 'send', sessionId, text: 'hello' });
    await readReply(c, after);
    expect(c.all('visionCaptureRequest', after)).toEqual([]);
    expect(c.all('chatSessionError', after)).toEqual([]);
    after = c.mark();
    await c.send({ $type: 'send', sessionId, text: '/capture' }); // default source: Eyes
    expect(await c.next('visionCaptureRequest', { after })).toMatchObject({ source: 'Eyes' });
  });

  it('closing the chat drops its pending requests', async () => {
    const { sim, c, sessionId } = await setup();
    await ask(c, sessionId);
    const after = c.mark();
    await c.send({ $type: 'stopChat', sessionId });
    await c.next('chatClosed', { after });
    expect(sim.visionRequests[0]!.outcome).toBe('closed');
  });
});
