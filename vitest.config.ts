import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

// `npm test` checks the Node version before vitest starts; this covers `npx vitest` run directly:
// on a Node older than package.json "engines", one plain line and exit 1 instead of failing suites.
createRequire(import.meta.url)('./bin/check-node.cjs');

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real sockets and real-time audio: generous per-test limits, but the whole suite must stay
    // well under five minutes on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Most suites wait on sockets and real-time audio rather than burn CPU (the whole suite uses
    // about a third of one core on average), so more workers than cores shortens the run. Vitest's
    // default on a 2-core machine is a single worker.
    maxWorkers: 4,
    reporters: ['default'],
  },
});
