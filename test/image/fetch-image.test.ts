/**
 * fetchImage against real local HTTP servers (node:http, and raw TCP where a well-behaved server
 * library would refuse to lie): every bound is checked from the server's side too.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchImage, FetchImageError, ImageError, prepareImage } from '../../src/image/index.js';
import { noise, png } from './fixtures.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A raw TCP "HTTP server": writes exactly what it is told, lies included. */
async function serveRaw(onSocket: (socket: net.Socket) => void): Promise<string> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    // Wait for the request head before answering, as a server does.
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        s.off('data', onData);
        onSocket(s);
      }
    };
    s.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function failure(p: Promise<unknown>): Promise<FetchImageError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof FetchImageError) return err;
    throw err;
  }
  throw new Error('expected a FetchImageError');
}

/** Writes `total` bytes in 64 KiB chunks, honouring backpressure; resolves with what was written. */
function stream(res: ServerResponse | net.Socket, total: number): Promise<number> {
  return new Promise((resolve) => {
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const done = (): void => resolve(written);
    res.once('close', done);
    const pump = (): void => {
      while (written < total && !res.destroyed) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      if (written >= total) res.end();
    };
    pump();
  });
}

describe('fetchImage', () => {
  it('takes the type from the bytes: a PNG labelled text/plain is a PNG', async () => {
    const body = await png(120, 80);
    const url = await serve((_req, res) => res.writeHead(200, { 'Content-Type': 'text/plain' }).end(body));
    const got = await fetchImage(`${url}/picture.txt`);
    expect(got.info).toEqual({ type: 'image/png', width: 120, height: 80 });
    expect(got.declaredType).toBe('text/plain');
    expect(got.bytes.equals(body)).toBe(true);
  });

  it('refuses a non-image labelled image/png', async () => {
    const url = await serve((_req, res) => res.writeHead(200, { 'Content-Type': 'image/png' }).end('<html><body>Not found</body></html>'));
    expect((await failure(fetchImage(`${url}/cat.png`))).reason).toBe('not-an-image');
  });

  it('refuses an honest Content-Length above the cap without reading the body', async () => {
    let written: Promise<number> | undefined;
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': String(64 * 1024 * 1024) });
      written = stream(res, 64 * 1024 * 1024);
    });
    const t0 = Date.now();
    expect((await failure(fetchImage(url, { maxBytes: 1024 * 1024 }))).reason).toBe('too-large');
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await written).toBeLessThan(64 * 1024 * 1024); // the server was cut off
  });

  it('enforces the cap while streaming when there is no Content-Length', async () => {
    const header = await png(10, 10);
    let written: Promise<number> | undefined;
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'image/png' }); // chunked: size unknown up front
      res.write(header);
      written = stream(res, 256 * 1024 * 1024);
    });
    const err = await failure(fetchImage(url, { maxBytes: 1024 * 1024 }));
    expect(err.reason).toBe('too-large');
    // Far less than the 256 MiB on offer reached the socket: reading stopped at the cap
    // (what is left is the loopback socket buffers).
    expect(await written).toBeLessThan(64 * 1024 * 1024);
  });

  it('never reads past a lying Content-Length that is under the cap', async () => {
    const real = await noise(600, 600).png().toBuffer(); // a valid header, then far more bytes than declared
    const url = await serveRaw((s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n`);
      s.write(real);
      void stream(s, 32 * 1024 * 1024); // …and keeps sending long after the declared 1000 bytes
    });
    const got = await fetchImage(url, { maxBytes: 512 * 1024 });
    expect(got.bytes.length).toBe(1000);
    expect(got.info.type).toBe('image/png');
    expect(real.length).toBeGreaterThan(1000);
    // …and what arrived is a cut-off image, which preparation refuses instead of half-decoding.
    await expect(prepareImage(got.bytes)).rejects.toBeInstanceOf(ImageError);
  });

  it('treats a body shorter than its Content-Length as a failed download, not a short image', async () => {
    const body = await png(50, 50);
    const url = await serveRaw((s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: ${body.length + 5000}\r\n\r\n`);
      s.end(body);
    });
    expect((await failure(fetchImage(url))).reason).toBe('network');
  });

  it('gives up on a slow body at the deadline', async () => {
    const header = await png(10, 10);
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': String(header.length + 1000) });
      res.write(header);
      const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(Buffer.alloc(10))), 100);
      res.once('close', () => clearInterval(t));
    });
    const t0 = Date.now();
    expect((await failure(fetchImage(url, { timeoutMs: 600 }))).reason).toBe('timeout');
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(550);
    expect(took).toBeLessThan(3000);
  });

  it('gives up on a server that never answers', async () => {
    const url = await serve(() => undefined);
    expect((await failure(fetchImage(url, { timeoutMs: 300 }))).reason).toBe('timeout');
  });

  it('reports HTTP errors with their status', async () => {
    const url = await serve((_req, res) => res.writeHead(404).end('gone'));
    const err = await failure(fetchImage(url));
    expect([err.reason, err.status]).toEqual(['http-status', 404]);
  });

  it('follows redirects it is allowed to, and checks every hop', async () => {
    const body = await png(20, 10);
    const url = await serve((req, res) => {
      if (req.url === '/a') return void res.writeHead(302, { Location: '/b' }).end();
      if (req.url === '/b') return void res.writeHead(200).end(body);
      if (req.url === '/away') return void res.writeHead(301, { Location: 'http://evil.invalid/x.png' }).end();
      if (req.url === '/loop') return void res.writeHead(302, { Location: '/loop' }).end();
      res.writeHead(404).end();
    });
    const allowLocal = (u: URL) => u.hostname === '127.0.0.1';
    expect((await fetchImage(`${url}/a`, { allowUrl: allowLocal })).redirects).toBe(1);
    expect((await failure(fetchImage(`${url}/away`, { allowUrl: allowLocal }))).reason).toBe('forbidden-url');
    expect((await failure(fetchImage(`${url}/loop`))).reason).toBe('http-status');
    expect((await failure(fetchImage(`${url}/b`, { allowUrl: () => false }))).reason).toBe('forbidden-url');
  });

  it('fetches http(s) only, without credentials', async () => {
    expect((await failure(fetchImage('file:///etc/passwd'))).reason).toBe('bad-url');
    expect((await failure(fetchImage('data:image/png;base64,AAAA'))).reason).toBe('bad-url');
    expect((await failure(fetchImage('http://user:pw@127.0.0.1/x.png'))).reason).toBe('bad-url');
    expect((await failure(fetchImage('not a url'))).reason).toBe('bad-url');
  });

  it('can be cancelled', async () => {
    const url = await serve(() => undefined);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    expect((await failure(fetchImage(url, { signal: ac.signal }))).reason).toBe('aborted');
  });
});
