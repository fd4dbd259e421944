/**
 * Every body the bot reads from Voxta has a size cap, enforced while it streams in (issue:
 * "unbounded reads"): a declared length over the cap is refused before reading, and a body without
 * a length that grows past it is cut off as soon as it does — the server sees the download aborted.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyTooLargeError, readBounded } from '../../src/voxta/http-body.js';
import { VoxtaEndpoint } from '../../src/voxta/endpoint.js';
import { VoxtaRest } from '../../src/voxta/rest.js';

let server: http.Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A server whose handler writes `chunks` (each after the client read the previous ones), and records whether the client went away early. */
async function serve(handler: (res: http.ServerResponse, req: http.IncomingMessage) => void): Promise<string> {
  server = http.createServer((req, res) => handler(res, req));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
}

describe('readBounded', () => {
  it('returns a body within the cap whole', async () => {
    const url = await serve((res) => res.end(Buffer.alloc(1000, 7)));
    const bytes = await readBounded(await fetch(url), 1000, 'the test body');
    expect(bytes.byteLength).toBe(1000);
    expect(bytes.every((b) => b === 7)).toBe(true);
  });

  it('refuses a declared length over the cap before reading it', async () => {
    let written = 0;
    const url = await serve((res) => {
      res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) });
      // Write slowly: the client must refuse on the header, not after buffering.
      const tick = setInterval(() => {
        if (res.destroyed || written >= 10 * 1024 * 1024) return clearInterval(tick);
        written += 64 * 1024;
        res.write(Buffer.alloc(64 * 1024));
      }, 5);
    });
    const started = Date.now();
    await expect(readBounded(await fetch(url), 1024 * 1024, 'the test body')).rejects.toBeInstanceOf(BodyTooLargeError);
    expect(written).toBeLessThan(10 * 1024 * 1024);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('cuts off a body without a length as soon as it passes the cap, and the server sees the download aborted', async () => {
    let written = 0;
    let clientGone = false;
    const url = await serve((res, req) => {
      req.socket.on('close', () => (clientGone = true));
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked: no length
      const tick = setInterval(() => {
        if (res.destroyed || clientGone) return clearInterval(tick);
        written += 16 * 1024;
        res.write(Buffer.alloc(16 * 1024));
      }, 2);
    });
    await expect(readBounded(await fetch(url), 256 * 1024, 'the test body')).rejects.toThrow(/larger than the 256 KiB/);
    await new Promise((r) => setTimeout(r, 100));
    expect(clientGone).toBe(true);
    // It stopped reading close to the cap, not after the server gave up.
    expect(written).toBeLessThan(2 * 1024 * 1024);
  });

  it('is what VoxtaRest uses: an oversized JSON list is a clear error, not a hang or an out-of-memory', async () => {
    const url = await serve((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"characters":[');
      const tick = setInterval(() => {
        if (res.destroyed) return clearInterval(tick);
        res.write(`${JSON.stringify({ id: 'x'.repeat(36), name: 'y'.repeat(1000) })},`);
      }, 1);
    });
    const rest = new VoxtaRest(new VoxtaEndpoint({ url }));
    await expect(rest.listCharacters({ maxBytes: 64 * 1024 })).rejects.toThrow(/GET \/api\/characters is larger than the 64 KiB the bot accepts/);
  });
});
