/**
 * Who we are to Voxta: the `authenticate` message and what answers it (protocol §3).
 */
import { classifyServerError, VoxtaAuthError } from './errors.js';
import { clientMessage, type ClientMessage, type ServerMessage, type WelcomeMessage } from './messages.js';
import type { Picked } from './pending-replies.js';
import type { VoxtaChatSessionOptions } from './session-options.js';
import { visionCapabilities } from './vision.js';

/** The API version of the server code this client was first built against (beta.152). */
export const EXPECTED_API_VERSION = '2025-08';
/**
 * API versions this client knows (no warning): 2025-08 (VD-core beta.152) and 2025-11 (current
 * servers; GE's protocol-v0 pins it). Others still work; they get one warning.
 */
export const KNOWN_API_VERSIONS: readonly string[] = ['2025-08', '2025-11'];
export const CLIENT_NAME = 'Voxta.DiscordBot';

export function isKnownApiVersion(apiVersion: string, known: string | readonly string[] = KNOWN_API_VERSIONS): boolean {
  return (typeof known === 'string' ? [known] : known).includes(apiVersion);
}

/**
 * The `authenticate` message. Text-only sessions still declare `audioInput: WebSocketStream`
 * (and simply never open the audio socket): with `None`, Voxta gives a LOCAL connection the
 * server PC's own microphone whenever the chat has speech-to-text (SpeechToTextManager,
 * VD-core), and only API 2025-11 servers understand the `disableServices` that switches STT off.
 */
export function authenticateMessage(opts: Pick<VoxtaChatSessionOptions, 'clientVersion' | 'audioInput' | 'acceptedAudioContentTypes' | 'textOnly' | 'vision'>): ClientMessage {
  return clientMessage.authenticate({
    client: CLIENT_NAME,
    clientVersion: opts.clientVersion ?? '0.1.0',
    scope: ['role:app'],
    capabilities: {
      audioInput: opts.audioInput ?? 'WebSocketStream',
      audioOutput: 'Url',
      acceptedAudioContentTypes: opts.acceptedAudioContentTypes ?? ['audio/x-wav', 'audio/wav'],
      ...visionCapabilities(opts.vision),
    },
  });
}

/** The answer to `authenticate`: `welcome`, or why we were not let in. */
export function pickWelcome(m: ServerMessage): Picked<WelcomeMessage> {
  if (m.$type === 'welcome') return m;
  if (m.$type === 'authenticationRequired') return new VoxtaAuthError('Voxta asked for authentication: the API key has no user profile or is not accepted');
  if (m.$type === 'error') return classifyServerError(m.message, m.code);
  return undefined;
}
