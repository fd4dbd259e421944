/**
 * Regression (issue "Guild sessions that cannot race…", defect 7): on a Stage a bot joins as
 * audience (suppressed) and nobody hears it. It used to play into the void and acknowledge the
 * speech to Voxta as heard. Now it asks to speak (raising its hand: it lacks Mute Members), says
 * plainly that a stage moderator must invite it up, answers in text meanwhile and acknowledges the
 * replies as unplayed; once invited up it says so, and is heard.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { fromBot, startE2E, type E2EEnv } from '../harness/env.js';
import { replyIds } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('scenario: a chat started on a Stage channel', () => {
  it('asks to speak, answers in text while audience (never acknowledged as heard), and speaks once invited up', async () => {
    const e = await startE2E({ voxta: { reply: (t) => [`About ${t}: yes.`] } });
    env = e;
    const stage = e.guild.addStageChannel('Town Hall');
    e.alice.joinVoice(stage.id);
    await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id } });
    await e.discord.waitForBotReady(15_000);
    await e.discord.waitForCommands(['start'], e.guild.id, 15_000);
    await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID, 'voice-channel': stage.id });
    await e.discord.waitForBotVoice(e.guild.id, stage.id, 15_000);
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('This is a Stage and I joined as audience, so nobody can hear me yet: I asked to speak'), 15_000);
    expect(e.discord.botVoiceState(e.guild.id)).toMatchObject({ suppress: true });
    const voxta = e.voxta!;

    e.alice.say(e.text.id, 'are you there');
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('About are you there: yes.'), 10_000);
    const first = await voxta.waitFor(() => replyIds(e)[0], 5000, 'the reply');
    await voxta.waitFor(() => voxta.playback(first).completes === 1, 10_000, 'the reply acknowledged');
    // Not heard, so not reported as played: every chunk started with duration 0.
    expect(voxta.playback(first).starts.map((s) => s.duration)).toEqual(voxta.playback(first).starts.map(() => 0));
    expect(e.discord.voiceServer.botAudio(e.guild.id).heardFrames + e.discord.voiceServer.botAudio(e.guild.id).unheardFrames).toBe(0);

    e.discord.approveSpeaker(e.guild.id, e.discord.botUserId);
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.startsWith('I can speak on the stage now'), 10_000);
    e.alice.say(e.text.id, 'and now');
    const second = await voxta.waitFor(() => replyIds(e)[1], 10_000, 'the second reply');
    await voxta.waitFor(() => voxta.playback(second).completes === 1, 15_000, 'the second reply played');
    expect(voxta.playback(second).starts.every((s) => s.duration > 0)).toBe(true);
    expect(e.discord.voiceServer.botAudio(e.guild.id).heardFrames).toBeGreaterThan(0);
    expect(e.discord.voiceServer.botAudio(e.guild.id).unheardFrames).toBe(0);
  }, 60_000);
});
