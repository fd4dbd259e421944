/**
 * Splitting long text for Discord's 2000-character message limit at natural boundaries:
 * a paragraph break, else a line break, else the end of a sentence, else a space, else (one
 * enormous word) a hard cut. Nothing is dropped: joining the pieces gives back the text, up to
 * the whitespace at the cut points.
 */
export const DISCORD_MESSAGE_LIMIT = 2000;

/**
 * Where to cut `text` (longer than `limit`) so that the first piece is at most `limit`
 * characters. Returns an index in `(0, limit]`; the first piece is `text.slice(0, index)`.
 */
export function findSplitPoint(text: string, limit: number): number {
  if (text.length <= limit) return text.length;
  const window = text.slice(0, limit + 1);
  // Do not cut so early that the piece is tiny: a boundary in the first third is not worth it.
  const floor = Math.floor(limit / 3);
  const candidates: RegExp[] = [/\n\s*\n/g, /\n/g, /[.!?…]["')\]*_]*\s/g, /[,;:]\s/g, /\s/g];
  for (const re of candidates) {
    let best = -1;
    for (const m of window.matchAll(re)) {
      // Cut after the punctuation, before the whitespace: the piece keeps its full stop.
      const end = m.index + m[0].trimEnd().length;
      const cut = end === m.index ? m.index : end;
      if (cut > 0 && cut <= limit && cut >= floor) best = cut;
    }
    if (best > 0) return best;
  }
  // Never split a surrogate pair (emoji) in half.
  const code = text.charCodeAt(limit - 1);
  return code >= 0xd800 && code <= 0xdbff ? limit - 1 : limit;
}

/** Splits `text` into pieces of at most `limit` characters; whitespace-only pieces are dropped. */
export function splitMessage(text: string, limit = DISCORD_MESSAGE_LIMIT): string[] {
  if (limit < 2) throw new RangeError('limit must be at least 2');
  const pieces: string[] = [];
  let rest = text.trim();
  while (rest.length > limit) {
    const cut = findSplitPoint(rest, limit);
    const piece = rest.slice(0, cut).trimEnd();
    if (piece) pieces.push(piece);
    rest = rest.slice(cut).trimStart();
  }
  if (rest) pieces.push(rest);
  return pieces;
}
