/**
 * The greeting is spoken (issue "voice turns that never drop a word", seen #1): a new chat opens
 * with the character's greeting while Discord is still setting up voice — here a voice join held
 * for 1.5 s by the Discord simulator, and a TTS that takes 1.5 s per clip like local TTS on a
 * consumer GPU. The bot joins voice before it opens the chat, so the greeting's audio is fetched,
 * played into the channel with its true duration and acknowledged once, instead of being
 * acknowledged as text-only.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { startE2E, type E2EEnv } from '../harness/env.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('scenario: the greeting of a new chat started into voice', () => {
  it('is fetched, heard in the channel and acknowledged once, with a 1.5 s voice join and 1.5 s TTS', async () => {
    const e = await startE2E({ discord: { voiceJoinDelayMs: 1500 }, voxta: { greeting: true, tts: { delayMs: 1500 } } });
    env = e;
    e.alice.joinVoice(e.voice.id);
    await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id } });
    await e.discord.waitForBotReady(15_000);
    await e.discord.waitForCommands(['start'], e.guild.id, 15_000);
    await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID, 'voice-channel': e.voice.id });
    const voxta = e.voxta!;
    const greeting = await voxta.waitForServerMessage('replyChunk', {}, 20_000);
    const messageId = String((greeting.payload as { messageId: string }).messageId);
    // Its audio was fetched (TTS served it) and played: a start with the clip's real duration, then one complete.
    await voxta.waitFor(() => voxta.playback(messageId).completes > 0, 20_000, 'the greeting to finish playing');
    const pb = voxta.playback(messageId);
    expect(pb.completes).toBe(1);
    expect(pb.starts.length).toBeGreaterThan(0);
    expect(pb.starts.every((s) => s.duration > 0)).toBe(true);
    expect(voxta.ttsServed.filter((t) => t.messageId === messageId).length).toBe(pb.starts.length);
    // Heard in the channel: the bot sent that much audio while it was there.
    const spokenMs = e.discord.voiceServer.botAudio(e.guild.id).packets.filter((p) => !p.silence).length * 20;
    const clipMs = voxta.ttsServed.filter((t) => t.messageId === messageId).reduce((n, t) => n + t.durationMs, 0);
    expect(spokenMs).toBeGreaterThanOrEqual(clipMs * 0.9);
  }, 60_000);
});
