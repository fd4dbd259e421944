/**
 * The folder layout is the architecture (docs/ARCHITECTURE.md): this test keeps it true by
 * reading every import in src/ and refusing the ones that cross a boundary.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

function sourceFiles(dir: string): string[] {
  const abs = path.join(root, dir);
  let entries: string[];
  try {
    entries = readdirSync(abs);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    const rel = path.join(dir, name);
    if (statSync(path.join(root, rel)).isDirectory()) return sourceFiles(rel);
    return rel.endsWith('.ts') ? [rel] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(path.join(root, file), 'utf8');
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    specs.push((m[1] ?? m[2])!);
  }
  return specs;
}

/** Resolves a relative specifier to a repo-relative path; packages stay as they are. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return spec;
  return path.relative(root, path.resolve(path.dirname(path.join(root, file)), spec));
}

const rules: Array<{ dir: string; forbidden: RegExp[] }> = [
  {
    dir: 'src/audio',
    forbidden: [/^discord\.js/, /^@discordjs\//, /^@microsoft\/signalr/, /^ws$/, /^src\/(voxta|bot|voice|commands|store)\//, /^sim\//],
  },
  // Pure image handling, like src/audio: neither Discord nor Voxta (nor the audio layer).
  {
    dir: 'src/image',
    forbidden: [/^discord\.js/, /^@discordjs\//, /^@microsoft\/signalr/, /^ws$/, /^src\/(voxta|bot|voice|commands|store|audio)\//, /^sim\//],
  },
  // Protocol-free network helpers, shared by src/voxta and src/image.
  { dir: 'src/net', forbidden: [/^discord\.js/, /^@discordjs\//, /^@microsoft\/signalr/, /^ws$/, /^src\/(voxta|bot|voice|commands|store|audio|image)\//, /^sim\//] },
  { dir: 'src/voxta', forbidden: [/^discord\.js/, /^@discordjs\//, /^src\/(bot|voice|commands|store|audio|image)\//, /^sim\//] },
  { dir: 'src/store', forbidden: [/^discord\.js/, /^@discordjs\//, /^@microsoft\/signalr/, /^src\/(voxta|bot|voice|commands)\//, /^sim\//] },
  { dir: 'src/voice', forbidden: [/^src\/commands\//, /^sim\//] },
  { dir: 'src', forbidden: [/^sim\//, /^test\//] },
];

describe('module boundaries', () => {
  for (const rule of rules) {
    it(`${rule.dir} imports nothing it must not know about`, () => {
      const violations = sourceFiles(rule.dir).flatMap((file) =>
        importsOf(file)
          .map((spec) => target(file, spec))
          .filter((t) => rule.forbidden.some((re) => re.test(t)))
          .map((t) => `${file} → ${t}`),
      );
      expect(violations).toEqual([]);
    });
  }

  it('finds the files it checks (the test would pass vacuously otherwise)', () => {
    expect(sourceFiles('src').length).toBeGreaterThan(3);
    expect(importsOf('src/index.ts')).toContain('./config.js');
  });
});
