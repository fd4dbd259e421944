/**
 * The loopback world for the latency and scale benchmarks: the production bot as a child process
 * (test/harness) against the Voxta simulator and the Discord simulator with its real voice server,
 * all simulators in THIS process so their timestamps share one clock (performance.now()).
 *
 * Recordings, all taken with performance.now() in this process:
 * - `memberSends`: every RTP packet a simulated member sent to the bot. The Discord voice sim does
 *   not record those itself, so `BotSession.prototype.sendMemberFrame` is wrapped for the duration
 *   of the benchmark (observation only: the original runs unchanged, the time is taken right
 *   after it handed the packet to the UDP socket);
 * - `botPackets`: every RTP packet from the bot, from the voice server's `botAudio` event (emitted
 *   when the packet arrived and was decrypted);
 * - `replyChunks`: every `replyChunk` the Voxta sim sent, from its `serverMessage` event;
 * - the Voxta sim's own audio record: each 960-byte frame from the bot with its arrival time.
 */
import { readFileSync } from 'node:fs';
import { BotSession } from '../../sim/discord/voice/bot-session.js';
import { ARIA_ID, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import type { BotProcess } from '../../test/harness/bot-process.js';
import { startE2E, type E2EEnv } from '../../test/harness/env.js';

export interface MemberSend {
  userId: string;
  at: number;
  bytes: number;
}

export interface BotPacket {
  at: number;
  silence: boolean;
}

export interface ReplyChunkSent {
  at: number;
  messageId: string;
  seq: number;
}

export interface LoopbackWorld {
  env: E2EEnv;
  bot: BotProcess;
  sessionId: string;
  memberSends: MemberSend[];
  botPackets: BotPacket[];
  replyChunks: ReplyChunkSent[];
  close(): Promise<void>;
}

export interface LoopbackOptions {
  dave: 'off' | 'v1';
  voxta?: VoxtaSimOptions;
  botEnv?: Record<string, string>;
  members?: Array<'alice' | 'bob' | 'admin'>;
  logLevel?: string;
}

type SendMemberFrame = BotSession['sendMemberFrame'];
let hookDepth = 0;
let originalSend: SendMemberFrame | undefined;
const sendListeners = new Set<(m: MemberSend) => void>();

function hookMemberSends(listener: (m: MemberSend) => void): () => void {
  if (hookDepth++ === 0) {
    originalSend = BotSession.prototype.sendMemberFrame;
    const orig = originalSend;
    BotSession.prototype.sendMemberFrame = function (this: BotSession, member, opus) {
      const sent = orig.call(this, member, opus);
      if (sent) {
        const rec = { userId: (member as { userId: string }).userId, at: performance.now(), bytes: opus.length };
        for (const l of sendListeners) l(rec);
      }
      return sent;
    };
  }
  sendListeners.add(listener);
  return () => {
    sendListeners.delete(listener);
    if (--hookDepth === 0 && originalSend) {
      BotSession.prototype.sendMemberFrame = originalSend;
      originalSend = undefined;
    }
  };
}

const COMMANDS = ['start', 'join', 'leave'];

/** Starts both simulators and the bot, starts a chat with voice, and waits until the microphone socket is open. */
export async function startLoopback(opts: LoopbackOptions): Promise<LoopbackWorld> {
  const memberSends: MemberSend[] = [];
  const botPackets: BotPacket[] = [];
  const replyChunks: ReplyChunkSent[] = [];
  const unhook = hookMemberSends((m) => memberSends.push(m));
  let env: E2EEnv | undefined;
  try {
    env = await startE2E({ discord: { dave: opts.dave }, voxta: { chunkDelayMs: 5, ...opts.voxta } });
    const e = env;
    e.discord.voiceServer.events.on('botAudio', (ev: { guildId: string; packet: { silence: boolean } }) => {
      if (ev.guildId === e.guild.id) botPackets.push({ at: performance.now(), silence: ev.packet.silence });
    });
    e.voxta!.on('serverMessage', (m: { seq: number; payload: unknown }) => {
      const p = m.payload as { $type?: string; messageId?: string };
      if (p.$type === 'replyChunk' && p.messageId) replyChunks.push({ at: performance.now(), messageId: p.messageId, seq: m.seq });
    });
    for (const m of opts.members ?? ['alice']) e[m].joinVoice(e.voice.id);
    const bot = await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id, ...opts.botEnv }, logLevel: opts.logLevel ?? 'info' });
    await e.discord.waitForBotReady(30_000);
    await e.discord.waitForCommands(COMMANDS, e.guild.id, 30_000);
    const h = await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID, 'voice-channel': e.voice.id });
    await h.waitForResponse();
    await e.discord.waitForBotVoice(e.guild.id, e.voice.id, 30_000);
    const voxta = e.voxta!;
    const session = await voxta.waitFor(() => voxta.sessions()[0], 15_000, 'a Voxta session');
    await voxta.waitFor(() => voxta.audio(session.sessionId)?.header, 15_000, 'the audio socket header');
    await e.discord.voiceServer.daveSettled(e.guild.id, 15_000);
    return {
      env: e,
      bot,
      sessionId: session.sessionId,
      memberSends,
      botPackets,
      replyChunks,
      async close() {
        unhook();
        await e.close();
      },
    };
  } catch (err) {
    unhook();
    await env?.close();
    throw err;
  }
}

/** CPU time (user + system, all threads) of a process so far, ms, from /proc/<pid>/stat. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / USER_HZ;
}

/** Clock ticks per second of /proc's utime/stime: the kernel ABI fixes USER_HZ at 100. */
const USER_HZ = 100;

/** Resident set size of a process, MiB, from /proc/<pid>/status. */
export function processRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}
