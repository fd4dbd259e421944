/**
 * Voxta app triggers through the bot core (issue "voice turns … and the Voxta details"): a queued
 * trigger (with a `triggerId`) never stalls the chat — each is acknowledged once — and an emote
 * shows as the character's reaction on its reply.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { emoteReaction } from '../../src/bot/app-triggers.js';
import { runCommand } from '../../src/commands/index.js';
import { ARIA_ID, startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import { FakeGuild, humanMessage, interaction, makeCore, waitUntil, type CoreHarness } from './fixtures.js';

let sim: VoxtaSim | undefined;
let h: CoreHarness | undefined;
afterEach(async () => {
  await h?.close();
  await sim?.close();
});

describe('emoteReaction', () => {
  it('maps emote triggers to one reaction, and nothing else', () => {
    expect(emoteReaction({ name: 'Emote', arguments: ['happy'] })).toBe('😊');
    expect(emoteReaction({ name: 'emote', arguments: [{ name: 'emotion', value: 'Laugh' }] })).toBe('😂');
    expect(emoteReaction({ name: 'React', arguments: ['🎉'] })).toBe('🎉');
    expect(emoteReaction({ name: 'Emote', arguments: ['👍🏽'] })).toBe('👍🏽');
    expect(emoteReaction({ name: 'Emote', arguments: ['a sentence, not an emotion'] })).toBeUndefined();
    expect(emoteReaction({ name: 'PlaySound', arguments: ['happy'] })).toBeUndefined();
    expect(emoteReaction({ name: 'Emote', arguments: [] })).toBeUndefined();
  });
});

describe('app triggers in a chat', () => {
  it('an emote becomes a reaction on the reply; every queued trigger is acknowledged once and the chat goes on', async () => {
    sim = await startVoxtaSim({
      chunkDelayMs: 1,
      appTriggers: () => [
        { name: 'Emote', arguments: ['happy'], queued: true },
        { name: 'PlaySound', arguments: ['door-creak'], queued: true },
      ],
    });
    const guild = new FakeGuild('130000000000000001', 'Triggers');
    const general = guild.addText('general');
    h = makeCore(sim.url, { guilds: new Map([[guild.id, guild]]) });
    await runCommand(interaction(h.core, guild, general.id, 'start', { strings: { character: ARIA_ID } }));
    await h.core.humanMessage(guild.id, humanMessage(general.id, '500000000000000001', 'Alice', 'hello'));
    const reply = await waitUntil(() => general.posted.find((p) => p.content.startsWith('You said: hello')), 'the reply');
    await waitUntil(() => general.marks.get(reply.id)?.has('😊'), 'the emote as a reaction on the reply');
    // Both triggers held the chat's queue; acknowledged, the next message is answered.
    await h.core.humanMessage(guild.id, humanMessage(general.id, '500000000000000001', 'Alice', 'again'));
    await waitUntil(() => general.posted.find((p) => p.content.startsWith('You said: again')), 'the second reply');
    const first = sim.appTriggers.filter((t) => t.triggerId !== null).slice(0, 2);
    expect(first.map((t) => [t.name, t.completes])).toEqual([
      ['Emote', 1],
      ['PlaySound', 1],
    ]);
    expect(sim.strayTriggerCompletes).toEqual([]);
  });
});
