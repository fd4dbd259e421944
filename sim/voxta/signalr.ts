/**
 * SignalR JSON hub protocol framing (server side), just enough for the Voxta hub.
 *
 * Records are JSON texts terminated by the record separator 0x1E; a WebSocket frame may carry
 * several records and a record may in theory span frames, so incoming text is buffered.
 */

export const RECORD_SEPARATOR = '\x1e';

/** Hub message types we use (https://github.com/dotnet/aspnetcore/blob/main/src/SignalR/docs/specs/HubProtocol.md). */
export const HubMessageType = {
  Invocation: 1,
  StreamItem: 2,
  Completion: 3,
  StreamInvocation: 4,
  CancelInvocation: 5,
  Ping: 6,
  Close: 7,
} as const;

export interface InvocationRecord {
  type: 1;
  invocationId?: string;
  target: string;
  arguments: unknown[];
}
export interface CompletionRecord {
  type: 3;
  invocationId: string;
  error?: string;
  result?: unknown;
}
export interface PingRecord {
  type: 6;
}
export interface CloseRecord {
  type: 7;
  error?: string;
  allowReconnect?: boolean;
}
/** Any record after the handshake, as parsed; unknown types are kept for logging. */
export type HubRecord = InvocationRecord | CompletionRecord | PingRecord | CloseRecord | { type: number; [k: string]: unknown };

export interface HandshakeRequest {
  protocol: string;
  version: number;
}

/** Accumulates text frames and yields complete records (without the separator). */
export class RecordReader {
  private pending = '';

  /** Feeds one frame; returns the complete records it finished. */
  push(text: string): string[] {
    this.pending += text;
    const parts = this.pending.split(RECORD_SEPARATOR);
    this.pending = parts.pop() ?? '';
    return parts.filter((p) => p.length > 0);
  }

  /** Bytes waiting for their separator (a sign of a client that forgot it). */
  get buffered(): number {
    return this.pending.length;
  }
}

/** Serialises one record with its separator. */
export function encodeRecord(record: object): string {
  return JSON.stringify(record) + RECORD_SEPARATOR;
}

/** The handshake answer: exactly `{}` — a `type` field makes @microsoft/signalr reject it. */
export const HANDSHAKE_OK = encodeRecord({});

export function handshakeError(message: string): string {
  return encodeRecord({ error: message });
}

export class HubProtocolError extends Error {
  override name = 'HubProtocolError';
}

/** Parses and validates the first record of a connection. */
export function parseHandshake(text: string): HandshakeRequest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HubProtocolError('Handshake is not valid JSON');
  }
  if (!isObject(value) || typeof value.protocol !== 'string' || typeof value.version !== 'number') {
    throw new HubProtocolError('Handshake must be {"protocol":string,"version":number}');
  }
  return { protocol: value.protocol, version: value.version };
}

/** Parses one hub record; throws {@link HubProtocolError} on anything that is not an object with a numeric type. */
export function parseRecord(text: string): HubRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HubProtocolError(`Record is not valid JSON: ${text.slice(0, 80)}`);
  }
  if (!isObject(value) || typeof value.type !== 'number') {
    throw new HubProtocolError(`Record has no numeric "type": ${text.slice(0, 80)}`);
  }
  if (value.type === HubMessageType.Invocation) {
    if (typeof value.target !== 'string' || !Array.isArray(value.arguments)) {
      throw new HubProtocolError('Invocation needs a string "target" and an "arguments" array');
    }
    if (value.invocationId !== undefined && typeof value.invocationId !== 'string') {
      throw new HubProtocolError('Invocation "invocationId" must be a string');
    }
  }
  return value as HubRecord;
}

export function isInvocation(r: HubRecord): r is InvocationRecord {
  return r.type === HubMessageType.Invocation;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
