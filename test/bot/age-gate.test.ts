/**
 * Explicit characters (Voxta `explicitContent`; the simulator's Vex) run only where the server
 * allows them and only in age-restricted channels: refused at /start, /resume, an automatic resume
 * and /join elsewhere; offered by autocomplete only where they may run; a running chat stops (kept
 * for /resume) when its channel loses the flag or the setting changes; one explicit character in a
 * group chat makes the whole chat explicit.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAutocomplete, runCommand } from '../../src/commands/index.js';
import { ARIA_ID, MIRA_ID, startVoxtaSim, VEX_ID, type VoxtaSim } from '../../sim/voxta/index.js';
import { FakeGuild, fakeVoiceJoiner, interaction, makeCore, waitUntil, type CoreHarness } from './fixtures.js';

let sim: VoxtaSim;
let h: CoreHarness;
let guild: FakeGuild;
let general: ReturnType<FakeGuild['addText']>;
let afterDark: ReturnType<FakeGuild['addText']>;
let lounge: string;
let backroom: string;
let voice: ReturnType<typeof fakeVoiceJoiner>;

beforeEach(async () => {
  sim = await startVoxtaSim({ chunkDelayMs: 1, capacityDelayMs: 50 });
  guild = new FakeGuild('150000000000000001', 'Age Server');
  general = guild.addText('general');
  afterDark = guild.addText('after-dark');
  lounge = guild.addVoice('Lounge');
  backroom = guild.addVoice('Backroom');
  guild.nsfw.add(afterDark.id).add(backroom);
  voice = fakeVoiceJoiner();
  h = makeCore(sim.url, { joinVoice: voice.join, guilds: new Map([[guild.id, guild]]) });
});
afterEach(async () => {
  await h.close();
  await sim.close();
});

const startChats = () => sim.received.filter((m) => m.payload.$type === 'startChat' || m.payload.$type === 'resumeChat');

async function allowExplicit() {
  await runCommand(interaction(h.core, guild, general.id, 'config', { subcommand: 'set', strings: { setting: 'explicit-characters', value: 'age-restricted' } }));
}

async function start(channelId: string, character: string, o: { voice?: string; invoker?: object } = {}) {
  const ctx = interaction(h.core, guild, channelId, 'start', { strings: { character }, invoker: o.invoker, channels: o.voice ? { 'voice-channel': o.voice } : {} });
  await runCommand(ctx);
  return ctx.replies.at(-1)!;
}

async function characterChoices(channelId: string, typed = '') {
  let got: Array<{ name: string; value: string }> = [];
  await runAutocomplete({ core: h.core, commandName: 'start', guildId: guild.id, channelId, focused: { name: 'character', value: typed }, respond: async (c) => void (got = c) });
  return got.map((c) => c.name);
}

describe('explicit characters', () => {
  it('by default are allowed nowhere: /start refuses in one sentence and nothing is opened', async () => {
    const r = await start(afterDark.id, VEX_ID);
    expect(r).toEqual({
      ephemeral: true,
      content: 'Vex is marked explicit on Voxta, and this server does not allow explicit characters (an admin can allow them in age-restricted channels with /config set explicit-characters age-restricted).',
    });
    expect(startChats()).toEqual([]);
    expect(h.core.session(guild.id).state).toBe('idle');
    expect(h.core.admission.chatCount).toBe(0);
    expect(h.store.getGuildSession(guild.id)).toBeUndefined();
    expect(await characterChoices(afterDark.id)).toEqual(['Aria', 'Captain Holt', 'Mira']);
  });

  it('when allowed, run only in age-restricted text and voice channels', async () => {
    await allowExplicit();
    expect(await characterChoices(general.id)).toEqual(['Aria', 'Captain Holt', 'Mira']);
    expect(await characterChoices(afterDark.id)).toEqual(['Aria', 'Captain Holt', 'Mira', '🔞 Vex']);

    expect((await start(general.id, VEX_ID)).content).toBe(`Vex is marked explicit on Voxta, so it can only talk in age-restricted channels, and <#${general.id}> is not one.`);
    // The invoker's voice channel is used by default: it must be age-restricted too.
    expect((await start(afterDark.id, VEX_ID, { invoker: { voiceChannelId: lounge } })).content).toBe(
      `Vex is marked explicit on Voxta, so it can only talk in age-restricted channels, and the voice channel <#${lounge}> is not one. Pick an age-restricted voice channel, or start the chat while you are not in voice.`,
    );
    expect(startChats()).toEqual([]);
    expect(voice.joined).toEqual([]);
    expect(h.core.admission.voiceCount).toBe(0);

    const ok = await start(afterDark.id, VEX_ID, { voice: backroom });
    expect(ok.embeds?.[0]?.title).toBe('Started: Vex');
    expect(voice.joined.map((v) => v.channelId)).toEqual([backroom]);
    // Other characters are not restricted.
    await runCommand(interaction(h.core, guild, general.id, 'stop'));
    expect((await start(general.id, ARIA_ID, { voice: lounge })).embeds?.[0]?.title).toBe('Started: Aria');
  });

  it('a running explicit chat stops (kept for /resume) with one notice when its channel loses the age-restricted flag', async () => {
    await allowExplicit();
    await start(afterDark.id, VEX_ID, { voice: backroom });
    // Channel updates that change nothing that matters leave it running.
    h.core.channelUpdated(guild.id);
    await h.core.session(guild.id).settled();
    expect(h.core.session(guild.id).state).toBe('active');

    guild.nsfw.delete(afterDark.id);
    h.core.channelUpdated(guild.id);
    await waitUntil(() => h.core.session(guild.id).state === 'idle', 'the chat stopped');
    const notices = afterDark.texts().filter((t) => t.includes('no longer age-restricted'));
    expect(notices).toEqual(['This channel is no longer age-restricted, so I stopped the chat with Vex (marked explicit on Voxta). It stays saved: /resume picks it up once the channels are age-restricted again.']);
    expect(h.store.getGuildSession(guild.id)).toMatchObject({ characterId: VEX_ID, active: false });
    expect(voice.joined[0]!.left).toBeDefined();
    expect(sim.received.filter((m) => m.payload.$type === 'stopChat')).toHaveLength(1);

    // /resume is refused until the channel is age-restricted again.
    const refused = interaction(h.core, guild, afterDark.id, 'resume');
    await runCommand(refused);
    expect(refused.replies.at(-1)?.content).toBe(`Vex is marked explicit on Voxta, so it can only talk in age-restricted channels, and <#${afterDark.id}> is not one.`);
    guild.nsfw.add(afterDark.id);
    const resumed = interaction(h.core, guild, afterDark.id, 'resume');
    await runCommand(resumed);
    expect(resumed.replies.at(-1)?.embeds?.[0]?.title).toBe('Resumed: Vex');
  });

  it('the voice channel losing the flag stops it too; a chat of a non-explicit character is left alone', async () => {
    await allowExplicit();
    await start(afterDark.id, VEX_ID, { voice: backroom });
    guild.nsfw.delete(backroom);
    h.core.channelUpdated(guild.id);
    await waitUntil(() => h.core.session(guild.id).state === 'idle', 'the chat stopped');
    expect(afterDark.texts().at(-1)).toMatch(new RegExp(`^The voice channel <#${backroom}> is no longer age-restricted, so I stopped the chat with Vex`));

    await start(general.id, ARIA_ID, { voice: lounge });
    guild.nsfw.delete(afterDark.id);
    h.core.channelUpdated(guild.id);
    await h.core.session(guild.id).settled();
    expect(h.core.session(guild.id).state).toBe('active');
  });

  it('setting explicit-characters back to never stops a running explicit chat', async () => {
    await allowExplicit();
    await start(afterDark.id, VEX_ID);
    await runCommand(interaction(h.core, guild, general.id, 'config', { subcommand: 'reset', strings: { setting: 'explicit-characters' } }));
    await waitUntil(() => h.core.session(guild.id).state === 'idle', 'the chat stopped');
    expect(afterDark.texts().at(-1)).toBe('This server no longer allows explicit characters, so I stopped the chat with Vex. It stays saved for /resume.');
  });

  it('/join into a voice channel that is not age-restricted is refused for an explicit chat', async () => {
    await allowExplicit();
    await start(afterDark.id, VEX_ID);
    const join = interaction(h.core, guild, afterDark.id, 'join', { channels: { 'voice-channel': lounge } });
    await runCommand(join);
    expect(join.replies.at(-1)?.content).toBe(
      `Vex is marked explicit on Voxta, so it can only talk in age-restricted channels, and the voice channel <#${lounge}> is not one. Pick an age-restricted voice channel, or start the chat while you are not in voice.`,
    );
    expect(voice.joined).toEqual([]);
    expect(h.core.session(guild.id).state).toBe('active');
  });

  it('one explicit character makes a group chat explicit: its resume after a restart is refused outside age-restricted channels', async () => {
    // A stored group chat (Aria and Vex) bound to a channel that is not age-restricted.
    const chat = sim.createChat([ARIA_ID, VEX_ID, MIRA_ID], { title: 'mixed company' });
    h.store.saveGuildSession({ guildId: guild.id, characterId: ARIA_ID, characterName: 'Aria', chatId: chat.id, textChannelId: general.id, voiceChannelId: undefined, active: true });
    await allowExplicit();
    await h.core.resumeAll();
    await waitUntil(() => h.store.getGuildSession(guild.id)?.active === false, 'the record kept, inactive');
    expect(h.core.session(guild.id).state).toBe('idle');
    expect(general.texts().at(-1)).toBe(`I did not resume the chat with Aria. Vex is marked explicit on Voxta, so it can only talk in age-restricted channels, and <#${general.id}> is not one. It stays saved for /resume.`);
    expect(h.core.autoResumePending(guild.id)).toBe(false);
    expect(sim.sessions()).toEqual([]);
    expect(h.core.admission.chatCount).toBe(0);
  });
});
