/**
 * Regressions for the races and crash paths of the per-guild orchestration (issue "Guild sessions
 * that cannot race, wedge or crash"), each made to happen by construction: the voice join is held
 * by the test until it releases it, the database is locked by a second connection, Voxta is
 * stopped. The core runs against the real Voxta simulator and a real SQLite store; the voice
 * module is replaced at the edge by a joiner that behaves like `GuildVoice.join` (cancellable).
 */
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/commands/index.js';
import { DB_FILE_NAME } from '../../src/store/store.js';
import { ARIA_ID, HOLT_ID, startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import type { VoxtaCatalogPort } from '../../src/bot/catalog.js';
import { VoxtaRest } from '../../src/voxta/rest.js';
import { VoxtaEndpoint } from '../../src/voxta/endpoint.js';
import { FakeGuild, fakeVoiceJoiner, heldVoiceJoiner, humanMessage, interaction, liveVoices, makeCore, waitUntil, type CoreHarness } from './fixtures.js';

let sim: VoxtaSim;
let h: CoreHarness;
let guild: FakeGuild;
let general: ReturnType<FakeGuild['addText']>;
let lounge: string;
const ALICE = { id: '500000000000000001', displayName: 'Alice', bot: false };
const unhandled: unknown[] = [];
const onUnhandled = (r: unknown): void => void unhandled.push(r);

beforeEach(async () => {
  process.on('unhandledRejection', onUnhandled);
  sim = await startVoxtaSim({ chunkDelayMs: 1, capacityDelayMs: 50 });
  guild = new FakeGuild('130000000000000001', 'Race Server');
  general = guild.addText('general');
  lounge = guild.addVoice('Lounge');
  guild.voiceChannels.get(lounge)!.members.push(ALICE);
});
afterEach(async () => {
  await h?.close();
  await sim.close();
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
  unhandled.length = 0;
});

function core(opts: Parameters<typeof makeCore>[1] = {}): CoreHarness {
  h = makeCore(sim.url, { guilds: new Map([[guild.id, guild]]), ...opts });
  return h;
}

function command(name: string, o: Parameters<typeof interaction>[4] = {}, g = guild, channelId = general.id) {
  const ctx = interaction(h.core, g, channelId, name, o);
  return { ctx, done: runCommand(ctx) };
}

/** The guild's session is idle with nothing left behind: not in voice, slots free, no Voxta chat. */
async function expectNothingLeft(joined: Parameters<typeof liveVoices>[0]) {
  const s = h.core.session(guild.id);
  expect(s.state).toBe('idle');
  expect(s.voiceChannelId).toBeUndefined();
  expect(liveVoices(joined)).toEqual([]);
  expect(h.core.admission.chatCount).toBe(0);
  expect(h.core.admission.voiceCount).toBe(0);
  await waitUntil(() => sim.sessions().length === 0, 'no chat left open on Voxta');
}

describe('a stop while a /start is still joining voice', () => {
  it('cancels the join: not in voice, record inactive, slots free, nothing announced', async () => {
    const voice = heldVoiceJoiner();
    core({ joinVoice: voice.join });
    const start = command('start', { strings: { character: ARIA_ID }, invoker: { voiceChannelId: lounge } });
    await waitUntil(() => voice.waiting.length === 1, 'the voice join to be in flight');
    const stop = command('stop');
    await stop.done;
    await start.done;
    await expectNothingLeft(voice.joined);
    expect(start.ctx.replies.at(-1)).toEqual({ ephemeral: true, content: 'Cancelled: the chat in this server was stopped meanwhile.' });
    expect(h.store.getGuildSession(guild.id)?.active ?? false).toBe(false);
    expect(general.texts().filter((t) => t.startsWith("I'm listening"))).toEqual([]);
    // A later /start works normally.
    voice.releaseAll();
    const again = command('start', { strings: { character: ARIA_ID }, invoker: { voiceChannelId: lounge } });
    await waitUntil(() => voice.waiting.length === 1, 'the second join');
    voice.releaseAll();
    await again.done;
    expect(h.core.session(guild.id).state).toBe('active');
    expect(liveVoices(voice.joined).map((v) => v.channelId)).toEqual([lounge]);
  });

  it('leaves at once a join that completes after the stop, and says nothing', async () => {
    const voice = heldVoiceJoiner({ ignoreSignal: true });
    core({ joinVoice: voice.join });
    const start = command('start', { strings: { character: ARIA_ID }, invoker: { voiceChannelId: lounge } });
    await waitUntil(() => voice.waiting.length === 1, 'the voice join to be in flight');
    const stop = command('stop');
    // The stop waits for the start to unwind; the join completes late, after the cancellation.
    await new Promise((r) => setTimeout(r, 50));
    voice.releaseAll();
    await stop.done;
    await start.done;
    expect(voice.joined).toHaveLength(1);
    expect(voice.joined[0]!.left).toBe('cancelled while joining');
    await expectNothingLeft(voice.joined);
    expect(h.store.getGuildSession(guild.id)?.active ?? false).toBe(false);
    expect(general.texts().filter((t) => t.startsWith("I'm listening"))).toEqual([]);
  });

  it('the bound text channel deleted during the join stops it the same way', async () => {
    const voice = heldVoiceJoiner();
    core({ joinVoice: voice.join });
    const start = command('start', { strings: { character: ARIA_ID }, invoker: { voiceChannelId: lounge } });
    await waitUntil(() => voice.waiting.length === 1, 'the voice join to be in flight');
    guild.channels.delete(general.id);
    await h.core.channelDeleted(guild.id, general.id);
    await start.done;
    await expectNothingLeft(voice.joined);
  });

  it('a /join queued behind the start runs after it, on the chat the start opened', async () => {
    const voice = heldVoiceJoiner();
    const other = guild.addVoice('Other');
    guild.voiceChannels.get(other)!.members.push(ALICE);
    core({ joinVoice: voice.join });
    const start = command('start', { strings: { character: ARIA_ID }, invoker: { voiceChannelId: lounge } });
    await waitUntil(() => voice.waiting.length === 1, 'the start join');
    const join = command('join', { channels: { 'voice-channel': other } });
    voice.releaseAll();
    await start.done;
    await waitUntil(() => voice.waiting.length === 1, 'the /join join');
    voice.releaseAll();
    await join.done;
    expect(liveVoices(voice.joined).map((v) => v.channelId)).toEqual([other]);
    expect(h.core.admission.voiceCount).toBe(1);
    expect(h.store.getGuildSession(guild.id)!.voiceChannelId).toBe(other);
  });
});

describe('a database that cannot be written', () => {
  it('does not wedge a stop: idle, slots free, /status says why, and the record is written once the database is back', async () => {
    core({ busyTimeoutMs: 20, recordRetryMs: 100 });
    await command('start', { strings: { character: ARIA_ID } }).done;
    expect(h.core.session(guild.id).state).toBe('active');
    // Another process holds the write lock (a backup tool, a second bot on the same DATA_DIR).
    const other = new DatabaseSync(path.join(h.dataDir, DB_FILE_NAME));
    other.exec('BEGIN EXCLUSIVE');
    try {
      const stop = command('stop');
      await stop.done;
      expect(stop.ctx.replies.at(-1)?.content).toMatch(/^Stopped the chat with Aria/);
      expect(h.core.session(guild.id).state).toBe('idle');
      expect(h.core.admission.chatCount).toBe(0);
      const status = command('status');
      await status.done;
      const fields = status.ctx.replies.at(-1)?.embeds?.[0]?.fields ?? [];
      expect(fields.find((f) => f.name === 'Database')?.value).toMatch(/^Saving this server's chat state failed \(database is locked\)/);
      // A new /start works meanwhile (it is refused in one sentence: its record cannot be stored).
      const start = command('start', { strings: { character: ARIA_ID } });
      await start.done;
      expect(start.ctx.replies.at(-1)?.content).toMatch(/^I could not save this chat in my database \(database is locked\)/);
      expect(h.core.session(guild.id).state).toBe('idle');
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    await waitUntil(() => h.store.getGuildSession(guild.id)?.active === false, 'the record written as inactive after the lock is gone');
    expect(h.core.session(guild.id).status().storeProblem).toBeUndefined();
  });
});

describe('/join on a text-only chat (reopen with voice)', () => {
  it('keeps the chat slot throughout: another server cannot take it in between', async () => {
    const voice = heldVoiceJoiner();
    core({ joinVoice: voice.join, env: { VOXTA_MAX_CHATS: '1' } });
    const second = new FakeGuild('130000000000000002', 'Other Server');
    const secondText = second.addText('chat');
    h.guilds.set(second.id, second);
    await command('start', { strings: { character: ARIA_ID } }).done;
    expect(h.core.session(guild.id).voiceChannelId).toBeUndefined();
    // Any moment the slot is free is a moment another guild's /start can take it.
    const released: string[] = [];
    const releaseChat = h.core.admission.releaseChat.bind(h.core.admission);
    h.core.admission.releaseChat = (id: string) => {
      released.push(id);
      releaseChat(id);
    };
    const join = command('join', { invoker: { voiceChannelId: lounge } });
    await waitUntil(() => voice.waiting.length === 1, 'the reopen to be joining voice');
    const other = command('start', { strings: { character: HOLT_ID } }, second, secondText.id);
    await other.done;
    expect(other.ctx.replies.at(-1)?.content).toMatch(/^Voxta already runs 1 chat/);
    voice.releaseAll();
    await join.done;
    expect(released).toEqual([]);
    expect(h.core.session(guild.id).state).toBe('active');
    expect(h.core.session(guild.id).voiceChannelId).toBe(lounge);
    expect(sim.connections().filter((c) => c.open).map((c) => (c.capabilities as { audioInput?: string }).audioInput)).toEqual(['WebSocketStream']);
    // Messages typed while it reopened reach the reopened chat.
    expect(h.core.admission.chatCount).toBe(1);
  });

  it('holds messages typed during the reopen and delivers them once, to the reopened chat', async () => {
    const voice = heldVoiceJoiner();
    core({ joinVoice: voice.join });
    await command('start', { strings: { character: ARIA_ID } }).done;
    const join = command('join', { invoker: { voiceChannelId: lounge } });
    await waitUntil(() => voice.waiting.length === 1, 'the reopen to be joining voice');
    const msg = humanMessage(general.id, ALICE.id, 'Alice', 'typed while reopening');
    await h.core.humanMessage(guild.id, msg);
    expect(msg.reactions.has('⏳')).toBe(true);
    voice.releaseAll();
    await join.done;
    await sim.waitForClientMessage('send', { match: (p) => p.text === 'typed while reopening' });
    await waitUntil(() => !msg.reactions.has('⏳'), 'the ⏳ to go');
    expect(sim.received.filter((m) => m.payload.$type === 'send' && m.payload.text === 'typed while reopening')).toHaveLength(1);
  });

  it('a chat gone from Voxta: stopped, record inactive, one notice', async () => {
    const voice = heldVoiceJoiner();
    core({ joinVoice: voice.join });
    await command('start', { strings: { character: ARIA_ID } }).done;
    const chatId = h.core.session(guild.id).record!.chatId!;
    sim.deleteChat(chatId);
    const join = command('join', { invoker: { voiceChannelId: lounge } });
    await waitUntil(() => voice.waiting.length === 1, 'the reopen to be joining voice');
    voice.releaseAll();
    await join.done;
    expect(join.ctx.replies.at(-1)?.content).toBe('The chat no longer exists on Voxta; start a new one with /start.');
    await expectNothingLeft(voice.joined);
    expect(h.store.getGuildSession(guild.id)!.active).toBe(false);
    expect(general.texts().filter((t) => t.startsWith('I could not bring the chat with Aria into voice'))).toHaveLength(1);
  });

  it('Voxta down during the reopen: the chat stays stored, one notice, and it is resumed with voice when Voxta is back', async () => {
    const voice = heldVoiceJoiner();
    core({ joinVoice: voice.join });
    await command('start', { strings: { character: ARIA_ID } }).done;
    const join = command('join', { invoker: { voiceChannelId: lounge } });
    await waitUntil(() => voice.waiting.length === 1, 'the reopen to be joining voice');
    await sim.stop();
    voice.releaseAll();
    await join.done;
    expect(join.ctx.replies.at(-1)?.content).toMatch(/^Reopening the chat with voice failed; I will keep trying/);
    expect(h.core.session(guild.id).state).toBe('idle');
    expect(h.store.getGuildSession(guild.id)).toMatchObject({ active: true, voiceChannelId: lounge });
    expect(h.core.autoResumePending(guild.id)).toBe(true);
    expect(general.texts().filter((t) => t.startsWith('I could not reopen the chat with Aria with voice'))).toHaveLength(1);
    await sim.start();
    await waitUntil(() => voice.waiting.length === 1, 'the automatic resume to join voice', 10_000);
    voice.releaseAll();
    await waitUntil(() => h.core.session(guild.id).state === 'active', 'resumed', 10_000);
    expect(h.core.session(guild.id).voiceChannelId).toBe(lounge);
  });
});

describe('commands', () => {
  it('an answer that comes while the safety defer is still in flight edits the deferred reply (no 40060)', async () => {
    // /status with no session asks Voxta's REST whether it answers; here that takes 2.1 s.
    const endpoint = new VoxtaEndpoint({ url: sim.url });
    const real = new VoxtaRest(endpoint);
    const slow: VoxtaCatalogPort = {
      listCharacters: async (o) => {
        await new Promise((r) => setTimeout(r, 2100));
        return real.listCharacters(o);
      },
      listChats: (id, o) => real.listChats(id, o),
      fetchBytes: (u, o) => real.fetchBytes(u, o),
    };
    core({ rest: slow });
    // Discord-like: a deferral takes 200 ms to be acknowledged, and a second initial response is 40060.
    const ctx = interaction(h.core, guild, general.id, 'status');
    let deferredAt: number | undefined;
    let acking = false;
    ctx.defer = async (d) => {
      acking = true;
      await new Promise((r) => setTimeout(r, 200));
      acking = false;
      deferredAt = Date.now();
      ctx.deferred = d;
    };
    const originalReply = ctx.reply.bind(ctx);
    ctx.reply = async (r) => {
      if (acking) throw Object.assign(new Error('Interaction has already been acknowledged.'), { code: 40060 });
      await originalReply(r);
    };
    await runCommand(ctx);
    expect(deferredAt).toBeDefined();
    expect(ctx.replies).toHaveLength(1);
    expect(ctx.replies[0]!.embeds?.[0]?.title).toBe('Voxta bot status');
  });

  it('/resume refuses a chat id it cannot check against the character’s chats', async () => {
    const endpoint = new VoxtaEndpoint({ url: sim.url });
    const real = new VoxtaRest(endpoint);
    const noChatList: VoxtaCatalogPort = {
      listCharacters: (o) => real.listCharacters(o),
      listChats: async () => {
        throw new Error('GET /api/chats failed');
      },
      fetchBytes: (u, o) => real.fetchBytes(u, o),
    };
    core({ rest: noChatList });
    await command('start', { strings: { character: ARIA_ID } }).done;
    await command('stop').done;
    // A chat of the same character that this server never had (another server's, say).
    const foreign = sim.createChat(ARIA_ID, { title: 'someone else’s' });
    const resume = command('resume', { strings: { chat: foreign.id } });
    await resume.done;
    expect(resume.ctx.replies.at(-1)?.content).toMatch(/^I could not check that chat against Aria's chats on Voxta right now/);
    expect(sim.received.filter((m) => m.payload.$type === 'resumeChat')).toEqual([]);
  });
});

describe('messages in flight when the chat is stopped', () => {
  it('one Voxta had queued behind a reply, and stored while the stop settled its acknowledgements, counts as delivered (no ❌, no notice)', async () => {
    core();
    await command('start', { strings: { character: ARIA_ID } }).done;
    // As when the reply is being spoken in voice: Voxta holds its queue until playback completes.
    h.sessions[0]!.playback.setAutoAcknowledge(false);
    const first = humanMessage(general.id, ALICE.id, 'Alice', 'first');
    await h.core.humanMessage(guild.id, first);
    await waitUntil(() => sim.heldSessions().length === 1, 'the reply to hold the chat');
    const second = humanMessage(general.id, ALICE.id, 'Alice', 'second, queued behind the reply');
    await h.core.humanMessage(guild.id, second);
    await sim.waitForClientMessage('send', { match: (p) => p.text === 'second, queued behind the reply' });
    await command('stop').done;
    // The stop acknowledged the owed playback first: Voxta stored the queued message, and its
    // echo arrived before the stop's confirmation.
    expect(sim.chats()[0]!.messages.filter((m) => m.role === 'User').map((m) => m.text)).toEqual(['first', 'second, queued behind the reply']);
    const marks = (m: { id: string; reactions: Set<string> }) => new Set([...m.reactions, ...(general.marks.get(m.id) ?? [])]);
    await new Promise((r) => setTimeout(r, 100));
    expect(marks(second).has('❌')).toBe(false);
    expect(general.texts().filter((t) => t.includes('did not reach the character'))).toEqual([]);
    expect(h.store.listPendingMessages(guild.id)).toEqual([]);
  });
});

describe('the automatic resume and the admin commands', () => {
  it('a /resume that fails while Voxta is down leaves the automatic resume going: the chat comes back with Voxta', async () => {
    core();
    const chat = sim.createChat(ARIA_ID, { title: 'before the restart' });
    h.store.saveGuildSession({ guildId: guild.id, characterId: ARIA_ID, characterName: 'Aria', chatId: chat.id, textChannelId: general.id, voiceChannelId: undefined, active: true });
    await sim.stop();
    await h.core.resumeAll();
    expect(h.core.autoResumePending(guild.id)).toBe(true);
    const resume = command('resume');
    await resume.done;
    expect(resume.ctx.replies.at(-1)?.ephemeral).toBe(true);
    expect(h.core.session(guild.id).state).toBe('idle');
    expect(h.store.getGuildSession(guild.id)?.active).toBe(true);
    expect(h.core.autoResumePending(guild.id)).toBe(true);
    await sim.start();
    await waitUntil(() => h.core.session(guild.id).state === 'active', 'resumed once Voxta is back', 10_000);
    expect(h.store.getGuildSession(guild.id)?.chatId).toBe(chat.id);
  });

  it('giving up a stored chat leaves alone a chat that runs, or another stored one', async () => {
    core();
    await command('start', { strings: { character: ARIA_ID } }).done;
    const session = h.core.session(guild.id);
    const running = h.store.getGuildSession(guild.id)!;
    expect(await session.giveUpStoredChat(running.chatId, 'test')).toBe(false);
    expect(session.state).toBe('active');
    // As when Voxta failed for good: stopped, the chat kept active for the automatic resume.
    await session.stop('Voxta failed', { keepActive: true });
    expect(await session.giveUpStoredChat('some-other-chat', 'test')).toBe(false);
    expect(h.store.getGuildSession(guild.id)?.active).toBe(true);
    expect(await session.giveUpStoredChat(running.chatId, 'test')).toBe(true);
    expect(h.store.getGuildSession(guild.id)).toMatchObject({ chatId: running.chatId, active: false });
  });
});

describe('voice and Voxta events while the chat changes', () => {
  it('Discord ending the voice connection: text-only, one notice, and the stored chat no longer names the channel', async () => {
    const voice = fakeVoiceJoiner();
    core({ joinVoice: voice.join });
    await command('start', { strings: { character: ARIA_ID }, invoker: { voiceChannelId: lounge } }).done;
    expect(h.store.getGuildSession(guild.id)?.voiceChannelId).toBe(lounge);
    voice.joined[0]!.emit('ended', 'kicked');
    await waitUntil(() => h.core.session(guild.id).voiceChannelId === undefined, 'voice gone');
    await waitUntil(() => general.texts().some((t) => t.startsWith('I was disconnected from the voice channel')), 'the notice');
    expect(h.store.getGuildSession(guild.id)?.voiceChannelId).toBeUndefined();
    expect(h.core.session(guild.id).state).toBe('active');
    expect(h.core.admission.voiceCount).toBe(0);
  });

  it('a reply Voxta begins while the stop is under way is not shown (nothing is left streaming after the stop)', async () => {
    const voice = fakeVoiceJoiner();
    core({ joinVoice: voice.join });
    await command('start', { strings: { character: ARIA_ID }, invoker: { voiceChannelId: lounge } }).done;
    const { sessionId } = sim.sessions()[0]!;
    // Leaving voice is held: the stop is under way, Voxta still connected.
    let releaseLeave!: () => void;
    const left = new Promise<void>((r) => (releaseLeave = r));
    const v = voice.joined[0]!;
    const leave = v.leave.bind(v);
    v.leave = async (why) => {
      await left;
      await leave(why);
    };
    const stop = command('stop');
    await waitUntil(() => h.core.session(guild.id).state === 'stopping', 'the stop to be under way');
    const before = general.posted.length;
    const typing = general.typing;
    sim.sendRaw(sessionId, { $type: 'replyGenerating', sessionId, messageId: 'late-reply' });
    sim.sendRaw(sessionId, { $type: 'replyChunk', sessionId, messageId: 'late-reply', text: 'words after the stop', startIndex: 0, endIndex: 20, audioUrl: '', isNarration: false });
    await new Promise((r) => setTimeout(r, 150));
    releaseLeave();
    await stop.done;
    await new Promise((r) => setTimeout(r, 100));
    expect(general.texts().filter((t) => t.includes('words after the stop'))).toEqual([]);
    expect(general.posted.length).toBe(before);
    expect(general.typing).toBe(typing);
    await expectNothingLeft(voice.joined);
  });
});
