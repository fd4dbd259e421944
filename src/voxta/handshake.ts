/**
 * Who we are to Voxta: the `authenticate` message and what answers it (protocol §3).
 */
import { classifyServerError, VoxtaAuthError } from './errors.js';
import { clientMessage, type ClientMessage, type ServerMessage, type WelcomeMessage } from './messages.js';
import type { Picked } from './pending-replies.js';
import type { VoxtaChatSessionOptions } from './session-options.js';
import { visionCapabilities } from './vision.js';

export const EXPECTED_API_VERSION = '2025-08';
export const CLIENT_NAME = 'Voxta.DiscordBot';

export function authenticateMessage(opts: Pick<VoxtaChatSessionOptions, 'clientVersion' | 'audioInput' | 'acceptedAudioContentTypes' | 'vision'>): ClientMessage {
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
