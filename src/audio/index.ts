/**
 * Public surface of the pure audio layer: codecs, WAV, resampling, framing, speech encoding.
 * Knows neither Discord nor Voxta.
 */
export {
  OpusDecoder,
  OpusEncoder,
  OpusDecodeError,
  OpusEncodeError,
  OPUS_SAMPLE_RATES,
  OPUS_SILENCE_FRAME,
  MAX_OPUS_PACKET_BYTES,
  opusLiveCodecs,
  opusHeapBytes,
  type OpusApplication,
  type OpusChannels,
  type OpusEncoderSettings,
  type OpusSampleRate,
  type OpusSignal,
} from './opus.js';
export { parseWav, WavError, type WavAudio, type WavSampleFormat } from './wav.js';
export { Resampler, type ResamplerOptions } from './resampler.js';
export { firSimdAvailable } from './fir-simd.js';
export { PcmFramer, frameBytesFor, VOXTA_FRAME_BYTES, OPUS_FRAME_BYTES_48K_STEREO, type PcmFramerOptions } from './framer.js';
export {
  stereoToMono,
  downmix,
  monoToStereo,
  int16ToFloat32,
  float32ToInt16,
  rms,
  dbfs,
  bytesToInt16,
  int16ToBuffer,
  concatInt16,
  applyGain,
} from './pcm.js';
export {
  SpeechEncoder,
  SPEECH_ENCODER_DEFAULTS,
  OPUS_FRAME_MS,
  opusRateFor,
  encodeWav,
  type EncodedSpeech,
  type SpeechEncoderOptions,
} from './speech-encoder.js';
export { OpusPacketStream, createOpusPacketStream, type OpusPacketStreamOptions } from './opus-stream.js';
export { measureResampler, measureResamplerSpeed, type ResamplerQuality } from './quality.js';
// Owned by the voice-activity/floor helper; re-exported so users import one module.
export * from './vad.js';
export * from './floor.js';
