/**
 * Test-side helpers: a voice adapter standing in for discord.js's guild.voiceAdapterCreator (it
 * plays the main gateway's part, as the gateway simulator will), tones and a Goertzel detector.
 */
import { Readable } from 'node:stream';
import {
  createAudioResource,
  StreamType,
  type DiscordGatewayAdapterCreator,
  type DiscordGatewayAdapterLibraryMethods,
} from '@discordjs/voice';
import { encodeDiscordFrames, toDiscordFrames } from '../../sim/discord/voice/audio-frames.js';
import type { VoiceServer } from '../../sim/discord/voice/index.js';

export interface JoinPayload {
  op: number;
  d: { guild_id: string; channel_id: string | null; self_deaf: boolean; self_mute: boolean };
}

/**
 * An adapter that answers every op 4 like the main gateway: openSession on the voice server,
 * then VOICE_STATE_UPDATE, then VOICE_SERVER_UPDATE (that order matters: gotcha 1).
 */
export function gatewayAdapter(voice: VoiceServer, botUserId: string): {
  adapterCreator: DiscordGatewayAdapterCreator;
  sent: JoinPayload[];
} {
  const sent: JoinPayload[] = [];
  let session = 0;
  const adapterCreator: DiscordGatewayAdapterCreator = (methods: DiscordGatewayAdapterLibraryMethods) => ({
    sendPayload(payload) {
      const p = payload as JoinPayload;
      sent.push(p);
      setImmediate(() => {
        const { guild_id, channel_id, self_deaf, self_mute } = p.d;
        if (!channel_id) {
          voice.closeSession(guild_id);
          return;
        }
        const sessionId = `voice-session-${++session}`;
        const { token } = voice.openSession({ guildId: guild_id, channelId: channel_id, botUserId, sessionId });
        methods.onVoiceStateUpdate({
          guild_id, channel_id, user_id: botUserId, session_id: sessionId, deaf: false, mute: false,
          self_deaf, self_mute, self_video: false, suppress: false, request_to_speak_timestamp: null,
        } as never);
        methods.onVoiceServerUpdate({ token, guild_id, endpoint: voice.endpoint });
      });
      return true;
    },
    destroy() {},
  });
  return { adapterCreator, sent };
}

export function tone(freq: number, seconds: number, rate = 48_000, amplitude = 0.3): Int16Array {
  const n = Math.round(seconds * rate);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(amplitude * 32767 * Math.sin((2 * Math.PI * freq * i) / rate));
  return out;
}

/** Magnitude of one frequency bin, normalised by length (≈ amplitude/2 for a pure tone). */
export function goertzel(pcm: Int16Array, freq: number, rate = 48_000): number {
  const k = (2 * Math.PI * freq) / rate;
  const coeff = 2 * Math.cos(k);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < pcm.length; i++) {
    const s0 = pcm[i]! + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return Math.sqrt(s1 * s1 + s2 * s2 - coeff * s1 * s2) / pcm.length;
}

/** An AudioResource of Opus packets (StreamType.Opus: no prism/opusscript instance in the bot). */
export function opusToneResource(freq: number, seconds: number) {
  const packets = encodeDiscordFrames(toDiscordFrames(tone(freq, seconds), 48_000, 1));
  return { resource: createAudioResource(Readable.from(packets), { inputType: StreamType.Opus }), frames: packets.length };
}

export function waitFor<T>(emitter: NodeJS.EventEmitter, event: string, predicate: (arg: T) => boolean = () => true, timeoutMs = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out waiting for ${event}`));
    }, timeoutMs);
    const on = (arg: T) => {
      if (!predicate(arg)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(arg);
    };
    emitter.on(event, on);
  });
}

/** Polls until `cond()` holds (then lets 50 ms more pass, so extra arrivals would show) or the timeout expires. */
export async function settle(cond: () => boolean, timeoutMs = 2_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 50));
}
