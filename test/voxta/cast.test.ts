/**
 * VoxtaChatSession with group chats, scenarios, participants, reply controls and app triggers,
 * against the simulator (real SignalR client, real sockets).
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
  type VoxtaSim,
  type VoxtaSimOptions,
} from '../../sim/voxta/index.js';
import { senderOf, type ChatInfo, type VoxtaChatSession } from '../../src/voxta/chat-session.js';
import { VoxtaEndpoint } from '../../src/voxta/endpoint.js';
import { VoxtaNotFoundError } from '../../src/voxta/errors.js';
import type { AppTriggerMessage, MessageDeletedMessage, ReplyEndMessage, ServerUpdateMessage } from '../../src/voxta/messages.js';
import { VoxtaRest } from '../../src/voxta/rest.js';
import { memoryLogger, newSession, newSim, waitEvent, waitFor } from './helpers.js';

let sims: VoxtaSim[] = [];
let sessions: VoxtaChatSession[] = [];
afterEach(async () => {
  for (const s of sessions) await s.close({ stopChat: false }).catch(() => undefined);
  for (const s of sims) await s.close();
  sims = [];
  sessions = [];
});

async function setup(simOpts: VoxtaSimOptions = {}, sessionOpts: Parameters<typeof newSession>[1] = {}) {
  // Text chats: no TTS, so the session acknowledges playback by itself (auto-acknowledge).
  const sim = await newSim({ tts: { enabled: false }, ...simOpts });
  sims.push(sim);
  const session = newSession(sim, sessionOpts);
  sessions.push(session);
  return { sim, session };
}

const sentOf = (sim: VoxtaSim, type: string) => sim.received.filter((r) => r.payload.$type === type).map((r) => r.payload);

/** Sends and resolves with the replyEnd of every reply until `count` replies ended. */
async function replies(session: VoxtaChatSession, text: string, count = 1): Promise<ReplyEndMessage[]> {
  const ends: ReplyEndMessage[] = [];
  const done = new Promise<void>((resolve) => {
    const on = (e: ReplyEndMessage): void => {
      ends.push(e);
      if (ends.length === count) {
        session.off('replyEnd', on);
        resolve();
      }
    };
    session.on('replyEnd', on);
  });
  session.send(text);
  await done;
  return ends;
}

describe('VoxtaChatSession: group chats and scenarios', () => {
  it('startChat with characterIds sends characterIds ($type first) and exposes the cast and narrator; a single characterId is still sent as characterId', async () => {
    const { sim, session } = await setup();
    const chat = await session.startChat({ characterIds: [HOLT_ID, MIRA_ID] });
    const payload = sentOf(sim, 'startChat')[0]!;
    expect(Object.keys(payload)[0]).toBe('$type');
    expect(payload).toMatchObject({ characterIds: [HOLT_ID, MIRA_ID] });
    expect(payload).not.toHaveProperty('characterId');
    expect(chat.characters.map((c) => [c.id, c.name])).toEqual([
      [HOLT_ID, 'Captain Holt'],
      [MIRA_ID, 'Mira'],
    ]);
    expect(chat.characters.every((c) => /^\/api\/characters\/.+\/thumbnail$/.test(c.thumbnailUrl ?? ''))).toBe(true);
    expect(chat.narrator).toMatchObject({ id: NARRATOR_ID, name: 'Narrator' });
    expect(chat.scenario).toBeUndefined();
    await session.stopChat();
    await session.startChat({ characterId: ARIA_ID });
    expect(sentOf(sim, 'startChat')[1]).toEqual({ $type: 'startChat', characterId: ARIA_ID });
  });

  it('each reply names its sender: two characters in one turn, then the narrator (senderOf resolves them)', async () => {
    const { session } = await setup({
      reply: (_t, ctx) => [
        { senderId: HOLT_ID, text: ['Report.'] },
        { senderId: MIRA_ID, text: ['The ferns are fine.'] },
        { isNarration: true, text: ['The ship hums.'] },
      ],
    });
    const chat = await session.startChat({ characterIds: [HOLT_ID, MIRA_ID] });
    const generating: Array<[string | undefined, boolean]> = [];
    session.on('replyGenerating', (g) => generating.push([senderOf(session.chat!, g.senderId)?.name, g.isNarration]));
    const ends = await replies(session, 'status?', 3);
    expect(ends.map((e) => e.senderId)).toEqual([HOLT_ID, MIRA_ID, NARRATOR_ID]);
    expect(generating).toEqual([
      ['Captain Holt', false],
      ['Mira', false],
      ['Narrator', true],
    ]);
    expect(senderOf(chat, 'nobody')).toBeUndefined();
  });

  it('startChat {scenarioId} alone asks for the scenario’s default role characters (Voxta needs one) and exposes scenario, roles and narrator', async () => {
    const { sim, session } = await setup();
    const chat = await session.startChat({ scenarioId: BRIDGE_SCENARIO_ID });
    expect(sentOf(sim, 'loadScenariosList')).toHaveLength(1);
    expect(sentOf(sim, 'startChat')[0]).toEqual({ $type: 'startChat', characterIds: [HOLT_ID, MIRA_ID], scenarioId: BRIDGE_SCENARIO_ID });
    expect(chat.scenario).toMatchObject({ id: BRIDGE_SCENARIO_ID, name: 'The Bridge', roles: [{ name: 'captain' }, { name: 'botanist' }] });
    expect(chat.characters.map((c) => [c.name, c.scenarioRole])).toEqual([
      ['Captain Holt', 'captain'],
      ['Mira', 'botanist'],
    ]);
    expect(chat.narrator).toMatchObject({ id: CHRONICLER_ID, name: 'Chronicler' });
    // Chat lists filter by scenario: the scenario chat is listed only with its scenarioId.
    expect(await session.loadChats(HOLT_ID)).toEqual([]);
    expect((await session.loadChats(HOLT_ID, BRIDGE_SCENARIO_ID)).map((c) => c.id)).toEqual([chat.chatId]);
  });

  it('roles override the defaults; an unknown scenario is a VoxtaNotFoundError before anything is started', async () => {
    const { sim, session } = await setup();
    const chat = await session.startChat({ scenarioId: BRIDGE_SCENARIO_ID, roles: { botanist: ARIA_ID } });
    expect(chat.characters.map((c) => [c.id, c.scenarioRole])).toEqual([
      [HOLT_ID, 'captain'],
      [ARIA_ID, 'botanist'],
    ]);
    expect(sentOf(sim, 'startChat')[0]).toMatchObject({ roles: { botanist: ARIA_ID } });
    await session.stopChat();
    await expect(session.startChat({ scenarioId: '00000000-0000-4000-8000-0000000000aa' })).rejects.toBeInstanceOf(VoxtaNotFoundError);
    expect(sentOf(sim, 'startChat')).toHaveLength(1);
  });

  it('loadScenarios (hub) and VoxtaRest.listScenarios agree; characters carry explicitContent (hub, REST, and the cast once loaded)', async () => {
    const { sim, session } = await setup();
    const hub = await session.loadScenarios();
    const rest = new VoxtaRest(new VoxtaEndpoint({ url: sim.url }));
    const viaRest = await rest.listScenarios();
    expect(hub.map((s) => s.id)).toEqual([BRIDGE_SCENARIO_ID]);
    expect(viaRest).toEqual([expect.objectContaining({ id: BRIDGE_SCENARIO_ID, name: 'The Bridge', defaultRoles: { captain: HOLT_ID, botanist: MIRA_ID } })]);
    const restChars = await rest.listCharacters();
    expect(restChars.filter((c) => c.explicitContent).map((c) => c.id)).toEqual([VEX_ID]);
    const hubChars = await session.loadCharacters();
    expect(hubChars.filter((c) => c.explicitContent === true).map((c) => c.id)).toEqual([VEX_ID]);
    const chat = await session.startChat({ characterIds: [VEX_ID, ARIA_ID] });
    expect(chat.characters.map((c) => [c.name, c.explicitContent])).toEqual([
      ['Vex', true],
      ['Aria', false],
    ]);
  });
});

describe('VoxtaChatSession: participants', () => {
  it('addParticipant / removeParticipant resolve with the new cast, emit participantsUpdated, and later replies come from the new cast', async () => {
    const { session } = await setup({ reply: (_t, ctx) => [`${ctx.characterName} here.`] });
    const first = await session.startChat({ characterId: ARIA_ID });
    const updates: ChatInfo[] = [];
    session.on('participantsUpdated', (c) => updates.push(c));
    const withMira = await session.addParticipant(MIRA_ID);
    expect(withMira.characters.map((c) => c.id)).toEqual([ARIA_ID, MIRA_ID]);
    expect(session.chat).toBe(withMira);
    expect(first.characters.map((c) => c.id)).toEqual([ARIA_ID]); // the old ChatInfo is not mutated
    const [toMira] = await replies(session, 'Mira, hello');
    expect(toMira!.senderId).toBe(MIRA_ID);
    const withoutAria = await session.removeParticipant(ARIA_ID);
    expect(withoutAria.characters.map((c) => c.id)).toEqual([MIRA_ID]);
    expect(updates.map((u) => u.characters.length)).toEqual([2, 1]);
    const [next] = await replies(session, 'Aria?');
    expect(next!.senderId).toBe(MIRA_ID);
    // Not in the chat: resolves at once, nothing sent (Voxta would not answer).
    expect((await session.removeParticipant(HOLT_ID)).characters.map((c) => c.id)).toEqual([MIRA_ID]);
    await expect(session.addParticipant('00000000-0000-4000-8000-00000000dead')).rejects.toThrow(/was not found/);
  });
});

describe('VoxtaChatSession: reply controls', () => {
  it('retry(): the old reply is reported deleted, a new reply with a new messageId follows', async () => {
    const { sim, session } = await setup();
    await session.startChat({ characterId: ARIA_ID });
    const [old] = await replies(session, 'hello');
    await sim.waitFor(() => sim.heldSessions().length === 0, 3000, 'the hold to be released');
    const deleted = waitEvent<[MessageDeletedMessage]>(session, 'messageDeleted');
    const next = waitFor<ReplyEndMessage>(session, 'replyEnd', () => true);
    expect(await session.retry()).toBe(true);
    const [d] = await deleted;
    expect(d).toMatchObject({ $type: 'messageDeleted', messageId: old!.messageId, role: 'Assistant', senderId: ARIA_ID });
    const fresh = await next;
    expect(fresh.messageId).not.toBe(old!.messageId);
    expect(session.stats.droppedMessages).toBe(0);
  });

  it('revert(): the last exchange is deleted (user message and reply); revert(userMessageId) keeps the message and answers it again', async () => {
    const { session } = await setup();
    await session.startChat({ characterId: ARIA_ID });
    const userIds: string[] = [];
    session.on('update', (u: ServerUpdateMessage) => {
      if (u.role === 'User') userIds.push(u.messageId);
    });
    const [r1] = await replies(session, 'one');
    const [r2] = await replies(session, 'two');
    const deletions: string[] = [];
    session.on('messageDeleted', (d) => deletions.push(d.messageId));
    await session.revert();
    await waitFor(session, 'messageDeleted', (d: MessageDeletedMessage) => d.messageId === r2!.messageId);
    expect(deletions).toEqual([userIds[1], r2!.messageId]);

    const again = waitFor<ReplyEndMessage>(session, 'replyEnd', () => true);
    await session.revert(userIds[0]);
    await waitFor(session, 'messageDeleted', (d: MessageDeletedMessage) => d.messageId === r1!.messageId);
    expect((await again).messageId).not.toBe(r1!.messageId);
  });

  it('deleteMessage(): the deletion echo (update with text null) is parsed, not dropped, and is not an update', async () => {
    const { session } = await setup();
    await session.startChat({ characterId: ARIA_ID });
    const [r] = await replies(session, 'hi');
    const updates: ServerUpdateMessage[] = [];
    session.on('update', (u) => updates.push(u));
    const deleted = waitEvent<[MessageDeletedMessage]>(session, 'messageDeleted');
    await session.deleteMessage(r!.messageId);
    expect((await deleted)[0].messageId).toBe(r!.messageId);
    expect(updates).toEqual([]);
    expect(session.stats.droppedMessages).toBe(0);
  });
});

describe('VoxtaChatSession: app triggers', () => {
  it('answers appTriggerComplete once per triggerId, after its listeners, even when one throws; the chat goes on', async () => {
    const { sim, session } = await setup({ appTriggers: () => [{ name: 'Emote', arguments: ['wave'], queued: true }] });
    await session.startChat({ characterId: ARIA_ID });
    const seen: string[] = [];
    session.on('appTrigger', () => {
      throw new Error('a broken listener');
    });
    session.on('appTrigger', (t: AppTriggerMessage) => {
      // Runs, and runs before the completion is sent.
      seen.push(`${t.name}:${String(t.arguments[0])}:${sentOf(sim, 'appTriggerComplete').length}`);
    });
    await replies(session, 'wave please');
    await sim.waitFor(() => sim.appTriggers[0]?.completes === 1, 3000, 'the trigger to be completed');
    expect(seen).toEqual(['Emote:wave:0']);
    // Not stalled: the next message is answered (and its own trigger completed once).
    await replies(session, 'again');
    await sim.waitFor(() => sim.appTriggers.length === 2 && sim.appTriggers[1]!.completes === 1, 3000, 'the second trigger');
    expect(sim.appTriggers.map((t) => t.completes)).toEqual([1, 1]);
    expect(sentOf(sim, 'appTriggerComplete').map((p) => Object.keys(p)[0])).toEqual(['$type', '$type']);
    expect(session.stats.listenerErrors).toBe(2);
  });

  it('waits for async listeners before completing; a fire-and-forget trigger and a repeated triggerId get no (second) completion', async () => {
    const { sim, session } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    session.on('appTrigger', async () => gate);
    const triggerId = sim.emitAppTrigger(chat.sessionId, { name: 'Dance', queued: true })!;
    sim.emitAppTrigger(chat.sessionId, { name: 'Blink' });
    await new Promise((r) => setTimeout(r, 80));
    expect(sentOf(sim, 'appTriggerComplete')).toEqual([]);
    release();
    await sim.waitFor(() => sim.appTriggers.find((t) => t.triggerId === triggerId)?.completes === 1, 3000, 'the completion');
    // The same trigger delivered again (e.g. a re-sent frame) is not completed twice.
    const raw = sim.sent.find((m) => (m.payload as { triggerId?: string }).triggerId === triggerId)!.payload;
    const redelivered = waitFor<AppTriggerMessage>(session, 'appTrigger', (t) => t.triggerId === triggerId);
    sim.sendRaw(chat.sessionId, raw);
    await redelivered;
    await new Promise((r) => setTimeout(r, 50));
    expect(sentOf(sim, 'appTriggerComplete')).toEqual([{ $type: 'appTriggerComplete', sessionId: chat.sessionId, triggerId }]);
    expect(sim.appTriggers.find((t) => t.name === 'Blink')).toMatchObject({ triggerId: null, completes: 0 });
  });
});

describe('VoxtaChatSession: API version', () => {
  it('accepts 2025-11 and 2025-08 without a warning; warns once for an unknown version', async () => {
    for (const [apiVersion, warned] of [
      ['2025-11', false],
      ['2025-08', false],
      ['2026-04', true],
    ] as const) {
      const { log, lines } = memoryLogger();
      const { session } = await setup({ apiVersion }, { log });
      expect((await session.connect()).apiVersion).toBe(apiVersion);
      expect(lines.some((l) => l.includes('different API version'))).toBe(warned);
    }
  });
});
