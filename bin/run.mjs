#!/usr/bin/env node
/**
 * Runs one of the bot's entry points (`index` for the bot, `doctor` for the set-up check) so that
 * the same npm scripts work in a checkout and in the container image:
 * - in a checkout, from the TypeScript sources through tsx (a dev dependency);
 * - in the image, which holds only the compiled `dist/` and production dependencies, from there.
 *
 * Its first import is the Node version preflight: on a Node older than package.json "engines" it
 * prints one plain line and exits 1 before anything that needs the newer Node is loaded.
 */
import './check-node.cjs';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const name = process.argv[2];
if (name !== 'index' && name !== 'doctor') {
  process.stderr.write('usage: node bin/run.mjs index|doctor\n');
  process.exit(2);
}
const root = path.resolve(import.meta.dirname, '..');
const source = path.join(root, 'src', `${name}.ts`);
const compiled = path.join(root, 'dist', 'src', `${name}.js`);

if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(source).href);
} else if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  process.stderr.write(`Cannot find ${name}: neither src/${name}.ts nor dist/src/${name}.js exists (run npm run build).\n`);
  process.exit(1);
}
