/**
 * Voxta vision through the real client (VoxtaChatSession on @microsoft/signalr, fetch uploads)
 * against the simulated server: capability, capture requests, uploads, cancels, `/capture`,
 * inline attachments, and a server without vision. The simulator's replies name the dimensions
 * it decoded (libvips) and a hash of the bytes it received, so "the character saw it" is checked
 * against what the client really sent.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, type VoxtaSim, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import { prepareImage } from '../../src/image/index.js';
import type { VoxtaChatSession } from '../../src/voxta/chat-session.js';
import { VoxtaEndpoint } from '../../src/voxta/endpoint.js';
import { VoxtaAuthError, VoxtaHttpError, VoxtaInputError } from '../../src/voxta/errors.js';
import { parseServerMessage, type VisionCaptureRequestMessage } from '../../src/voxta/messages.js';
import {
  attachVisionResponder,
  captureCommand,
  imageAttachment,
  uploadVisionCapture,
  type VisionImage,
  type VisionResponder,
} from '../../src/voxta/vision.js';
import { newSim, newSession, waitFor } from './helpers.js';

const KEY = 'vx-vision-key-0123456789';
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(simExtra: VoxtaSimOptions = {}, vision: { sources: Array<'Eyes' | 'Screen'> } | null = { sources: ['Screen'] }) {
  const sim = await newSim({ apiKey: KEY, vision: { enabled: true }, ...simExtra });
  cleanups.push(() => sim.close());
  const session = newSession(sim, { apiKey: KEY, audioInput: 'None', ...(vision ? { vision } : {}) });
  cleanups.push(async () => {
    await session.close();
  });
  await session.connect();
  await session.startChat({ characterId: ARIA_ID });
  return { sim, session };
}

function responder(session: VoxtaChatSession, provide: Parameters<typeof attachVisionResponder>[1], opts?: Parameters<typeof attachVisionResponder>[2]): VisionResponder {
  const r = attachVisionResponder(session, provide, opts);
  cleanups.push(() => r.close());
  return r;
}

/** Sends, and resolves with the full text of the next reply. */
async function reply(session: VoxtaChatSession, send: () => void): Promise<string> {
  const parts: string[] = [];
  const on = (c: { text: string }) => parts.push(c.text);
  session.on('replyChunk', on);
  try {
    const ended = waitFor(session, 'replyEnd', () => true, 8000);
    send();
    await ended;
    return parts.join(' ');
  } finally {
    session.off('replyChunk', on);
  }
}

async function photo(width: number, height: number): Promise<VisionImage> {
  const raw = await sharp({ create: { width, height, channels: 3, background: 'black', noise: { type: 'gaussian', mean: 120, sigma: 40 } } })
    .jpeg()
    .toBuffer();
  const p = await prepareImage(raw, { maxDimension: 512 });
  return { bytes: p.bytes, contentType: p.type, fileName: 'cat.jpg', label: 'cat.jpg' };
}

const hash8 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 8);
const proof = (img: VisionImage, w: number, h: number) => `I see your picture: ${w}x${h} ${img.contentType}, sha256 ${hash8(img.bytes)}.`;

describe('vision capability', () => {
  it('is declared only when the session is given vision sources', async () => {
    const off = await setup({}, null);
    expect(off.sim.connections()[0]!.capabilities).not.toHaveProperty('visionCapture');
    const on = await setup({}, { sources: ['Screen', 'Eyes', 'Screen'] });
    expect(on.sim.connections()[0]!.capabilities).toMatchObject({ visionCapture: 'PostImage', visionSources: ['Screen', 'Eyes'] });
  });

  it('parses visionCaptureRequest and drops a malformed one', () => {
    const ok = parseServerMessage({ $type: 'visionCaptureRequest', sessionId: 's', visionCaptureRequestId: 'r', source: 'Screen' });
    expect(ok).toMatchObject({ $type: 'visionCaptureRequest', visionCaptureRequestId: 'r', source: 'Screen' });
    expect(parseServerMessage({ $type: 'visionCaptureRequest', sessionId: 's', source: 'Screen' })).toBeUndefined();
  });
});

describe('answering capture requests', () => {
  it('uploads the picture when Voxta asks, and the reply proves which bytes arrived', async () => {
    const { sim, session } = await setup();
    const img = await photo(1024, 768);
    const requests: VisionCaptureRequestMessage[] = [];
    const r = responder(session, (req) => {
      requests.push(req);
      return img;
    });
    const text = await reply(session, () => session.send('Alice: what do you think of my picture?'));

    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ sessionId: session.sessionId, source: 'Screen' });
    expect(text).toContain(proof(img, 512, 384));
    expect(sim.visionUploads).toHaveLength(1);
    expect(sim.visionUploads[0]).toMatchObject({ via: 'capture', source: 'Screen', label: 'cat.jpg', fileName: 'cat.jpg', contentType: 'image/jpeg', width: 512, height: 384 });
    expect(Buffer.from(img.bytes).equals(sim.visionUploads[0]!.bytes)).toBe(true);
    expect(sim.visionRequests[0]).toMatchObject({ outcome: 'uploaded', trigger: 'mention' });
    expect(r.stats).toEqual({ requests: 1, uploaded: 1, cancelled: 0, failed: 0 });
  });

  it('cancels at once when there is nothing to show, so Voxta does not wait its 30 s', async () => {
    const { sim, session } = await setup();
    const r = responder(session, () => undefined);
    const t0 = Date.now();
    const text = await reply(session, () => session.send('Alice: look!'));
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(text).not.toContain('I see your picture');
    expect(sim.visionRequests[0]!.outcome).toBe('cancelled');
    expect(sim.visionUploads).toHaveLength(0);
    expect(r.stats).toEqual({ requests: 1, uploaded: 0, cancelled: 1, failed: 0 });
  });

  it('cancels when the provider fails or gives something Voxta is not sent', async () => {
    const { sim, session } = await setup();
    let call = 0;
    const r = responder(session, () => {
      call++;
      if (call === 1) throw new Error('download failed');
      return { bytes: Buffer.from('GIF89a...'), contentType: 'image/gif' as never };
    });
    await reply(session, () => session.send('Alice: a picture'));
    await reply(session, () => session.send('Alice: another picture'));
    expect(sim.visionRequests.map((q) => q.outcome)).toEqual(['cancelled', 'cancelled']);
    expect(r.stats).toEqual({ requests: 2, uploaded: 0, cancelled: 2, failed: 2 });
  });

  it('answers at most maxInFlight requests at once and gives a slow provider a deadline', async () => {
    const { sim, session } = await setup();
    const r = responder(session, () => new Promise<undefined>(() => undefined), { maxInFlight: 1, timeoutMs: 300 });
    const first = waitFor(session, 'replyEnd', () => true, 8000);
    session.send('Alice: first picture');
    session.send('Alice: second picture');
    await first;
    await sim.waitFor(() => sim.visionRequests.length === 2 && sim.visionRequests.every((q) => q.outcome === 'cancelled'), 5000, 'both requests cancelled');
    expect(r.stats).toMatchObject({ requests: 2, cancelled: 2, failed: 1, uploaded: 0 });
  });
});

describe('showing a posted picture', () => {
  it('/capture then the text: one user message, answered with the picture', async () => {
    const { sim, session } = await setup({ vision: { enabled: true, askOnMention: false } });
    const img = await photo(300, 200);
    responder(session, () => img);
    const text = await reply(session, () => {
      session.send(captureCommand('Screen'));
      session.send('Alice: my cat');
    });
    expect(text).toContain(proof(img, 300, 200));
    expect(sim.visionRequests[0]).toMatchObject({ trigger: 'command', source: 'Screen', outcome: 'uploaded' });
    const users = sim.chats()[0]!.messages.filter((m) => m.role === 'User');
    expect(users.map((m) => m.text)).toEqual(['Alice: my cat']); // the text joined the picture's message
    expect(session.stats.inFlight).toBe(0); // the echo confirmed both sends
  });

  it('inline attachment: the same user message carries the picture', async () => {
    const { sim, session } = await setup({ vision: { enabled: true, askOnMention: false } });
    const img = await photo(200, 150);
    const text = await reply(session, () => session.send('Alice: this one', { attachments: [imageAttachment(img)] }));
    expect(text).toContain(proof(img, 200, 150));
    expect(sim.visionUploads[0]).toMatchObject({ via: 'attachment', source: 'Attachment', fileName: 'cat.jpg', seen: true });
    const sent = sim.received.find((m) => m.payload.$type === 'send' && Array.isArray(m.payload.attachments))!;
    const a = (sent.payload.attachments as Array<Record<string, unknown>>)[0]!;
    expect(Object.keys(a)[0]).toBe('$type'); // Voxta deserialises polymorphically: $type first
    expect(a.base64Url).toMatch(/^data:image\/jpeg;base64,\/9j\//);
  });

  it('a picture alone (empty text) is a user message, not a trigger-reply', async () => {
    const { sim, session } = await setup({ vision: { enabled: true, askOnMention: false } });
    const img = await photo(64, 64);
    const text = await reply(session, () => session.send('', { attachments: [imageAttachment(img)] }));
    expect(text).toContain(proof(img, 64, 64));
    expect(() => session.send('  ')).toThrow(VoxtaInputError);
    expect(sim.visionUploads).toHaveLength(1);
  });
});

describe('a server without vision', () => {
  it('never asks, ignores /capture, and stores attachments unseen', async () => {
    const { sim, session } = await setup({ vision: { enabled: false } });
    const asked: unknown[] = [];
    session.on('visionCaptureRequest', (m) => asked.push(m));
    const img = await photo(80, 60);
    expect(await reply(session, () => session.send('Alice: look at this picture'))).not.toContain('I see');
    const errors: unknown[] = [];
    session.on('chatSessionError', (e) => errors.push(e));
    const after = await reply(session, () => {
      session.send(captureCommand('Screen'));
      session.send('Alice: and this one', { attachments: [imageAttachment(img)] });
    });
    expect(after).not.toContain('I see');
    expect(asked).toEqual([]);
    expect(errors).toEqual([]);
    expect(sim.visionRequests).toEqual([]);
    expect(sim.visionUploads.map((u) => [u.via, u.seen])).toEqual([['attachment', false]]);
  });
});

describe('uploadVisionCapture', () => {
  it('refuses what it must not send, before sending', async () => {
    const { sim, session } = await setup();
    const req = { sessionId: session.sessionId!, visionCaptureRequestId: 'x', source: 'Screen' as const };
    const big: VisionImage = { bytes: Buffer.alloc(5 * 1024 * 1024, 1), contentType: 'image/jpeg' };
    await expect(uploadVisionCapture(session.endpoint, req, big)).rejects.toBeInstanceOf(VoxtaInputError);
    await expect(uploadVisionCapture(session.endpoint, req, { bytes: Buffer.from('x'), contentType: 'image/webp' as never })).rejects.toBeInstanceOf(VoxtaInputError);
    expect(() => imageAttachment({ bytes: Buffer.alloc(600 * 1024, 1), contentType: 'image/jpeg' })).toThrow(VoxtaInputError);
    expect(sim.visionUploads).toHaveLength(0);
  });

  it('sends the credentials and reports Voxta’s answer as typed errors', async () => {
    const { sim, session } = await setup();
    const img = await photo(32, 32);
    const asked = waitFor<VisionCaptureRequestMessage>(session, 'visionCaptureRequest', () => true);
    session.send('Alice: picture');
    const req = await asked;
    const wrongKey = new VoxtaEndpoint({ url: sim.url, apiKey: 'wrong' });
    await expect(uploadVisionCapture(wrongKey, req, img)).rejects.toBeInstanceOf(VoxtaAuthError);
    const otherSession = uploadVisionCapture(session.endpoint, { ...req, sessionId: '00000000-0000-4000-8000-000000000000' }, img);
    await expect(otherSession).rejects.toMatchObject({ constructor: VoxtaHttpError, status: 404 });
    await uploadVisionCapture(session.endpoint, req, img); // the right key, session and id
    await expect(uploadVisionCapture(session.endpoint, req, img)).rejects.toMatchObject({ status: 404 }); // answered already
    expect(sim.visionUploads).toHaveLength(1);
  });
});
