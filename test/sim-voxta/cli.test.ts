import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';

describe('voxta-sim CLI (npm run sim:voxta)', () => {
  it('starts, prints its URL, serves with the API key, and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'sim/voxta/main.ts', '--port', '0', '--api-key', 'cli-key', '--quiet'], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no URL printed; output: ${out}`)), 15_000);
        child.stdout.on('data', () => {
          const m = out.match(/listening on (http:\/\/[\d.]+:\d+) \(API key required\)/);
          if (m?.[1]) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        });
      });
      expect((await fetch(`${url}/api/characters`)).status).toBe(401);
      const res = await fetch(`${url}/api/characters`, { headers: { Authorization: 'Bearer cli-key' } });
      expect(((await res.json()) as { characters: unknown[] }).characters).toHaveLength(4);
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
      expect(out).not.toContain('cli-key');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('refuses a bad flag value with a clear message and exit code 2', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'sim/voxta/main.ts', '--port', 'abc'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(err).toContain('--port expects a non-negative integer, got "abc"');
  });
});
