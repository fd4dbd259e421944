/**
 * The simulator's group chats, scenarios, participants, reply controls and app triggers, driven
 * by the real @microsoft/signalr client with raw protocol payloads.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  ARIA_ID,
  BRIDGE_SCENARIO_ID,
  CHRONICLER_ID,
  HOLT_ID,
  MIRA_ID,
  NARRATOR_ID,
  VEX_ID,
  startVoxtaSim,
  type VoxtaSim,
  type VoxtaSimOptions,
} from '../../sim/voxta/index.js';
import { connectAuthenticated, idsOf, readReply, startChat, type HubClient, type Msg } from './helpers.js';

let sim: VoxtaSim | undefined;
const clients: HubClient[] = [];

async function setup(opts: VoxtaSimOptions = {}): Promise<VoxtaSim> {
  // TTS off: replies carry no audio URL, and playback is acknowledged by hand in each test.
  sim = await startVoxtaSim({ chunkDelayMs: 2, capacityDelayMs: 50, tts: { enabled: false }, ...opts });
  return sim;
}
async function client(capabilities?: object): Promise<HubClient> {
  const c = await connectAuthenticated(sim!, capabilities ? { capabilities } : {});
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await sim?.close();
  sim = undefined;
});

/** Acknowledges a reply's playback, as a client must (protocol §4c). */
async function complete(c: HubClient, sessionId: string, messageId: string): Promise<void> {
  await c.send({ $type: 'speechPlaybackComplete', sessionId, messageId });
}

/** Sends a user message and reads the reply that answers it. */
async function say(c: HubClient, sessionId: string, text: string): Promise<{ messageId: string; chunks: Msg[]; end: Msg; userId: string }> {
  const after = c.mark();
  await c.send({ $type: 'send', sessionId, text, doReply: true });
  const user = await c.next('update', { after, match: (m) => m.role === 'User' && m.text === text });
  const reply = await readReply(c, after);
  return { ...reply, userId: user.messageId as string };
}

describe('voxta-sim group chats', () => {
  it('startChat with characterIds: both in chatStarted.characters (distinct PNG thumbnails), the profile narrator, no scenario', async () => {
    const s = await setup();
    const c = await client();
    const started = await startChat(c, '', { characterId: undefined, characterIds: [HOLT_ID, MIRA_ID] });
    const characters = started.characters as Array<{ id: string; name: string; thumbnailUrl: string }>;
    expect(characters.map((x) => x.id)).toEqual([HOLT_ID, MIRA_ID]);
    expect(started.narrator).toMatchObject({ id: NARRATOR_ID, name: 'Narrator' });
    expect(started.scenario).toBeNull();
    const pngs: Buffer[] = [];
    for (const ch of characters) {
      const res = await fetch(s.url + ch.thumbnailUrl);
      expect(res.headers.get('content-type')).toBe('image/png');
      pngs.push(Buffer.from(await res.arrayBuffer()));
    }
    expect(pngs[0]!.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(pngs[0]!.equals(pngs[1]!)).toBe(false);
    expect(s.sessions()[0]).toMatchObject({ characterId: HOLT_ID, characterIds: [HOLT_ID, MIRA_ID] });
  });

  it('a scripted turn from two characters: the second reply starts only after the first one’s speechPlaybackComplete', async () => {
    await setup({
      reply: (text, ctx) =>
        text.includes('both')
          ? ctx.characters.map((ch) => ({ senderId: ch.id, text: [`${ch.name} here.`] }))
          : [`${ctx.characterName} alone.`],
    });
    const c = await client();
    const { sessionId } = idsOf(await startChat(c, HOLT_ID, { characterId: undefined, characterIds: [HOLT_ID, MIRA_ID] }));
    const first = await say(c, sessionId, 'answer both of you');
    expect(first.end.senderId).toBe(HOLT_ID);
    expect(first.chunks.map((x) => [x.senderId, x.text])).toEqual([[HOLT_ID, 'Captain Holt here.']]);
    // Held: Mira waits for the playback of Holt's reply.
    await new Promise((r) => setTimeout(r, 60));
    const generating = (after: number) => c.all('replyGenerating', after);
    const mark = c.mark();
    expect(generating(0)).toHaveLength(1);
    expect(sim!.sessions()[0]).toMatchObject({ held: true, continuation: 1 });
    await complete(c, sessionId, first.messageId);
    const second = await readReply(c, mark);
    expect(second.end.senderId).toBe(MIRA_ID);
    expect(second.chunks[0]).toMatchObject({ senderId: MIRA_ID, text: 'Mira here.', isNarration: false });
    // The turn is over only after the second one's playback: then WaitingForUserInput.
    const afterSecond = c.mark();
    await complete(c, sessionId, second.messageId);
    await c.next('chatFlow', { after: afterSecond, match: (m) => m.state === 'WaitingForUserInput' });
  });

  it('who answers by default: the character named in the text, else the next one after the last speaker', async () => {
    await setup();
    const c = await client();
    const { sessionId } = idsOf(await startChat(c, HOLT_ID, { characterId: undefined, characterIds: [HOLT_ID, MIRA_ID] }));
    const a = await say(c, sessionId, 'Mira, what grows here?');
    expect(a.end.senderId).toBe(MIRA_ID);
    await complete(c, sessionId, a.messageId);
    const b = await say(c, sessionId, 'and then?');
    expect(b.end.senderId).toBe(HOLT_ID);
    await complete(c, sessionId, b.messageId);
    // send.characterId picks the speaker.
    const after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'you again', characterId: HOLT_ID });
    expect((await readReply(c, after)).end.senderId).toBe(HOLT_ID);
  });

  it('a narrator reply: isNarration on replyGenerating and replyChunk, from the chat’s narrator', async () => {
    await setup({ reply: () => [{ isNarration: true, text: ['The lights flicker.'] }] });
    const c = await client();
    const { sessionId } = idsOf(await startChat(c, ARIA_ID));
    const after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'look around' });
    const gen = await c.next('replyGenerating', { after });
    expect(gen).toMatchObject({ senderId: NARRATOR_ID, isNarration: true });
    const reply = await readReply(c, after);
    expect(reply.chunks[0]).toMatchObject({ senderId: NARRATOR_ID, isNarration: true, text: 'The lights flicker.' });
  });

  it('a reply script naming someone outside the chat is a chatSessionError, not a reply', async () => {
    await setup({ reply: () => [{ senderId: VEX_ID, text: ['intruder'] }] });
    const c = await client();
    const { sessionId } = idsOf(await startChat(c, ARIA_ID));
    const after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'hi' });
    expect((await c.next('chatSessionError', { after })).message).toMatch(/not in this chat/);
    expect(c.all('replyStart', after)).toHaveLength(0);
  });
});

describe('voxta-sim scenarios', () => {
  it('GET /api/scenarios and loadScenariosList list ScenarioInfo with roles and their default characters', async () => {
    const s = await setup();
    const body = (await (await fetch(`${s.url}/api/scenarios`)).json()) as { scenarios: Msg[] };
    expect(body.scenarios).toEqual([
      expect.objectContaining({
        id: BRIDGE_SCENARIO_ID,
        name: 'The Bridge',
        client: null,
        roles: [
          { name: 'captain', description: 'Commands the ship', defaultCharacterId: HOLT_ID },
          { name: 'botanist', description: 'Keeps the greenhouse deck alive', defaultCharacterId: MIRA_ID },
        ],
      }),
    ]);
    const c = await client();
    await c.send({ $type: 'loadScenariosList' });
    expect((await c.next('scenariosListLoaded')).scenarios).toEqual(body.scenarios);
  });

  it('startChat {characterId, scenarioId}: the scenario’s cast with roles, its narrator, and chatStarted.scenario', async () => {
    await setup();
    const c = await client();
    const started = await startChat(c, HOLT_ID, { scenarioId: BRIDGE_SCENARIO_ID });
    expect(started.characters).toEqual([
      expect.objectContaining({ id: HOLT_ID, scenarioRole: 'captain' }),
      expect.objectContaining({ id: MIRA_ID, scenarioRole: 'botanist' }),
    ]);
    expect(started.narrator).toMatchObject({ id: CHRONICLER_ID, name: 'Chronicler' });
    expect(started.scenario).toMatchObject({ id: BRIDGE_SCENARIO_ID, name: 'The Bridge', roles: [{ name: 'captain', description: 'Commands the ship' }, expect.anything()] });
    expect((started.context as Msg).roles).toEqual({ captain: { characterId: HOLT_ID, enabled: true }, botanist: { characterId: MIRA_ID, enabled: true } });
    expect(started.title).toBe('The Bridge');
  });

  it('startChat roles override a role’s default character; a scenario start without a character is refused (as Voxta)', async () => {
    await setup();
    const c = await client();
    const started = await startChat(c, HOLT_ID, { scenarioId: BRIDGE_SCENARIO_ID, roles: { botanist: ARIA_ID } });
    expect((started.characters as Msg[]).map((x) => [x.id, x.scenarioRole])).toEqual([
      [HOLT_ID, 'captain'],
      [ARIA_ID, 'botanist'],
    ]);
    await c.send({ $type: 'stopChat', sessionId: started.sessionId });
    await c.next('chatClosed');
    const after = c.mark();
    await c.send({ $type: 'startChat', scenarioId: BRIDGE_SCENARIO_ID });
    expect((await c.next('error', { after })).message).toMatch(/needs a "characterId"/);
  });

  it('chat lists filter by scenario (§2.4): without scenarioId only chats without one, with it only that scenario’s', async () => {
    const s = await setup();
    const plain = s.createChat(HOLT_ID, { title: 'plain' });
    const bridge = s.createChat([HOLT_ID, MIRA_ID], { scenarioId: BRIDGE_SCENARIO_ID });
    const c = await client();
    await c.send({ $type: 'loadChatsList', characterId: HOLT_ID });
    expect(((await c.next('chatsListLoaded')).chats as Msg[]).map((x) => x.id)).toEqual([plain.id]);
    const after = c.mark();
    await c.send({ $type: 'loadChatsList', characterId: MIRA_ID, scenarioId: BRIDGE_SCENARIO_ID });
    expect(((await c.next('chatsListLoaded', { after })).chats as Msg[]).map((x) => x.id)).toEqual([bridge.id]);
    const rest = (await (await fetch(`${s.url}/api/chats?characterId=${MIRA_ID}`)).json()) as { chats: Msg[] };
    expect(rest.chats).toEqual([expect.objectContaining({ id: bridge.id, scenarioId: BRIDGE_SCENARIO_ID, characters: [expect.objectContaining({ id: HOLT_ID }), expect.objectContaining({ id: MIRA_ID })] })]);
  });
});

describe('voxta-sim participants', () => {
  it('addChatParticipant / removeChatParticipant: chatParticipantsUpdated with the whole cast, a narrator event, later replies from the new cast', async () => {
    const s = await setup({ reply: (_t, ctx) => [`${ctx.characterName} speaking.`] });
    const c = await client();
    const { sessionId, chatId } = idsOf(await startChat(c, ARIA_ID));
    let after = c.mark();
    await c.send({ $type: 'addChatParticipant', sessionId, characterId: MIRA_ID });
    const added = await c.next('chatParticipantsUpdated', { after });
    expect((added.characters as Msg[]).map((x) => x.id)).toEqual([ARIA_ID, MIRA_ID]);
    const event = await c.next('update', { after, match: (m) => m.role === 'Event' });
    expect(event).toMatchObject({ senderId: NARRATOR_ID, text: 'Mira joined the conversation.' });
    const toMira = await say(c, sessionId, 'Mira?');
    expect(toMira.end.senderId).toBe(MIRA_ID);
    await complete(c, sessionId, toMira.messageId);

    after = c.mark();
    await c.send({ $type: 'removeChatParticipant', sessionId, characterId: ARIA_ID });
    expect(((await c.next('chatParticipantsUpdated', { after })).characters as Msg[]).map((x) => x.id)).toEqual([MIRA_ID]);
    expect(s.chats().find((x) => x.id === chatId)).toMatchObject({ characterId: MIRA_ID, characterIds: [MIRA_ID] });
    const next = await say(c, sessionId, 'Aria?');
    expect(next.end.senderId).toBe(MIRA_ID);
    // Removing someone who is not there: Voxta answers nothing.
    after = c.mark();
    await c.invoke({ $type: 'removeChatParticipant', sessionId, characterId: HOLT_ID });
    expect(c.all('chatParticipantsUpdated', after)).toHaveLength(0);
    // An unknown character is refused.
    await expect(c.invoke({ $type: 'addChatParticipant', sessionId, characterId: '00000000-0000-4000-8000-00000000dead' })).rejects.toThrow(/was not found/);
  });
});

describe('voxta-sim reply controls', () => {
  it('retry: the last reply is deleted (update text null, same id) and a new reply comes with a new messageId', async () => {
    const s = await setup();
    const c = await client();
    const { sessionId, chatId } = idsOf(await startChat(c, ARIA_ID));
    const first = await say(c, sessionId, 'hello');
    const after = c.mark();
    await c.send({ $type: 'retry', sessionId });
    // Held: nothing happens until the first reply's playback completed (retry is a foreground command).
    await new Promise((r) => setTimeout(r, 50));
    expect(c.all('update', after)).toHaveLength(0);
    await complete(c, sessionId, first.messageId);
    const deleted = await c.next('update', { after, match: (m) => m.messageId === first.messageId });
    expect(deleted).toMatchObject({ text: null, role: 'Assistant', senderId: ARIA_ID, index: 0, conversationIndex: 0, chatTime: 0 });
    const again = await readReply(c, after);
    expect(again.messageId).not.toBe(first.messageId);
    expect(s.chats().find((x) => x.id === chatId)!.messages.map((m) => m.messageId)).toEqual([first.userId, again.messageId]);
  });

  it('revert without messageId: the last user message and everything after it are deleted, in order, and no reply follows', async () => {
    const s = await setup();
    const c = await client();
    const { sessionId, chatId } = idsOf(await startChat(c, ARIA_ID));
    const one = await say(c, sessionId, 'one');
    await complete(c, sessionId, one.messageId);
    const two = await say(c, sessionId, 'two');
    await complete(c, sessionId, two.messageId);
    const after = c.mark();
    await c.send({ $type: 'revert', sessionId });
    await c.next('update', { after, match: (m) => m.messageId === two.messageId });
    expect(c.all('update', after).map((m) => [m.messageId, m.text])).toEqual([
      [two.userId, null],
      [two.messageId, null],
    ]);
    expect(s.chats().find((x) => x.id === chatId)!.messages.map((m) => m.messageId)).toEqual([one.userId, one.messageId]);
    await new Promise((r) => setTimeout(r, 40));
    expect(c.all('replyGenerating', after)).toHaveLength(0);
  });

  it('revert with the user message’s id keeps it, deletes the reply and answers it again', async () => {
    await setup();
    const c = await client();
    const { sessionId } = idsOf(await startChat(c, ARIA_ID));
    const one = await say(c, sessionId, 'one');
    await complete(c, sessionId, one.messageId);
    const after = c.mark();
    await c.send({ $type: 'revert', sessionId, messageId: one.userId });
    const deleted = await c.next('update', { after, match: (m) => m.text === null });
    expect(deleted.messageId).toBe(one.messageId);
    const again = await readReply(c, after);
    expect(again.messageId).not.toBe(one.messageId);
    // An unknown messageId changes nothing.
    const later = c.mark();
    await c.invoke({ $type: 'revert', sessionId, messageId: '00000000-0000-4000-8000-000000000001' });
    expect(c.all('update', later)).toHaveLength(0);
  });

  it('deleteMessage is echoed as update with text null; an update with new text edits the stored message', async () => {
    const s = await setup();
    const c = await client();
    const { sessionId, chatId } = idsOf(await startChat(c, ARIA_ID));
    const one = await say(c, sessionId, 'one');
    let after = c.mark();
    await c.send({ $type: 'update', sessionId, messageId: one.userId, text: 'one, edited' });
    expect(await c.next('update', { after, match: (m) => m.messageId === one.userId })).toMatchObject({ text: 'one, edited', role: 'User' });
    after = c.mark();
    await c.send({ $type: 'deleteMessage', sessionId, messageId: one.messageId });
    expect(await c.next('update', { after, match: (m) => m.messageId === one.messageId })).toMatchObject({ text: null });
    expect(s.chats().find((x) => x.id === chatId)!.messages.map((m) => m.text)).toEqual(['one, edited']);
  });
});

describe('voxta-sim app triggers', () => {
  it('a queued trigger (triggerId) after a reply holds the foreground queue until appTriggerComplete; a duplicate is a no-op', async () => {
    const s = await setup({ appTriggers: (r) => (r.turn === 1 ? [{ name: 'Emote', arguments: ['wave', 2, true], queued: true }] : []) });
    const c = await client();
    const { sessionId } = idsOf(await startChat(c, ARIA_ID));
    const first = await say(c, sessionId, 'hello');
    const trigger = await c.next('appTrigger');
    expect(trigger).toMatchObject({ sessionId, messageId: first.messageId, name: 'Emote', arguments: ['wave', 2, true], senderId: ARIA_ID });
    expect(typeof trigger.triggerId).toBe('string');
    await complete(c, sessionId, first.messageId);
    // The playback is done, but the trigger still holds the queue: the next message waits.
    const after = c.mark();
    await c.send({ $type: 'send', sessionId, text: 'still there?' });
    await new Promise((r) => setTimeout(r, 60));
    expect(c.all('update', after)).toHaveLength(0);
    expect(s.sessions()[0]).toMatchObject({ pendingTriggers: [trigger.triggerId], queued: 1 });
    await c.send({ $type: 'appTriggerComplete', sessionId, triggerId: trigger.triggerId });
    await readReply(c, after);
    await c.invoke({ $type: 'appTriggerComplete', sessionId, triggerId: trigger.triggerId });
    expect(s.appTriggers).toEqual([expect.objectContaining({ name: 'Emote', triggerId: trigger.triggerId, completes: 2 })]);
  });

  it('a fire-and-forget trigger (no triggerId) holds nothing', async () => {
    const s = await setup();
    const c = await client();
    const { sessionId } = idsOf(await startChat(c, ARIA_ID));
    expect(s.emitAppTrigger(sessionId, { name: 'Blink' })).toBeUndefined();
    const trigger = await c.next('appTrigger');
    expect(trigger).toEqual({ $type: 'appTrigger', sessionId, name: 'Blink', arguments: [], senderId: ARIA_ID });
    await say(c, sessionId, 'hi');
  });
});

describe('voxta-sim character content flags and API version', () => {
  it('the explicit character is marked in charactersListLoaded and GET /api/characters', async () => {
    const s = await setup({ apiVersion: '2025-11' });
    const c = await client();
    expect((c.messages.find((m) => m.$type === 'welcome') as Msg).apiVersion).toBe('2025-11');
    await c.send({ $type: 'loadCharactersList' });
    const hub = (await c.next('charactersListLoaded')).characters as Msg[];
    const rest = ((await (await fetch(`${s.url}/api/characters`)).json()) as { characters: Msg[] }).characters;
    for (const list of [hub, rest]) {
      expect(list.filter((x) => x.explicitContent === true).map((x) => x.id)).toEqual([VEX_ID]);
      expect(list.filter((x) => x.explicitContent === false)).toHaveLength(3);
    }
  });
});
