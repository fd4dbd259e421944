/**
 * Server admins in control, at the core boundary against the Voxta simulator: `/config` (show,
 * set, reset, block, unblock; validation in one sentence; `/transcripts` agreeing), who may talk
 * (chat roles, block list: ⛔) and how often (per-member token bucket and the per-server queue
 * bound: 🐢), in text and in voice (the listenability the voice module asks for), and settings
 * that reach a running voice connection (barge-in) or the next /start (start-voice).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GuildSettings } from '../../src/bot/guild-settings.js';
import { createBotMetrics } from '../../src/bot/bot-metrics.js';
import { TalkGate, UTTERANCE_GAP_MS } from '../../src/bot/talk-gate.js';
import { runAutocomplete, runCommand } from '../../src/commands/index.js';
import { createLogger } from '../../src/log.js';
import { ARIA_ID, startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import { FakeGuild, fakeVoiceJoiner, humanMessage, interaction, makeConfig, makeCore, waitUntil, type CoreHarness } from './fixtures.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let sim: VoxtaSim;
let h: CoreHarness;
let guild: FakeGuild;
let general: ReturnType<FakeGuild['addText']>;
let lounge: string;
let voice: ReturnType<typeof fakeVoiceJoiner>;
const ALICE = '500000000000000001';
const BOB = '500000000000000002';
const REGULARS = '610000000000000001';
const MODS = '610000000000000002';

beforeEach(async () => {
  sim = await startVoxtaSim({ chunkDelayMs: 1, capacityDelayMs: 50 });
  guild = new FakeGuild('140000000000000001', 'Admin Server');
  general = guild.addText('general');
  lounge = guild.addVoice('Lounge');
  guild.serverRoles.set(REGULARS, 'Regulars').set(MODS, 'Mods');
  guild.names.set(ALICE, 'Alice').set(BOB, 'Bob');
  voice = fakeVoiceJoiner();
  h = makeCore(sim.url, { joinVoice: voice.join, guilds: new Map([[guild.id, guild]]) });
});
afterEach(async () => {
  await h.close();
  await sim.close();
});

async function config(subcommand: string, o: { strings?: Record<string, string>; users?: Record<string, { id: string; displayName: string; bot?: boolean }>; invoker?: object } = {}) {
  const ctx = interaction(h.core, guild, general.id, 'config', { subcommand, ...o });
  await runCommand(ctx);
  return ctx.replies.at(-1)!;
}

async function start(invoker: object = {}) {
  const ctx = interaction(h.core, guild, general.id, 'start', { strings: { character: ARIA_ID }, invoker });
  await runCommand(ctx);
  expect(h.core.session(guild.id).state).toBe('active');
}

const sends = () => sim.received.filter((m) => m.payload.$type === 'send').map((m) => String(m.payload.text));

async function say(authorId: string, text: string, roleIds?: string[]) {
  const msg = humanMessage(general.id, authorId, authorId === ALICE ? 'Alice' : 'Bob', text);
  if (roleIds) msg.roleIds = roleIds;
  await h.core.humanMessage(guild.id, msg);
  return msg;
}

describe('/config', () => {
  it('shows every setting and where its value comes from; set and reset change that', async () => {
    const shown = await config('show');
    expect(shown.ephemeral).toBe(true);
    for (const line of ['**barge-in**: anyone — default (BARGE_IN)', '**transcripts**: on — default (MIRROR_TRANSCRIPTS)', '**chat-roles**: everyone — default (CHAT_ROLE_IDS)', '**text-rate**: 6 per 30 seconds — default (TEXT_RATE_LIMIT)', '**voice-rate**: 15 per minute — default (VOICE_RATE_LIMIT)', '**queue-limit**: 10 messages — default (MAX_QUEUED_TURNS)', '**explicit-characters**: never — default (EXPLICIT_CHARACTERS)', '**start-voice**: join — default (START_VOICE)', '**blocked members**: none']) {
      expect(shown.content).toContain(line);
    }
    expect(await config('set', { strings: { setting: 'barge-in', value: 'Floor' } })).toEqual({ ephemeral: true, content: '**barge-in** is now floor in this server. The voice connection uses it at once.' });
    expect(await config('set', { strings: { setting: 'text-rate', value: '3 per 10 seconds' } })).toMatchObject({ content: '**text-rate** is now 3 per 10 seconds in this server.' });
    expect(await config('set', { strings: { setting: 'chat-roles', value: `<@&${REGULARS}> mods` } })).toMatchObject({ content: expect.stringContaining(`**chat-roles** is now <@&${REGULARS}> <@&${MODS}> in this server.`) });
    const after = (await config('show')).content!;
    expect(after).toContain('**barge-in**: floor — set for this server');
    expect(after).toContain('**text-rate**: 3 per 10 seconds — set for this server');
    expect(after).toContain(`**chat-roles**: <@&${REGULARS}> <@&${MODS}> — set for this server`);
    expect(await config('reset', { strings: { setting: 'barge-in' } })).toMatchObject({ content: '**barge-in** is back to the default: anyone (BARGE_IN).' });
    expect((await config('show')).content).toContain('**barge-in**: anyone — default (BARGE_IN)');
    // Another server is untouched.
    expect(h.core.settings.get('999999999999999999', 'text-rate').source).toBe('default');
  });

  it('refuses a value it cannot use in one plain sentence, and keeps the old one', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['barge-in', 'sometimes', /^barge-in must be off, anyone or floor \(/],
      ['transcripts', 'maybe', /^transcripts must be on or off\.$/],
      ['text-rate', 'fast', /^text-rate must be a number of messages per time, such as 6\/30s or 10\/min or 3\/10s, or off\.$/],
      ['voice-rate', '5', /^voice-rate must be a number of spoken turns per time/],
      ['queue-limit', '0', /^queue-limit must be a whole number from 1 to 1000\.$/],
      ['chat-roles', 'Moderators', /^I cannot find a role called “Moderators” in this server\./],
      ['chat-roles', '<@&620000000000000009>', /^There is no role with the id 620000000000000009 in this server\.$/],
      ['explicit-characters', 'always', /^explicit-characters must be never or age-restricted \(/],
      ['start-voice', 'ask', /^start-voice must be join or text-only \(/],
    ];
    for (const [setting, value, expected] of cases) {
      const r = await config('set', { strings: { setting, value } });
      expect(r.ephemeral, setting).toBe(true);
      expect(r.content, setting).toMatch(expected);
      expect(r.content!.split(/(?<=\.)\s/).length, `${setting}: one sentence`).toBeLessThanOrEqual(2);
    }
    expect((await config('show')).content).not.toContain('set for this server');
  });

  it('is for admins only', async () => {
    const r = await config('set', { strings: { setting: 'barge-in', value: 'off' }, invoker: { canManageGuild: false } });
    expect(r).toEqual({ ephemeral: true, content: 'You need the Manage Server permission to do that.' });
    expect(h.core.settings.get(guild.id, 'barge-in').source).toBe('default');
  });

  it('agrees with /transcripts: one setting, whichever command changes it', async () => {
    await runCommand(interaction(h.core, guild, general.id, 'transcripts', { subcommand: 'off' }));
    expect((await config('show')).content).toContain('**transcripts**: off — set for this server');
    expect(h.core.session(guild.id).mirrorTranscripts()).toBe(false);
    await config('set', { strings: { setting: 'transcripts', value: 'on' } });
    expect(h.core.session(guild.id).mirrorTranscripts()).toBe(true);
    await config('reset', { strings: { setting: 'transcripts' } });
    expect(h.store.getSetting(guild.id, 'mirrorTranscripts')).toBeUndefined();
  });

  it('suggests values for the chosen setting while typing', async () => {
    const choices = async (setting: string, value: string) => {
      let got: Array<{ name: string; value: string }> = [];
      await runAutocomplete({ core: h.core, commandName: 'config', guildId: guild.id, focused: { name: 'value', value }, option: (n) => (n === 'setting' ? setting : undefined), respond: async (c) => void (got = c) });
      return got.map((c) => c.value);
    };
    expect(await choices('barge-in', '')).toEqual(['off', 'anyone', 'floor']);
    expect(await choices('chat-roles', '')).toEqual(['everyone', 'Regulars', 'Mods']);
    expect(await choices('chat-roles', 'mo')).toEqual(['Mods']);
    expect(await choices('nonsense', '')).toEqual([]);
  });

  it('blocks and unblocks a member, and lists the blocked ones', async () => {
    const bob = { id: BOB, displayName: 'Bob' };
    expect((await config('block', { users: { member: bob } })).content).toBe('Bob can no longer talk to the character in this server: their messages get ⛔ and their voice is not passed on. /config unblock undoes it.');
    expect((await config('block', { users: { member: bob } })).content).toBe('Bob is already blocked.');
    expect((await config('block', { users: { member: { id: '700000000000000001', displayName: 'Botty', bot: true } } })).content).toBe('Bots never talk to the character anyway.');
    expect((await config('show')).content).toContain(`**blocked members**: <@${BOB}>`);
    expect((await config('unblock', { users: { member: bob } })).content).toBe('Bob can talk to the character again.');
    expect((await config('unblock', { users: { member: bob } })).content).toBe('Bob is not blocked.');
  });
});

describe('who may talk', () => {
  it('chat roles: a member without one gets a single ⛔ and nothing reaches the character; with one, it does', async () => {
    await start();
    await config('set', { strings: { setting: 'chat-roles', value: 'Regulars' } });
    const refused = await say(BOB, 'may I?', []);
    const ok = await say(ALICE, 'I may', [REGULARS]);
    await waitUntil(() => sends().length === 1, 'the allowed message');
    await sleep(100);
    expect(sends()).toEqual(['I may']);
    expect([...refused.reactions]).toEqual(['⛔']);
    expect([...ok.reactions]).toEqual([]);
    // No reply spam: the only bot posts are the listening notice-free start and Aria's reply.
    expect(general.texts().filter((t) => /role|not allowed|⛔/i.test(t))).toEqual([]);
    expect(h.core.metrics.refusedTurns.get({ source: 'text', reason: 'role' })).toBe(1);
    // Back to everyone: Bob gets through.
    await config('set', { strings: { setting: 'chat-roles', value: 'everyone' } });
    await say(BOB, 'now?', []);
    await waitUntil(() => sends().length === 2, 'Bob’s message');
  });

  it('a blocked member gets ⛔ whatever their roles', async () => {
    await start();
    await config('block', { users: { member: { id: BOB, displayName: 'Bob' } } });
    const m = await say(BOB, 'hello', [REGULARS]);
    await sleep(100);
    expect([...m.reactions]).toEqual(['⛔']);
    expect(sends()).toEqual([]);
  });

  it('text rate: a member over the limit gets one 🐢 on each message not forwarded and nothing else; others are not slowed', async () => {
    await start();
    await config('set', { strings: { setting: 'text-rate', value: '3/30s' } });
    const mine = [];
    for (let i = 1; i <= 5; i++) mine.push(await say(ALICE, `a${i}`));
    const bobs = await say(BOB, 'b1');
    await waitUntil(() => sends().length === 4, 'the forwarded messages');
    await sleep(100);
    expect(sends().map((t) => t.replace(/^\w+: /, ''))).toEqual(['a1', 'a2', 'a3', 'b1']);
    expect(mine.map((m) => [...m.reactions])).toEqual([[], [], [], ['🐢'], ['🐢']]);
    expect([...bobs.reactions]).toEqual([]);
    expect(general.texts().some((t) => t.includes('🐢') || /slow|limit/i.test(t))).toBe(false);
    expect(h.core.metrics.refusedTurns.get({ source: 'text', reason: 'rate' })).toBe(2);
  });

  it('queue bound: while the character cannot take messages, the server holds at most queue-limit of them; more get 🐢', async () => {
    await start();
    await config('set', { strings: { setting: 'queue-limit', value: '2' } });
    await config('set', { strings: { setting: 'text-rate', value: 'off' } });
    await sim.stop();
    await waitUntil(() => h.core.session(guild.id).state === 'reconnecting', 'reconnecting');
    const msgs = [await say(ALICE, 'one'), await say(BOB, 'two'), await say(ALICE, 'three')];
    expect(msgs.map((m) => [...m.reactions])).toEqual([['⏳'], ['⏳'], ['🐢']]);
    expect(h.store.listPendingMessages(guild.id).map((p) => p.text.replace(/^\w+: /, ''))).toEqual(['one', 'two']);
    await sim.start();
    await waitUntil(() => sends().length === 2, 'the held two delivered', 10_000);
    expect(h.core.metrics.refusedTurns.get({ source: 'text', reason: 'queue' })).toBe(1);
  }, 15_000);
});

describe('voice: who is listened to', () => {
  it('follows chat roles (fetched for those present when they are set), the block list and the spoken-turn limit', async () => {
    guild.voiceChannels.get(lounge)!.members.push({ id: ALICE, displayName: 'Alice', bot: false }, { id: BOB, displayName: 'Bob', bot: false });
    await start({ voiceChannelId: lounge });
    const listenable = voice.joined[0]!.options!.isListenable;
    expect(listenable(ALICE)).toBe(true);

    guild.restRoles.set(ALICE, [REGULARS]);
    guild.restRoles.set(BOB, []);
    await config('set', { strings: { setting: 'chat-roles', value: 'Regulars' } });
    // The members present are fetched at once (until Discord answers, they are not listened to).
    await waitUntil(() => guild.roleFetches >= 2, 'the members fetched');
    await sleep(10);
    expect(listenable(ALICE)).toBe(true);
    expect(listenable(BOB)).toBe(false);
    await sleep(10);
    expect(listenable(BOB)).toBe(false);
    // Nobody was told anything about roles (as for opted-out members).
    expect(general.texts().some((t) => /role/i.test(t))).toBe(false);

    await config('block', { users: { member: { id: ALICE, displayName: 'Alice' } } });
    expect(listenable(ALICE)).toBe(false);
    expect(h.core.metrics.refusedTurns.get({ source: 'voice', reason: 'blocked' })).toBe(1);
  });

  it('a voice state carries the member’s roles: known before they first speak, no fetch needed', async () => {
    guild.voiceChannels.get(lounge)!.members.push({ id: ALICE, displayName: 'Alice', bot: false });
    await start({ voiceChannelId: lounge });
    await config('set', { strings: { setting: 'chat-roles', value: 'Regulars' } });
    guild.voiceChannels.get(lounge)!.members.push({ id: BOB, displayName: 'Bob', bot: false });
    guild.roles.set(BOB, [REGULARS]);
    h.core.voiceStateChanged(guild.id, undefined, lounge, BOB);
    expect(voice.joined[0]!.options!.isListenable(BOB)).toBe(true);
    expect(guild.roleFetchIds).toEqual([ALICE]); // Alice was present when the roles were set; Bob came later
  });

  it('barge-in: the server’s mode is used when joining, and a change reaches the live connection', async () => {
    await config('set', { strings: { setting: 'barge-in', value: 'off' } });
    guild.voiceChannels.get(lounge)!.members.push({ id: ALICE, displayName: 'Alice', bot: false });
    await start({ voiceChannelId: lounge });
    expect(voice.joined[0]!.options!.config.bargeIn).toBe('off');
    await config('set', { strings: { setting: 'barge-in', value: 'floor' } });
    expect(voice.joined[0]!.bargeInModes).toEqual(['floor']);
    await config('reset', { strings: { setting: 'barge-in' } });
    expect(voice.joined[0]!.bargeInModes).toEqual(['floor', 'anyone']);
  });

  it('start-voice text-only: /start does not follow the invoker into voice unless a channel is given', async () => {
    await config('set', { strings: { setting: 'start-voice', value: 'text-only' } });
    await start({ voiceChannelId: lounge });
    expect(voice.joined).toEqual([]);
    await runCommand(interaction(h.core, guild, general.id, 'stop'));
    await runCommand(interaction(h.core, guild, general.id, 'start', { strings: { character: ARIA_ID }, channels: { 'voice-channel': lounge } }));
    expect(voice.joined.map((v) => v.channelId)).toEqual([lounge]);
  });
});

describe('TalkGate roles in voice', () => {
  it('unknown roles: not listened to until Discord answers; stale ones are used while they are refreshed', async () => {
    let now = 5_000_000;
    const log = createLogger({ level: 'silent', pretty: false });
    const settings = new GuildSettings(h.store, makeConfig(sim.url, h.dataDir, { CHAT_ROLE_IDS: REGULARS }), log);
    const answers: Array<(roles: string[]) => void> = [];
    const slow = Object.assign(Object.create(guild) as FakeGuild, {
      fetchMemberRoleIds: (_userId: string) => new Promise<string[]>((resolve) => answers.push(resolve)),
    });
    const gate = new TalkGate({ settings, store: h.store, metrics: createBotMetrics(), log, guild: () => slow, now: () => now });
    expect(gate.admitVoice(guild.id, ALICE).ok).toBe(false);
    expect(answers).toHaveLength(1);
    answers[0]!([REGULARS]);
    await sleep(1);
    expect(gate.admitVoice(guild.id, ALICE).ok).toBe(true);
    // A minute later the roles are stale: still used, and fetched again in the background.
    now += 61_000;
    expect(gate.admitVoice(guild.id, ALICE).ok).toBe(true);
    expect(answers).toHaveLength(2);
    answers[1]!([]); // the role was taken away
    await sleep(1);
    now += UTTERANCE_GAP_MS + 1;
    expect(gate.admitVoice(guild.id, ALICE).ok).toBe(false);
  });
});

describe('the spoken-turn limit (TalkGate, with a clock)', () => {
  it('counts speech separated by silence as turns, refuses a whole turn over the limit, tells the member once per period', () => {
    let now = 1_000_000;
    const config = makeConfig(sim.url, h.dataDir, { VOICE_RATE_LIMIT: '2/min' });
    const settings = new GuildSettings(h.store, config, createLogger({ level: 'silent', pretty: false }));
    const metrics = createBotMetrics();
    const gate = new TalkGate({ settings, store: h.store, metrics, log: createLogger({ level: 'silent', pretty: false }), guild: () => guild, now: () => now });
    guild.roles.set(ALICE, []);
    // The voice module asks when a member starts talking and every 2 s while they go on.
    const talk = (ms: number) => {
      const start = now;
      const verdicts = [gate.admitVoice(guild.id, ALICE)];
      for (let t = 2000; t < ms; t += 2000) {
        now = start + t;
        verdicts.push(gate.admitVoice(guild.id, ALICE));
      }
      now = start + ms;
      return verdicts;
    };
    const pause = (ms: number) => (now += ms);
    expect(talk(5000).every((v) => v.ok)).toBe(true); // turn 1, one long sentence
    pause(UTTERANCE_GAP_MS + 100);
    expect(talk(1000).every((v) => v.ok)).toBe(true); // turn 2
    pause(UTTERANCE_GAP_MS + 100);
    const third = talk(3000);
    expect(third.every((v) => !v.ok)).toBe(true); // turn 3: over 2 per minute, for its whole length
    expect(third[0]!.notice).toBe('🐢 Alice, you are talking to the character more often than this server allows (2 per minute), so I am not passing on what you say for a moment.');
    expect(third.slice(1).every((v) => v.notice === undefined)).toBe(true);
    pause(UTTERANCE_GAP_MS + 100);
    expect(talk(500)[0]).toEqual({ ok: false }); // still over, not told again
    expect(metrics.refusedTurns.get({ source: 'voice', reason: 'rate' })).toBe(2);
    pause(60_000);
    expect(talk(500).every((v) => v.ok)).toBe(true); // the minute has passed
  });
});
