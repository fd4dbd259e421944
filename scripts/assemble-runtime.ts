/**
 * Assembles the runtime tree of the container image without Docker, step for step as the
 * Dockerfile does it, so a test can start it as a non-root user and prove it works:
 *
 *   build stage   : package.json + package-lock.json + tsconfig*.json + src/ → `npm run build` → dist/
 *                   (the dev dependencies the build stage installs with `npm ci` are the repo's
 *                   node_modules, linked in: same lockfile, no second download)
 *   runtime stage : package.json + package-lock.json → `npm ci --omit=dev` → + dist/ from the build
 *                   + bin/ (the launcher behind `npm start` and `npm run doctor`)
 *
 * Only those files are copied, so a runtime import of anything else (sim/, test/, scripts/, a
 * `.ts` file, a JSON file outside src/) fails here exactly as it would in the image.
 *
 *   node --import tsx scripts/assemble-runtime.ts [target-dir]   # prints the tree's location
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface AssembleOptions {
  /** Where to put `build/` and `app/` (default: a fresh temp dir). Made world-readable. */
  targetDir?: string;
  repoRoot?: string;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface RuntimeTree {
  /** The temp root holding build/ and app/. */
  root: string;
  /** The build stage's working directory (`/app` of the build stage). */
  buildDir: string;
  /** The runtime stage's working directory (`/app` of the runtime image): package files, node_modules, dist. */
  appDir: string;
  /** The command the image runs, relative to appDir: `node dist/src/index.js`. */
  entry: string;
  /** Top-level packages installed in the runtime node_modules (scoped ones as `@scope/name`). */
  installedPackages: string[];
  /** Timings in ms, for the report. */
  timings: { buildMs: number; installMs: number };
}

/** `npm` next to the node binary running this script (Node 24 under .tools), else from PATH. */
function npmCommand(): string {
  const beside = path.join(path.dirname(process.execPath), 'npm');
  return existsSync(beside) ? beside : 'npm';
}

function run(cmd: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd,
        maxBuffer: 16 * 1024 * 1024,
        // npm and tsc run under the same Node as this script.
        env: { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` },
      },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${path.basename(cmd)} ${args.join(' ')} failed in ${cwd} (exit ${String((err as { code?: unknown }).code)}):\n${stdout}\n${stderr}`));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

async function listPackages(nodeModules: string): Promise<string[]> {
  if (!existsSync(nodeModules)) return [];
  const out: string[] = [];
  for (const entry of await readdir(nodeModules, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    if (entry.name.startsWith('@') && entry.isDirectory()) {
      for (const sub of await readdir(path.join(nodeModules, entry.name))) out.push(`${entry.name}/${sub}`);
    } else {
      out.push(entry.name);
    }
  }
  return out.sort();
}

export async function assembleRuntime(opts: AssembleOptions = {}): Promise<RuntimeTree> {
  const root = opts.targetDir ?? (await mkdtemp(path.join(tmpdir(), 'voxta-discord-runtime-')));
  try {
    return await assembleInto(root, opts);
  } catch (err) {
    // A temp dir we made is ours to remove; a target the caller named is left for inspection.
    if (!opts.targetDir) await rm(root, { recursive: true, force: true });
    throw err;
  }
}

async function assembleInto(root: string, opts: AssembleOptions): Promise<RuntimeTree> {
  const repo = opts.repoRoot ?? REPO_ROOT;
  const log = opts.log ?? (() => {});
  await mkdir(root, { recursive: true });
  // mkdtemp makes 0700 directories: the non-root runtime user must be able to enter the tree
  // (in the image, /app is root-owned and world-readable, exactly this).
  await chmod(root, 0o755);

  // --- build stage ---------------------------------------------------------------------------
  const buildDir = path.join(root, 'build');
  const appDir = path.join(root, 'app');
  // A re-run into the same target starts from scratch, like a fresh image build.
  await rm(buildDir, { recursive: true, force: true });
  await rm(appDir, { recursive: true, force: true });
  await mkdir(buildDir, { recursive: true });
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) {
    await cp(path.join(repo, f), path.join(buildDir, f));
  }
  await cp(path.join(repo, 'src'), path.join(buildDir, 'src'), { recursive: true });
  // The build stage's `npm ci` (all dependencies, same lockfile) = the repo's node_modules.
  await symlink(path.join(repo, 'node_modules'), path.join(buildDir, 'node_modules'), 'dir');
  log(`build: npm run build in ${buildDir}`);
  const t0 = Date.now();
  await run(npmCommand(), ['run', 'build'], buildDir);
  const buildMs = Date.now() - t0;

  // --- runtime stage -------------------------------------------------------------------------
  await mkdir(appDir, { recursive: true });
  for (const f of ['package.json', 'package-lock.json']) await cp(path.join(repo, f), path.join(appDir, f));
  log(`runtime: npm ci --omit=dev in ${appDir}`);
  const t1 = Date.now();
  // --prefer-offline: the packages are in the npm cache from the repo's own install; the
  // registry is asked only for what is missing.
  await run(npmCommand(), ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], appDir);
  const installMs = Date.now() - t1;
  await cp(path.join(buildDir, 'dist'), path.join(appDir, 'dist'), { recursive: true });
  await cp(path.join(repo, 'bin'), path.join(appDir, 'bin'), { recursive: true });
  await makeWorldReadable(appDir);

  const installedPackages = await listPackages(path.join(appDir, 'node_modules'));
  log(`runtime tree ready: ${appDir} (${installedPackages.length} top-level packages)`);
  return { root, buildDir, appDir, entry: 'dist/src/index.js', installedPackages, timings: { buildMs, installMs } };
}

/** chmod a+rX, recursively (directories searchable, files readable; nothing made writable). */
async function makeWorldReadable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) await makeWorldReadable(p);
    else if (entry.isFile()) {
      const { mode } = await stat(p);
      await chmod(p, (mode & 0o777) | 0o444 | (mode & 0o100 ? 0o011 : 0));
    }
  }
}

/**
 * Bare package names imported by the compiled output (static `import … from 'x'`, `import 'x'`,
 * `export … from 'x'`, dynamic `import('x')`, and `require('x')` via createRequire), without
 * node builtins. Relative imports are returned separately so a caller can check they resolve.
 */
export async function compiledImports(distDir: string): Promise<{ packages: string[]; relative: Array<{ from: string; spec: string }> }> {
  const packages = new Set<string>();
  const relative: Array<{ from: string; spec: string }> = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\w*\s*\(\s*)['"]([^'"\n]+)['"]/g;
  async function walk(dir: string): Promise<void> {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.name.endsWith('.js')) {
        const text = await readFile(p, 'utf8');
        for (const m of text.matchAll(re)) {
          const spec = m[1]!;
          if (spec.startsWith('node:')) continue;
          if (spec.startsWith('.') || spec.startsWith('/')) relative.push({ from: p, spec });
          else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
        }
      }
    }
  }
  await walk(distDir);
  return { packages: [...packages].sort(), relative };
}

// CLI
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const target = process.argv[2] ? path.resolve(process.argv[2]) : undefined;
  assembleRuntime({ targetDir: target, log: (l) => process.stderr.write(`${l}\n`) }).then(
    (tree) => {
      process.stdout.write(`${JSON.stringify({ appDir: tree.appDir, entry: tree.entry, timings: tree.timings }, null, 2)}\n`);
      process.stdout.write(`run it: cd ${tree.appDir} && NODE_ENV=production node ${tree.entry}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
