/**
 * Downlink: the speech queue's clips → one long-lived AudioPlayer per guild → the voice
 * connection.
 *
 * - One `AudioPlayer` for the whole voice session, subscribed to the connection (and again after
 *   a rejoin creates a new connection).
 * - Clips go into a {@link ClipStream} played as `StreamType.Opus` (no prism transcoding): the
 *   packets come from our own encoder ({@link SpeechEncoder}, per clip, tuned for speech).
 * - `behaviors.maxMissedFrames` is raised to 5 s: while the next sentence is still downloading the
 *   stream is simply dry and the player sends silence frames instead of ending playback (the
 *   default of 5 frames = 100 ms would end it and lose the rest, discord-voice.md §6).
 * - `behaviors.noSubscriber = Pause`: when the connection is not Ready (reconnecting, rejoining)
 *   the player pauses and resumes where it was once the connection is back, rather than "playing"
 *   the character's sentence into the void. A reply paused for too long is aborted by GuildVoice.
 * - With DAVE, audio played before the MLS group is ready would go out unencrypted (the library
 *   passes frames through until then), so a new stream waits (≤ 3 s) for the E2EE session.
 * - `stop()` is `player.stop(true)`: the player goes idle synchronously and the resource stream is
 *   destroyed, so nothing more is sent after the current 20 ms frame.
 * - `audioGapMs` is played as silence frames inside the stream (clip-stream.ts); the sink carries
 *   the time the last audio ended over to the next stream, so a gap is measured across streams too.
 */
import {
  AudioPlayerStatus,
  createAudioPlayer,
  createAudioResource,
  NoSubscriberBehavior,
  StreamType,
  type AudioPlayer,
  type AudioResource,
  type VoiceConnection,
} from '@discordjs/voice';
import { OPUS_SILENCE_FRAME } from '../audio/opus.js';
import { SpeechEncoder, OPUS_FRAME_MS } from '../audio/speech-encoder.js';
import type { WavAudio } from '../audio/wav.js';
import { errorInfo, type Logger } from '../log.js';
import { ClipStream } from './clip-stream.js';
import type { PacketSource, PlayerSink, SinkItem } from './speech-queue.js';

/** 5 s of 20 ms frames: a pause between sentences (slow TTS) must not end playback. */
export const MAX_MISSED_FRAMES = 250;

/** How long a new stream waits for the DAVE group before playing anyway. */
const E2EE_WAIT_MS = 3000;

/**
 * Opus packets for one decoded WAV clip, encoded on demand, 20 ms at a time. The encoder is
 * created on the first packet (prefetched clips hold only their samples) and destroyed on close.
 */
export function clipPackets(audio: WavAudio): PacketSource {
  let encoder: SpeechEncoder | undefined;
  let offset = 0;
  const ready: Buffer[] = [];
  let flushed = false;
  let closed = false;
  const samples = audio.samples;
  // The encoder down-mixes any channel count itself; a step must hold whole interleaved frames.
  const ch = audio.channels;
  const step = Math.max(1, Math.round((audio.sampleRate * OPUS_FRAME_MS) / 1000)) * ch;
  return {
    next(): Buffer | null {
      if (closed) return null;
      while (ready.length === 0) {
        encoder ??= new SpeechEncoder({ inputRate: audio.sampleRate, inputChannels: ch });
        if (offset < samples.length) {
          const end = Math.min(samples.length, offset + step);
          ready.push(...encoder.push(samples.subarray(offset, end)));
          offset = end;
        } else if (!flushed) {
          flushed = true;
          ready.push(...encoder.end());
        } else {
          return null;
        }
      }
      return ready.shift() ?? null;
    },
    close(): void {
      if (closed) return;
      closed = true;
      ready.length = 0;
      encoder?.destroy();
    },
  };
}

/** `ms` of Discord silence frames (F8 FF FE): cheap, never DAVE-encrypted, decoded as silence. */
export function silencePackets(ms: number): PacketSource {
  let left = Math.max(0, Math.round(ms / OPUS_FRAME_MS));
  const frame = Buffer.from(OPUS_SILENCE_FRAME);
  return {
    next: () => (left-- > 0 ? frame : null),
    close: () => {
      left = 0;
    },
  };
}

let warmedUp = false;

/**
 * Pays the one-time costs (WASM/JIT of the encoder path, @discordjs/voice building its
 * transformer graph on the first resource) at join time instead of on the first reply chunk,
 * where they would add tens of milliseconds to the first sentence.
 */
export function warmUpDownlink(): void {
  if (warmedUp) return;
  warmedUp = true;
  const rate = 24000;
  const src = clipPackets({ sampleRate: rate, channels: 1, bitsPerSample: 16, format: 'pcm', samples: new Int16Array(rate / 50), frames: rate / 50, durationSec: 0.02 });
  while (src.next()) {
    /* encode the frame and the look-ahead flush */
  }
  src.close();
  const probe = new ClipStream();
  createAudioResource(probe, { inputType: StreamType.Opus });
  probe.discard();
}

/** True when audio played now would be end-to-end encrypted (or DAVE is not in use). */
export function e2eeReady(connection: VoiceConnection | undefined): boolean {
  if (!connection) return false;
  const state = connection.state;
  if (state.status !== 'ready') return false;
  const net = state.networking.state as { code: number; dave?: { protocolVersion: number; session?: { ready?: boolean } } };
  if (net.code !== 4) return false;
  const dave = net.dave;
  if (!dave || dave.protocolVersion === 0) return true;
  return dave.session?.ready === true;
}

export interface DiscordPlayerSinkOptions {
  log: Logger;
  /** The current connection (it changes after a rejoin). */
  connection(): VoiceConnection | undefined;
  /** Require E2EE before starting a stream when DAVE is negotiated. Default true. */
  waitForE2ee?: boolean;
  /** Default Pause (see the module comment); tests without a connection use Play. */
  noSubscriber?: NoSubscriberBehavior;
}

export class DiscordPlayerSink implements PlayerSink {
  readonly player: AudioPlayer;
  private stream: ClipStream | undefined;
  private resource: AudioResource | undefined;
  private startTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private playerErrors = 0;
  private abandoned = 0;
  /** When the character's audio last ended (a clip's end, or a stop): the next clip's gap counts from it. */
  private audioEndedAt: number | undefined;

  constructor(private readonly opts: DiscordPlayerSinkOptions) {
    this.log = opts.log;
    this.player = createAudioPlayer({
      behaviors: { noSubscriber: opts.noSubscriber ?? NoSubscriberBehavior.Pause, maxMissedFrames: MAX_MISSED_FRAMES },
    });
    this.player.on('error', (err) => {
      this.playerErrors++;
      this.log.error({ err: errorInfo(err) }, 'voice: audio player error');
    });
    this.player.on('stateChange', (oldState, newState) => {
      if (newState.status === AudioPlayerStatus.Idle && oldState.status !== AudioPlayerStatus.Idle) this.onPlayerIdle(oldState);
    });
  }

  /** Subscribes the player to a (new) connection. */
  attach(connection: VoiceConnection): void {
    connection.subscribe(this.player);
  }

  get status(): string {
    return this.player.state.status;
  }

  /** Player is paused because the connection is not ready (or was paused by us). */
  get paused(): boolean {
    const s = this.player.state.status;
    return s === AudioPlayerStatus.AutoPaused || s === AudioPlayerStatus.Paused;
  }

  stats(): { playerErrors: number; abandonedClips: number } {
    return { playerErrors: this.playerErrors, abandonedClips: this.abandoned };
  }

  enqueue(item: SinkItem): void {
    if (this.stream && this.stream.add(item)) return;
    if (this.stream) this.audioEndedAt = this.stream.lastEndedAt() ?? this.audioEndedAt;
    const stream = new ClipStream({ lastEndedAt: this.audioEndedAt });
    stream.on('error', (err) => this.log.warn({ err: errorInfo(err) }, 'voice: clip stream error'));
    stream.add(item);
    this.stream = stream;
    this.startWhenSecure(stream, performance.now());
  }

  idle(): void {
    this.stream?.endWhenEmpty();
  }

  stop(): void {
    if (this.startTimer) clearTimeout(this.startTimer);
    this.startTimer = undefined;
    const stream = this.stream;
    this.stream = undefined;
    this.resource = undefined;
    if (stream) this.audioEndedAt = stream.lastEndedAt() ?? this.audioEndedAt;
    // Synchronous: idle now, the resource's stream destroyed, nothing more sent.
    this.player.stop(true);
    stream?.discard();
  }

  destroy(): void {
    this.stop();
    this.player.removeAllListeners('stateChange');
  }

  /** Starts playing `stream` as soon as audio would be encrypted end to end. */
  private startWhenSecure(stream: ClipStream, since: number): void {
    if (this.stream !== stream) return;
    const mustWait = (this.opts.waitForE2ee ?? true) && !e2eeReady(this.opts.connection());
    if (mustWait && performance.now() - since < E2EE_WAIT_MS) {
      this.startTimer = setTimeout(() => this.startWhenSecure(stream, since), 20);
      return;
    }
    this.startTimer = undefined;
    if (mustWait) this.log.warn('voice: DAVE session not ready after 3 s; playing anyway (the connection may be reconnecting)');
    try {
      this.resource = createAudioResource(stream, { inputType: StreamType.Opus });
      this.player.play(this.resource);
    } catch (err) {
      this.log.error({ err: errorInfo(err) }, 'voice: could not start playback');
      this.abandon(stream);
    }
  }

  /**
   * The player went idle. Normal when our stream ended; otherwise (player error, missed-frame
   * limit) the clips it still held would never report "finished" and the reply would wait for
   * the playback contract's safety timer, so they are released now.
   */
  private onPlayerIdle(oldState: { status: string; resource?: AudioResource }): void {
    const stream = oldState.resource?.playStream;
    if (!(stream instanceof ClipStream) || stream !== this.stream) return;
    this.stream = undefined;
    this.resource = undefined;
    this.audioEndedAt = stream.lastEndedAt() ?? this.audioEndedAt;
    if (stream.pendingClips > 0) this.abandon(stream);
  }

  private abandon(stream: ClipStream): void {
    const n = stream.pendingClips;
    if (n === 0) return;
    this.abandoned += n;
    this.log.warn({ clips: n }, 'voice: playback ended early; releasing the clips it still held');
    stream.releaseAll();
  }
}
