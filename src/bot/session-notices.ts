/**
 * What a guild session tells its channel when something goes wrong, and how it recognises the one
 * failure that needs its own words (refused credentials). Pure functions, no session state.
 */
import { VoxtaAuthError } from '../voxta/errors.js';
import { unescapeUserText } from '../voxta/user-text.js';

/** Voxta refused the bot's credentials (directly, or as the cause of giving up reconnecting). */
export function isAuthRefusal(err: unknown): boolean {
  for (let cur: unknown = err, depth = 0; cur && depth < 8; depth++) {
    if (cur instanceof VoxtaAuthError) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/** The one notice for refused credentials: what happened, what to check, what happens to the chat. */
export function credentialsRefusedNotice(characterName: string): string {
  return `Voxta refused my credentials, so the chat with ${characterName} is paused. Check VOXTA_API_KEY: the chat stays stored and is resumed (with any messages sent meanwhile) once Voxta accepts the key, for example when the bot restarts with the right one.`;
}

/** "These messages did not reach the character: “a”, “b”." in one plain sentence. */
export function notDeliveredNotice(messages: ReadonlyArray<{ text: string }>): string {
  const shown = messages.slice(0, 5).map((m) => {
    const t = unescapeUserText(m.text).replace(/\s+/g, ' ').trim();
    return `“${t.length > 80 ? `${t.slice(0, 79)}…` : t}”`;
  });
  const more = messages.length > shown.length ? ` and ${messages.length - shown.length} more` : '';
  return messages.length === 1
    ? `This message did not reach the character and will not be delivered: ${shown[0]}.`
    : `These ${messages.length} messages did not reach the character and will not be delivered: ${shown.join(', ')}${more}.`;
}

/** Said in the text channel once the bot is in voice and listening. */
export function listeningNotice(voiceChannelId: string): string {
  return `I'm listening in <#${voiceChannelId}>. Use /listen off to opt out.`;
}
