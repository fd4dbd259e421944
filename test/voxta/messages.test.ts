import { describe, expect, it } from 'vitest';
import { clientMessage, parseServerMessage, validateServerMessage, type ClientMessage } from '../../src/voxta/messages.js';

describe('client messages', () => {
  const session = 'sess-1';
  const all: ClientMessage[] = [
    clientMessage.authenticate({ client: 'c', clientVersion: '1', scope: ['role:app'], capabilities: { audioInput: 'WebSocketStream', audioOutput: 'Url', acceptedAudioContentTypes: ['audio/wav'] } }),
    clientMessage.registerApp('1', 'label'),
    clientMessage.loadCharactersList(),
    clientMessage.loadChatsList('char'),
    clientMessage.startChat({ characterId: 'c', contexts: [{ text: 'x' }], contextKey: 'discord' }),
    clientMessage.resumeChat({ chatId: 'chat' }),
    clientMessage.stopChat(session),
    clientMessage.send(session, 'hello', { doUserActionInference: false }),
    clientMessage.characterSpeechRequest(session, 'hi'),
    clientMessage.interrupt(session),
    clientMessage.pauseChat(session, true),
    clientMessage.speechPlaybackStart(session, 'm', { startIndex: 0, endIndex: 4, isNarration: false }, 1.25),
    clientMessage.speechPlaybackComplete(session, 'm'),
    clientMessage.updateContext(session, [{ text: 'ctx' }], 'discord'),
    clientMessage.typingStart(session),
    clientMessage.typingEnd(session),
    clientMessage.update(session, 'm', 'edited'),
    clientMessage.deleteMessage(session, 'm'),
    clientMessage.startChat({ characterIds: ['a', 'b'], scenarioId: 'scn', roles: { captain: 'a' }, disableServices: ['SpeechToText'] }),
    clientMessage.startChat({ chatId: 'chat' }),
    clientMessage.loadScenariosList(),
    clientMessage.loadChatsList('char', 'scn'),
    clientMessage.retry(session),
    clientMessage.revert(session),
    clientMessage.revert(session, 'm'),
    clientMessage.addChatParticipant(session, 'c', 'captain'),
    clientMessage.removeChatParticipant(session, 'c'),
    clientMessage.appTriggerComplete(session, 't'),
    clientMessage.updateContext(session, [{ text: 'ctx', roleFilter: 'captain' }], 'discord', { setFlags: ['x'], enableRoles: { captain: false } }),
  ];

  it('writes $type as the first key of every payload, also after JSON serialisation', () => {
    for (const m of all) {
      expect(Object.keys(m)[0]).toBe('$type');
      expect(JSON.stringify(m).startsWith('{"$type":')).toBe(true);
    }
  });

  it('leaves out undefined optionals and uses string enums', () => {
    const start = clientMessage.startChat({ characterId: 'c' });
    expect(start).toEqual({ $type: 'startChat', characterId: 'c' });
    const send = clientMessage.send(session, 'hi');
    expect(send).toEqual({ $type: 'send', sessionId: session, text: 'hi', doReply: true, doCharacterActionInference: true });
    const auth = all[0] as { capabilities: { audioInput: unknown } };
    expect(auth.capabilities.audioInput).toBe('WebSocketStream');
  });

  it('reports the playback duration in seconds', () => {
    const m = clientMessage.speechPlaybackStart(session, 'm', { startIndex: 3, endIndex: 9, isNarration: true }, 2.5);
    expect(m).toMatchObject({ startIndex: 3, endIndex: 9, duration: 2.5, isNarration: true });
  });
});

describe('parseServerMessage', () => {
  it('accepts a well-formed reply chunk and fills defaults', () => {
    const m = parseServerMessage({ $type: 'replyChunk', sessionId: 's', messageId: 'm', text: 'Hi.', audioUrl: null });
    expect(m).toEqual({ $type: 'replyChunk', sessionId: 's', messageId: 'm', text: 'Hi.', audioUrl: '', startIndex: 0, endIndex: 0, isNarration: false });
  });

  it('keeps unknown extra fields (servers add fields between versions)', () => {
    const m = parseServerMessage({ $type: 'welcome', apiVersion: '2025-11', voxtaServerVersion: 'x', voxtaServerCommit: 'abc' });
    expect(m).toMatchObject({ $type: 'welcome', voxtaServerCommit: 'abc' });
  });

  it('drops unknown $type values', () => {
    expect(parseServerMessage({ $type: 'futureThing', x: 1 })).toBeUndefined();
    expect(validateServerMessage({ $type: 'futureThing' })).toMatch(/unknown \$type/);
  });

  it('drops known-but-ignored types quietly', () => {
    expect(parseServerMessage({ $type: 'moduleRuntimeInstances', instances: [] })).toBeUndefined();
  });

  it('drops malformed payloads: wrong types of required fields', () => {
    expect(parseServerMessage({ $type: 'replyChunk', sessionId: 's', text: 'no message id' })).toBeUndefined();
    expect(parseServerMessage({ $type: 'replyChunk', sessionId: 's', messageId: 7, text: 'x' })).toBeUndefined();
    expect(parseServerMessage({ $type: 'recordingRequest', sessionId: 's', enabled: 'yes' })).toBeUndefined();
    expect(parseServerMessage({ $type: 'chatStarted', sessionId: 's' })).toBeUndefined();
    expect(parseServerMessage({ $type: 'replyChunk', sessionId: 's', messageId: 'm', text: 'x', startIndex: 'zero' })).toBeUndefined();
  });

  it('never throws, whatever it is given', () => {
    const hostile = Object.defineProperty({ $type: 'error' }, 'message', {
      get() {
        throw new Error('boom');
      },
      enumerable: true,
    });
    const inputs: unknown[] = [undefined, null, 42, 'not an object', [], [1, 2], { $type: 42 }, {}, hostile, { $type: 'chatStarted', sessionId: 's', chatId: 'c', characters: 'nope' }];
    for (const raw of inputs) expect(() => parseServerMessage(raw)).not.toThrow();
    for (const raw of inputs) expect(parseServerMessage(raw)).toBeUndefined();
  });

  it('normalises chatStarted: filters bad characters and history items', () => {
    const m = parseServerMessage({
      $type: 'chatStarted',
      sessionId: 's',
      chatId: 'c',
      characters: [{ id: 'a', name: 'Aria' }, { id: 5 }],
      services: { textToSpeech: null, speechToText: { serviceName: 'x' } },
      messages: [{ messageId: '1', role: 'User', text: 'hi' }, { role: 'User' }],
    });
    expect(m?.$type).toBe('chatStarted');
    if (m?.$type !== 'chatStarted') return;
    expect(m.characters).toEqual([{ id: 'a', name: 'Aria' }]);
    expect(m.messages).toHaveLength(1);
  });

  it('accepts speechRecognitionEnd with a null text', () => {
    expect(parseServerMessage({ $type: 'speechRecognitionEnd', text: null, reason: 'Empty' })).toEqual({ $type: 'speechRecognitionEnd', text: null, reason: 'Empty' });
    expect(parseServerMessage({ $type: 'speechRecognitionEnd', reason: 'Empty' })).toMatchObject({ text: null });
  });
});

describe('messages of group chats, scenarios, reply controls and app triggers', () => {
  it('startChat: one character as characterId, several as characterIds, nothing spread before $type', () => {
    expect(clientMessage.startChat({ characterIds: ['a'] })).toEqual({ $type: 'startChat', characterId: 'a' });
    expect(JSON.stringify(clientMessage.startChat({ characterIds: ['a', 'b'], scenarioId: 's' }))).toBe('{"$type":"startChat","characterIds":["a","b"],"scenarioId":"s"}');
    expect(clientMessage.revert('s')).toEqual({ $type: 'revert', sessionId: 's' });
  });

  it('an update with text null is a deletion (its own client-side type), not a dropped message; the wire name messageDeleted is refused', () => {
    const d = parseServerMessage({ $type: 'update', sessionId: 's', messageId: 'm', senderId: 'c', text: null, role: 'Assistant', index: 0 });
    expect(d).toEqual({ $type: 'messageDeleted', sessionId: 's', messageId: 'm', senderId: 'c', role: 'Assistant' });
    expect(parseServerMessage({ $type: 'update', sessionId: 's', messageId: 'm', text: 'kept' })).toMatchObject({ $type: 'update', text: 'kept' });
    expect(parseServerMessage({ $type: 'messageDeleted', sessionId: 's', messageId: 'm' })).toBeUndefined();
  });

  it('parses scenariosListLoaded, chatParticipantsUpdated, appTrigger and chatStarted.narrator/scenario', () => {
    const list = parseServerMessage({ $type: 'scenariosListLoaded', scenarios: [{ id: 's', name: 'S', roles: [{ name: 'r', defaultCharacterId: 'c' }, { bad: 1 }] }, { id: 1 }] });
    expect(list).toEqual({ $type: 'scenariosListLoaded', scenarios: [{ id: 's', name: 'S', roles: [{ name: 'r', defaultCharacterId: 'c' }] }] });
    expect(parseServerMessage({ $type: 'chatParticipantsUpdated', sessionId: 's', characters: [{ id: 'a', name: 'A', scenarioRole: 'r' }, { id: 2 }] })).toEqual({
      $type: 'chatParticipantsUpdated',
      sessionId: 's',
      characters: [{ id: 'a', name: 'A', scenarioRole: 'r' }],
    });
    expect(parseServerMessage({ $type: 'appTrigger', sessionId: 's', name: 'Emote', triggerId: 't', senderId: 'c' })).toMatchObject({ arguments: [], triggerId: 't' });
    expect(parseServerMessage({ $type: 'appTrigger', sessionId: 's' })).toBeUndefined();
    const started = parseServerMessage({ $type: 'chatStarted', sessionId: 's', chatId: 'c', narrator: { id: 'n', name: 'N' }, scenario: { id: 'x', name: 'X' } });
    expect(started).toMatchObject({ narrator: { id: 'n', name: 'N' }, scenario: { id: 'x', name: 'X', roles: [] } });
    const noScenario = parseServerMessage({ $type: 'chatStarted', sessionId: 's', chatId: 'c', narrator: { id: 'n' }, scenario: null });
    expect(noScenario).not.toHaveProperty('narrator');
    expect(noScenario).not.toHaveProperty('scenario');
  });
});
