/**
 * Shared helpers of the voice end-to-end tests (test/e2e/voice-*.test.ts): a booted world with
 * the production bot in a voice channel, tones, a Goertzel detector, and views of what the Voxta
 * simulator received.
 */
import { ARIA_ID, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import type { DiscordSimOptions } from '../../sim/discord/index.js';
import { startE2E, type E2EEnv } from '../harness/env.js';
import type { BotProcess } from '../harness/bot-process.js';

const COMMANDS = ['start', 'join', 'leave', 'listen'];

export { tone } from '../audio/signals.js';

/** Power of one frequency in a block (Goertzel), normalised by the block length (≈ amplitude² / 4 for a tone). */
export function goertzel(pcm: Int16Array, rate: number, hz: number): number {
  const k = (2 * Math.cos((2 * Math.PI * hz) / rate)) as number;
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < pcm.length; i++) {
    const s0 = pcm[i]! + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (s1 * s1 + s2 * s2 - k * s1 * s2) / (pcm.length * pcm.length);
}

export interface Boot {
  env: E2EEnv;
  bot: BotProcess;
  sessionId: string;
}

export interface BootOptions {
  dave?: 'off' | 'v1';
  voxta?: VoxtaSimOptions;
  discord?: DiscordSimOptions;
  botEnv?: Record<string, string>;
  members?: Array<'alice' | 'bob'>;
}

/**
 * Simulators + the production bot, a chat with Aria started with voice, the members in the voice
 * channel, the bot's microphone socket open. `register` receives the env at once so the caller
 * can close it even when booting fails half-way.
 */
export async function boot(opts: BootOptions = {}, register: (env: E2EEnv) => void = () => {}): Promise<Boot> {
  const env = await startE2E({ discord: { dave: opts.dave ?? 'off', ...opts.discord }, voxta: { ...opts.voxta } });
  register(env);
  for (const m of opts.members ?? ['alice']) env[m].joinVoice(env.voice.id);
  const bot = await env.spawnBot({ env: { DISCORD_GUILD_ID: env.guild.id, ...opts.botEnv } });
  await env.discord.waitForBotReady(15_000);
  await env.discord.waitForCommands(COMMANDS, env.guild.id, 15_000);
  const h = await env.admin.runCommand(env.text.id, 'start', { character: ARIA_ID, 'voice-channel': env.voice.id });
  await h.waitForResponse();
  await env.discord.waitForBotVoice(env.guild.id, env.voice.id, 15_000);
  await env.discord.waitForMessage(env.text.id, (m) => m.authorId === env.discord.botUserId && m.content.includes("I'm listening in"), 15_000);
  const voxta = env.voxta!;
  const session = await voxta.waitFor(() => voxta.sessions()[0], 5000, 'a Voxta session');
  // The bot's microphone socket is open on the chat's session (header sent).
  await voxta.waitFor(() => voxta.audio(session.sessionId)?.header, 10_000, 'the audio socket header');
  await env.discord.voiceServer.daveSettled(env.guild.id, 10_000);
  return { env, bot, sessionId: session.sessionId };
}

export function sends(e: E2EEnv): string[] {
  return e.voxta!.received.filter((m) => m.payload.$type === 'send').map((m) => String(m.payload.text));
}

/** Message ids of the replies the sim streamed, in order. */
export function replyIds(e: E2EEnv): string[] {
  const ids: string[] = [];
  for (const m of e.voxta!.sent) {
    const p = m.payload as { $type?: string; messageId?: string };
    if (p.$type === 'replyChunk' && p.messageId && !ids.includes(p.messageId)) ids.push(p.messageId);
  }
  return ids;
}

