/**
 * End-to-end environment: both simulators, a standard Discord world (one guild with a text and a
 * voice channel and two members), and the production bot as a child process pointed at them.
 *
 *   const env = await startE2E();
 *   const bot = await env.spawnBot();
 *   await env.discord.waitForBotReady();
 *   ...
 *   await env.close();   // kills the bot, closes both simulators, removes temp dirs
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import {
  startDiscordSim,
  type DiscordSim,
  type DiscordSimOptions,
  type SimChannelHandle,
  type SimGuildHandle,
  type SimMemberHandle,
  type SimMessage,
} from '../../sim/discord/index.js';
import { startVoxtaSim, type VoxtaSim, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import { spawnBot, type BotProcess, type SpawnBotOptions } from './bot-process.js';

export interface E2EOptions {
  discord?: DiscordSimOptions;
  voxta?: VoxtaSimOptions;
  /** Use this Voxta URL instead of starting the Voxta simulator (the demo against a real server). */
  voxtaUrl?: string;
}

export interface E2EEnv {
  discord: DiscordSim;
  /** Undefined when `voxtaUrl` was given. */
  voxta: VoxtaSim | undefined;
  voxtaUrl: string;
  guild: SimGuildHandle;
  text: SimChannelHandle;
  voice: SimChannelHandle;
  /** A regular member. */
  alice: SimMemberHandle;
  /** A second regular member (overlapping speakers). */
  bob: SimMemberHandle;
  /** A member with Administrator (state-changing commands). */
  admin: SimMemberHandle;
  /** One data dir for every bot started by this env, so restarts find their SQLite state. */
  dataDir: string;
  /** Bots started by `spawnBot`, latest last. */
  bots: BotProcess[];
  spawnBot(opts?: Omit<SpawnBotOptions, 'discordSim' | 'voxtaUrl' | 'dataDir'>): Promise<BotProcess>;
  close(): Promise<void>;
}

/** A quiet logger for the simulators (warnings and errors only unless SIM_LOG_LEVEL is set). */
/** A message the bot posted on its own in a channel (not an interaction response). */
export const fromBot = (e: E2EEnv) => (m: SimMessage): boolean => m.authorId === e.discord.botUserId && m.interactionId === null;

export const simLog = pino({ level: process.env.SIM_LOG_LEVEL ?? 'warn' });

export async function startE2E(opts: E2EOptions = {}): Promise<E2EEnv> {
  const voxta = opts.voxtaUrl ? undefined : await startVoxtaSim({ chunkDelayMs: 5, capacityDelayMs: 50, ...opts.voxta });
  let discord: DiscordSim;
  try {
    discord = await startDiscordSim({ heartbeatIntervalMs: 5000, voiceHeartbeatIntervalMs: 2000, log: simLog, ...opts.discord });
  } catch (err) {
    await voxta?.close();
    throw err;
  }
  const guild = discord.addGuild({ name: 'Voxta Lounge' });
  const text = guild.addTextChannel('general');
  const voice = guild.addVoiceChannel('Voice');
  const alice = guild.addMember({ username: 'alice', displayName: 'Alice' });
  const bob = guild.addMember({ username: 'bob', displayName: 'Bob' });
  const admin = guild.addMember({ username: 'admin', displayName: 'Admin', permissions: 'admin' });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'voxta-discord-e2e-'));
  const voxtaUrl = opts.voxtaUrl ?? (voxta as VoxtaSim).url;
  const bots: BotProcess[] = [];
  let closed = false;

  return {
    discord,
    voxta,
    voxtaUrl,
    guild,
    text,
    voice,
    alice,
    bob,
    admin,
    dataDir,
    bots,
    async spawnBot(botOpts = {}) {
      const bot = await spawnBot({ ...botOpts, discordSim: discord, voxtaUrl, dataDir });
      bots.push(bot);
      return bot;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled(bots.map((b) => b.cleanup()));
      await Promise.allSettled([discord.close(), voxta?.close()]);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
