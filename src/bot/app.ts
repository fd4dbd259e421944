/**
 * The bot process: discord.js client, command registration and the per-guild sessions.
 * (Filled in by the bot-core work; this first version only logs in.)
 */
import { Client, GatewayIntentBits } from 'discord.js';
import type { Config } from '../config.js';
import { createLogger, registerSecret } from '../log.js';

export async function runBot(config: Config): Promise<void> {
  registerSecret(config.discord.token);
  registerSecret(config.voxta.apiKey);
  const log = createLogger({ level: config.logLevel });
  const client = new Client({
    intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates, GatewayIntentBits.GuildMessages],
    rest: { api: config.discord.apiUrl },
  });
  client.once('clientReady', (c) => log.info({ user: c.user.tag }, 'logged in to Discord'));
  await client.login(config.discord.token);
}
