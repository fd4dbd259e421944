/** The simulator's characters and the default reply generator. */
import type { CharacterListItem } from './messages.js';

export interface SimCharacter {
  /** UUID. */
  id: string;
  name: string;
  description?: string;
  /** Default 'en-US'. */
  culture?: string;
  explicitContent?: boolean;
  /** First message of a new chat when the `greeting` option is on. */
  greeting?: string;
  /** Relative URL; default `/api/characters/<id>/thumbnail` (served as a generated PNG). */
  thumbnailUrl?: string;
  /** Thumbnail colour. */
  color?: [number, number, number];
}

export const ARIA_ID = '6227dc38-f656-413f-bba8-773380bad9d9';
export const HOLT_ID = '3b1f5a3e-8c1d-4f0a-9e57-2d6c1b7e4a10';
export const MIRA_ID = 'a4e0c9d2-51b7-4c3e-8f26-9b0d7e6a1c35';

export const DEFAULT_CHARACTERS: readonly SimCharacter[] = [
  {
    id: ARIA_ID,
    name: 'Aria',
    description: 'A friendly, upbeat assistant who keeps answers short.',
    greeting: 'Hi, I am Aria. What shall we talk about?',
    color: [94, 129, 244],
  },
  {
    id: HOLT_ID,
    name: 'Captain Holt',
    description: 'A stern but fair starship captain who speaks precisely.',
    greeting: 'Captain Holt speaking. State your business.',
    color: [200, 80, 70],
  },
  {
    id: MIRA_ID,
    name: 'Mira',
    description: 'A curious botanist who loves questions about plants.',
    greeting: 'Hello there! Mira here, fresh from the greenhouse.',
    color: [80, 170, 110],
  },
];

export interface ReplyContext {
  sessionId: string;
  chatId: string;
  characterName: string;
  /** 1 for the first reply of this session, then 2, 3… */
  turn: number;
}

/** Deterministic, readable default: echo what was heard, then a second sentence. */
export function defaultReply(userText: string, ctx: ReplyContext): string[] {
  const heard = userText.trim();
  if (!heard) return [`${ctx.characterName} here.`, `This is reply number ${ctx.turn}.`];
  return [`You said: ${heard}.`.replace(/([.!?])\.$/, '$1'), `This is ${ctx.characterName}, reply number ${ctx.turn}.`];
}

/** Splits free text into sentence chunks, as Voxta's reply streaming does. */
export function splitSentences(text: string): string[] {
  const parts = text.match(/[^.!?]+[.!?]+["')\]]*|[^.!?]+$/g) ?? [];
  const chunks = parts.map((p) => p.trim()).filter((p) => p.length > 0);
  return chunks.length > 0 ? chunks : [text];
}

export function thumbnailUrlOf(c: SimCharacter): string {
  return c.thumbnailUrl ?? `/api/characters/${c.id}/thumbnail`;
}

/** A character as `charactersListLoaded` and `GET /api/characters` list it. */
export function characterListItem(c: SimCharacter): CharacterListItem {
  return {
    id: c.id,
    name: c.name,
    version: '1.0',
    creatorNotes: (c.description ?? '').slice(0, 80),
    culture: c.culture ?? 'en-US',
    explicitContent: c.explicitContent ?? false,
    thumbnailUrl: thumbnailUrlOf(c),
    favorite: false,
    hidden: false,
    scenarioOnly: false,
    appControlled: false,
    tags: [],
  };
}
