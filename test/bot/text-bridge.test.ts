/**
 * The text bridge and the orchestrator's resilience, against the Voxta simulator: messages in the
 * bound channel reach Voxta (sanitised, attributed), replies stream back split at 2000
 * characters, edits and deletions map to Voxta, reconnects are announced once and lose nothing,
 * and a restart resumes from SQLite.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/commands/index.js';
import { ESCAPE_PREFIX } from '../../src/voxta/user-text.js';
import { ARIA_ID, HOLT_ID, startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import { FakeGuild, humanMessage, interaction, makeCore, waitUntil, type CoreHarness } from './fixtures.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let sim: VoxtaSim;
let h: CoreHarness;
let guild: FakeGuild;
let general: ReturnType<FakeGuild['addText']>;
const ALICE = '500000000000000001';
const BOB = '500000000000000002';

beforeEach(async () => {
  sim = await startVoxtaSim({ chunkDelayMs: 1, capacityDelayMs: 50, chatLockReleaseDelayMs: 0 });
  h = makeCore(sim.url);
  guild = new FakeGuild('120000000000000001', 'Bridge Server');
  general = guild.addText('general');
  h.guilds.set(guild.id, guild);
  await runCommand(interaction(h.core, guild, general.id, 'start', { strings: { character: ARIA_ID } }));
  expect(h.core.session(guild.id).state).toBe('active');
});
afterEach(async () => {
  await h.close();
  await sim.close();
});

const sends = () => sim.received.filter((m) => m.payload.$type === 'send').map((m) => String(m.payload.text));
/** User messages as stored in the chat on the Voxta side (its history survives restarts). */
const chatUserTexts = (chatId: string) => (sim.chats().find((c) => c.id === chatId)?.messages ?? []).filter((m) => m.role === 'User').map((m) => m.text);

async function say(authorId: string, name: string, text: string) {
  const msg = humanMessage(general.id, authorId, name, text);
  await h.core.humanMessage(guild.id, msg);
  return msg;
}

describe('text bridge', () => {
  it('sends a human message to Voxta and streams the reply into the channel, with a typing indicator', async () => {
    await say(ALICE, 'Alice', 'hello there');
    await waitUntil(() => sends().length === 1, 'the send');
    expect(sends()).toEqual(['hello there']);
    const reply = await waitUntil(() => general.posted.find((p) => p.content.includes('You said: hello there') && p.content.includes('reply number 1')), 'the reply');
    expect(reply.content).toBe('You said: hello there. This is Aria, reply number 1.');
    expect(general.typing).toBeGreaterThan(0);
    // One Discord message per reply, edited as chunks arrive (not one message per chunk).
    expect(general.posted.filter((p) => p.content.includes('Aria'))).toHaveLength(1);
  });

  it('ignores messages in other channels', async () => {
    const other = guild.addText('random');
    await h.core.humanMessage(guild.id, humanMessage(other.id, ALICE, 'Alice', 'not for the bot'));
    expect(sends()).toEqual([]);
  });

  it('splits a long reply at sentence boundaries into messages of at most 2000 characters, losing nothing', async () => {
    const sentences = Array.from({ length: 60 }, (_, i) => `This is sentence number ${i + 1} of a rather long answer, padded to be long enough.`);
    sim.options.reply = () => sentences;
    await say(ALICE, 'Alice', 'tell me a long story');
    const expected = sentences.join(' ');
    await waitUntil(() => general.posted.map((p) => p.content).join(' ').includes('sentence number 60 of'), 'the whole long reply', 10_000);
    await new Promise((r) => setTimeout(r, 100)); // let the last edit land
    const parts = general.posted.filter((p) => p.content.startsWith('This is sentence'));
    expect(parts.length).toBeGreaterThanOrEqual(3);
    for (const p of parts) {
      expect(p.content.length).toBeLessThanOrEqual(2000);
      expect(p.content).toMatch(/\.$/); // closed at a sentence end
    }
    expect(parts.map((p) => p.content).join(' ')).toBe(expected);
  });

  it('escapes text Voxta would treat as a command or an event', async () => {
    await say(ALICE, 'Alice', '/shrug');
    await say(ALICE, 'Alice', '[waves hello]');
    await waitUntil(() => sends().length === 2, 'two sends');
    expect(sends()).toEqual([`${ESCAPE_PREFIX}/shrug`, `${ESCAPE_PREFIX}[waves hello]`]);
    // No "Command /shrug is not supported" from Voxta.
    expect(sim.sent.some((m) => (m.payload as { $type?: string }).$type === 'chatSessionError')).toBe(false);
  });

  it('attaches display names once more than one human takes part', async () => {
    await say(ALICE, 'Alice', 'first');
    await say(BOB, 'Bob', 'second');
    await say(ALICE, 'Alice', 'third');
    await waitUntil(() => sends().length === 3, 'three sends');
    expect(sends()).toEqual(['first', 'Bob: second', 'Alice: third']);
  });

  it('delivers a 5000-character message whole', async () => {
    const long = 'word '.repeat(1000).trim();
    expect(long.length).toBe(4999);
    const msg = await say(ALICE, 'Alice', long + '!');
    await waitUntil(() => sends().length === 1, 'the send');
    expect(sends()[0]).toBe(long + '!');
    expect(msg.reactions.has('✂️')).toBe(false);
  });

  it('truncates beyond 6000 characters and tells the user', async () => {
    const msg = await say(ALICE, 'Alice', 'x'.repeat(7000));
    await waitUntil(() => sends().length === 1, 'the send');
    expect(sends()[0]!.length).toBeLessThanOrEqual(6000);
    expect(msg.reactions.has('✂️')).toBe(true);
    await waitUntil(() => general.posted.find((p) => p.content.includes('longer than 6000 characters')), 'the truncation notice');
  });

  it('tells the channel once when Voxta fails mid-reply, keeps what was said, and the chat goes on', async () => {
    sim.faults.errorMidReply = true;
    await say(ALICE, 'Alice', 'first try');
    await waitUntil(() => general.texts().find((t) => t.startsWith('Voxta reported a problem: Simulated failure')), 'the error notice');
    await waitUntil(() => general.texts().find((t) => t.startsWith('You said: first try')), 'the partial reply');
    await say(ALICE, 'Alice', 'second try');
    await waitUntil(() => general.texts().find((t) => t.startsWith('You said: second try')), 'the second partial reply');
    expect(general.texts().filter((t) => t.startsWith('Voxta reported a problem'))).toHaveLength(1);
    sim.faults.errorMidReply = false;
    await say(ALICE, 'Alice', 'third try');
    await waitUntil(() => general.texts().find((t) => t.includes('You said: third try') && t.includes('reply number')), 'a whole reply again');
  });

  it('marks a reply Voxta cancelled, and one cut by /stop, as interrupted', async () => {
    sim.faults.errorMidReply = true; // after the first chunk: chatSessionError, replyCancelled, replyEnd
    await say(ALICE, 'Alice', 'first');
    await waitUntil(() => general.posted.find((p) => p.content.startsWith('You said: first.') && p.content.endsWith('*(interrupted)*')), 'the cancelled reply marked');
    sim.faults.errorMidReply = false;
    await say(ALICE, 'Alice', 'second');
    const whole = await waitUntil(() => general.posted.find((p) => p.content === 'You said: second. This is Aria, reply number 2.'), 'a whole reply');
    expect(whole.content).not.toContain('interrupted');
    sim.options.chunkDelayMs = 400;
    await say(ALICE, 'Alice', 'third');
    await waitUntil(() => general.posted.find((p) => p.content.startsWith('You said: third.')), 'the first chunk of the third reply');
    await runCommand(interaction(h.core, guild, general.id, 'stop'));
    const cut = general.posted.find((p) => p.content.startsWith('You said: third.'))!;
    expect(cut.content).toBe('You said: third. *(interrupted)*');
  });

  it('marks a reply cut by a lost Voxta connection as interrupted once the chat is back', async () => {
    sim.options.chunkDelayMs = 400;
    await say(ALICE, 'Alice', 'tell me more');
    await waitUntil(() => general.posted.find((p) => p.content.startsWith('You said: tell me more.')), 'the first chunk');
    sim.dropHubConnections();
    await waitUntil(() => general.posted.find((p) => p.content.startsWith('Reconnected to Voxta')), 'the reconnect', 10_000);
    await waitUntil(() => general.posted.find((p) => p.content === 'You said: tell me more. *(interrupted)*'), 'the cut reply marked');
  }, 15_000);

  it('maps edits and deletions of bridged messages to the Voxta messages they created', async () => {
    const msg = await say(ALICE, 'Alice', 'I like cats');
    await waitUntil(() => sim.sent.find((m) => (m.payload as { $type?: string; role?: string }).$type === 'update'), 'the user message echo');
    const link = await waitUntil(() => h.store.findMessageLink(msg.id), 'the id link');
    h.core.messageEdited(guild.id, general.id, msg.id, 'Alice', 'I like dogs');
    const upd = await sim.waitForClientMessage('update');
    expect(upd.payload).toMatchObject({ messageId: link.voxtaMessageId, text: 'I like dogs' });
    h.core.messageDeleted(guild.id, general.id, msg.id);
    const del = await sim.waitForClientMessage('deleteMessage');
    expect(del.payload).toMatchObject({ messageId: link.voxtaMessageId });
    expect(h.store.findMessageLink(msg.id)).toBeUndefined();
    // An edit of a message that was never bridged is ignored.
    h.core.messageEdited(guild.id, general.id, '999', 'Alice', 'x');
    expect(sim.received.filter((m) => m.payload.$type === 'update')).toHaveLength(1);
  });
});

describe('resilience', () => {
  it('announces a Voxta reconnect once, marks messages sent meanwhile and delivers them in order afterwards', async () => {
    sim.dropHubConnections();
    await waitUntil(() => h.core.session(guild.id).state === 'reconnecting' || general.posted.find((p) => p.content.includes('reconnecting')), 'reconnecting');
    const a = await say(ALICE, 'Alice', 'are you there?');
    const b = await say(ALICE, 'Alice', 'hello?');
    await waitUntil(() => general.posted.find((p) => p.content.startsWith('Reconnected to Voxta')), 'the resumed notice', 10_000);
    await waitUntil(() => sends().length === 2, 'both queued messages delivered');
    expect(sends()).toEqual(['are you there?', 'hello?']);
    await waitUntil(() => !a.reactions.has('⏳') && !b.reactions.has('⏳'), 'pending marks cleared');
    const notices = general.texts().filter((t) => t.includes('lost the connection to Voxta') || t.startsWith('Reconnected'));
    expect(notices).toEqual([
      'I lost the connection to Voxta and am reconnecting. Messages you send meanwhile will be delivered once it is back.',
      'Reconnected to Voxta; the chat goes on.',
    ]);
    expect(h.core.session(guild.id).state).toBe('active');
    expect(h.core.metrics.reconnects.get()).toBe(1);
  }, 15_000);

  it('resumes every active guild from SQLite after a restart', async () => {
    const chatId = h.store.getGuildSession(guild.id)!.chatId;
    const dataDir = h.dataDir;
    await h.close(); // shutdown keeps the record active
    await waitUntil(() => sim.sessions().length === 0, 'the old session to go');
    h = makeCore(sim.url, { dataDir, guilds: h.guilds });
    expect(h.store.listActiveGuildSessions().map((r) => r.guildId)).toEqual([guild.id]);
    await h.core.resumeAll();
    expect(h.core.session(guild.id).state).toBe('active');
    expect(sim.sessions().map((s) => s.chatId)).toEqual([chatId]);
    const resumes = sim.received.filter((m) => m.payload.$type === 'resumeChat');
    expect(resumes.at(-1)!.payload).toMatchObject({ chatId });
    await say(ALICE, 'Alice', 'back again');
    await waitUntil(() => general.posted.find((p) => p.content.includes('You said: back again')), 'a reply after the restart');
  });

  it('after a crash, waits for Voxta to free the chat the dead process still held, then resumes it', async () => {
    const chatId = h.store.getGuildSession(guild.id)!.chatId;
    // A second bot process on the same database while the first still holds the chat (as after a
    // SIGKILL, until Voxta notices the dead connection).
    const old = h;
    h = makeCore(sim.url, { dataDir: old.dataDir, guilds: old.guilds });
    await h.core.resumeAll();
    expect(h.core.session(guild.id).state).toBe('idle');
    await waitUntil(() => general.texts().find((t) => t.includes('the chat is still open from before')), 'the waiting notice');
    // Typed while the resume waits: held (⏳), not dropped.
    const held = humanMessage(general.id, ALICE, 'Alice', 'typed while resuming');
    await h.core.humanMessage(guild.id, held);
    expect(held.reactions.has('⏳')).toBe(true);
    await old.core.shutdown(); // the old connection goes away; Voxta frees the chat
    old.store.close();
    await waitUntil(() => h.core.session(guild.id).state === 'active', 'the retried resume', 10_000);
    expect(sim.sessions().map((s) => s.chatId)).toEqual([chatId]);
    await waitUntil(() => sends().includes('typed while resuming'), 'the held message delivered');
    await waitUntil(() => !held.reactions.has('⏳'), 'the ⏳ cleared');
    expect(held.reactions.has('❌')).toBe(false);
    await say(ALICE, 'Alice', 'made it');
    await waitUntil(() => general.posted.find((p) => p.content.includes('You said: made it')), 'a reply');
  }, 20_000);

  it('keeps retrying a resume while Voxta is down at boot, and tells the channel once', async () => {
    const dataDir = h.dataDir;
    await h.close();
    await sim.stop();
    h = makeCore(sim.url, { dataDir, guilds: h.guilds });
    await h.core.resumeAll();
    expect(h.core.session(guild.id).state).toBe('idle');
    await sim.start();
    await waitUntil(() => h.core.session(guild.id).state === 'active', 'the retried resume', 10_000);
    expect(general.texts().filter((t) => t.startsWith('I could not resume the chat with Aria yet'))).toHaveLength(1);
  }, 15_000);

  it('when the Voxta client gives up, says so once, keeps the chat stored and resumes it once Voxta is back', async () => {
    const chatId = h.store.getGuildSession(guild.id)!.chatId;
    expect(await h.core.voxtaReachable()).toBe(true);
    await sim.stop();
    // Readiness follows the live session at once (no cached probe in the way).
    await waitUntil(() => h.core.session(guild.id).state === 'reconnecting', 'the reconnecting state');
    expect(await h.core.voxtaReachable()).toBe(false);
    await waitUntil(() => general.posted.find((p) => p.content.startsWith('I could not get the connection to Voxta back')), 'the gave-up notice', 10_000);
    expect(h.core.session(guild.id).state).toBe('idle');
    expect(h.store.getGuildSession(guild.id)).toMatchObject({ active: true, chatId });
    expect(h.core.admission.chatCount).toBe(0);
    await sim.start();
    await waitUntil(() => h.core.session(guild.id).state === 'active', 'the automatic resume', 10_000);
    expect(sim.sessions().map((s) => s.chatId)).toEqual([chatId]);
    expect(general.texts().filter((t) => t.startsWith('I could not get the connection to Voxta back'))).toHaveLength(1);
  }, 20_000);

  it('a message typed while Voxta is down survives a shutdown: delivered once on the next start, before a newer one', async () => {
    const chatId = h.store.getGuildSession(guild.id)!.chatId!;
    await sim.stop();
    await waitUntil(() => general.texts().find((t) => t.startsWith('I lost the connection to Voxta')), 'the lost notice');
    const held = await say(ALICE, 'Alice', 'typed during the outage');
    expect(held.reactions.has('⏳')).toBe(true);
    expect(h.store.listPendingMessages(guild.id).map((m) => [m.text, m.chatId, m.sent])).toEqual([['typed during the outage', chatId, false]]);
    const { dataDir, guilds } = h;
    await h.close(); // SIGTERM: Voxta still down
    general.marks.set(held.id, new Set(['⏳'])); // the mark stays on Discord; the next process sees it only by id
    await sim.start();
    h = makeCore(sim.url, { dataDir, guilds });
    const resuming = h.core.resumeAll();
    expect(h.core.session(guild.id).state).toBe('starting');
    const newer = await say(ALICE, 'Alice', 'typed as it comes back');
    await resuming;
    await waitUntil(() => chatUserTexts(chatId).length === 2, 'both messages stored in the chat');
    expect(chatUserTexts(chatId)).toEqual(['typed during the outage', 'typed as it comes back']);
    expect(sends()).toEqual(['typed during the outage', 'typed as it comes back']);
    await waitUntil(() => h.store.listPendingMessages(guild.id).length === 0, 'the pending rows removed once Voxta confirmed them');
    await waitUntil(() => !newer.reactions.has('⏳'), 'the ⏳ of the newer message cleared');
    // The ⏳ the earlier process put on the held message is cleared by id through the channel.
    await waitUntil(() => !general.marks.get(held.id)?.has('⏳'), 'the old ⏳ cleared');
    expect(general.marks.get(held.id)?.has('❌')).toBe(false);
    // The link to the Voxta message exists (an edit after the restart would reach it).
    expect(h.store.findMessageLink(held.id)?.chatId).toBe(chatId);
    expect(general.texts().some((t) => t.includes('did not reach'))).toBe(false);
  }, 15_000);

  it('after a crash between "written to Voxta" and "confirmed", sends again only what is not in the chat history', async () => {
    const chatId = h.store.getGuildSession(guild.id)!.chatId!;
    await say(ALICE, 'Alice', 'ok');
    await waitUntil(() => general.posted.find((p) => p.content.includes('You said: ok')), 'the first reply');
    await say(ALICE, 'Alice', 'delivered before the crash');
    await waitUntil(() => general.posted.find((p) => p.content.includes('You said: delivered before the crash')), 'the second reply');
    await waitUntil(() => h.store.listPendingMessages(guild.id).length === 0, 'nothing pending');
    const history = sim.chats().find((c) => c.id === chatId)!.messages;
    // The message after the first "ok": the last one the crashed process had seen when it wrote.
    const anchor = history[history.findIndex((m) => m.text === 'ok') + 1]!.messageId;
    const { dataDir, guilds } = h;
    await h.close();
    h = makeCore(sim.url, { dataDir, guilds });
    // What the store holds after a SIGKILL in that window (rows the dead process wrote itself).
    const rows = [
      { text: 'delivered before the crash', sent: true }, // stored by Voxta; echo never seen
      { text: 'ok', sent: true }, // a second "ok", written but lost with the connection
      { text: 'never written', sent: false },
    ];
    for (const [i, r] of rows.entries()) {
      const id = h.store.addPendingMessage({ guildId: guild.id, chatId, discordMessageId: `70000000000000000${i}`, text: r.text });
      if (r.sent) h.store.markPendingMessageSent(id, anchor);
    }
    const before = sends().length;
    await h.core.resumeAll();
    await waitUntil(() => chatUserTexts(chatId).length === 4, 'the two missing messages stored');
    expect(sends().slice(before)).toEqual(['ok', 'never written']);
    expect(chatUserTexts(chatId)).toEqual(['ok', 'delivered before the crash', 'ok', 'never written']);
    // The one found in the history is linked to its Voxta message (edits reach it).
    const found = sim.chats().find((c) => c.id === chatId)!.messages.find((m) => m.text === 'delivered before the crash')!;
    expect(h.store.findMessageLink('700000000000000000')?.voxtaMessageId).toBe(found.messageId);
    await waitUntil(() => h.store.listPendingMessages(guild.id).length === 0, 'the pending rows removed');
  }, 15_000);

  it('after a long outage (more messages than tracked in memory) every message is delivered once and none is pending afterwards', async () => {
    const chatId = h.store.getGuildSession(guild.id)!.chatId!;
    // This server lifts the limits on members' messages (/config): all 60 are to be delivered.
    h.store.setSetting(guild.id, 'textRate', 'off');
    h.store.setSetting(guild.id, 'maxQueuedTurns', '1000');
    await sim.stop();
    await waitUntil(() => h.core.session(guild.id).state === 'reconnecting', 'the reconnecting state');
    const texts = Array.from({ length: 60 }, (_, i) => `outage message ${i + 1}`);
    for (const t of texts) await say(ALICE, 'Alice', t);
    expect(h.store.listPendingMessages(guild.id)).toHaveLength(60);
    await sim.start();
    await waitUntil(() => chatUserTexts(chatId).length === 60, 'all 60 stored in the chat', 10_000);
    expect(chatUserTexts(chatId)).toEqual(texts);
    await waitUntil(() => h.store.listPendingMessages(guild.id).length === 0, 'no pending row left', 5000);
    // And a restart sends nothing again.
    const { dataDir, guilds } = h;
    await h.close();
    h = makeCore(sim.url, { dataDir, guilds });
    await h.core.resumeAll();
    await sleep(200);
    expect(sends()).toEqual(texts);
  }, 20_000);

  it('tells the channel which held messages were not delivered when the chat is gone on resume', async () => {
    await sim.stop();
    await waitUntil(() => general.texts().find((t) => t.startsWith('I lost the connection to Voxta')), 'the lost notice');
    const held = await say(ALICE, 'Alice', 'words for a deleted chat');
    const { dataDir, guilds } = h;
    await h.close();
    general.marks.set(held.id, new Set(['⏳'])); // as Discord shows it to the next process
    await sim.start();
    h = makeCore(sim.url, { dataDir, guilds });
    // The chat was deleted on the Voxta side meanwhile.
    h.store.saveGuildSession({ ...h.store.getGuildSession(guild.id)!, chatId: randomUUID() });
    await h.core.resumeAll();
    await waitUntil(() => general.texts().find((t) => t.includes('did not reach')), 'the not-delivered notice');
    expect(general.texts().filter((t) => t.includes('did not reach'))).toEqual(['This message did not reach the character and will not be delivered: “words for a deleted chat”.']);
    expect(general.texts().filter((t) => t.includes('does not know that chat'))).toHaveLength(1);
    expect(h.store.listPendingMessages(guild.id)).toEqual([]);
    expect(h.store.getGuildSession(guild.id)!.active).toBe(false);
    expect(sends()).toEqual([]);
    await waitUntil(() => general.marks.get(held.id)?.has('❌'), 'the held message marked ❌ by id');
    expect(general.marks.get(held.id)?.has('⏳')).toBe(false);
  }, 15_000);

  it('a /start that replaces the stored chat reports the messages held for the old one as not delivered', async () => {
    await sim.stop();
    await waitUntil(() => general.texts().find((t) => t.startsWith('I lost the connection to Voxta')), 'the lost notice');
    const held = await say(ALICE, 'Alice', 'meant for Aria');
    const { dataDir, guilds } = h;
    await h.close();
    general.marks.set(held.id, new Set(['⏳']));
    await sim.start();
    h = makeCore(sim.url, { dataDir, guilds });
    // No automatic resume yet: an admin starts a chat with someone else instead.
    const started = interaction(h.core, guild, general.id, 'start', { strings: { character: HOLT_ID } });
    await runCommand(started);
    expect(h.core.session(guild.id).state).toBe('active');
    await waitUntil(() => general.texts().find((t) => t.includes('did not reach')), 'the not-delivered notice');
    expect(general.texts().filter((t) => t.includes('did not reach'))).toEqual(['This message did not reach the character and will not be delivered: “meant for Aria”.']);
    await waitUntil(() => general.marks.get(held.id)?.has('❌'), 'the ❌ mark');
    expect(h.store.listPendingMessages(guild.id)).toEqual([]);
    expect(sends()).toEqual([]);
  }, 15_000);

  it('keeps messages typed before the Voxta client gives up and delivers them after the automatic resume', async () => {
    await sim.stop();
    await waitUntil(() => h.core.session(guild.id).state === 'reconnecting', 'the reconnecting state');
    const held = await say(ALICE, 'Alice', 'patience');
    await waitUntil(() => general.posted.find((p) => p.content.startsWith('I could not get the connection to Voxta back')), 'the gave-up notice', 10_000);
    expect(held.reactions.has('⏳')).toBe(true);
    expect(held.reactions.has('❌')).toBe(false);
    const during = await say(ALICE, 'Alice', 'still there?'); // typed while the resume is pending
    await sim.start();
    await waitUntil(() => h.core.session(guild.id).state === 'active', 'the automatic resume', 10_000);
    await waitUntil(() => sends().length === 2, 'both held messages delivered');
    expect(sends()).toEqual(['patience', 'still there?']);
    await waitUntil(() => !held.reactions.has('⏳') && !during.reactions.has('⏳'), 'the ⏳ marks cleared');
  }, 20_000);

  it('Voxta back refusing the API key: one plain notice, no promise to keep trying, the chat kept; a restart with the right key resumes it', async () => {
    const keyed = await startVoxtaSim({ chunkDelayMs: 1, capacityDelayMs: 50, apiKey: 'old-key-0123456789' });
    const g = new FakeGuild('120000000000000009', 'Keyed Server');
    const ch = g.addText('general');
    let k = makeCore(keyed.url, { env: { VOXTA_API_KEY: 'old-key-0123456789' } });
    k.guilds.set(g.id, g);
    try {
      await runCommand(interaction(k.core, g, ch.id, 'start', { strings: { character: ARIA_ID } }));
      const chatId = k.store.getGuildSession(g.id)!.chatId!;
      await keyed.stop();
      keyed.options.apiKey = 'new-key-9876543210';
      await keyed.start();
      await waitUntil(() => ch.texts().find((t) => t.includes('refused my credentials')), 'the credentials notice', 10_000);
      const held = humanMessage(ch.id, ALICE, 'Alice', 'typed while refused');
      await k.core.humanMessage(g.id, held);
      await sleep(800); // several quiet retries (back-off 100–400 ms here)
      const notices = ch.texts().filter((t) => !t.startsWith('You said'));
      expect(notices.filter((t) => t.includes('refused my credentials'))).toEqual([
        'Voxta refused my credentials, so the chat with Aria is paused. Check VOXTA_API_KEY: the chat stays stored and is resumed (with any messages sent meanwhile) once Voxta accepts the key, for example when the bot restarts with the right one.',
      ]);
      expect(notices.filter((t) => /keep trying|after restarting|Start a new one/.test(t))).toEqual([]);
      expect(notices.some((t) => t.includes('key-'))).toBe(false);
      expect(k.store.getGuildSession(g.id)).toMatchObject({ active: true, chatId });
      // Restarted with the right key: the same chat, and what was typed meanwhile.
      const { dataDir, guilds } = k;
      await k.close();
      k = makeCore(keyed.url, { dataDir, guilds, env: { VOXTA_API_KEY: 'new-key-9876543210' } });
      await k.core.resumeAll();
      expect(k.core.session(g.id).state).toBe('active');
      expect(keyed.sessions().map((x) => x.chatId)).toEqual([chatId]);
      await waitUntil(() => ch.texts().find((t) => t.includes('You said: typed while refused')), 'the held message answered');
      expect(keyed.received.filter((m) => m.payload.$type === 'send').map((m) => m.payload.text)).toEqual(['typed while refused']);
    } finally {
      await k.close();
      await keyed.close();
    }
  }, 20_000);

  it('keeps a stored chat through a guild outage at boot and resumes it when the guild is back', async () => {
    const dataDir = h.dataDir;
    await h.close();
    guild.available = false;
    h = makeCore(sim.url, { dataDir, guilds: h.guilds });
    await h.core.resumeAll();
    expect(h.store.getGuildSession(guild.id)!.active).toBe(true);
    guild.available = true;
    await waitUntil(() => h.core.session(guild.id).state === 'active', 'the resume after the outage', 10_000);
  }, 15_000);

  it('ends the session cleanly when the bound text channel is deleted', async () => {
    guild.channels.delete(general.id);
    await h.core.channelDeleted(guild.id, general.id);
    expect(h.core.session(guild.id).state).toBe('idle');
    expect(h.store.getGuildSession(guild.id)!.active).toBe(false);
    await waitUntil(() => sim.sessions().length === 0, 'the Voxta chat to stop');
    expect(h.core.admission.chatCount).toBe(0);
  });

  it('forgets a guild the bot was removed from', async () => {
    h.guilds.delete(guild.id);
    await h.core.guildRemoved(guild.id);
    expect(h.store.getGuildSession(guild.id)).toBeUndefined();
    await waitUntil(() => sim.sessions().length === 0, 'the Voxta chat to stop');
  });
});
