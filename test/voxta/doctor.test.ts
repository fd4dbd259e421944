import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { VoxtaSim } from '../../sim/voxta/index.js';
import { newSim } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const KEY = 'doctor-key-0123456789';
const TOKEN = 'MTA5.doctor-token_for.tests-only-0123456789';

let sims: VoxtaSim[] = [];
let servers: Server[] = [];
afterEach(async () => {
  for (const s of sims) await s.close();
  for (const s of servers) await new Promise((r) => s.close(r));
  sims = [];
  servers = [];
});

function runDoctor(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/doctor.ts'], {
      cwd: ROOT,
      // Only what we pass: never the developer's own .env values (dotenv does not override these).
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DISCORD_TOKEN: '', VOXTA_API_KEY: '', LOG_LEVEL: '', DISCORD_API_URL: 'http://127.0.0.1:9', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A stand-in for Discord's `GET /v10/users/@me` that knows one token. */
async function fakeDiscordApi(): Promise<string> {
  const server = createServer((req, res) => {
    if (req.url === '/api/v10/users/@me' && req.headers.authorization === `Bot ${TOKEN}`) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: '123456789012345678', username: 'VoxtaBot', bot: true }));
    } else if (req.url !== '/api/v10/users/@me') {
      res.writeHead(404).end('Not Found');
    } else {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ message: '401: Unauthorized', code: 0 }));
    }
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no port');
  return `http://127.0.0.1:${addr.port}/api`;
}

describe('npm run doctor', () => {
  it('reports a healthy set-up and exits 0', async () => {
    const sim = await newSim({ apiKey: KEY });
    sims.push(sim);
    const api = await fakeDiscordApi();
    const r = await runDoctor({ VOXTA_URL: sim.url, VOXTA_API_KEY: KEY, DISCORD_TOKEN: TOKEN, DISCORD_API_URL: api });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Connected and authenticated: Voxta server 1\.0\.0-beta\.152-sim, API 2025-08/);
    expect(r.stdout).toMatch(/Speech services: text-to-speech configured, speech-to-text configured/);
    expect(r.stdout).toMatch(/Characters \(4\): Aria, Captain Holt, Mira, Vex/);
    expect(r.stdout).toMatch(/Discord token accepted: bot VoxtaBot/);
    expect(r.stdout).toMatch(/All checks passed/);
    expect(r.stdout + r.stderr).not.toContain(KEY);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  }, 30_000);

  it('fails with one plain line for a wrong port', async () => {
    const sim = await newSim();
    const port = sim.port;
    await sim.close();
    const r = await runDoctor({ VOXTA_URL: `http://127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/refused the connection .*Check VOXTA_URL/);
  }, 30_000);

  it('fails with one plain line for a wrong API key', async () => {
    const sim = await newSim({ apiKey: KEY });
    sims.push(sim);
    const r = await runDoctor({ VOXTA_URL: sim.url, VOXTA_API_KEY: 'wrong-key-1234567' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/refused the credentials \(HTTP 401\): check VOXTA_API_KEY/);
    expect(r.stderr).not.toContain('wrong-key-1234567');
  }, 30_000);

  it('fails for a URL that is not a Voxta server, and for a refused Discord token', async () => {
    const api = await fakeDiscordApi(); // an HTTP server without a hub
    const notVoxta = await runDoctor({ VOXTA_URL: api.replace(/\/api$/, '') });
    expect(notVoxta.code).toBe(1);
    expect(notVoxta.stderr).toMatch(/No Voxta hub at|is VOXTA_URL the Voxta server/);

    const sim = await newSim();
    sims.push(sim);
    const badToken = await runDoctor({ VOXTA_URL: sim.url, DISCORD_TOKEN: 'MTA5.another-token_that.is-not-known-0000', DISCORD_API_URL: api });
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toMatch(/Discord refused DISCORD_TOKEN \(HTTP 401\)/);
    expect(badToken.stdout).toMatch(/Characters \(4\)/); // the Voxta part still reported first
  }, 40_000);

  it('names a malformed setting', async () => {
    const r = await runDoctor({ VOXTA_URL: 'ftp://nope' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/VOXTA_URL must start with http/);
  }, 30_000);
});
