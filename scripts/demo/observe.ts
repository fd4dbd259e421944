/**
 * What the demo watches, the way a person in the server would notice it: messages in the text
 * channel (with their edits) and the character's voice as it arrives in the voice channel (RTP
 * the simulated voice server received and decrypted).
 */
import type { BotAudioPacket, DiscordSim, SimMessage } from '../../sim/discord/index.js';

/** Resolves once `probe` returns a value (polled every 20 ms); rejects after `timeoutMs`. */
export async function waitUntil<T>(probe: () => T | undefined | null | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The character's voice in one guild, as received by the simulated voice channel. */
export class VoiceWatch {
  constructor(
    private readonly discord: DiscordSim,
    private readonly guildId: string,
  ) {}

  /** Audible (non-silence) packets that arrived at or after `since`. */
  audible(since = 0): BotAudioPacket[] {
    return this.discord.voiceServer.botAudio(this.guildId).packets.filter((p) => !p.silence && p.at >= since);
  }

  /** The first audible packet at or after `since`. */
  firstAudible(since: number, timeoutMs: number, what: string): Promise<BotAudioPacket> {
    return waitUntil(() => this.audible(since)[0], timeoutMs, what);
  }

  /**
   * Resolves with the arrival time of the last audible packet once nothing audible has arrived for
   * `quietMs` (the character stopped or finished talking).
   */
  async quiet(since: number, quietMs: number, timeoutMs: number, what: string): Promise<number> {
    return waitUntil(
      () => {
        const last = this.audible(since).at(-1);
        const lastAt = last?.at ?? since;
        return Date.now() - lastAt >= quietMs ? lastAt : undefined;
      },
      timeoutMs,
      what,
    );
  }

  /** Contiguous stretches of audible packets since `since` (gaps over `gapMs` split them): for diagnostics. */
  runs(since = 0, gapMs = 100): Array<{ from: number; to: number; packets: number }> {
    const out: Array<{ from: number; to: number; packets: number }> = [];
    for (const p of this.audible(since)) {
      const last = out.at(-1);
      if (last && p.at - last.to <= gapMs) {
        last.to = p.at;
        last.packets++;
      } else out.push({ from: p.at, to: p.at, packets: 1 });
    }
    return out;
  }

  /** Milliseconds of audio (20 ms per packet) sent between two times. */
  audioMs(from: number, to = Infinity): number {
    return this.audible(from).filter((p) => p.at <= to).length * 20;
  }
}

/** Messages of the text channel created at or after `since` (members' and the bot's). */
export function messagesSince(discord: DiscordSim, channelId: string, since: number): SimMessage[] {
  return discord.messages(channelId).filter((m) => m.createdAt.getTime() >= since);
}

/** A message that has not been edited for `settleMs` (streaming finished). */
export function settled(m: SimMessage, settleMs: number): boolean {
  const last = (m.editedAt ?? m.createdAt).getTime();
  return Date.now() - last >= settleMs;
}
