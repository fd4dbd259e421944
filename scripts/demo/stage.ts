/**
 * The demo's world: the Voxta simulator (unless VOXTA_URL points at a server), the Discord
 * simulator with DAVE v1 voice, one guild with a text and a voice channel and three people, and
 * the production bot (`src/index.ts`) in a child process pointed at them over loopback.
 */
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import {
  DEFAULT_BOT_PERMISSIONS,
  Perm,
  startDiscordSim,
  type DiscordSim,
  type SimChannelHandle,
  type SimGuildHandle,
  type SimMemberHandle,
} from '../../sim/discord/index.js';
import { startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import { spawnBot, type BotProcess } from '../../test/harness/bot-process.js';
import { scriptedReply } from './lines.js';

export interface StageOptions {
  /** A Voxta server to use instead of the in-process simulator. */
  voxtaUrl?: string;
  /** Directory for the bot's and the simulators' logs. */
  logDir: string;
  /** Echo the bot's output to stderr as it runs. */
  echoBot?: boolean;
}

export interface Stage {
  /** The in-process Voxta simulator; undefined when VOXTA_URL was given. */
  voxta: VoxtaSim | undefined;
  voxtaUrl: string;
  discord: DiscordSim;
  guild: SimGuildHandle;
  text: SimChannelHandle;
  voice: SimChannelHandle;
  alice: SimMemberHandle;
  bob: SimMemberHandle;
  /** The server admin who runs /start and /stop. */
  sam: SimMemberHandle;
  bot: BotProcess;
  /**
   * Tells the simulated recogniser what the next utterances "say" (in order). The simulator's
   * recogniser is an energy detector: it finds the utterances, the script provides the words.
   */
  expectSpeech(...texts: string[]): void;
  names: Map<string, string>;
  close(): Promise<void>;
}

export async function startStage(opts: StageOptions): Promise<Stage> {
  mkdirSync(opts.logDir, { recursive: true });
  const simLogFile = path.join(opts.logDir, 'simulators.log');
  const simLog: Logger = pino({ level: process.env.SIM_LOG_LEVEL ?? 'info' }, createWriteStream(simLogFile));
  const closers: Array<() => Promise<unknown>> = [];
  const speechQueue: string[] = [];
  try {
    let voxta: VoxtaSim | undefined;
    if (!opts.voxtaUrl) {
      voxta = await startVoxtaSim({
        chunkDelayMs: 40,
        // As a real server does: a new chat opens with the character's greeting, and local TTS
        // takes a while to serve each clip.
        greeting: true,
        tts: { delayMs: 1500 },
        reply: (userText, ctx) => scriptedReply(userText, ctx),
        stt: { transcripts: () => speechQueue.shift() ?? null },
      });
      closers.push(() => voxta!.close());
    }
    // Invited as the README's link does: Manage Webhooks lets each character post as itself.
    const discord = await startDiscordSim({ dave: 'v1', log: simLog, botPermissions: DEFAULT_BOT_PERMISSIONS | Perm.ManageWebhooks });
    closers.push(() => discord.close());

    const guild = discord.addGuild({ name: 'Voxta Lounge' });
    const text = guild.addTextChannel('general', { topic: 'Talk with Aria' });
    const voice = guild.addVoiceChannel('Lounge');
    const alice = guild.addMember({ username: 'alice', displayName: 'Alice' });
    const bob = guild.addMember({ username: 'bob', displayName: 'Bob' });
    const sam = guild.addMember({ username: 'sam', displayName: 'Sam', permissions: 'admin' });
    const names = new Map<string, string>([
      [alice.id, 'Alice'],
      [bob.id, 'Bob'],
      [sam.id, 'Sam'],
    ]);

    const voxtaUrl = opts.voxtaUrl ?? voxta!.url;
    const bot = await spawnBot({
      discordSim: discord,
      voxtaUrl,
      logLevel: process.env.LOG_LEVEL ?? 'info',
      echo: opts.echoBot ?? false,
      // Only the Voxta credentials of a real server pass through; nothing else configures the bot.
      env: { VOXTA_API_KEY: opts.voxtaUrl ? process.env.VOXTA_API_KEY : undefined },
    });
    const botLogFile = path.join(opts.logDir, 'bot.log');
    closers.push(async () => {
      const exit = await bot.kill('SIGTERM');
      writeFileSync(botLogFile, `${bot.output()}\n[exit ${JSON.stringify(exit)}]\n`);
      await bot.cleanup();
    });

    return {
      voxta,
      voxtaUrl,
      discord,
      guild,
      text,
      voice,
      alice,
      bob,
      sam,
      bot,
      names,
      expectSpeech(...texts) {
        speechQueue.length = 0;
        speechQueue.push(...texts);
      },
      close: () => closeAll(closers),
    };
  } catch (err) {
    await closeAll(closers);
    throw err;
  }
}

async function closeAll(closers: Array<() => Promise<unknown>>): Promise<void> {
  for (const close of closers.reverse().splice(0)) await close().catch(() => undefined);
}
