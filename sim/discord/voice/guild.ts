/**
 * Everything the voice server keeps about one guild: the simulated members in the bot's channel,
 * the bot's current voice session (if any), the credentials the gateway handed out, recordings and
 * fault switches. Survives bot sessions (a rejoin keeps members and recordings).
 */
import { BotAudioRecorder } from './bot-audio.js';
import type { BotSession } from './bot-session.js';
import type { SimMember } from './member.js';

export interface SessionGrant {
  guildId: string;
  channelId: string;
  botUserId: string;
  sessionId: string;
  token: string;
}

export type GatewayFrameRecord =
  | { at: number; dir: 'in' | 'out'; kind: 'json'; op: number; seq?: number; d: unknown }
  | { at: number; dir: 'in' | 'out'; kind: 'binary'; op: number; seq?: number; bytes: number };

const MAX_FRAME_RECORDS = 5_000;

export class GuildVoice {
  /** Members in the bot's voice channel, in join order. */
  readonly members = new Map<string, SimMember>();
  grant: SessionGrant | undefined;
  session: BotSession | undefined;
  readonly audio = new BotAudioRecorder();
  readonly speaking: { at: number; speaking: number }[] = [];
  readonly frames: GatewayFrameRecord[] = [];
  /** Stage audience: users (bot or members) whose audio nobody hears. */
  readonly suppressed = new Set<string>();
  /** Member frames not delivered because the member was suppressed, per user. */
  readonly unheardMemberFrames = new Map<string, number>();
  /** Fault switches (see VoiceServer). */
  readonly faults = { corruptNext: 0, dropNext: 0, heartbeatAckDelayMs: 0 };

  constructor(readonly guildId: string) {}

  recordFrame(frame: GatewayFrameRecord): void {
    if (this.frames.length >= MAX_FRAME_RECORDS) this.frames.splice(0, this.frames.length - MAX_FRAME_RECORDS + 1);
    this.frames.push(frame);
  }
}
