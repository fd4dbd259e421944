/**
 * Shared set-up for the simulator tests: a simulator with one guild (text + voice channel, a
 * member, an admin) and a REAL discord.js Client logged in to it in-process.
 */
import { once } from 'node:events';
import { Client, Events, GatewayIntentBits, type ClientOptions } from 'discord.js';
import { pino } from 'pino';
import { startDiscordSim, type DiscordSim, type DiscordSimOptions, type SimChannelHandle, type SimGuildHandle, type SimMemberHandle } from '../../sim/discord/index.js';

export const testLog = pino({ level: process.env.SIM_LOG_LEVEL ?? 'warn' });

export const DEFAULT_INTENTS = [
  GatewayIntentBits.Guilds,
  GatewayIntentBits.GuildVoiceStates,
  GatewayIntentBits.GuildMessages,
  GatewayIntentBits.MessageContent,
];

export interface World {
  sim: DiscordSim;
  guild: SimGuildHandle;
  text: SimChannelHandle;
  voice: SimChannelHandle;
  alice: SimMemberHandle;
  boss: SimMemberHandle;
}

export async function startWorld(opts: DiscordSimOptions = {}): Promise<World> {
  const sim = await startDiscordSim({ voice: false, heartbeatIntervalMs: 500, log: testLog, ...opts });
  const guild = sim.addGuild({ name: 'Test Guild' });
  const text = guild.addTextChannel('general');
  const voice = guild.addVoiceChannel('Lounge');
  const alice = guild.addMember({ username: 'alice', displayName: 'Alice' });
  const boss = guild.addMember({ username: 'boss', permissions: 'admin' });
  return { sim, guild, text, voice, alice, boss };
}

export async function loginClient(sim: DiscordSim, intents = DEFAULT_INTENTS, extra: Partial<ClientOptions> = {}): Promise<Client<true>> {
  const client = new Client({ intents, rest: { api: sim.restUrl }, ...extra });
  const ready = once(client, Events.ClientReady);
  await client.login(sim.token);
  await ready;
  return client as Client<true>;
}

/** Resolves with the first emission of `event` whose arguments satisfy `filter`. */
export function nextEvent<T extends unknown[]>(emitter: { on(e: string, f: (...a: T) => void): unknown; off(e: string, f: (...a: T) => void): unknown }, event: string, filter: (...a: T) => boolean = () => true, timeoutMs = 5000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timed out waiting for ${event}`));
    }, timeoutMs);
    const handler = (...args: T) => {
      if (!filter(...args)) return;
      clearTimeout(timer);
      emitter.off(event, handler);
      resolve(args);
    };
    emitter.on(event, handler);
  });
}
