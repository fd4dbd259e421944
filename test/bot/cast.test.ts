/**
 * The cast at the core's boundary, against the Voxta simulator: several characters in one chat
 * (or a scenario with its narrator), each reply posted through its character's webhook with its
 * name and avatar, the webhook pool (reuse across restarts, recreation, the per-channel limit,
 * threads), the fallback when webhooks are refused, /cast, /status, and what Voxta is told.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runAutocomplete, runCommand } from '../../src/commands/index.js';
import { createLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { WebhookPool } from '../../src/bot/webhook-pool.js';
import { ARIA_ID, BRIDGE_SCENARIO_ID, CHRONICLER_ID, HOLT_ID, MIRA_ID, startVoxtaSim, type SimReply, type VoxtaSim } from '../../sim/voxta/index.js';
import { FakeGuild, FakeWebhooks, humanMessage, interaction, makeCore, waitUntil, type CoreHarness, type RecordingChannel } from './fixtures.js';

let sim: VoxtaSim;
let h: CoreHarness;
let guild: FakeGuild;
let general: RecordingChannel;
let hooks: FakeWebhooks;
const ALICE = '500000000000000001';

/** Aria then Captain Holt answer every message (the simulator's scripted group turn). */
const bothAnswer = (text: string): SimReply[] => [
  { senderId: ARIA_ID, text: [`Aria hears “${text}”.`, 'She smiles.'] },
  { senderId: HOLT_ID, text: ['Holt nods.', `“${text}”, noted.`] },
];

beforeEach(async () => {
  sim = await startVoxtaSim({ chunkDelayMs: 1, capacityDelayMs: 50, chatLockReleaseDelayMs: 0 });
  h = makeCore(sim.url, { proxyHoldMs: 150 });
  guild = new FakeGuild('120000000000000001', 'Cast Server');
  general = guild.addText('general');
  hooks = guild.enableWebhooks();
  h.guilds.set(guild.id, guild);
});
afterEach(async () => {
  await h.close();
  await sim.close();
});

async function thumbnail(id: string): Promise<Buffer> {
  return Buffer.from(await (await fetch(`${sim.url}/api/characters/${id}/thumbnail`)).arrayBuffer());
}

async function startWith(strings: Record<string, string>, channelId = general.id) {
  const ctx = interaction(h.core, guild, channelId, 'start', { strings });
  await runCommand(ctx);
  return ctx;
}

async function say(text: string, channel = general, author = ALICE, name = 'Alice') {
  const msg = humanMessage(channel.id, author, name, text);
  await h.core.humanMessage(guild.id, msg);
  return msg;
}

const settledPosts = async (channel: RecordingChannel, n: number, what: string) =>
  waitUntil(() => (channel.byWebhook().length >= n && sim.sessions().every((s) => !s.generating && s.continuation === 0) ? channel.byWebhook() : undefined), what);

describe('a group chat', () => {
  it('starts with two characters and posts each reply through its own webhook, with its name and Voxta’s avatar bytes', async () => {
    const ctx = await startWith({ character: ARIA_ID, character2: HOLT_ID });
    expect(ctx.replies.at(-1)!.embeds![0]!.title).toBe('Started: Aria, Captain Holt');
    const start = sim.received.find((m) => m.payload.$type === 'startChat')!;
    expect(start.payload.characterIds).toEqual([ARIA_ID, HOLT_ID]);
    expect(h.store.getGuildSession(guild.id)).toMatchObject({ characterId: ARIA_ID, cast: [{ id: ARIA_ID, name: 'Aria' }, { id: HOLT_ID, name: 'Captain Holt' }] });

    sim.options.reply = bothAnswer;
    await say('Good evening');
    await waitUntil(() => general.byWebhook().some((p) => p.content.includes('noted')), 'both replies');
    const posts = await settledPosts(general, 2, 'both replies, settled');
    expect(posts.map((p) => [p.name, p.content])).toEqual([
      ['Aria', 'Aria hears “Good evening”. She smiles.'],
      ['Captain Holt', 'Holt nods. “Good evening”, noted.'],
    ]);
    expect(posts[0]!.avatar!.equals(await thumbnail(ARIA_ID))).toBe(true);
    expect(posts[1]!.avatar!.equals(await thumbnail(HOLT_ID))).toBe(true);
    // Streamed: the first chunk created the message, the next one edited it.
    expect(posts.every((p) => p.edits >= 1)).toBe(true);
    // One webhook per character, named and avatared once.
    expect(hooks.ownIn(general.id).map((w) => w.name).sort()).toEqual(['Aria', 'Captain Holt']);
    expect(hooks.calls.filter((c) => c.startsWith('create'))).toEqual(['create Aria', 'create Captain Holt']);

    // A second turn reuses both webhooks.
    await say('Again');
    await waitUntil(() => general.byWebhook().filter((p) => p.content.includes('“Again”, noted.')).length === 1, 'the second turn');
    expect(hooks.calls.filter((c) => c.startsWith('create') || c.startsWith('modify'))).toHaveLength(2);

    // A reply's deletion on Discord deletes it in Voxta (the link map covers webhook messages).
    const holtMsg = general.posted.find((p) => p.webhook?.name === 'Captain Holt')!;
    h.core.messageDeleted(guild.id, general.id, holtMsg.id);
    await sim.waitForClientMessage('deleteMessage');

    const status = interaction(h.core, guild, general.id, 'status');
    await runCommand(status);
    const fields = Object.fromEntries(status.replies.at(-1)!.embeds![0]!.fields!.map((f) => [f.name, f.value]));
    expect(fields.Cast).toBe('Aria\nCaptain Holt');
    expect(fields.Replies).toBeUndefined();
  });

  it('tells Voxta which characters and which people are present, under its own context key', async () => {
    await startWith({ character: ARIA_ID, character2: HOLT_ID });
    const start = sim.received.find((m) => m.payload.$type === 'startChat')!;
    expect(String((start.payload.contexts as Array<{ text: string }>)[0]!.text)).toContain('The characters in this conversation: Aria, Captain Holt.');
    await say('hi');
    await say('hello', general, '500000000000000002', 'Bob');
    const update = await sim.waitFor(
      () => sim.received.find((m) => m.payload.$type === 'updateContext' && JSON.stringify(m.payload.contexts).includes('Alice, Bob')),
      5000,
      'a context naming Alice and Bob',
    );
    expect(update.payload.contextKey).toBe('discord');
    expect(JSON.stringify(update.payload.contexts)).toContain('Aria, Captain Holt');
  });

  it('/cast add and remove change the participants, the record, /status and the context', async () => {
    await startWith({ character: ARIA_ID });
    const choices: Array<{ name: string }> = [];
    await runAutocomplete({ core: h.core, commandName: 'cast', guildId: guild.id, focused: { name: 'character', value: '' }, subcommand: () => 'add', respond: async (c) => void choices.push(...c) });
    expect(choices.map((c) => c.name)).not.toContain('Aria');
    expect(choices.map((c) => c.name)).toContain('Mira');

    const add = interaction(h.core, guild, general.id, 'cast', { subcommand: 'add', strings: { character: MIRA_ID } });
    await runCommand(add);
    expect(add.replies.at(-1)!.content).toBe('Mira joined the chat. In the chat now: Aria, Mira.');
    expect(sim.received.some((m) => m.payload.$type === 'addChatParticipant' && m.payload.characterId === MIRA_ID)).toBe(true);
    expect(h.store.getGuildSession(guild.id)?.cast?.map((c) => c.name)).toEqual(['Aria', 'Mira']);
    await sim.waitFor(() => sim.received.find((m) => m.payload.$type === 'updateContext' && JSON.stringify(m.payload.contexts).includes('Aria, Mira')), 5000, 'the new cast in the context');

    const again = interaction(h.core, guild, general.id, 'cast', { subcommand: 'add', strings: { character: 'Mira' } });
    await runCommand(again);
    expect(again.replies.at(-1)).toEqual({ ephemeral: true, content: 'Mira is already in this chat.' });

    const remove = interaction(h.core, guild, general.id, 'cast', { subcommand: 'remove', strings: { character: ARIA_ID } });
    await runCommand(remove);
    expect(remove.replies.at(-1)!.content).toBe('Aria left the chat. In the chat now: Mira.');
    // The main character is now Mira: the record follows (and /resume offers Mira's chats).
    expect(h.store.getGuildSession(guild.id)).toMatchObject({ characterId: MIRA_ID, characterName: 'Mira' });

    const last = interaction(h.core, guild, general.id, 'cast', { subcommand: 'remove', strings: { character: MIRA_ID } });
    await runCommand(last);
    expect(last.replies.at(-1)!.content).toMatch(/^Mira is the only character in this chat/);
  });

  it('/resume brings the cast back (and a restart finds its webhooks instead of making new ones)', async () => {
    await startWith({ character: ARIA_ID, character2: HOLT_ID });
    sim.options.reply = bothAnswer;
    await say('one');
    await settledPosts(general, 2, 'the first turn');
    await runCommand(interaction(h.core, guild, general.id, 'stop'));
    await h.close();

    h = makeCore(sim.url, { dataDir: h.dataDir, guilds: h.guilds });
    const resume = interaction(h.core, guild, general.id, 'resume');
    await runCommand(resume);
    expect(resume.replies.at(-1)!.embeds![0]!.title).toBe('Resumed: Aria, Captain Holt');
    expect(sim.sessions()[0]!.characterIds).toEqual([ARIA_ID, HOLT_ID]);
    await say('two');
    await waitUntil(() => general.byWebhook().filter((p) => p.content.includes('“two”, noted.')).length === 1, 'the turn after the restart');
    expect(hooks.calls.filter((c) => c.startsWith('create'))).toHaveLength(2);
    expect(hooks.ownIn(general.id)).toHaveLength(2);
  });
});

describe('webhook messages behave as the bot’s did', () => {
  it('a long reply continues in new messages of the same character at 2000 characters; a cut reply says *(interrupted)*', async () => {
    await startWith({ character: ARIA_ID, character2: HOLT_ID });
    const sentences = Array.from({ length: 45 }, (_, i) => `Captain's log, entry ${i + 1}, where nothing much happened on the long watch tonight.`);
    sim.options.reply = () => [{ senderId: HOLT_ID, text: sentences }];
    await say('Read the log');
    await waitUntil(() => general.byWebhook().map((p) => p.content).join(' ').includes('entry 45,'), 'the whole log', 10_000);
    await new Promise((r) => setTimeout(r, 100));
    const parts = general.byWebhook();
    expect(parts.length).toBeGreaterThanOrEqual(2);
    expect(parts.every((p) => p.name === 'Captain Holt' && p.content.length <= 2000)).toBe(true);
    expect(parts.map((p) => p.content).join(' ')).toBe(sentences.join(' '));

    sim.options.reply = () => [{ senderId: ARIA_ID, text: ['I was about to say', 'something long.'] }];
    sim.faults.errorMidReply = true;
    await say('Go on');
    const cut = await waitUntil(() => general.byWebhook().find((p) => p.name === 'Aria' && p.content.endsWith('*(interrupted)*')), 'the cut reply');
    expect(cut.content).toBe('I was about to say *(interrupted)*');
  });
});

describe('a scenario', () => {
  it('starts from the scenario list, and posts narrator lines as the narrator, in italics', async () => {
    const choices: Array<{ name: string; value: string }> = [];
    await runAutocomplete({ core: h.core, commandName: 'start', guildId: guild.id, focused: { name: 'scenario', value: 'bri' }, respond: async (c) => void choices.push(...c) });
    expect(choices).toEqual([{ name: 'The Bridge', value: BRIDGE_SCENARIO_ID }]);
    const ctx = await startWith({ scenario: BRIDGE_SCENARIO_ID });
    const embed = ctx.replies.at(-1)!.embeds![0]!;
    expect(embed.title).toBe('Started: The Bridge');
    expect(embed.fields!.find((f) => f.name === 'Cast')!.value).toBe('Captain Holt (captain)\nMira (botanist)\nChronicler (narrator)');
    expect(h.store.getGuildSession(guild.id)).toMatchObject({ characterId: HOLT_ID, scenario: { id: BRIDGE_SCENARIO_ID, name: 'The Bridge' } });

    sim.options.reply = () => [
      { isNarration: true, text: ['The stars drift past the viewport.'] },
      { senderId: MIRA_ID, text: ['The ferns are thriving, Captain.'] },
    ];
    await say('Report!');
    await settledPosts(general, 2, 'the narration and Mira');
    expect(general.byWebhook().map((p) => [p.name, p.content])).toEqual([
      ['Chronicler', '*The stars drift past the viewport.*'],
      ['Mira', 'The ferns are thriving, Captain.'],
    ]);
    expect(general.byWebhook()[0]!.avatar!.equals(await thumbnail(CHRONICLER_ID))).toBe(true);
  });

  it('refuses characters and a scenario together, and nothing at all', async () => {
    const both = await startWith({ character: ARIA_ID, scenario: BRIDGE_SCENARIO_ID });
    expect(both.replies.at(-1)).toEqual({ ephemeral: true, content: expect.stringMatching(/^Pick characters or a scenario, not both/) });
    const none = await startWith({});
    expect(none.replies.at(-1)).toEqual({ ephemeral: true, content: expect.stringMatching(/^Pick a character \(up to three\), or a scenario/) });
    expect(sim.sessions()).toHaveLength(0);
  });
});

describe('webhooks', () => {
  it('without Manage Webhooks posts as the bot with names in bold, and /status says why and how to fix it', async () => {
    hooks.manageWebhooks = false;
    await startWith({ character: ARIA_ID, character2: HOLT_ID });
    sim.options.reply = bothAnswer;
    await say('Hello');
    await waitUntil(() => general.texts().some((t) => t.includes('noted')) && sim.sessions().every((s) => !s.generating && s.continuation === 0), 'both replies');
    await new Promise((r) => setTimeout(r, 60));
    expect(general.texts().filter((t) => t.startsWith('**'))).toEqual(['**Aria**: Aria hears “Hello”. She smiles.', '**Captain Holt**: Holt nods. “Hello”, noted.']);
    expect(hooks.calls).toEqual([]); // known from the permissions: Discord is not even asked
    const status = interaction(h.core, guild, general.id, 'status');
    await runCommand(status);
    const fields = Object.fromEntries(status.replies.at(-1)!.embeds![0]!.fields!.map((f) => [f.name, f.value]));
    expect(fields.Replies).toMatch(/^Replies are posted by me, not under each character's own name and avatar, because I lack the Manage Webhooks permission in #general\. Give me the Manage Webhooks permission/);
  });

  it('a single character without Manage Webhooks still posts plainly, as before', async () => {
    hooks.manageWebhooks = false;
    await startWith({ character: ARIA_ID });
    await say('Hello');
    await waitUntil(() => general.texts().find((t) => t.includes('reply number 1')), 'the reply');
    expect(general.texts().at(-1)).toBe('You said: Hello. This is Aria, reply number 1.');
  });

  it('a webhook deleted by a moderator is made again for the next reply', async () => {
    await startWith({ character: ARIA_ID });
    await say('one');
    await waitUntil(() => general.byWebhook().find((p) => p.content.includes('reply number 1')), 'the first reply');
    const [first] = hooks.ownIn(general.id);
    hooks.deleteByModerator(first!.id);
    await say('two');
    const second = await waitUntil(() => general.byWebhook().find((p) => p.content.includes('reply number 2')), 'the second reply');
    expect(second.name).toBe('Aria');
    const now = hooks.ownIn(general.id);
    expect(now).toHaveLength(1);
    expect(now[0]!.id).not.toBe(first!.id);
    expect(h.store.findWebhook(first!.id)).toBeUndefined();
  });

  it('in a thread: the parent channel’s webhooks post into the thread', async () => {
    const thread = guild.addThread(general, 'side plot');
    await startWith({ character: ARIA_ID }, thread.id);
    await say('in the thread', thread);
    const post = await waitUntil(() => thread.byWebhook().find((p) => p.content.includes('reply number 1')), 'the reply in the thread');
    expect(post.name).toBe('Aria');
    expect(hooks.ownIn(general.id)).toHaveLength(1);
    expect(general.posted).toEqual([]);
  });
});

describe('the webhook pool', () => {
  const log = createLogger({ level: 'silent', pretty: false });
  const persona = (key: string) => ({ key, name: `Name ${key}` });

  it('keeps to its share of the channel: the least recently used webhook is renamed, never one that is speaking', async () => {
    const store = Store.open(h.dataDir + '-pool');
    const pool = new WebhookPool({ store, log, maxOwnPerChannel: 2 });
    const api = hooks;
    const a = pool.lease(api, guild.id, { channelId: general.id }, persona('a'));
    const b = pool.lease(api, guild.id, { channelId: general.id }, persona('b'));
    await a.send('from a');
    await b.send('from b');
    a.release();
    // c needs a webhook: b is speaking (leased), a is not: a's is renamed.
    const c = pool.lease(api, guild.id, { channelId: general.id }, persona('c'));
    await c.send('from c');
    expect(api.calls).toEqual(['list ' + general.id, 'create Name a', 'create Name b', 'modify Name a -> Name c']);
    expect(general.byWebhook().map((p) => p.name)).toEqual(['Name a', 'Name b', 'Name c']);
    // Everyone speaking and no room left under the share: one more is made (Discord's 15 allow it).
    const d = pool.lease(api, guild.id, { channelId: general.id }, persona('d'));
    await d.send('from d');
    expect(api.ownIn(general.id)).toHaveLength(3);
    store.close();
  });

  it('leaves a slot free for other bots, and counts their webhooks', async () => {
    for (let i = 0; i < 13; i++) hooks.addForeign(general.id, '466378653216014359', `other ${i}`);
    const store = Store.open(h.dataDir + '-pool2');
    const pool = new WebhookPool({ store, log });
    const a = pool.lease(hooks, guild.id, { channelId: general.id }, persona('a'));
    await a.send('a');
    a.release();
    const b = pool.lease(hooks, guild.id, { channelId: general.id }, persona('b'));
    await b.send('b');
    // 13 others + 1 of ours = 14: the 15th slot stays free; b takes a's webhook over.
    expect(hooks.ownIn(general.id)).toHaveLength(1);
    expect(hooks.calls.at(-1)).toBe('modify Name a -> Name b');
    store.close();
  });
});
