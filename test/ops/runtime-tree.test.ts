/**
 * Container proof without a Docker engine: the runtime tree is assembled exactly as the
 * Dockerfile's last stage does it (`npm run build` → dist/, `npm ci --omit=dev`, nothing else),
 * then `node dist/src/index.js` is started in it as a NON-ROOT user (uid/gid 65534 "nobody", like
 * `USER node`: the tree is root-owned and read-only for it, only DATA_DIR is its own) against both
 * simulators, and must become ready, hear a voice channel and answer in text.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { assembleRuntime, compiledImports, type RuntimeTree } from '../../scripts/assemble-runtime.js';
import { startE2E, type E2EEnv } from '../harness/env.js';
import { freePort, httpGet } from '../harness/http.js';

/** We run as root here: drop to "nobody" like the image's `USER node`. Already unprivileged: stay so. */
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const RUNTIME_UID = isRoot ? 65534 : (process.getuid?.() ?? 65534);
const RUNTIME_GID = isRoot ? 65534 : (process.getgid?.() ?? 65534);

let env: E2EEnv | undefined;
let tree: RuntimeTree | undefined;
let child: ChildProcess | undefined;
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  await env?.close();
  env = undefined;
});
afterAll(async () => {
  if (tree) await rm(tree.root, { recursive: true, force: true });
});

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

/** The tree is assembled once per file (the slow part) and shared by the tests below. */
let assembling: Promise<RuntimeTree> | undefined;
function runtimeTree(): Promise<RuntimeTree> {
  assembling ??= assembleRuntime().then(async (t) => {
    runtimeNode = await nodeForRuntimeUser(t.root);
    return (tree = t);
  });
  return assembling;
}

/**
 * The Node binary the runtime user runs (the image's /usr/local/bin/node). This test's own Node may
 * sit in a directory the runtime user cannot enter (CI installs it into its checkout, under a 0700
 * temp dir): then a copy inside the runtime tree's root is used.
 */
let runtimeNode = process.execPath;
async function nodeForRuntimeUser(root: string): Promise<string> {
  if (!isRoot || reachableByOthers(process.execPath)) return process.execPath;
  const dir = path.join(root, 'node', 'bin');
  await mkdir(dir, { recursive: true });
  const copy = path.join(dir, 'node');
  await copyFile(process.execPath, copy);
  await chmod(copy, 0o755);
  for (let d = dir; d.startsWith(root) && d !== root; d = path.dirname(d)) await chmod(d, 0o755);
  return copy;
}

/** Whether every directory above `file` lets others through and `file` lets others execute it. */
function reachableByOthers(file: string): boolean {
  if ((statSync(file).mode & 0o001) === 0) return false;
  for (let d = path.dirname(file); ; d = path.dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (d === path.dirname(d)) return true;
  }
}

/** Runs a command in the runtime tree as the runtime user; resolves with its exit code and output. */
function runAsRuntimeUser(cmd: string, args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, uid: RUNTIME_UID, gid: RUNTIME_GID, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.once('error', reject);
    p.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('container runtime tree (Dockerfile last stage, non-root, against the simulators)', () => {
  it(
    'builds, installs production dependencies only, and runs as a non-root user until ready, in voice and answering',
    async () => {
      const t = await runtimeTree();
      const { appDir, root } = t;
      const pkg = JSON.parse(await readFile(path.join(appDir, 'package.json'), 'utf8')) as {
        dependencies: Record<string, string>;
        devDependencies: Record<string, string>;
      };

      // --- what the image contains ---------------------------------------------------------
      expect(existsSync(path.join(appDir, t.entry))).toBe(true);
      // No dev-only package was installed: every package the lockfile marks `dev` (vitest,
      // typescript, their dependencies) is absent. (@types/ws and @types/node are listed as
      // devDependencies but also required by discord.js, so npm installs them; that is fine.)
      const lock = JSON.parse(await readFile(path.join(appDir, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { dev?: boolean }>;
      };
      const devOnly = Object.entries(lock.packages).filter(([p, info]) => p.startsWith('node_modules/') && info.dev === true);
      expect(devOnly.length).toBeGreaterThan(10);
      expect(devOnly.filter(([p]) => existsSync(path.join(appDir, p))).map(([p]) => p)).toEqual([]);
      expect(Object.keys(pkg.devDependencies)).toContain('vitest');
      expect(t.installedPackages).not.toContain('vitest');
      expect(t.installedPackages).not.toContain('typescript');
      // Every package the compiled code imports is a production dependency present in the tree,
      // and none of the dev-only tools (tsx runs the TypeScript sources in a checkout only).
      const imports = await compiledImports(path.join(appDir, 'dist'));
      const notProd = imports.packages.filter((p) => !(p in pkg.dependencies));
      expect(notProd).toEqual([]);
      expect(imports.packages.filter((p) => !existsSync(path.join(appDir, 'node_modules', p)))).toEqual([]);
      expect(imports.packages).not.toContain('tsx');
      expect(imports.packages).not.toContain('vitest');
      expect(imports.packages).not.toContain('typescript');
      // Relative imports are compiled `.js` files that exist (no `.ts` suffix, no path outside dist/).
      const broken = imports.relative.filter((r) => {
        const target = path.resolve(path.dirname(r.from), r.spec);
        return !r.spec.endsWith('.js') || !existsSync(target) || !target.startsWith(path.join(appDir, 'dist') + path.sep);
      });
      expect(broken).toEqual([]);

      // --- run it as in the image ----------------------------------------------------------
      const apiKey = 'vx-runtime-secret-3f9c2a7b51d4';
      env = await startE2E({ discord: { dave: 'v1' }, voxta: { apiKey } });
      const e = env;
      e.admin.joinVoice(e.voice.id);
      const dataDir = path.join(root, 'data');
      await mkdir(dataDir, { mode: 0o755 });
      if (isRoot) await chown(dataDir, RUNTIME_UID, RUNTIME_GID); // `chown node:node /data`
      const caPath = path.join(root, 'discord-sim-ca.pem'); // readable by the runtime user
      await copyFile(e.discord.caCertPath, caPath);
      const port = await freePort();
      const lines: string[] = [];
      child = spawn(runtimeNode, [t.entry], {
        cwd: appDir,
        uid: RUNTIME_UID,
        gid: RUNTIME_GID,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: '/nonexistent',
          // The image's ENV, plus what a user puts in .env / compose.
          NODE_ENV: 'production',
          DATA_DIR: dataDir,
          HEALTH_PORT: String(port),
          HEALTH_HOST: '127.0.0.1',
          DISCORD_TOKEN: e.discord.token,
          DISCORD_API_URL: e.discord.restUrl,
          DISCORD_GUILD_ID: e.guild.id,
          VOXTA_URL: e.voxtaUrl,
          VOXTA_API_KEY: apiKey,
          LOG_LEVEL: 'debug',
          NODE_EXTRA_CA_CERTS: caPath,
        },
      });
      for (const s of [child.stdout!, child.stderr!]) createInterface({ input: s }).on('line', (l) => lines.push(l));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child!.once('exit', (code, signal) => r({ code, signal })));
      const output = () => lines.slice(-40).join('\n');

      try {
        // The process really runs as the unprivileged user.
        const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
        expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(RUNTIME_UID));
        expect(RUNTIME_UID).not.toBe(0);

        // The image's HEALTHCHECK command, verbatim, against the running process.
        const ready = await until('/readyz 200', 30_000, async () => {
          const r = await httpGet(port, '/readyz');
          return r.status === 200 ? r : undefined;
        });
        expect(JSON.parse(ready.body)).toMatchObject({ ready: true, discord: 'ready', voxta: 'reachable' });
        const healthcheck = spawn(
          runtimeNode,
          ['-e', "fetch('http://127.0.0.1:'+(process.env.HEALTH_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"],
          { env: { HEALTH_PORT: String(port) }, uid: RUNTIME_UID, gid: RUNTIME_GID, stdio: 'ignore' },
        );
        expect(await new Promise((r) => healthcheck.once('exit', r))).toBe(0);

        // A voice chat: Opus (WASM), DAVE (native davey), SQLite and the audio socket all load
        // from the production tree.
        await e.discord.waitForCommands(['start'], e.guild.id, 15_000);
        const h = await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID });
        await h.waitForResponse();
        await e.discord.waitForBotVoice(e.guild.id, e.voice.id, 15_000);
        const voxta = e.voxta!;
        const session = await voxta.waitFor(() => voxta.sessions()[0], 10_000, 'a Voxta session');
        await voxta.waitFor(() => voxta.audio(session.sessionId)?.header, 10_000, 'the audio socket header');
        await e.discord.voiceServer.daveSettled(e.guild.id, 10_000);
        e.alice.say(e.text.id, 'hello from the container');
        await e.discord.waitForMessage(e.text.id, (m) => m.authorId === e.discord.botUserId && m.content.includes('You said: hello from the container'), 15_000);

        // The database lives in DATA_DIR, written by the runtime user.
        const db = path.join(dataDir, 'voxta-discord.db');
        expect(existsSync(db)).toBe(true);
        expect(statSync(db).uid).toBe(RUNTIME_UID);

        // The tree is read-only for the runtime user (root-owned, like /app in the image): the bot
        // ran without writing anywhere but DATA_DIR.
        const probe = spawn(runtimeNode, ['-e', `require('fs').writeFileSync(${JSON.stringify(path.join(appDir, 'probe'))}, 'x')`], {
          uid: RUNTIME_UID,
          gid: RUNTIME_GID,
          stdio: 'ignore',
        });
        if (isRoot) expect(await new Promise((r) => probe.once('exit', r))).not.toBe(0);

        child.kill('SIGTERM');
        expect(await exited).toEqual({ code: 0, signal: null });
        const all = lines.join('\n');
        expect(all).toMatch(/shut down cleanly/);
        // Secrets never reach the logs, even at debug level.
        expect(all).not.toContain(e.discord.token);
        expect(all).not.toContain(apiKey);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- runtime output ---\n${output()}`, { cause: err });
      }
    },
    120_000,
  );

  it('the compiled entry points work from the image: one plain line on bad config, the doctor against Voxta and Discord', async () => {
    const { appDir } = await runtimeTree();
    const base = { HOME: '/nonexistent', NODE_ENV: 'production', DOTENV_CONFIG_QUIET: 'true' };
    const bad = await runAsRuntimeUser(runtimeNode, ['dist/src/index.js'], appDir, base);
    expect(bad.code).toBe(1);
    expect(bad.out.trim().split('\n')).toEqual([expect.stringMatching(/^Configuration error: DISCORD_TOKEN is missing/)]);

    env = await startE2E({ discord: { voice: false } });
    const doctorEnv = { ...base, VOXTA_URL: env.voxtaUrl, DISCORD_TOKEN: env.discord.token, DISCORD_API_URL: env.discord.restUrl };
    const doctor = await runAsRuntimeUser(runtimeNode, ['dist/src/doctor.js'], appDir, doctorEnv);
    expect(doctor.out).toMatch(/✔/);
    expect(doctor.code, doctor.out).toBe(0);
    expect(doctor.out).not.toContain(env.discord.token);
  }, 90_000);

  // The README tells Docker users to check their set-up with `npm run doctor`: in the image the
  // script's launcher (bin/run.mjs) finds no src/ and runs the compiled doctor.
  it('`npm run doctor`, as the README says for Docker, works in the runtime image', async () => {
    const { appDir, root } = await runtimeTree();
    const home = path.join(root, 'home');
    await mkdir(home, { recursive: true });
    if (isRoot) await chown(home, RUNTIME_UID, RUNTIME_GID);
    env = await startE2E({ discord: { voice: false } });
    // npm from PATH, running on this Node (as `npm` does in the node:24 image).
    const r = await runAsRuntimeUser('npm', ['run', 'doctor'], appDir, {
      PATH: `${path.dirname(runtimeNode)}${path.delimiter}${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: home,
      NODE_ENV: 'production',
      DOTENV_CONFIG_QUIET: 'true',
      VOXTA_URL: env.voxtaUrl,
      DISCORD_TOKEN: env.discord.token,
      DISCORD_API_URL: env.discord.restUrl,
    });
    expect(r.code, r.out).toBe(0);
  }, 60_000);
});
