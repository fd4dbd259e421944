/**
 * `ChatInfo`: what a session tells its users about the chat it holds, adapted from `chatStarted`.
 */
import type { CharacterRef, ChatServices, HistoryMessage, ServerMessage } from './messages.js';

export interface ChatInfo {
  sessionId: string;
  chatId: string;
  title?: string;
  characters: CharacterRef[];
  services: { hasTts: boolean; hasStt: boolean; raw: ChatServices };
  /** Stored history at start/resume time. */
  messages: HistoryMessage[];
}

export function chatInfoFromStarted(m: ServerMessage & { $type: 'chatStarted' }): ChatInfo {
  const services = m.services;
  return {
    sessionId: m.sessionId,
    chatId: m.chatId,
    title: m.title,
    characters: m.characters,
    services: { hasTts: isOn(services.textToSpeech), hasStt: isOn(services.speechToText), raw: services },
    messages: m.messages,
  };
}

/** A service is on when `chatStarted` describes it (an object), off when it is null or missing. */
function isOn(s: unknown): boolean {
  return typeof s === 'object' && s !== null;
}
