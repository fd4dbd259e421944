/**
 * VoiceLink at the adapter edge: a gateway adapter that records the op 4 payloads @discordjs/voice
 * sends (joining undeafened, leaving) and never answers, so the connection never gets Ready.
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { DiscordGatewayAdapterCreator } from '@discordjs/voice';
import { VoiceLink } from '../../src/voice/connection.js';

const log = pino({ level: 'silent' });

function silentAdapter() {
  const payloads: Array<{ op: number; d: { guild_id: string; channel_id: string | null; self_mute: boolean; self_deaf: boolean } }> = [];
  let destroyed = 0;
  const creator: DiscordGatewayAdapterCreator = () => ({
    sendPayload: (p) => {
      payloads.push(p as (typeof payloads)[number]);
      return true;
    },
    destroy: () => {
      destroyed++;
    },
  });
  return { creator, payloads, destroyed: () => destroyed };
}

describe('VoiceLink', () => {
  it('joins undeafened and unmuted, and gives up (leaving the channel) when never Ready', async () => {
    const a = silentAdapter();
    await expect(
      VoiceLink.open({ guildId: '100000000000000001', channelId: '100000000000000002', adapterCreator: a.creator, log, readyTimeoutMs: 300 }),
    ).rejects.toThrow(/not ready after 300 ms \(last state: signalling\)/);
    expect(a.payloads[0]).toMatchObject({ op: 4, d: { guild_id: '100000000000000001', channel_id: '100000000000000002', self_deaf: false, self_mute: false } });
    // Destroyed: op 4 with channel null (leave) and the adapter released.
    expect(a.payloads.at(-1)).toMatchObject({ op: 4, d: { channel_id: null } });
    expect(a.destroyed()).toBe(1);
  });
});
