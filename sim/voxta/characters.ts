/** The simulator's characters, narrators, scenarios and the default reply generator. */
import type { CharacterListItem, ParticipantInfo, ScenarioInfo } from './messages.js';

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
/** The explicit default character (explicitContent: true), fourth so Aria/Holt/Mira stay first. */
export const VEX_ID = 'e7c1d3b5-2a4f-4e6d-9c8b-1f0a3e5d7b92';
/** The profile's default narrator: every chat has one (Voxta's ChatStartedMessageBuilder always sets `narrator`). */
export const NARRATOR_ID = '0b9a8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d';
/** The narrator of the default scenario. */
export const CHRONICLER_ID = 'c4a3b2d1-9e8f-4d7c-a6b5-0f1e2d3c4b5a';
/** The default scenario: Captain Holt and Mira on the bridge, told by the Chronicler. */
export const BRIDGE_SCENARIO_ID = '5ce7a410-3b2d-4c1e-9f8a-7d6c5b4a3e21';

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
  {
    id: VEX_ID,
    name: 'Vex',
    description: 'A flirtatious rogue; marked explicit so clients can test content filters.',
    greeting: 'Well, well. Look who wandered in.',
    explicitContent: true,
    color: [150, 60, 160],
  },
];

/** Narrators: characters that tell the story (replies with `isNarration: true`), not listed with the characters. */
export const DEFAULT_NARRATORS: readonly SimCharacter[] = [
  { id: NARRATOR_ID, name: 'Narrator', description: 'The default narrator of every chat.', color: [120, 120, 120] },
  { id: CHRONICLER_ID, name: 'Chronicler', description: 'Narrates the bridge scenario.', color: [200, 170, 60] },
];

/** A scenario role: a named slot in the scenario, filled by a character. */
export interface SimScenarioRole {
  name: string;
  description?: string;
  /** The character that fills the role unless `startChat.roles` says otherwise. */
  defaultCharacterId?: string;
}

export interface SimScenario {
  id: string;
  name: string;
  roles: SimScenarioRole[];
  /** A narrator from `narrators` (default: the profile narrator). */
  narratorId?: string;
  chatStyle?: string;
  chatFlow?: string;
  /** Voxta hides a scenario from other clients' `loadScenariosList` when set. */
  client?: string | null;
  explicitContent?: boolean;
}

export const DEFAULT_SCENARIOS: readonly SimScenario[] = [
  {
    id: BRIDGE_SCENARIO_ID,
    name: 'The Bridge',
    roles: [
      { name: 'captain', description: 'Commands the ship', defaultCharacterId: HOLT_ID },
      { name: 'botanist', description: 'Keeps the greenhouse deck alive', defaultCharacterId: MIRA_ID },
    ],
    narratorId: CHRONICLER_ID,
    chatStyle: 'Roleplay',
    chatFlow: 'Chat',
  },
];

export interface ReplyContext {
  sessionId: string;
  chatId: string;
  /** Name of the character the simulator picked to answer (see README: who answers). */
  characterName: string;
  /** Id of that character. */
  characterId: string;
  /** 1 for the first reply of this session, then 2, 3… */
  turn: number;
  /** The chat's cast now (after added/removed participants). */
  characters: Array<{ id: string; name: string }>;
  narrator: { id: string; name: string };
  scenarioId: string | null;
  /** What asked for this reply. */
  reason: 'user' | 'trigger' | 'continue' | 'retry';
}

/**
 * One reply of a scripted turn: who says it (default: the picked character), its sentence chunks
 * and whether it is narration (then it comes from the chat's narrator unless `senderId` is given).
 */
export interface SimReply {
  senderId?: string;
  text: string[];
  isNarration?: boolean;
}

/**
 * What a reply function returns: sentence chunks for one reply from the picked character, or
 * several replies in a row (the second starts after the first's speechPlaybackComplete, as
 * Voxta's continuation does).
 */
export type ReplyScript = string[] | SimReply[];

/** Deterministic, readable default: echo what was heard, then a second sentence. */
export function defaultReply(userText: string, ctx: Pick<ReplyContext, 'characterName' | 'turn'> & Partial<ReplyContext>): string[] {
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

/** A character as the chat's cast lists it (Voxta's ChatParticipantInfo). */
export function participantInfo(c: SimCharacter, scenarioRole?: string | null): ParticipantInfo {
  const p: ParticipantInfo = { id: c.id, name: c.name, thumbnailUrl: thumbnailUrlOf(c) };
  if (scenarioRole) p.scenarioRole = scenarioRole;
  return p;
}

/** A scenario as `scenariosListLoaded`, `GET /api/scenarios` and `chatStarted.scenario` carry it (Voxta's ScenarioInfo). */
export function scenarioInfo(s: SimScenario, opts: { withDefaults?: boolean } = {}): ScenarioInfo {
  return {
    id: s.id,
    name: s.name,
    chatFlow: s.chatFlow ?? 'Chat',
    chatStyle: s.chatStyle ?? 'Roleplay',
    client: s.client ?? null,
    roles: s.roles.map((r) => {
      const role: ScenarioInfo['roles'][number] = { name: r.name, description: r.description ?? null };
      // chatStarted.scenario.roles carry name and description only (ChatStartedMessageBuilderService).
      if (opts.withDefaults !== false) role.defaultCharacterId = r.defaultCharacterId ?? null;
      return role;
    }),
    thumbnailUrl: null,
    packageId: null,
    packageName: null,
    packageVersion: null,
  };
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
