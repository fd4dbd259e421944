/**
 * A newcomer whose Node is older than package.json "engines" gets ONE plain line naming the version
 * found and the one needed, and exit 1, from every run command (npm start, npm run demo, npm run
 * doctor, npm test, the simulators, the benchmarks) — not a stack trace or failing suites. The
 * check is bin/check-node.cjs, in front of every npm script (or the first import of bin/run.mjs).
 *
 * Two ways to be "old" here:
 * - simulated, everywhere: VOXTA_DISCORD_PREFLIGHT_NODE_VERSION, honoured by the preflight only,
 *   through the real `npm run` on this Node;
 * - real: a Node binary older than "engines" on PATH or in /usr/bin, /usr/local/bin (Debian CI
 *   machines and this one have a Node 20 there; the suite itself runs on Node 24 from .tools/),
 *   running each script's command line as npm does (`sh -c`). Skipped, saying so, when none exists.
 */
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../harness/bot-process.js';
import { freePort } from '../harness/http.js';

const { satisfies } = createRequire(import.meta.url)('../../bin/check-node.cjs') as {
  satisfies: (version: string, range: string) => boolean | undefined;
};

const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
  name: string;
  engines: { node: string };
  scripts: Record<string, string>;
};
const ENGINES = pkg.engines.node;
const NVMRC = readFileSync(path.join(REPO_ROOT, '.nvmrc'), 'utf8').trim();
const OVERRIDE = 'VOXTA_DISCORD_PREFLIGHT_NODE_VERSION';
const PREFLIGHT = 'node bin/check-node.cjs && ';

/** The commands the README gives users; each must stop on an old Node with the one line. */
const RUN_COMMANDS = ['start', 'demo', 'doctor', 'test', 'sim:voxta', 'sim:discord', 'bench'];
/**
 * Not checked, on purpose: the TypeScript compiler runs fine on an old Node (typechecking or
 * building there is no failure), and what it builds is run by `npm start` (checked) or by the
 * container image's own Node 24.
 */
const UNCHECKED = ['build', 'typecheck'];

/** The line users see (the contract; the README's troubleshooting table quotes it). */
function expectedLine(found: string, nodePath: string): string {
  return `${pkg.name} needs Node.js ${ENGINES}, but this is Node.js ${found} (${nodePath}). Install Node.js ${NVMRC} (as in .nvmrc; "nvm install" picks it up) and run the command again.`;
}

/** Only what a fresh machine has: nothing that configures the bot, npm or the check. */
function bareEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { NO_COLOR: '1', DOTENV_CONFIG_QUIET: 'true' };
  for (const k of ['HOME', 'TMPDIR', 'LANG', 'TZ']) if (process.env[k] !== undefined) env[k] = process.env[k];
  return { ...env, ...extra };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command in its own process group and kills the whole group after `timeoutMs`: should the
 * check ever let an old Node through, `npm test` here would start the suite again, `npm run demo`
 * the whole demo.
 */
function run(cmd: string, args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? REPO_ROOT, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, opts.timeoutMs ?? 20_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** npm's CLI script for this Node: the one running this suite (`npm test`), else the one beside this Node. */
function npmCli(): string | undefined {
  const candidates = [process.env.npm_execpath, path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')];
  return candidates.find((c): c is string => !!c && /npm-cli\.js$/.test(c) && existsSync(c));
}

/** A Node binary older than "engines": on PATH, or where Debian and the official installers put one. */
function findOldNode(): { bin: string; version: string } | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/bin', '/usr/local/bin'];
  const seen = new Set<string>();
  for (const dir of dirs) {
    const bin = path.join(dir, 'node');
    let real: string;
    try {
      accessSync(bin, constants.X_OK);
      real = realpathSync(bin);
    } catch {
      continue;
    }
    if (seen.has(real)) continue;
    seen.add(real);
    let version: string;
    try {
      version = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim().replace(/^v/, '');
    } catch {
      continue;
    }
    if (satisfies(version, ENGINES) === false) return { bin: real, version };
  }
  return undefined;
}

const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

describe('Node version preflight (bin/check-node.cjs)', () => {
  it('guards every npm script that runs project code, before anything else', () => {
    for (const name of RUN_COMMANDS) expect(Object.keys(pkg.scripts), `script "${name}"`).toContain(name);
    for (const [name, command] of Object.entries(pkg.scripts)) {
      if (UNCHECKED.includes(name)) continue;
      // `node bin/run.mjs …` checks in-process (its first import); everything else chains the check.
      if (command.startsWith('node bin/run.mjs ')) continue;
      expect(command.startsWith(PREFLIGHT), `script "${name}": ${command}`).toBe(true);
    }
    const runMjs = readFileSync(path.join(REPO_ROOT, 'bin', 'run.mjs'), 'utf8');
    expect(runMjs.match(/^import .*$/m)?.[0]).toBe("import './check-node.cjs';");
  });

  it('reads npm-style ranges as npm does', () => {
    const cases: [string, string, boolean | undefined][] = [
      ['22.12.0', '>=22.12', true],
      ['22.11.9', '>=22.12', false],
      ['24.21.0', '>=22.12', true],
      ['20.20.2', '>=22.12', false],
      ['23.1.0', '^22.12 || >=24', false],
      ['22.13.1', '^22.12 || >=24', true],
      ['24.0.0', '^22.12 || >=24', true],
      ['22.12.0', '>22.12', false],
      ['22.13.0', '>22.12', true],
      ['22.12.9', '<=22.12', true],
      ['22.13.0', '<=22.12', false],
      ['22.12.3', '~22.12.1', true],
      ['22.13.0', '~22.12.1', false],
      ['22.5.0', '22.x', true],
      ['25.0.0', '>= 22.12 < 25', false],
      ['18.0.0', '*', true],
      ['22.12.0', '22.12 - 24', undefined],
      ['22.12.0', 'latest', undefined],
    ];
    for (const [version, range, want] of cases) expect(satisfies(version, range), `${version} in "${range}"`).toBe(want);
  });

  it('lets this (new enough) Node through without a word', async () => {
    expect(satisfies(process.versions.node, ENGINES)).toBe(true);
    const r = await run(process.execPath, ['bin/check-node.cjs'], { env: bareEnv() });
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    // The boundary, simulated: the lowest version the range allows passes.
    const lowest = /^>=\s*(\d+)\.(\d+)$/.exec(ENGINES);
    if (lowest) {
      const atLowest = await run(process.execPath, ['bin/check-node.cjs'], { env: bareEnv({ [OVERRIDE]: `${lowest[1]}.${lowest[2]}.0` }) });
      expect(atLowest).toEqual({ code: 0, stdout: '', stderr: '' });
    }
  });

  it('on a new enough Node, `npm run demo` and `npm run doctor` go on to the real thing', async () => {
    const cli = npmCli();
    const PATH = `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`;
    if (cli) {
      const demo = await run(process.execPath, [cli, 'run', 'demo', '--', '--help'], { env: bareEnv({ PATH }) });
      expect(demo.code, demo.stderr).toBe(0);
      expect(demo.stdout).toMatch(/Usage: npm run demo/);
    }
    // bin/run.mjs (npm start, npm run doctor): past the check, the doctor itself answers.
    const cwd = await mkdtemp(path.join(tmpdir(), 'voxta-discord-node-version-'));
    tmpDirs.push(cwd);
    const url = `http://127.0.0.1:${await freePort()}`;
    const doctor = await run(process.execPath, [path.join(REPO_ROOT, 'bin', 'run.mjs'), 'doctor'], { cwd, env: bareEnv({ PATH, VOXTA_URL: url }) });
    expect(doctor.code).toBe(1);
    expect(doctor.stderr).toMatch(/refused the connection/);
    expect(doctor.stderr).not.toMatch(/needs Node\.js/);
  });

  describe('simulated old Node (the preflight alone believes it runs on Node 20.20.2), through npm', () => {
    const cli = npmCli();
    for (const name of RUN_COMMANDS) {
      it.skipIf(!cli)(`npm run ${name}: one line, exit 1${cli ? '' : ' (skipped: npm-cli.js not found beside this Node)'}`, async () => {
        const PATH = `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`;
        const r = await run(process.execPath, [cli!, 'run', name], { env: bareEnv({ PATH, [OVERRIDE]: '20.20.2' }) });
        expect(r.code, r.stdout + r.stderr).toBe(1);
        expect(r.stderr).toBe(`${expectedLine('20.20.2', process.execPath)}\n`);
        // stdout: npm's own "> voxta-discord@… name" banner and nothing else.
        expect(r.stdout.split('\n').filter((l) => l.trim() && !l.startsWith('> '))).toEqual([]);
      });
    }

    it('`npx vitest` run directly (vitest.config.ts): one line, exit 1', async () => {
      const vitest = path.join(REPO_ROOT, 'node_modules', 'vitest', 'vitest.mjs');
      // A filter that matches no file: should the check let it through, vitest ends at once.
      const r = await run(process.execPath, [vitest, 'run', '__no_such_test_file__'], { env: bareEnv({ PATH: process.env.PATH, [OVERRIDE]: '20.20.2' }) });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`${expectedLine('20.20.2', process.execPath)}\n`);
    });
  });

  const old = process.platform === 'win32' ? undefined : findOldNode();
  describe.skipIf(!old)(
    old
      ? `real old Node ${old.version} (${old.bin}) first on PATH, each script's command as npm runs it`
      : `real old Node (skipped: no Node older than "${ENGINES}" on PATH or in /usr/bin, /usr/local/bin; the simulated tests above still ran)`,
    () => {
      for (const name of RUN_COMMANDS) {
        it(`${name}: ${pkg.scripts[name]} → one line, exit 1`, async () => {
          const PATH = [path.dirname(old!.bin), path.join(REPO_ROOT, 'node_modules', '.bin'), process.env.PATH ?? ''].join(path.delimiter);
          const r = await run('/bin/sh', ['-c', pkg.scripts[name]!], { env: bareEnv({ PATH }) });
          expect(r.code, r.stdout + r.stderr).toBe(1);
          expect(r.stderr).toBe(`${expectedLine(old!.version, old!.bin)}\n`);
          expect(r.stdout).toBe('');
        });
      }
    },
  );
});
