/**
 * `ChatInfo`: what a session tells its users about the chat it holds, adapted from `chatStarted`
 * and kept current by `chatParticipantsUpdated` (the cast changes when characters join or leave).
 */
import type { CharacterRef, ChatServices, HistoryMessage, ScenarioInfo, ServerMessage } from './messages.js';

/** A member of the chat's cast: a character, or the narrator. */
export interface CastMember {
  id: string;
  name: string;
  /** Relative to the Voxta base URL, as Voxta sends it (fetch with `VoxtaRest.fetchBytes`). */
  thumbnailUrl?: string;
  /** The scenario role this character fills, in a scenario chat. */
  scenarioRole?: string;
  /**
   * From the character lists (a real chatStarted does not carry it): known when this session
   * loaded the characters (`loadCharacters()`) before, undefined otherwise.
   */
  explicitContent?: boolean;
}

export interface ChatInfo {
  sessionId: string;
  chatId: string;
  title?: string;
  /** The characters of the chat, the main one first. Replaced (never mutated) when the cast changes. */
  characters: CastMember[];
  /** Who tells the story: replies with `isNarration` come from here (Voxta always sets one). */
  narrator?: CastMember;
  /** The scenario of a scenario chat (its roles carry name and description). */
  scenario?: ScenarioInfo;
  services: { hasTts: boolean; hasStt: boolean; raw: ChatServices };
  /** Stored history at start/resume time. */
  messages: HistoryMessage[];
}

/** What the session knows of characters from lists (for explicitContent). */
export type CharacterDirectory = ReadonlyMap<string, CharacterRef>;

export function chatInfoFromStarted(m: ServerMessage & { $type: 'chatStarted' }, directory: CharacterDirectory = new Map()): ChatInfo {
  const services = m.services;
  const info: ChatInfo = {
    sessionId: m.sessionId,
    chatId: m.chatId,
    title: m.title,
    characters: castOf(m.characters, directory),
    services: { hasTts: isOn(services.textToSpeech), hasStt: isOn(services.speechToText), raw: services },
    messages: m.messages,
  };
  if (m.narrator) info.narrator = member(m.narrator, directory);
  if (m.scenario) info.scenario = m.scenario;
  return info;
}

/** The same chat with a new cast (from `chatParticipantsUpdated`). */
export function withCast(info: ChatInfo, characters: CharacterRef[], directory: CharacterDirectory = new Map()): ChatInfo {
  return { ...info, characters: castOf(characters, directory) };
}

/** The cast member who sent a message (a character or the narrator), if known. */
export function senderOf(info: ChatInfo, senderId: string | undefined): CastMember | undefined {
  if (!senderId) return undefined;
  return info.characters.find((c) => c.id === senderId) ?? (info.narrator?.id === senderId ? info.narrator : undefined);
}

function castOf(characters: CharacterRef[], directory: CharacterDirectory): CastMember[] {
  return characters.map((c) => member(c, directory));
}

function member(c: CharacterRef, directory: CharacterDirectory): CastMember {
  const m: CastMember = { id: c.id, name: c.name };
  if (typeof c.thumbnailUrl === 'string') m.thumbnailUrl = c.thumbnailUrl;
  if (typeof c.scenarioRole === 'string' && c.scenarioRole) m.scenarioRole = c.scenarioRole;
  const explicit = typeof c.explicitContent === 'boolean' ? c.explicitContent : directory.get(c.id)?.explicitContent;
  if (typeof explicit === 'boolean') m.explicitContent = explicit;
  return m;
}

/** A service is on when `chatStarted` describes it (an object), off when it is null or missing. */
function isOn(s: unknown): boolean {
  return typeof s === 'object' && s !== null;
}
