/**
 * Making Discord text safe to `send` to Voxta as plain user speech (protocol §2.9, §6.4).
 *
 * Voxta's `send` handler treats two shapes of text specially:
 * - text starting with `/` is a chat command (`/note`, `/event`, …; an unknown one produces a
 *   `chatSessionError`), so "/shrug" typed in Discord would never reach the character;
 * - text wholly wrapped in `[...]` becomes an Event instead of something the user said;
 * - `""` and `"*"` mean "generate a reply without a user message".
 *
 * Escaping: we put a ZERO WIDTH SPACE (U+200B) in front of such text. Why this character:
 * - the server's checks look at the first character (`StartsWith("/")`, `StartsWith("[") &&
 *   EndsWith("]")`). If the server trims the text first, an ASCII space would be trimmed away and
 *   the command would still fire; .NET's `Trim()` only removes `char.IsWhiteSpace` characters, and
 *   U+200B is a format character (Cf), not white space, so it survives a trim;
 * - it is invisible in Voxta's UI and in the chat history, so the text stays exactly as readable
 *   as the user wrote it, and LLM tokenisers treat it as (at worst) one odd token.
 * Only text that needs it is escaped; everything else is sent as is (after clean-up).
 */

/** Prefix that defuses Voxta's command/event parsing without changing what a reader sees. */
export const ESCAPE_PREFIX = '\u200B';

/** Default cap on one user message (characters). See {@link capText} for the reasoning. */
export const MAX_USER_TEXT_CHARS = 2000;

const TRUNCATION_MARK = ' […]';

/**
 * Cleans one user message and defuses Voxta's command/event syntax. Returns `''` for text with
 * nothing to say: callers must not `send` that (an empty send means "reply without a message").
 */
export function sanitizeUserText(text: string): string {
  // Control characters (other than newline/tab) have no business in a chat message and some
  // (e.g. NUL, the record separator 0x1E) confuse loggers or framing further down.
  const cleaned = text
    .replace(/\r\n?/g, '\n')
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, '')
    .trim();
  if (cleaned === '') return '';
  if (needsEscape(cleaned)) return ESCAPE_PREFIX + cleaned;
  return cleaned;
}

/** True for text Voxta would not treat as plain speech: `/cmd`, `[event]`, `*`. */
export function needsEscape(text: string): boolean {
  const t = text.trim();
  return t.startsWith('/') || (t.startsWith('[') && t.endsWith(']')) || t === '*';
}

/** The text with our escape removed, for comparing what we sent with what the server echoes. */
export function unescapeUserText(text: string): string {
  return text.replaceAll(ESCAPE_PREFIX, '').trim();
}

/**
 * Caps text at `maxChars`, cutting at the last word boundary in the final 20 % and marking the cut
 * with " […]" so the character can tell the message was longer.
 *
 * Why truncate instead of splitting into several sends: every non-empty `send` aborts the reply
 * being generated (protocol §2.9), so a split message would make the character start answering
 * part one, be cut off by part two, and so on. One capped message gives one coherent answer. The
 * cap (2000 by default, Discord's own message limit for most users) keeps the payload far below
 * SignalR's 32 KB default message limit (protocol §6.16) even with multi-byte text.
 */
export function capText(text: string, maxChars = MAX_USER_TEXT_CHARS): { text: string; truncated: boolean } {
  const chars = Array.from(text); // code points: never cut a surrogate pair in half
  if (chars.length <= maxChars) return { text, truncated: false };
  const budget = Math.max(1, maxChars - Array.from(TRUNCATION_MARK).length);
  let cut = chars.slice(0, budget).join('');
  const lastSpace = cut.search(/\s\S*$/);
  if (lastSpace > budget * 0.8) cut = cut.slice(0, lastSpace);
  return { text: cut.trimEnd() + TRUNCATION_MARK, truncated: true };
}

export interface AttributeOptions {
  /** Default {@link MAX_USER_TEXT_CHARS}; the cap applies to the whole result, name included. */
  maxChars?: number;
}

/**
 * The multi-speaker form of a message: `Name: text`, sanitised and capped.
 *
 * Choice (protocol §4e, peers.md): one Voxta chat has one user persona, but several Discord
 * members talk to it. Voxta clients credit speakers in the text itself: the voxta-gateway relay
 * uses a name prefix (`[TWITCH] author: text`), the Voxta KB suggests `[[Name]]: text`, and the
 * official Minecraft companion sends non-owner players as `/event Name says: …`. We use the plain
 * `Name: text` prefix because:
 * - it is the form LLMs see most in chat transcripts, so the character addresses people by name;
 * - it stays a normal *user* message (an `/event` would not be stored as something the user said
 *   and changes how the reply is triggered);
 * - it never starts with `/` or `[`, so it needs no escaping unless the name itself is odd.
 * The display name is reduced to one line without `:` so the prefix cannot be spoofed into
 * looking like two speakers, and capped at 32 characters.
 * Returns `''` when the message has no text.
 */
export function attributeSpeaker(displayName: string, text: string, opts: AttributeOptions = {}): string {
  const body = sanitizeUserText(text);
  if (body === '') return '';
  const name = cleanName(displayName);
  const plainBody = body.startsWith(ESCAPE_PREFIX) ? body.slice(ESCAPE_PREFIX.length) : body;
  const composed = `${name}: ${plainBody}`;
  const capped = capText(composed, opts.maxChars ?? MAX_USER_TEXT_CHARS).text;
  // The name prefix already keeps `/` and `[` away from the start; sanitise anyway in case the
  // name was reduced to something that starts with them.
  return needsEscape(capped) ? ESCAPE_PREFIX + capped : capped;
}

function cleanName(displayName: string): string {
  const one = displayName
    .replace(/[\u0000-\u001F\u007F\u200B]/g, ' ')
    .replace(/[:\n]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  const capped = Array.from(one).slice(0, 32).join('').trim();
  return capped === '' ? 'Someone' : capped;
}
