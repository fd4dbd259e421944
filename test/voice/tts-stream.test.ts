/**
 * Progressive TTS download against a real local HTTP server that writes the WAV slowly, the way
 * a TTS engine synthesising while it answers would.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { VoxtaEndpoint } from '../../src/voxta/endpoint.js';
import { openSpeech, progressivePackets, TtsHttpError } from '../../src/voice/tts-stream.js';

let server: http.Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

function wavHeader(rate: number, dataBytes: number, extraChunk = false): Buffer {
  const list = extraChunk ? Buffer.concat([Buffer.from('LIST'), Buffer.from([4, 0, 0, 0]), Buffer.from('INFO')]) : Buffer.alloc(0);
  const h = Buffer.alloc(36);
  h.write('RIFF', 0);
  h.writeUInt32LE(dataBytes === 0xffffffff ? 0xffffffff : 36 + list.length + dataBytes, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  const d = Buffer.alloc(8);
  d.write('data', 0);
  d.writeUInt32LE(dataBytes, 4);
  return Buffer.concat([h, list, d]);
}

function tonePcm(rate: number, ms: number, hz = 440): Buffer {
  const n = Math.round((rate * ms) / 1000);
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / rate)), i * 2);
  return b;
}

/** A local HTTP server answering every request with `handler`. */
async function serve(handler: (res: http.ServerResponse) => Promise<void> | void): Promise<VoxtaEndpoint> {
  server = http.createServer((req, res) => void handler(res));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return new VoxtaEndpoint({ url: `http://127.0.0.1:${port}/` });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('openSpeech / progressivePackets', () => {
  it('hands a clip over after its header and first samples, with the true duration, and keeps encoding as the rest arrives', async () => {
    const rate = 24000;
    const pcm = tonePcm(rate, 1000);
    const cut = 24000 * 2 * 0.2; // the first 200 ms, then a pause, then the rest
    const endpoint = await serve(async (res) => {
      res.writeHead(200, { 'content-type': 'audio/x-wav' });
      res.write(wavHeader(rate, pcm.length, true));
      res.write(pcm.subarray(0, cut));
      await sleep(400);
      res.end(pcm.subarray(cut));
    });
    const clip = await openSpeech(endpoint, '/api/tts/gens/x', new AbortController().signal);
    // Handed over before the second part was even sent, yet with the whole clip's duration.
    expect(clip.complete).toBe(false);
    expect(clip.durationSec).toBeCloseTo(1.0, 6);
    const src = progressivePackets(clip);
    let early = 0;
    for (let p = src.next(); p; p = src.next()) early++;
    expect(early).toBeGreaterThanOrEqual(8); // ≈ 200 ms of packets ready at once
    expect(src.next()).toBeUndefined(); // not yet: more is coming
    await new Promise<void>((r) => src.wait!(r));
    await new Promise<void>((r) => (clip.complete ? r() : clip.onProgress(() => r())));
    let late = 0;
    for (let p = src.next(); p !== null; p = src.next()) {
      if (p === undefined) {
        await new Promise<void>((r) => src.wait!(r));
        continue;
      }
      late++;
    }
    src.close();
    // 1 s = 50 frames, plus at most one flushing the encoder's look-ahead.
    expect(early + late).toBeGreaterThanOrEqual(50);
    expect(early + late).toBeLessThanOrEqual(51);
  });

  it('a streamed WAV without a size is read to the end first (its duration is only known then)', async () => {
    const rate = 16000;
    const pcm = tonePcm(rate, 300);
    const endpoint = await serve(async (res) => {
      res.writeHead(200, { 'content-type': 'audio/x-wav' });
      res.write(wavHeader(rate, 0xffffffff));
      res.write(pcm.subarray(0, 3200));
      await sleep(150);
      res.end(pcm.subarray(3200));
    });
    const clip = await openSpeech(endpoint, '/x', new AbortController().signal);
    expect(clip.complete).toBe(true);
    expect(clip.durationSec).toBeCloseTo(0.3, 6);
  });

  it('HTTP errors and non-WAV bodies reject with a clear error', async () => {
    let status = 404;
    const endpoint = await serve((res) => {
      if (status !== 200) {
        res.writeHead(status).end('nope');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>not audio</html>');
    });
    await expect(openSpeech(endpoint, '/x', new AbortController().signal)).rejects.toBeInstanceOf(TtsHttpError);
    status = 200;
    await expect(openSpeech(endpoint, '/x', new AbortController().signal)).rejects.toMatchObject({ name: 'WavError' });
  });

  it('aborting stops the download', async () => {
    const endpoint = await serve(async (res) => {
      res.writeHead(200, { 'content-type': 'audio/x-wav' });
      await sleep(2000);
      res.end();
    });
    const ac = new AbortController();
    const p = openSpeech(endpoint, '/x', ac.signal);
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toBeDefined();
  });

  it('a RIFF whose sample data never starts is refused after 64 KiB, not read forever', async () => {
    let written = 0;
    const endpoint = await serve((res) => {
      res.writeHead(200, { 'content-type': 'audio/x-wav' });
      // A RIFF/WAVE with a "JUNK" chunk that claims 1 GiB: no 'data' chunk in sight.
      const head = Buffer.alloc(20);
      head.write('RIFF', 0);
      head.writeUInt32LE(0xffffffff, 4);
      head.write('WAVE', 8);
      head.write('JUNK', 12);
      head.writeUInt32LE(1024 * 1024 * 1024, 16);
      res.write(head);
      const tick = setInterval(() => {
        if (res.destroyed || written > 8 * 1024 * 1024) return clearInterval(tick);
        written += 32 * 1024;
        res.write(Buffer.alloc(32 * 1024));
      }, 1);
    });
    await expect(openSpeech(endpoint, '/x', new AbortController().signal)).rejects.toThrow(/no WAV sample data within the first 64 KiB/);
    expect(written).toBeLessThan(2 * 1024 * 1024);
  });
});
