/**
 * `npm run demo` is a product feature (every newcomer's first run): it must work end to end on a
 * machine with no configuration. This runs the script exactly as `npm run demo` does (its own
 * process, no VOXTA_URL, no token, no .env) and checks what it promises: exit 0, every step
 * reported, a latency figure, DAVE-encrypted voice, and a real WAV of the character's voice.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseWav } from '../../src/audio/wav.js';
import { REPO_ROOT } from '../harness/bot-process.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Only what a fresh machine has: nothing that configures the bot, Voxta or Discord. */
function bareEnv(): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ', 'SystemRoot', 'USERPROFILE'];
  const env: NodeJS.ProcessEnv = { NO_COLOR: '1' };
  for (const k of keep) if (process.env[k] !== undefined) env[k] = process.env[k];
  return env;
}

function runDemo(args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'scripts/demo.ts'), ...args], {
      cwd,
      env: { ...bareEnv(), ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 110_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('scenario: npm run demo', () => {
  it('plays the whole scene with no configuration, exits 0, and writes the character’s voice as a WAV', async () => {
    // From the repository root, like `npm run demo`; the WAV goes where --out says.
    dir = await mkdtemp(path.join(tmpdir(), 'voxta-discord-demo-'));
    const wav = path.join(dir, 'out', 'aria.wav');
    const { code, output } = await runDemo(['--out', wav], REPO_ROOT);
    expect(code, output).toBe(0);

    for (const step of [
      'The bot comes online',
      'starts a character with /start',
      'Alice types; the reply streams',
      'both answer, in text and in voice',
      'Alice speaks; Aria answers out loud',
      'Bob talks over Alice',
      'barge-in',
      '/interrupt',
      'ends the chat with /stop',
    ]) {
      expect(output, step).toMatch(new RegExp(`✓ [^\\n]*${step.replace(/[/()]/g, '\\$&')}`));
    }
    expect(output).toMatch(/autocomplete offers Aria/);
    expect(output).toMatch(/Alice \(text\)\s+Hi Aria!/);
    // Two characters, each posting under its own name, each heard in the voice channel, in order.
    expect(output).toMatch(/Captain Holt joined the chat/);
    expect(output).toMatch(/Aria \(text\)\s+Oh, it is beautiful!/);
    expect(output).toMatch(/Captain Holt \(text\) Steady as she goes\./);
    expect(output).toMatch(/Captain Holt \(voice\) ▶ speaks the answer/);
    expect(output).toMatch(/🎙️ Bob: How about a space adventure, with aliens and a lost moon\?/);
    // With a TTS that takes 1.5 s per clip (as the demo's Voxta does), in seconds.
    expect(output).toMatch(/speech end → first reply audio: (\d+ ms|\d+\.\d+ s)/);
    expect(output).toMatch(/voice frames end-to-end encrypted \(DAVE v1\), 0 in clear/);
    expect(output).toMatch(/every step happened/);

    // The WAV: real audio, the length of the scene's spoken replies, not silence.
    expect(existsSync(wav)).toBe(true);
    const audio = parseWav(await readFile(wav));
    expect(audio.sampleRate).toBe(48_000);
    expect(audio.channels).toBe(1);
    const seconds = audio.samples.length / audio.sampleRate;
    expect(seconds).toBeGreaterThan(8);
    let loud = 0;
    for (const s of audio.samples) if (Math.abs(s) > 1000) loud++;
    expect(loud / audio.samples.length).toBeGreaterThan(0.2);
    expect(existsSync(path.join(dir, 'out', 'bot.log'))).toBe(true);
  }, 120_000);

  it('exits non-zero naming the step that did not happen (VOXTA_URL pointing at nothing)', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'voxta-discord-demo-'));
    const { code, output } = await runDemo(['--out', path.join(dir, 'v.wav')], REPO_ROOT, { VOXTA_URL: 'http://127.0.0.1:9' });
    expect(code).toBe(1);
    expect(output).toMatch(/✓?[^\n]*1\. The bot comes online/);
    expect(output).toMatch(/✗ FAILED at step “Sam \(admin\) starts a character with \/start”/);
    expect(output).toMatch(/Is a Voxta server reachable at http:\/\/127\.0\.0\.1:9\?/);
    expect(output).not.toMatch(/every step happened/);
    expect(existsSync(path.join(dir, 'v.wav'))).toBe(false);
  }, 60_000);

  it('Ctrl+C mid-scene closes the bot and the simulators and exits 130, leaving no process behind', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'voxta-discord-demo-'));
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'scripts/demo.ts'), '--out', path.join(dir, 'v.wav')], {
      cwd: REPO_ROOT,
      env: bareEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const started = new Promise<void>((resolve) =>
      child.stdout.on('data', (d: Buffer) => {
        output += d.toString();
        if (/3\. Sam \(admin\) starts/.test(output)) resolve();
      }),
    );
    await Promise.race([started, exited]);
    const botPid = Number(/\(pid (\d+)\)/.exec(output)?.[1]);
    expect(botPid).toBeGreaterThan(0);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(output).toMatch(/interrupted \(SIGINT\)/);
    const alive = () => {
      try {
        process.kill(botPid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive()).toBe(false);
  }, 60_000);

  it('refuses an unknown option with its usage and exit code 2', async () => {
    const { code, output } = await runDemo(['--bogus'], REPO_ROOT);
    expect(code).toBe(2);
    expect(output).toMatch(/Usage: npm run demo/);
  }, 30_000);
});
