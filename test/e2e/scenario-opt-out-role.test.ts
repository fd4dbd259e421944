/**
 * Regression (issue "Guild sessions that cannot race…", defect 8): `OPT_OUT_ROLE_ID` must hold at
 * once. The bot has no Guild Members intent, so Discord never tells it about role changes; a
 * member given the opt-out role while in voice used to go on being streamed to Voxta until their
 * voice state changed. Now the role is checked against member data fetched from Discord when a
 * member starts speaking (cached briefly): their audio is held until the answer and dropped if
 * they opted out — Voxta's audio socket never carries it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID } from '../../sim/voxta/index.js';
import { startE2E, type E2EEnv } from '../harness/env.js';
import { sends, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

describe('scenario: a member given the opt-out role while in voice', () => {
  it('is not streamed to Voxta from their next utterance, although the bot was never told of the role', async () => {
    const e = await startE2E({ voxta: { stt: { transcripts: (i) => `utterance ${i.index + 1}` }, tts: { enabled: false } } });
    env = e;
    const optOut = e.guild.addRole({ name: 'Do not listen' });
    e.alice.joinVoice(e.voice.id);
    e.bob.joinVoice(e.voice.id);
    await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id, OPT_OUT_ROLE_ID: optOut.id } });
    await e.discord.waitForBotReady(15_000);
    await e.discord.waitForCommands(['start'], e.guild.id, 15_000);
    await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID, 'voice-channel': e.voice.id });
    await e.discord.waitForBotVoice(e.guild.id, e.voice.id, 15_000);
    const voxta = e.voxta!;
    const session = await voxta.waitFor(() => voxta.sessions()[0], 5000, 'the chat');
    await voxta.waitFor(() => voxta.audio(session.sessionId)?.header, 10_000, 'the audio socket');
    const memberFetches = () => e.discord.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/members/${e.alice.id}`)).length;

    // Alice is in voice with the bot; a moderator gives her the opt-out role. GUILD_MEMBER_UPDATE
    // is not delivered to a bot without the Guild Members intent: its cache still says no role.
    e.alice.addRole(optOut.id);
    const fetchesBefore = memberFetches();
    await e.alice.speak(tone(440, 900), { sampleRate: 48_000, channels: 1 });
    // Bob, who did not opt out, is heard: the pipeline works, only Alice is left out.
    await e.bob.speak(tone(660, 900), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => (sends(e).length >= 1 ? true : undefined), 15_000, 'Bob heard');
    await new Promise((r) => setTimeout(r, 1000));
    expect(sends(e)).toEqual(['Bob: utterance 1']);
    expect(voxta.recognitions).toHaveLength(1);
    // The bot asked Discord for Alice's roles when she started speaking.
    expect(memberFetches()).toBeGreaterThan(fetchesBefore);
  }, 60_000);
});
