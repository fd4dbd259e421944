/**
 * Voxta app triggers (scenario scripts' `appTrigger`, protocol §3.3) that have a Discord
 * equivalent. Voxta defines no standard names; apps declare their own. The one with an obvious
 * Discord counterpart is an emote: a reaction on the character's message. Every other trigger is
 * acknowledged without effect (the Voxta client sends `appTriggerComplete` for each one, so a
 * scripted scene never stalls on a trigger the bot cannot act on).
 */

/** Names taken as "show an emotion" (case-insensitive). */
const EMOTE_NAMES = new Set(['emote', 'emotion', 'react', 'reaction', 'expression', 'express']);

/** Emotion words scripts use, and the reaction that shows each. */
const EMOJI_FOR: Record<string, string> = {
  happy: '😊',
  joy: '😊',
  smile: '😊',
  laugh: '😂',
  laughing: '😂',
  amused: '😄',
  sad: '😢',
  cry: '😢',
  crying: '😭',
  angry: '😠',
  mad: '😠',
  annoyed: '😒',
  surprised: '😮',
  surprise: '😮',
  shocked: '😱',
  scared: '😨',
  afraid: '😨',
  fear: '😨',
  love: '❤️',
  heart: '❤️',
  blush: '☺️',
  shy: '☺️',
  wink: '😉',
  thinking: '🤔',
  think: '🤔',
  confused: '😕',
  curious: '🧐',
  sleepy: '😴',
  tired: '😴',
  bored: '😑',
  disgusted: '🤢',
  proud: '😌',
  excited: '🤩',
  cool: '😎',
  nod: '👍',
  yes: '👍',
  agree: '👍',
  no: '👎',
  disagree: '👎',
  wave: '👋',
  hello: '👋',
  goodbye: '👋',
  clap: '👏',
  shrug: '🤷',
};

/** A single emoji (with modifiers, variation selectors and ZWJ sequences), nothing else. */
const ONE_EMOJI = /^(?:\p{Extended_Pictographic}|\p{Regional_Indicator}{2})(?:\p{Emoji_Modifier}|\uFE0F|\u200D(?:\p{Extended_Pictographic}))*$/u;

/** The reaction an app trigger asks for, or undefined when it is not an emote the bot can show. */
export function emoteReaction(trigger: { name: string; arguments: readonly unknown[] }): string | undefined {
  if (!EMOTE_NAMES.has(trigger.name.trim().toLowerCase())) return undefined;
  for (const arg of trigger.arguments) {
    for (const value of argumentValues(arg)) {
      const v = value.trim();
      if (ONE_EMOJI.test(v)) return v;
      const emoji = EMOJI_FOR[v.toLowerCase()];
      if (emoji) return emoji;
    }
  }
  return undefined;
}

/** Arguments come as plain strings or as `{name, value}` pairs (GE's generated messages). */
function argumentValues(arg: unknown): string[] {
  if (typeof arg === 'string') return [arg];
  if (arg && typeof arg === 'object') {
    const v = (arg as { value?: unknown }).value;
    if (typeof v === 'string') return [v];
  }
  return [];
}
