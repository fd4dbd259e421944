/**
 * `npm run demo`: a whole conversation, offline, with no configuration at all.
 *
 * Starts the Voxta simulator in-process (or uses VOXTA_URL, so the same scene runs against any
 * Voxta server), starts the Discord simulator with DAVE v1 voice, runs the real bot exactly as in
 * production (child process, `src/index.ts`, only URLs point at loopback), and plays a scene:
 * /start with autocomplete, typed chat, spoken chat, two people talking at once, a barge-in,
 * /interrupt and /stop. Prints what happened with timings, writes the character's voice as the
 * voice channel received it to a WAV file, and exits 0 only if every step happened (non-zero
 * naming the step that did not).
 *
 *   npm run demo                         # writes demo-out/character-voice.wav
 *   npm run demo -- --out /tmp/aria.wav  # elsewhere
 *   npm run demo -- --verbose            # echo the bot's log lines too
 *   VOXTA_URL=http://host:5384 [VOXTA_API_KEY=…] npm run demo
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/log.js';
import { encodeWav } from '../sim/voxta/index.js';
import { bold, dim, green, ms, red, Report } from './demo/report.js';
import { Scene, StepFailed, type SceneResult } from './demo/scene.js';
import { startStage, type Stage } from './demo/stage.js';

const USAGE = `Usage: npm run demo -- [--out <file.wav>] [--verbose]

Plays a scripted conversation between the real bot, a simulated Discord (with DAVE voice
encryption) and a simulated Voxta server, prints it, and writes the character's voice to a WAV.
Set VOXTA_URL (and VOXTA_API_KEY) to talk to a real Voxta server instead of the simulator.`;

/** The whole demo must end by then, whatever happens. */
const OVERALL_TIMEOUT_MS = 150_000;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: { out: { type: 'string' }, verbose: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // The simulators log through src/log.ts: keep them quiet here (their warnings go to a file).
  createLogger({ level: process.env.SIM_LOG_LEVEL ?? 'silent' });

  const outFile = path.resolve(args.out ?? path.join('demo-out', 'character-voice.wav'));
  const logDir = path.dirname(outFile);
  const voxtaUrl = process.env.VOXTA_URL || undefined;
  const report = new Report();

  report.now(bold('voxta-discord demo') + dim(' — the real bot, an offline Discord with encrypted voice, and a Voxta server'));
  let stage: Stage;
  try {
    stage = await startStage({ voxtaUrl, logDir, echoBot: args.verbose });
  } catch (err) {
    report.fail(`could not start the simulators or the bot: ${(err as Error).message}`);
    if (/openssl/i.test(String((err as Error).message))) {
      report.now(dim('  The offline Discord makes a throwaway TLS certificate for its voice server with the `openssl` command: install it (e.g. `apt-get install openssl`) and run the demo again.'));
    }
    return 1;
  }
  // Never leave the bot running behind us: Ctrl+C / kill stop the scene and close everything.
  const botPid = stage.bot.pid;
  process.once('exit', () => {
    if (botPid && stage.bot.exit === undefined) {
      try {
        process.kill(botPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  let interrupted: NodeJS.Signals | undefined;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      // The scene then fails at once (the bot is gone) and main() closes the rest.
      interrupted = signal;
      stage.bot.kill('SIGTERM').catch(() => undefined);
    });
  }
  report.now(dim(`  Voxta:   ${voxtaUrl ? `${voxtaUrl} (from VOXTA_URL)` : `simulated in-process at ${stage.voxtaUrl} (set VOXTA_URL to use a real server)`}`));
  report.now(dim(`  Discord: simulated in-process at ${stage.discord.restUrl}; server “${stage.guild.name}”, #${stage.text.name}, 🔊 ${stage.voice.name}; voice with DAVE v1`));
  report.now(dim(`  Bot:     node --import tsx src/index.ts (pid ${stage.bot.pid}), exactly as in production; log → ${shown(path.join(logDir, 'bot.log'))}`));
  report.now(dim('  Legend:  ◀ a member speaks (synthetic voice) · ▶ ■ the character speaks / stops, as heard in the voice channel · times since start'));

  let result: SceneResult | undefined;
  let failure: StepFailed | Error | undefined;
  let overall: NodeJS.Timeout | undefined;
  try {
    result = await Promise.race([
      new Scene(stage, report).play(),
      new Promise<never>((_, reject) => {
        overall = setTimeout(() => reject(new Error(`the demo did not finish within ${ms(OVERALL_TIMEOUT_MS)}`)), OVERALL_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    failure = err as Error;
  } finally {
    clearTimeout(overall);
  }

  let checks: string[] = [];
  if (result) {
    try {
      checks = finish(stage, outFile, report);
    } catch (err) {
      failure = new StepFailed('The character’s voice was end-to-end encrypted and recorded', err);
    }
  }
  const botAlive = stage.bot.exit === undefined;
  const botProblems = stage.bot.lines
    .filter((l) => l.json && ['warn', 'error', 'fatal'].includes(String(l.json.level)))
    .slice(-5)
    .map((l) => `${String(l.json!.level)}: ${String(l.json!.msg)}${l.json!.err ? ` (${(l.json!.err as { message?: string }).message ?? ''})` : ''}`);
  await stage.close();

  if (interrupted) {
    report.fail(`interrupted (${interrupted}): the bot and the simulators are closed`);
    return 130;
  }
  if (failure || !result) {
    const step = failure instanceof StepFailed ? failure.step : 'the demo';
    report.fail(red(bold(`FAILED at step “${step}”`)));
    report.now(`  ${failure instanceof StepFailed ? failure.reason : (failure?.message ?? 'unknown failure')}`);
    if (!botAlive) report.now(`  The bot process exited early: see ${path.join(logDir, 'bot.log')}`);
    else report.now(dim(`  Bot log: ${path.join(logDir, 'bot.log')}; simulators: ${path.join(logDir, 'simulators.log')}`));
    if (botProblems.length) report.now(dim(`  The bot's last warnings:\n${botProblems.map((p) => `    ${p}`).join('\n')}`));
    if (voxtaUrl && /start|online/.test(step)) report.now(dim(`  Is a Voxta server reachable at ${voxtaUrl}? \`npm run doctor\` checks the connection and credentials.`));
    else if (voxtaUrl) report.now(dim('  (With a real Voxta server the members’ voices are synthetic sounds: its speech recogniser may not find words in them.)'));
    return 1;
  }

  report.now('');
  report.now(bold('Summary'));
  for (const st of result.steps) report.ok(`${st.name} ${dim(`(${ms(st.ms)})`)}`);
  for (const c of checks) report.ok(c);
  report.now('');
  report.now(`  speech end → first reply audio: ${bold(ms(result.voiceLatencyMs))} ${dim('(Alice’s last voiced frame → the character’s first audio frame, both as seen in the voice channel)')}`);
  report.now(`  barge-in: ${result.characterName} stopped ${bold(ms(result.bargeInStopMs))} after Bob started talking; /interrupt: ${bold(ms(result.interruptStopMs))}`);
  report.now(`  ${green('every step happened')} in ${ms(Date.now() - report.t0)}.`);
  return 0;
}

/** A path as the user best reads it: relative below the CWD, absolute elsewhere. */
function shown(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/** Checks the voice was E2EE and writes what the voice channel heard; returns summary lines. */
function finish(stage: Stage, outFile: string, report: Report): string[] {
  const audio = stage.discord.voiceServer.botAudio(stage.guild.id);
  const voiced = audio.e2eeFrames + audio.clearFrames;
  if (voiced === 0) throw new Error('the voice channel received no audio from the bot');
  if (audio.clearFrames > 0) throw new Error(`${audio.clearFrames} of ${voiced} audio frames arrived without DAVE encryption`);
  if (audio.daveFailures > 0) throw new Error(`${audio.daveFailures} DAVE frames could not be decrypted by the members`);
  if (audio.transportFailures > 0) throw new Error(`${audio.transportFailures} RTP packets failed transport decryption`);
  const rate = 48_000;
  const pcm = audio.pcm(rate, 1, { timeline: true });
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, encodeWav(pcm, rate));
  report.now('');
  report.now(`${dim('voice')}  ${audio.e2eeFrames} of ${voiced} audio frames from the bot were end-to-end encrypted (DAVE v1) and decrypted by the members`);
  const tones = stage.voxta ? ' — the simulated Voxta speaks in tones, one pitch per sentence' : '';
  report.now(`${dim('wav  ')}  the character’s voice as the channel heard it: ${shown(outFile)} (${ms((pcm.length / rate) * 1000)}, 48 kHz mono${tones})`);
  return [`${audio.e2eeFrames}/${voiced} voice frames end-to-end encrypted (DAVE v1), 0 in clear`, `character’s voice written to ${shown(outFile)}`];
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
