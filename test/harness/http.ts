/** Small loopback HTTP helpers for tests that probe the bot's health server. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A TCP port that was free a moment ago (for a child process to bind). */
export async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** GET http://127.0.0.1:port/path: status, body and content type. */
export function httpGet(port: number, p: string): Promise<{ status: number; body: string; contentType: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, contentType: String(res.headers['content-type'] ?? '') }));
      })
      .on('error', reject);
  });
}
