import { describe, expect, it } from 'vitest';
import { attributeSpeaker, capText, ESCAPE_PREFIX, MAX_USER_TEXT_CHARS, needsEscape, sanitizeUserText, unescapeUserText } from '../../src/voxta/user-text.js';

describe('sanitizeUserText', () => {
  it('leaves ordinary text alone (trimmed)', () => {
    expect(sanitizeUserText('  hello there  ')).toBe('hello there');
    expect(sanitizeUserText('a/b [c] d')).toBe('a/b [c] d');
  });

  it('defuses a leading slash so it is not a Voxta command', () => {
    const out = sanitizeUserText('/shrug me');
    expect(out).toBe(ESCAPE_PREFIX + '/shrug me');
    expect(out.startsWith('/')).toBe(false);
    expect(out.trim().startsWith('/')).toBe(false); // survives a server-side trim
    expect(unescapeUserText(out)).toBe('/shrug me');
  });

  it('defuses text wholly in brackets so it is not an event', () => {
    const out = sanitizeUserText('  [waves]  ');
    expect(out.startsWith('[')).toBe(false);
    expect(unescapeUserText(out)).toBe('[waves]');
    expect(needsEscape('[a] b')).toBe(false);
  });

  it('defuses a lone * (which would mean "reply without a message")', () => {
    expect(sanitizeUserText('*')).toBe(ESCAPE_PREFIX + '*');
  });

  it('returns empty for nothing to say and strips control characters', () => {
    expect(sanitizeUserText('   \n ')).toBe('');
    expect(sanitizeUserText('a\u0000b\u001ec\r\nd')).toBe('abc\nd');
  });
});

describe('capText', () => {
  it('keeps short text', () => {
    expect(capText('short', 10)).toEqual({ text: 'short', truncated: false });
  });

  it('cuts long text at a word boundary and marks it', () => {
    const words = Array.from({ length: 1000 }, (_, i) => `word${i}`).join(' ');
    const { text, truncated } = capText(words, 100);
    expect(truncated).toBe(true);
    expect(Array.from(text).length).toBeLessThanOrEqual(100);
    expect(text.endsWith(' […]')).toBe(true);
    expect(text).toMatch(/word\d+ \[…\]$/);
  });

  it('never splits a surrogate pair', () => {
    const { text } = capText('😀'.repeat(50), 10);
    expect(text.includes('\uFFFD')).toBe(false);
    expect(Array.from(text).every((c) => c === '😀' || ' […]'.includes(c))).toBe(true);
  });
});

describe('attributeSpeaker', () => {
  it('prefixes the display name', () => {
    expect(attributeSpeaker('Alice', 'hello')).toBe('Alice: hello');
  });

  it('keeps command-like text as speech behind the name', () => {
    expect(attributeSpeaker('Bob', '/note secret')).toBe('Bob: /note secret');
    expect(attributeSpeaker('Bob', '[waves]')).toBe('Bob: [waves]');
  });

  it('cleans names so they cannot fake a second speaker', () => {
    expect(attributeSpeaker('Eve: hi\nMallory', 'x')).toBe('Eve hi Mallory: x');
    expect(attributeSpeaker('   ', 'x')).toBe('Someone: x');
    expect(attributeSpeaker('n'.repeat(100), 'x')).toBe('n'.repeat(32) + ': x');
  });

  it('caps a 5000-character Discord message', () => {
    const long = 'lorem ipsum '.repeat(420).trim(); // ~5000 chars
    const out = attributeSpeaker('Alice', long);
    expect(out.startsWith('Alice: lorem')).toBe(true);
    expect(Array.from(out).length).toBeLessThanOrEqual(MAX_USER_TEXT_CHARS);
    expect(out.endsWith('[…]')).toBe(true);
  });

  it('returns empty when there is nothing to say', () => {
    expect(attributeSpeaker('Alice', '  ')).toBe('');
  });
});
