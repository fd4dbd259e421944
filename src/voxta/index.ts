/**
 * Public surface of the Voxta client layer. Knows nothing of Discord.
 */
export * from './errors.js';
export * from './messages.js';
export { VoxtaEndpoint, type VoxtaEndpointOptions } from './endpoint.js';
export { VoxtaRest, pathOf, type CharacterSummary, type ChatSummary, type FetchOptions, type FetchedBytes, type ScenarioSummary } from './rest.js';
export { isKnownApiVersion } from './handshake.js';
export {
  VoxtaChatSession,
  CLIENT_NAME,
  EXPECTED_API_VERSION,
  KNOWN_API_VERSIONS,
  senderOf,
  type CastMember,
  type ChatInfo,
  type ReconnectOptions,
  type ReconnectedInfo,
  type ReconnectingInfo,
  type ResumeChatOptions,
  type SessionState,
  type SessionStats,
  type StartChatOptions,
  type VoxtaChatSessionEvents,
  type VoxtaChatSessionOptions,
} from './chat-session.js';
export { PlaybackContract, type ChunkInfo, type CompleteReason, type PlaybackContractOptions, type PlaybackSink, type PlaybackStats } from './playback-contract.js';
export {
  VoxtaAudioInput,
  attachAudioInput,
  AUDIO_SPEC_HEADER,
  FRAME_BYTES,
  FRAME_MS,
  SAMPLE_RATE,
  type AudioInputState,
  type AudioInputStats,
  type VoxtaAudioInputOptions,
} from './audio-input.js';
export {
  attachVisionResponder,
  cancelVisionCapture,
  captureCommand,
  imageAttachment,
  uploadVisionCapture,
  visionCapabilities,
  VisionResponder,
  VISION_CONTENT_TYPES,
  VISION_LIMITS,
  type ComputerVisionSource,
  type SendAttachment,
  type VisionCaptureCapability,
  type VisionContentType,
  type VisionHttpOptions,
  type VisionImage,
  type VisionImageProvider,
  type VisionOptions,
  type VisionResponderOptions,
  type VisionResponderStats,
  type VisionSessionLike,
  type VisionSource,
} from './vision.js';
export { classifyAudioUrl, fetchSpeech, unfetchedDurationSec, type AudioUrlKind, type FetchSpeechOptions } from './tts.js';
export { sanitizeUserText, attributeSpeaker, capText, needsEscape, unescapeUserText, ESCAPE_PREFIX, MAX_USER_TEXT_CHARS, type AttributeOptions } from './user-text.js';
