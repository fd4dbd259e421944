/**
 * Characters Voxta marks explicit (`explicitContent`) and the channels they may run in.
 *
 * A chat is explicit when any character of its cast is (one explicit character in a group chat
 * makes the whole chat explicit). An explicit chat may only run where the server allows explicit
 * characters (`/config set explicit-characters age-restricted`; default: nowhere) and only in
 * channels Discord marks age-restricted: the text channel and, when voice is used, the voice
 * channel. Which characters are explicit comes from Voxta's character list (the cast Voxta sends
 * with a chat carries no such flag).
 *
 * Pure decisions plus one lookup; the guild session decides when to ask (before a start or resume,
 * again with the real cast once the chat is open, before a /join, and when a channel or the setting
 * changes) and what to do about a refusal.
 */
import { errorInfo, type Logger } from '../log.js';
import type { VoxtaCatalog } from './catalog.js';
import type { GuildSettings } from './guild-settings.js';
import type { GuildPort } from './ports.js';
import { UserFacingError } from './user-errors.js';

/** A chat may not run in these channels because of an explicit character: said plainly. */
export class AgeRestrictionError extends UserFacingError {
  constructor(message: string) {
    super(message);
    this.name = 'AgeRestrictionError';
  }
}

export interface AgeGateDeps {
  catalog: VoxtaCatalog;
  settings: GuildSettings;
  log: Logger;
}

/** "Vex", "Vex and Mira", "Vex, Mira and Holt". */
export function namesOf(names: readonly string[]): string {
  if (names.length <= 1) return names[0] ?? 'This character';
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

export class AgeGate {
  constructor(private readonly deps: AgeGateDeps) {}

  /**
   * The explicit characters among these ids (their names), from Voxta's character list. Throws
   * {@link UserFacingError} when Voxta cannot tell (fails closed: the caller refuses the chat,
   * unless its channels would allow an explicit chat anyway).
   */
  async explicitAmong(characterIds: readonly string[]): Promise<string[]> {
    if (characterIds.length === 0) return [];
    let list;
    try {
      list = await this.deps.catalog.characters.get();
    } catch (err) {
      this.deps.log.info({ err: errorInfo(err) }, 'age gate: the character list could not be loaded');
      throw new UserFacingError('I could not check with Voxta whether this character is for age-restricted channels only, so I did not open the chat. Try again in a moment.');
    }
    return characterIds.map((id) => list.find((c) => c.id === id)).filter((c) => c?.explicitContent === true).map((c) => c!.name);
  }

  /** Explicit characters would be allowed in these channels (the server allows them, and every channel is age-restricted). */
  channelsAllow(guild: GuildPort, textChannelId: string, voiceChannelId: string | undefined): boolean {
    return this.refusal(guild, ['x'], textChannelId, voiceChannelId) === undefined;
  }

  /** Why a chat with these explicit characters may not run in these channels now, or undefined. */
  refusal(guild: GuildPort, explicitNames: readonly string[], textChannelId: string, voiceChannelId: string | undefined): string | undefined {
    if (explicitNames.length === 0) return undefined;
    const who = namesOf(explicitNames);
    const is = explicitNames.length === 1 ? 'is' : 'are';
    if (this.deps.settings.explicitCharacters(guild.id) === 'never') {
      return `${who} ${is} marked explicit on Voxta, and this server does not allow explicit characters (an admin can allow them in age-restricted channels with /config set explicit-characters age-restricted).`;
    }
    const nsfw = (id: string): boolean => guild.isAgeRestricted?.(id) === true;
    if (!nsfw(textChannelId)) {
      return `${who} ${is} marked explicit on Voxta, so ${explicitNames.length === 1 ? 'it' : 'they'} can only talk in age-restricted channels, and <#${textChannelId}> is not one.`;
    }
    if (voiceChannelId && !nsfw(voiceChannelId)) {
      return `${who} ${is} marked explicit on Voxta, so ${explicitNames.length === 1 ? 'it' : 'they'} can only talk in age-restricted channels, and the voice channel <#${voiceChannelId}> is not one. Pick an age-restricted voice channel, or start the chat while you are not in voice.`;
    }
    return undefined;
  }

  /** The one notice when a running explicit chat has to stop because its channels no longer allow it. */
  stoppedNotice(guild: GuildPort, explicitNames: readonly string[], textChannelId: string, voiceChannelId: string | undefined): string {
    const who = namesOf(explicitNames);
    if (this.deps.settings.explicitCharacters(guild.id) === 'never') {
      return `This server no longer allows explicit characters, so I stopped the chat with ${who}. It stays saved for /resume.`;
    }
    const which = guild.isAgeRestricted?.(textChannelId) !== true ? 'This channel is' : `The voice channel <#${voiceChannelId}> is`;
    return `${which} no longer age-restricted, so I stopped the chat with ${who} (marked explicit on Voxta). It stays saved: /resume picks it up once the channels are age-restricted again.`;
  }
}
