/**
 * The orchestrator's voice decisions with the voice module replaced at the edge (the real module
 * is exercised end to end in test/e2e): which Voxta capabilities a session declares, leaving an
 * empty channel and coming back, and going on text-only when voice ends.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/commands/index.js';
import { ARIA_ID, startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import { FakeGuild, fakeVoiceJoiner, interaction, makeCore, waitUntil, type CoreHarness } from './fixtures.js';

let sim: VoxtaSim;
let h: CoreHarness;
let guild: FakeGuild;
let general: ReturnType<FakeGuild['addText']>;
let lounge: string;
let voice: ReturnType<typeof fakeVoiceJoiner>;
const ALICE = { id: '500000000000000001', displayName: 'Alice', bot: false };

beforeEach(async () => {
  sim = await startVoxtaSim({ chunkDelayMs: 1, capacityDelayMs: 50 });
  guild = new FakeGuild('130000000000000001', 'Voice Server');
  general = guild.addText('general');
  lounge = guild.addVoice('Lounge');
  guild.voiceChannels.get(lounge)!.members.push(ALICE);
  voice = fakeVoiceJoiner();
  h = makeCore(sim.url, { joinVoice: voice.join, voiceIdleLeaveMs: 50, guilds: new Map([[guild.id, guild]]) });
});
afterEach(async () => {
  await h.close();
  await sim.close();
});

async function startInVoice() {
  const ctx = interaction(h.core, guild, general.id, 'start', { strings: { character: ARIA_ID }, invoker: { voiceChannelId: lounge } });
  await runCommand(ctx);
  return ctx;
}

describe('voice orchestration', () => {
  it('a session that joins voice streams audio input with speech-to-text on', async () => {
    await startInVoice();
    expect(voice.joined.map((v) => v.channelId)).toEqual([lounge]);
    const caps = sim.connections().map((c) => c.capabilities as { audioInput?: string } | undefined);
    expect(caps.map((c) => c?.audioInput)).toEqual(['WebSocketStream']);
    expect(sim.received.find((m) => m.payload.$type === 'startChat')?.payload.disableServices).toBeUndefined();
    expect(h.store.getGuildSession(guild.id)!.voiceChannelId).toBe(lounge);
  });

  it('leaves an empty voice channel after the grace period and comes back when someone joins', async () => {
    await startInVoice();
    guild.voiceChannels.get(lounge)!.members.length = 0;
    h.core.voiceStateChanged(guild.id, lounge, undefined);
    await waitUntil(() => voice.joined[0]!.left === 'voice channel empty', 'leaving the empty channel');
    await waitUntil(() => general.texts().find((t) => t.startsWith(`Everyone left <#${lounge}>`)), 'the notice');
    expect(h.core.admission.voiceCount).toBe(0);
    expect(h.store.getGuildSession(guild.id)!.voiceChannelId).toBe(lounge); // a restart rejoins

    guild.voiceChannels.get(lounge)!.members.push(ALICE);
    h.core.voiceStateChanged(guild.id, undefined, lounge);
    await waitUntil(() => voice.joined.length === 2, 'rejoining');
    expect(h.core.admission.voiceCount).toBe(1);
    expect(h.core.session(guild.id).voiceChannelId).toBe(lounge);
  });

  it('stays while someone is there, even if another member leaves', async () => {
    guild.voiceChannels.get(lounge)!.members.push({ id: '500000000000000002', displayName: 'Bob', bot: false });
    await startInVoice();
    guild.voiceChannels.get(lounge)!.members.pop();
    h.core.voiceStateChanged(guild.id, lounge, undefined);
    await new Promise((r) => setTimeout(r, 150));
    expect(voice.joined[0]!.left).toBeUndefined();
  });

  it('goes on text-only when voice ends, and says so once', async () => {
    await startInVoice();
    voice.joined[0]!.emit('ended', 'kicked (4014)');
    await waitUntil(() => general.texts().find((t) => t.startsWith('I was disconnected from the voice channel')), 'the notice');
    expect(h.core.session(guild.id).state).toBe('active');
    expect(h.core.session(guild.id).voiceChannelId).toBeUndefined();
    expect(h.core.admission.voiceCount).toBe(0);
  });

  it('reopens a text-only chat with audio input for /join, keeping the same chat', async () => {
    const ctx = interaction(h.core, guild, general.id, 'start', { strings: { character: ARIA_ID } });
    await runCommand(ctx);
    const chatId = h.store.getGuildSession(guild.id)!.chatId;
    // Text-only: speech-to-text switched off for the chat (so Voxta never uses its own PC's microphone for it).
    expect(sim.received.find((m) => m.payload.$type === 'startChat')?.payload.disableServices).toEqual(['SpeechToText']);
    const join = interaction(h.core, guild, general.id, 'join', { invoker: { voiceChannelId: lounge } });
    await runCommand(join);
    expect(join.replies.at(-1)!.content).toMatch(/^Joined <#/);
    expect(voice.joined.map((v) => v.channelId)).toEqual([lounge]);
    expect(h.store.getGuildSession(guild.id)).toMatchObject({ chatId, voiceChannelId: lounge, active: true });
    expect(sim.connections().filter((c) => c.open).map((c) => (c.capabilities as { audioInput?: string }).audioInput)).toEqual(['WebSocketStream']);
    // Reopened with voice: speech-to-text is on again.
    expect(sim.received.filter((m) => m.payload.$type === 'resumeChat').at(-1)?.payload.disableServices).toBeUndefined();
  });

  it('asks the invoker to join a voice channel when /join has none', async () => {
    await runCommand(interaction(h.core, guild, general.id, 'start', { strings: { character: ARIA_ID } }));
    const join = interaction(h.core, guild, general.id, 'join');
    await runCommand(join);
    expect(join.replies).toEqual([{ ephemeral: true, content: 'Join a voice channel first, or pick one in the command.' }]);
  });

  it('reports decode errors summed from the voice modules in /metrics and in /status', async () => {
    await startInVoice();
    expect(h.core.metrics.registry.render()).toContain('voxta_discord_voice_decode_errors 2');
    const st = interaction(h.core, guild, general.id, 'status');
    await runCommand(st);
    const fields = Object.fromEntries(st.replies.at(-1)!.embeds![0]!.fields!.map((f) => [f.name, f.value]));
    expect(fields.Voice).toBe(`<#${lounge}> (ready)`);
    expect(fields['Voice figures']).toBe('0 utterances heard, 0 reply clips played, 2 undecodable packets');
    // Counted across joins: leaving keeps the total.
    const leave = interaction(h.core, guild, general.id, 'leave');
    await runCommand(leave);
    expect(leave.replies.at(-1)!.content).toBe('Left the voice channel; the chat goes on in text.');
    expect(h.core.metrics.registry.render()).toContain('voxta_discord_voice_decode_errors 2');
  });
});
