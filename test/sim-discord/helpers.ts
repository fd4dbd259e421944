/**
 * Shared set-up for the simulator tests: a simulator with one guild (text + voice channel, a
 * member, an admin) and a REAL discord.js Client logged in to it in-process.
 */
import { once } from 'node:events';
import { crc32, deflateSync } from 'node:zlib';
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

/** A real (decodable) PNG of `width` × `height` pixels in one colour: avatars and image attachments. */
export function pngBytes(width: number, height: number, rgb: [number, number, number] = [200, 60, 120]): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(width * 3).map((_, i) => rgb[i % 3] as number)]);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
