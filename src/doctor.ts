/**
 * `npm run doctor`: checks the set-up before the bot is started, and prints a short report.
 *
 * 1. configuration (dotenv + src/config.ts; a Discord token is not required here);
 * 2. Voxta: connect to the hub, authenticate, read the server and API version and whether speech
 *    services are configured, list the characters over REST;
 * 3. Discord: when DISCORD_TOKEN is set, `GET /v10/users/@me` with it.
 *
 * Exit 0 when every check passes; otherwise exit 1 after ONE plain line saying what is wrong
 * (server unreachable, credentials refused, URL that is not Voxta, token refused, …). Secrets are
 * never printed.
 */
import 'dotenv/config';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger, redactSecrets, registerSecret } from './log.js';
import {
  KNOWN_API_VERSIONS,
  isKnownApiVersion,
  VoxtaAuthError,
  VoxtaChatSession,
  VoxtaEndpoint,
  VoxtaError,
  VoxtaHttpError,
  VoxtaRest,
  VoxtaTimeoutError,
  VoxtaUnreachableError,
  VoxtaUrlError,
  type ConfigurationMessage,
} from './voxta/index.js';

class DoctorFailure extends Error {}

const out = (line: string): void => void process.stdout.write(line + '\n');
const ok = (line: string): void => out(`  ✔ ${line}`);
const note = (line: string): void => out(`  – ${line}`);
const warn = (line: string): void => out(`  ! ${line}`);

async function main(): Promise<number> {
  // Quiet by default: the report is the output; LOG_LEVEL=debug shows the client's own log.
  createLogger({ level: process.env.LOG_LEVEL ? process.env.LOG_LEVEL : 'error', pretty: false });
  out('voxta-discord doctor');

  let config: Config;
  try {
    config = loadConfig(process.env, { requireDiscordToken: false });
  } catch (err) {
    if (err instanceof ConfigError) return fail(err.message);
    throw err;
  }
  registerSecret(config.discord.token);

  try {
    await checkVoxta(config);
    await checkDiscord(config);
  } catch (err) {
    if (err instanceof DoctorFailure) return fail(err.message);
    return fail(`Unexpected error: ${redactSecrets(err instanceof Error ? err.message : String(err))}`);
  }
  out('All checks passed.');
  return 0;
}

async function checkVoxta(config: Config): Promise<void> {
  let endpoint: VoxtaEndpoint;
  try {
    endpoint = VoxtaEndpoint.fromConfig(config.voxta);
  } catch (err) {
    throw new DoctorFailure(`VOXTA_URL is not usable: ${err instanceof Error ? err.message : String(err)}`);
  }
  const where = endpoint.display;
  out(`  Voxta: ${where}${config.voxta.apiKey ? ' (API key set)' : ''}${config.voxta.basicAuth ? ' (Basic auth set)' : ''}`);

  const session = new VoxtaChatSession({
    endpoint,
    textOnly: true,
    timeouts: { connectMs: 8000, welcomeMs: 8000, requestMs: 8000 },
    reconnect: { giveUpAfterMs: 0 },
  });
  try {
    let configuration: ConfigurationMessage | undefined;
    const gotConfiguration = new Promise<void>((resolve) => {
      session.on('message', (m) => {
        if (m.$type === 'configuration') {
          configuration = m;
          resolve();
        }
      });
    });
    let welcome;
    try {
      welcome = await session.connect();
    } catch (err) {
      throw new DoctorFailure(voxtaReason(err, where));
    }
    ok(`Connected and authenticated: Voxta server ${welcome.voxtaServerVersion}, API ${welcome.apiVersion}`);
    if (!isKnownApiVersion(welcome.apiVersion)) {
      warn(`This bot was built for API ${KNOWN_API_VERSIONS.join(' / ')}; ${welcome.apiVersion} may differ in places (it still runs).`);
    }
    await Promise.race([gotConfiguration, delay(1500)]);
    const speech = describeSpeech(configuration ?? session.configuration);
    if (speech) ok(speech);
    else note('Speech services: not reported by the server (they are checked when a chat starts)');

    const rest = new VoxtaRest(endpoint, { timeoutMs: 8000 });
    let names: string[];
    try {
      names = (await rest.listCharacters()).map((c) => c.name);
    } catch (err) {
      if (err instanceof VoxtaHttpError && err.status === 404) {
        // Older servers: fall back to the hub's list.
        names = (await session.loadCharacters()).map((c) => c.name);
      } else {
        throw new DoctorFailure(voxtaReason(err, where));
      }
    }
    if (names.length === 0) {
      warn('Characters: none. Create a character in Voxta before starting a chat.');
    } else {
      const shown = names.slice(0, 15).join(', ') + (names.length > 15 ? `, … (${names.length - 15} more)` : '');
      ok(`Characters (${names.length}): ${shown}`);
    }
  } finally {
    await session.close({ stopChat: false }).catch(() => undefined);
  }
}

function describeSpeech(c: ConfigurationMessage | undefined): string | undefined {
  const services = c?.services;
  if (!services || typeof services !== 'object') return undefined;
  const has = (re: RegExp): boolean | undefined => {
    const key = Object.keys(services).find((k) => re.test(k));
    if (key === undefined) return undefined;
    const v = services[key];
    return Array.isArray(v) ? v.length > 0 : v !== null && v !== undefined && v !== false;
  };
  const tts = has(/^text\s*to\s*speech$/i);
  const stt = has(/^speech\s*to\s*text$/i);
  if (tts === undefined && stt === undefined) return undefined;
  const word = (v: boolean | undefined): string => (v === undefined ? 'unknown' : v ? 'configured' : 'NOT configured');
  return `Speech services: text-to-speech ${word(tts)}, speech-to-text ${word(stt)}`;
}

function voxtaReason(err: unknown, where: string): string {
  if (err instanceof VoxtaUnreachableError) return `${err.message}. Check VOXTA_URL.`;
  if (err instanceof VoxtaAuthError) {
    return `Voxta at ${where} refused the credentials${err.status ? ` (HTTP ${err.status})` : ''}: check VOXTA_API_KEY (or user:password in VOXTA_URL).`;
  }
  if (err instanceof VoxtaUrlError) return `${err.message}`;
  if (err instanceof VoxtaTimeoutError) return `${err.message}: is ${where} really a Voxta server?`;
  if (err instanceof VoxtaHttpError) return `Voxta at ${where} answered HTTP ${err.status} for ${err.path}: is VOXTA_URL the Voxta server?`;
  if (err instanceof VoxtaError) return err.message;
  return `Could not talk to Voxta at ${where}: ${redactSecrets(err instanceof Error ? err.message : String(err))}`;
}

async function checkDiscord(config: Config): Promise<void> {
  const token = config.discord.token;
  if (!token) {
    note('Discord token: not set (skipped). Set DISCORD_TOKEN before `npm start`.');
    return;
  }
  const url = `${config.discord.apiUrl}/v10/users/@me`;
  let res: Response;
  try {
    res = await fetch(url, { headers: { Authorization: `Bot ${token}` }, signal: AbortSignal.timeout(10_000) });
  } catch {
    throw new DoctorFailure(`Cannot reach the Discord API at ${config.discord.apiUrl} (network error or timeout).`);
  }
  if (res.status === 401) throw new DoctorFailure('Discord refused DISCORD_TOKEN (HTTP 401): copy a fresh token from the Developer Portal (Bot → Reset Token).');
  if (!res.ok) throw new DoctorFailure(`Discord answered HTTP ${res.status} when checking DISCORD_TOKEN.`);
  let name = 'unknown';
  try {
    const me = (await res.json()) as { username?: unknown; id?: unknown; bot?: unknown };
    name = `${String(me.username ?? '?')} (id ${String(me.id ?? '?')})`;
    if (me.bot === false) warn('DISCORD_TOKEN belongs to a user account, not a bot.');
  } catch {
    /* the status is what matters */
  }
  ok(`Discord token accepted: bot ${name}`);
}

function fail(reason: string): number {
  const line = redactSecrets(reason);
  out(`  ✘ ${line}`);
  process.stderr.write(`Doctor failed: ${line}\n`);
  return 1;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`Doctor failed: ${redactSecrets(err instanceof Error ? err.message : String(err))}\n`);
    process.exit(1);
  },
);
