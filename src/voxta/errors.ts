/**
 * Typed errors of the Voxta client layer.
 *
 * Every message is plain words a Discord admin can act on, and never carries a secret: URLs are
 * reduced to their path, and any free text coming from elsewhere passes through `redactSecrets`.
 */
import { redactSecrets } from '../log.js';

/** Base class: `instanceof VoxtaError` tells "Voxta said no / could not be reached" from bugs. */
export class VoxtaError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(redactSecrets(message), options);
    this.name = new.target.name;
  }
}

/** The server answered an HTTP request with a non-2xx status. */
export class VoxtaHttpError extends VoxtaError {
  constructor(
    readonly status: number,
    /** Path of the request, never with credentials or query. */
    readonly path: string,
    message = `Voxta answered HTTP ${status} for ${path}`,
  ) {
    super(message);
  }
}

/** 401/403 on HTTP, or `authenticationRequired` on the hub: the API key (or Basic auth) is wrong. */
export class VoxtaAuthError extends VoxtaError {
  constructor(
    message = 'Voxta refused the credentials: check VOXTA_API_KEY (or the user:password in VOXTA_URL)',
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Nothing answered: connection refused, unknown host, or a timeout. */
export class VoxtaUnreachableError extends VoxtaError {
  constructor(
    readonly reason: 'refused' | 'dns' | 'timeout' | 'network',
    readonly target: string,
    options?: { cause?: unknown },
  ) {
    const what = {
      refused: 'refused the connection (is Voxta running, and is the port right?)',
      dns: 'has a host name that does not resolve',
      timeout: 'did not answer in time',
      network: 'could not be reached (network error)',
    }[reason];
    super(`Voxta at ${target} ${what}`, options);
  }
}

/** A URL was not something this client may fetch (non-http scheme, garbage). */
export class VoxtaUrlError extends VoxtaError {}

/** "Cannot start more than N concurrent chats": the per-user cap of the Voxta server is reached. */
export class VoxtaCapacityError extends VoxtaError {
  constructor(
    /** The server's cap, when the message said it. */
    readonly limit: number | undefined,
    serverMessage: string,
  ) {
    super(`Voxta is full: ${serverMessage}`);
  }
}

/** "Chat session already exists for this chat": the chat is open elsewhere (UI, another guild, a dead connection). */
export class VoxtaChatLockedError extends VoxtaError {
  constructor(serverMessage: string) {
    super(`This chat is already open elsewhere: ${serverMessage}`);
  }
}

/** "Another chat is still trying to start or close": retry later. */
export class VoxtaBusyError extends VoxtaError {
  constructor(serverMessage: string) {
    super(`Voxta is busy starting or closing a chat: ${serverMessage}`);
  }
}

/** The chat or character does not exist (any more). */
export class VoxtaNotFoundError extends VoxtaError {
  constructor(serverMessage: string) {
    super(`Not found on Voxta: ${serverMessage}`);
  }
}

/** Voxta reported some other error (global `error`, `chatSessionError`, `missingResourcesError`). */
export class VoxtaServerError extends VoxtaError {
  constructor(
    serverMessage: string,
    readonly code?: string,
  ) {
    super(`Voxta reported an error: ${serverMessage}`);
  }
}

/** An awaited answer did not come in time. */
export class VoxtaTimeoutError extends VoxtaError {
  constructor(what: string, ms: number) {
    super(`Voxta did not answer ${what} within ${Math.round(ms / 100) / 10} s`);
  }
}

/** The operation needs a state the session is not in (closed, no chat, already has a chat). */
export class VoxtaStateError extends VoxtaError {}

/** The caller passed something unusable (empty text, …). */
export class VoxtaInputError extends VoxtaError {}

/**
 * Maps a free-text Voxta error (hub `error` / `chatSessionError` message) to the typed error the
 * bot branches on. Voxta has no error codes for these, so matching the wording is the only way
 * (protocol §6.15).
 */
export function classifyServerError(message: string, code?: string): VoxtaError {
  const capacity = /Cannot start more than\s+(\d+)?\s*concurrent chats?/i.exec(message);
  if (capacity) return new VoxtaCapacityError(capacity[1] ? Number(capacity[1]) : undefined, message);
  if (/Chat session already exists/i.test(message)) return new VoxtaChatLockedError(message);
  if (/still trying to start or close/i.test(message)) return new VoxtaBusyError(message);
  if (/\bnot found\b/i.test(message) || /has no characters/i.test(message)) return new VoxtaNotFoundError(message);
  return new VoxtaServerError(message, code);
}

/**
 * Turns a low-level network failure (fetch, ws, signalr) into {@link VoxtaUnreachableError} when
 * it is one; returns undefined for anything else.
 */
export function asUnreachable(err: unknown, target: string): VoxtaUnreachableError | undefined {
  const text = describeChain(err);
  if (/ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL/.test(text)) return new VoxtaUnreachableError('refused', target, { cause: err });
  if (/ENOTFOUND|EAI_AGAIN|getaddrinfo/.test(text)) return new VoxtaUnreachableError('dns', target, { cause: err });
  if (/TimeoutError|timed out|ETIMEDOUT|UND_ERR_CONNECT_TIMEOUT|UND_ERR_HEADERS_TIMEOUT/i.test(text)) {
    return new VoxtaUnreachableError('timeout', target, { cause: err });
  }
  if (/fetch failed|socket hang up|UND_ERR_SOCKET|other side closed/i.test(text)) return new VoxtaUnreachableError('network', target, { cause: err });
  return undefined;
}

/** Name, message and code of an error and its causes, flattened for matching. */
export function describeChain(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 6; depth++) {
    if (cur instanceof Error) {
      const code = (cur as { code?: unknown }).code;
      parts.push(`${cur.name}: ${cur.message}${typeof code === 'string' ? ` (${code})` : ''}`);
      cur = (cur as { cause?: unknown }).cause;
    } else if (typeof cur === 'object') {
      const o = cur as { code?: unknown; message?: unknown };
      parts.push(`${String(o.message ?? '')} ${String(o.code ?? '')}`);
      break;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join(' <- ');
}

/** The hub connection was lost while waiting for an answer. */
export class VoxtaDisconnectedError extends VoxtaError {
  constructor(message = 'The connection to Voxta was lost') {
    super(message);
  }
}

/** Errors worth retrying while re-resuming a chat after a reconnect (protocol §5.6). */
export function isRetriableResumeError(err: unknown): boolean {
  return (
    err instanceof VoxtaChatLockedError ||
    err instanceof VoxtaBusyError ||
    err instanceof VoxtaCapacityError ||
    err instanceof VoxtaTimeoutError ||
    err instanceof VoxtaDisconnectedError ||
    err instanceof VoxtaUnreachableError
  );
}
