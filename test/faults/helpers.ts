/**
 * Shared helpers of the fault and load suite (test/faults): booting the production bot against
 * both simulators, reading its health endpoint, and views of what each side saw.
 */
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { InteractionHandle, SimMessage } from '../../sim/discord/index.js';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { DB_FILE_NAME } from '../../src/store/store.js';
import type { BotProcess } from '../harness/bot-process.js';
import { startE2E, type E2EEnv, type E2EOptions } from '../harness/env.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export { freePort, httpGet } from '../harness/http.js';

/** The value of one sample line of a Prometheus text exposition (`name{labels} value`), or undefined. */
export function metricValue(text: string, sample: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    if (i > 0 && line.slice(0, i) === sample) return Number(line.slice(i + 1));
  }
  return undefined;
}

/** A text-only world (the Discord simulator without the voice server) with the bot started and its commands registered. */
export async function bootText(
  register: (env: E2EEnv) => void,
  opts: { e2e?: E2EOptions; botEnv?: Record<string, string>; commands?: string[]; globalCommands?: boolean; before?: (env: E2EEnv) => void } = {},
): Promise<{ env: E2EEnv; bot: BotProcess }> {
  const env = await startE2E({ ...opts.e2e, discord: { voice: false, ...opts.e2e?.discord } });
  register(env);
  opts.before?.(env);
  // Commands go to the first guild only (instant), or globally when several guilds need them.
  const bot = await env.spawnBot({ env: { ...(opts.globalCommands ? {} : { DISCORD_GUILD_ID: env.guild.id }), ...opts.botEnv } });
  await env.discord.waitForBotReady(15_000);
  await env.discord.waitForCommands(opts.commands ?? ['start', 'stop'], opts.globalCommands ? undefined : env.guild.id, 15_000);
  return { env, bot };
}

/** The final visible answer to a command: the last follow-up, else the (edited) original response. */
export async function answer(handle: InteractionHandle, timeoutMs = 20_000) {
  await handle.waitUntil(() => (handle.hasFinalContent || handle.followUps.length > 0 ? true : undefined), timeoutMs, 'an answer');
  await sleep(250);
  const last = handle.followUps.at(-1);
  const m = last ?? { content: handle.content, embeds: handle.embeds, ephemeral: handle.ephemeral };
  return { content: m.content, embeds: m.embeds as Array<{ title?: string; description?: string }>, ephemeral: m.ephemeral };
}

/** Messages the bot posted on its own in a channel (not interaction responses). */
export function botPosts(env: E2EEnv, channelId: string = env.text.id): SimMessage[] {
  return env.discord.messages(channelId).filter((m) => m.authorId === env.discord.botUserId && m.interactionId === null);
}

// Shared with the voice e2e tests: every user `send` Voxta received, and the replies' message ids.
export { replyIds, sends } from '../voice/e2e-helpers.js';

export interface StoredSession {
  guild_id: string;
  active: number;
  chat_id: string | null;
  character_id: string | null;
  text_channel_id: string | null;
  voice_channel_id: string | null;
}

/** The guild_sessions rows as the bot stored them (read-only, straight from SQLite). */
export function storedSessions(dataDir: string): StoredSession[] {
  const db = new DatabaseSync(path.join(dataDir, DB_FILE_NAME), { readOnly: true });
  try {
    return db.prepare('SELECT * FROM guild_sessions ORDER BY guild_id').all() as unknown as StoredSession[];
  } finally {
    db.close();
  }
}

/** User messages of a chat as the Voxta simulator stored them (its history survives restarts). */
export function chatUserTexts(env: E2EEnv, chatId: string): string[] {
  const chat = env.voxta!.chats().find((c) => c.id === chatId);
  return chat ? chat.messages.filter((m) => m.role === 'User').map((m) => m.text) : [];
}

export { tone } from '../audio/signals.js';

// A small deterministic PRNG (mulberry32), so a failing fuzz run can be replayed.
export { prng } from '../audio/signals.js';

export interface VoiceBoot {
  env: E2EEnv;
  bot: BotProcess;
  /** The Voxta session of the chat (its microphone socket is open). */
  sessionId: string;
}

/**
 * Both simulators (voice server on, DAVE off unless asked), the production bot, a chat with Aria
 * started with voice, alice in the voice channel, the bot's microphone socket open at Voxta.
 */
export async function bootVoice(
  register: (env: E2EEnv) => void,
  opts: { e2e?: E2EOptions; botEnv?: Record<string, string>; dave?: 'off' | 'v1' } = {},
): Promise<VoiceBoot> {
  const env = await startE2E({ ...opts.e2e, discord: { dave: opts.dave ?? 'off', ...opts.e2e?.discord } });
  register(env);
  env.alice.joinVoice(env.voice.id);
  const bot = await env.spawnBot({ env: { DISCORD_GUILD_ID: env.guild.id, ...opts.botEnv } });
  await env.discord.waitForBotReady(15_000);
  await env.discord.waitForCommands(['start', 'join', 'leave'], env.guild.id, 15_000);
  const h = await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID, 'voice-channel': env.voice.id });
  await h.waitForResponse();
  await env.discord.waitForBotVoice(env.guild.id, env.voice.id, 15_000);
  const voxta = env.voxta!;
  const session = await voxta.waitFor(() => voxta.sessions()[0], 10_000, 'a Voxta session');
  await voxta.waitFor(() => voxta.audio(session.sessionId)?.header, 10_000, 'the audio socket header');
  await env.discord.voiceServer.daveSettled(env.guild.id, 10_000);
  return { env, bot, sessionId: session.sessionId };
}

/** The stats the voice module logs when it leaves a channel (`voice: leaving`), from the bot's JSON log. */
export async function voiceLeaveStats(bot: BotProcess, timeoutMs = 10_000): Promise<Partial<Record<string, number>>> {
  const line = await bot.waitForLogMsg(/^voice: leaving$/, () => true, timeoutMs);
  return (line.json?.stats ?? {}) as Record<string, number>;
}
