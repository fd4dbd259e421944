/**
 * Node version preflight: runs before anything that needs a new Node (node:sqlite, …) is loaded,
 * and stops with ONE plain line when this Node does not satisfy package.json "engines".node
 * (the only place the requirement is written down):
 *
 *   voxta-discord needs Node.js >=22.12, but this is Node.js 20.20.2 (/usr/bin/node). Install Node.js 24 (as in .nvmrc; "nvm install" picks it up) and run the command again.
 *
 * Exit code 1 then; silent when the version is fine. Used as
 *   - `node bin/check-node.cjs && …` in front of the npm scripts (test, demo, sim:*, bench);
 *   - the first import of bin/run.mjs (npm start, npm run doctor; also in the container image);
 *   - a require() in vitest.config.ts (`npx vitest` run directly).
 *
 * Deliberately CommonJS, dependency-free and in old syntax (no `??`, `?.`, top-level await…), so
 * that any Node a newcomer may have can parse and run it.
 *
 * Tests only: VOXTA_DISCORD_PREFLIGHT_NODE_VERSION=20.20.2 makes this check (and nothing else)
 * believe it runs on that Node version.
 */
'use strict';

var fs = require('fs');
var path = require('path');

var ROOT = path.join(__dirname, '..');
var OVERRIDE_ENV = 'VOXTA_DISCORD_PREFLIGHT_NODE_VERSION';

/** "22.12" → [22, 12, 0]; "v24.1.0-nightly" → [24, 1, 0]; wildcards (x, *) and missing parts → null. */
function parseVersion(text) {
  var parts = String(text).trim().replace(/^[v=]+/, '').split(/[-+]/)[0].split('.');
  var out = [];
  for (var i = 0; i < 3; i++) {
    var p = parts[i];
    if (p === undefined || p === '' || p === 'x' || p === 'X' || p === '*') out.push(null);
    else if (/^\d+$/.test(p)) out.push(Number(p));
    else return undefined;
  }
  // "22.x.5" is not a version.
  if ((out[0] === null && out[1] !== null) || (out[1] === null && out[2] !== null)) return undefined;
  return out;
}

function compare(a, b) {
  for (var i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/** The version with missing parts as 0, and the first version past a partial one ("22.12" → 22.13.0). */
function floor(v) {
  return [v[0] || 0, v[1] || 0, v[2] || 0];
}
function pastPartial(v) {
  if (v[1] === null) return [v[0] + 1, 0, 0];
  if (v[2] === null) return [v[0], v[1] + 1, 0];
  return [v[0], v[1], v[2] + 1];
}

/**
 * One comparator (">=22.12", "^24", "~22.12.1", "22.x", "<25") as a test on [major, minor, patch];
 * undefined when it is not understood.
 */
function comparator(text) {
  var m = /^(>=|<=|>|<|=|\^|~)?(.*)$/.exec(text);
  var op = m[1] || '';
  var v = parseVersion(m[2]);
  if (!v) return undefined;
  if (v[0] === null) return op === '' || op === '=' || op === '>=' ? function () { return true; } : undefined;
  var partial = v[2] === null;
  var lo = floor(v);
  var hi;
  switch (op) {
    case '>=':
      return function (x) { return compare(x, lo) >= 0; };
    case '>':
      hi = partial ? pastPartial(v) : null;
      return function (x) { return hi ? compare(x, hi) >= 0 : compare(x, lo) > 0; };
    case '<':
      return function (x) { return compare(x, lo) < 0; };
    case '<=':
      hi = partial ? pastPartial(v) : null;
      return function (x) { return hi ? compare(x, hi) < 0 : compare(x, lo) <= 0; };
    case '^':
      hi = lo[0] > 0 || v[1] === null ? [lo[0] + 1, 0, 0] : lo[1] > 0 || v[2] === null ? [0, lo[1] + 1, 0] : [0, 0, lo[2] + 1];
      break;
    case '~':
      hi = v[1] === null ? [lo[0] + 1, 0, 0] : [lo[0], lo[1] + 1, 0];
      break;
    default: // "22", "22.12", "=22.12.0": that version, or any in the partial one
      hi = pastPartial(v);
  }
  return function (x) { return compare(x, lo) >= 0 && compare(x, hi) < 0; };
}

/**
 * Whether `version` satisfies the npm-style `range` (comparator sets joined by `||`; hyphen
 * ranges are not supported). Undefined when the range is not understood.
 */
function satisfies(version, range) {
  var v = parseVersion(version);
  if (!v || v[2] === null || /\s-\s/.test(range)) return undefined;
  var sets = String(range).split('||');
  var any = false;
  for (var i = 0; i < sets.length; i++) {
    var words = sets[i].trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/).filter(Boolean);
    if (words.length === 0) words = ['*'];
    var all = true;
    for (var j = 0; j < words.length; j++) {
      var test = comparator(words[j]);
      if (!test) return undefined;
      if (!test(v)) all = false;
    }
    if (all) any = true;
  }
  return any;
}

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    return undefined;
  }
}

/** The line to print when this Node is too old, or undefined when it is fine (or nothing to check). */
function problem() {
  var pkgText = readText(path.join(ROOT, 'package.json'));
  if (pkgText === undefined) return undefined;
  var pkg;
  try {
    pkg = JSON.parse(pkgText);
  } catch (err) {
    return undefined; // npm itself will say what is wrong with package.json
  }
  var name = pkg.name || 'This project';
  var range = pkg.engines && pkg.engines.node;
  if (!range) return undefined;
  var found = process.env[OVERRIDE_ENV] ? String(process.env[OVERRIDE_ENV]).replace(/^v/, '') : process.versions.node;
  var ok = satisfies(found, range);
  if (ok === undefined) {
    // Our own package.json says something this check cannot read: do not stand in the way.
    process.stderr.write(name + ': cannot check the Node.js version against "' + range + '" (package.json "engines"); going on.\n');
    return undefined;
  }
  if (ok) return undefined;
  var nvmrc = readText(path.join(ROOT, '.nvmrc'));
  var wanted = nvmrc && /^v?\d+(\.\d+){0,2}$/.test(nvmrc.trim()) ? nvmrc.trim().replace(/^v/, '') : undefined;
  var advice = wanted
    ? 'Install Node.js ' + wanted + ' (as in .nvmrc; "nvm install" picks it up) and run the command again.'
    : 'Install a Node.js that satisfies it and run the command again.';
  return name + ' needs Node.js ' + range + ', but this is Node.js ' + found + ' (' + process.execPath + '). ' + advice;
}

var line = problem();
if (line !== undefined) {
  process.stderr.write(line + '\n');
  process.exit(1);
}

module.exports = { satisfies: satisfies };
