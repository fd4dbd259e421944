/**
 * Transport-level credentials (protocol §1.5): an API key as `Authorization: Bearer` or
 * `?access_token=`, and/or Basic auth as a reverse proxy would ask. The result is a *user key*
 * that identifies the user without containing the secret; the per-user chat cap and the audio
 * socket ownership check use it.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { ResolvedOptions } from './context.js';

export type AuthResult = { ok: true; userKey: string } | { ok: false; challenge: string };

/** With no credentials configured, everyone is the single local user (pre-authorised host). */
export const LOCAL_USER = 'local';

export function authenticateRequest(req: IncomingMessage, url: URL, options: ResolvedOptions): AuthResult {
  const keys = options.apiKey === undefined ? [] : Array.isArray(options.apiKey) ? options.apiKey : [options.apiKey];
  const basic = options.basicAuth;
  if (keys.length === 0 && !basic) return { ok: true, userKey: LOCAL_USER };

  const header = req.headers.authorization ?? '';
  const [scheme, value = ''] = header.split(/\s+/, 2);
  if (keys.length > 0) {
    const token = scheme?.toLowerCase() === 'bearer' ? value : (url.searchParams.get('access_token') ?? '');
    const index = keys.findIndex((k) => safeEqual(k, token));
    if (index >= 0) return { ok: true, userKey: `key#${index + 1}` };
  }
  if (basic && scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0 && safeEqual(basic.username, decoded.slice(0, colon)) && safeEqual(basic.password, decoded.slice(colon + 1))) {
      return { ok: true, userKey: `basic:${basic.username}` };
    }
  }
  return { ok: false, challenge: keys.length > 0 ? 'Bearer' : 'Basic realm="voxta-sim"' };
}

function safeEqual(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
