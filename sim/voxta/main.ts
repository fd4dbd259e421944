/**
 * `npm run sim:voxta -- --port 5384 [--api-key K] [--espeak]`: runs the simulated Voxta server
 * until SIGINT/SIGTERM, so the bot (or anyone) can talk to it.
 */
import { parseArgs } from 'node:util';
import { createLogger, registerSecret } from '../../src/log.js';
import { hasEspeak } from './tts.js';
import { startVoxtaSim, type VoxtaSimOptions } from './index.js';

const HELP = `Simulated Voxta server

Usage: npm run sim:voxta -- [options]

  --port <n>            port to listen on (default 5384, 0 = random)
  --host <addr>         address to bind (default 127.0.0.1)
  --api-key <key>       require "Authorization: Bearer <key>" (or ?access_token=)
  --basic <user:pass>   require Basic auth (reverse-proxy style)
  --espeak              speak replies with espeak-ng when it is installed (tones otherwise)
  --greeting            characters greet at the start of a new chat
  --barge-in            talking over a reply interrupts it
  --silence-urls        send "silence:<ms>" audio URLs instead of WAV downloads
  --no-tts              text-to-speech off (audioUrl "")
  --no-stt              speech-to-text off
  --max-chats <n>       concurrent chats per user (default 2)
  --chunk-delay <ms>    delay between reply chunks (default 250)
  --sample-rate <hz>    tone WAV sample rate (default 24000)
  --api-version <v>     welcome.apiVersion (default 2025-08; current servers say 2025-11)
  --local               treat loopback clients as local (a text chat without client audio would use the PC microphone)
  --quiet               log errors only
  -h, --help            this help
`;

function fail(message: string): never {
  process.stderr.write(`voxta-sim: ${message}\n\n${HELP}`);
  process.exit(2);
}

function intArg(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} expects a non-negative integer, got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'api-key': { type: 'string' },
        basic: { type: 'string' },
        espeak: { type: 'boolean' },
        greeting: { type: 'boolean' },
        'barge-in': { type: 'boolean' },
        'silence-urls': { type: 'boolean' },
        'no-tts': { type: 'boolean' },
        'no-stt': { type: 'boolean' },
        'max-chats': { type: 'string' },
        'chunk-delay': { type: 'string' },
        'sample-rate': { type: 'string' },
        'api-version': { type: 'string' },
        local: { type: 'boolean' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  createLogger({ level: values.quiet ? 'error' : (process.env.LOG_LEVEL ?? 'info') });

  const opts: VoxtaSimOptions = {
    port: intArg('port', values.port, 5384),
    host: values.host ?? '127.0.0.1',
    maxChats: intArg('max-chats', values['max-chats'], 2),
    chunkDelayMs: intArg('chunk-delay', values['chunk-delay'], 250),
    greeting: values.greeting ?? false,
    capacityDelayMs: 10_000,
    tts: {
      enabled: !values['no-tts'],
      voice: values.espeak ? 'espeak' : 'tone',
      silenceUrls: values['silence-urls'] ?? false,
      sampleRate: intArg('sample-rate', values['sample-rate'], 24000),
    },
    stt: { enabled: !values['no-stt'], bargeIn: values['barge-in'] ?? false },
    localClients: values.local ? 'loopback' : 'none',
    log: !values.quiet,
  };
  if (values['api-version'] !== undefined) {
    if (!/^\d{4}-\d{2}$/.test(values['api-version'])) fail(`--api-version expects YYYY-MM, got "${values['api-version']}"`);
    opts.apiVersion = values['api-version'];
  }
  if (values['api-key']) {
    registerSecret(values['api-key']);
    opts.apiKey = values['api-key'];
  }
  if (values.basic) {
    const colon = values.basic.indexOf(':');
    if (colon <= 0) fail('--basic expects user:password');
    opts.basicAuth = { username: values.basic.slice(0, colon), password: values.basic.slice(colon + 1) };
    registerSecret(opts.basicAuth.password);
  }
  if (values.espeak && !hasEspeak()) process.stderr.write('voxta-sim: espeak-ng not found on PATH; replies will be tones\n');

  const sim = await startVoxtaSim(opts);
  const auth = opts.apiKey ? ' (API key required)' : opts.basicAuth ? ' (Basic auth required)' : '';
  process.stdout.write(`Simulated Voxta server listening on ${sim.url}${auth}\n`);
  process.stdout.write(`Characters: ${sim.options.characters.map((c) => `${c.name} (${c.id})`).join(', ')}\n`);
  process.stdout.write(`Scenarios: ${sim.options.scenarios.map((s) => `${s.name} (${s.id})`).join(', ')}\n`);
  process.stdout.write('Press Ctrl+C to stop.\n');

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\n${signal}: stopping the simulated Voxta server\n`);
    sim.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') fail('that port is already in use; pick another with --port');
  process.stderr.write(`voxta-sim: ${(err as Error).message}\n`);
  process.exit(1);
});
