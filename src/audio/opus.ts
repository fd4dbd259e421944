/**
 * Opus encoder and decoder on opusscript's own WASM build (libopus 1.4), with opusscript's heap
 * bug fixed.
 *
 * Why not `new OpusScript()`: its JS class allocates byte buffers with `_malloc(len)` and then wraps
 * them as `HEAPU16.subarray(ptr, ptr + len)`: a BYTE address used as a 16-bit ELEMENT index. The
 * C++ glue receives `view.byteOffset` (= 2·ptr), so every PCM read and write happens at twice the
 * allocated address, on top of other live heap objects (other instances' codec state). One or two
 * instances usually survive; with three or more, decodes abort or come out silently wrong
 * (docs: discord-voice.md §5.3; test/audio/opus.test.ts shows it).
 *
 * What the C++ glue (`OpusScriptHandler`, src/opusscript_encoder.cpp upstream) really does, which
 * this wrapper follows exactly:
 * - `_encode(inPtr, bytes, outPtr, frameSize)`: reads the input as ONE PCM BYTE PER 16-BIT SLOT
 *   (slot 2k = low byte of sample k, slot 2k+1 = high byte), compacts it in place with
 *   `for (i = 0; i < bytes; i++) in[i] = in[2i+1] << 8 | in[2i]` (note: it loops over `bytes`,
 *   i.e. twice the sample count, so it READS up to 8 bytes per sample past `inPtr`), then calls
 *   `opus_encode(enc, in, frameSize, out, 3828)`.
 * - `_decode(inPtr, bytes, outPtr)`: `opus_decode(dec, in, bytes, internalPcm, 5760, 0)`, then
 *   writes each sample as two 16-bit slots (low byte, high byte) at `outPtr`: 4 bytes per sample.
 *   An empty packet asks libopus for 5760 samples of concealment (PLC).
 * - `_encoder_ctl(ctl, arg)` / `_decoder_ctl(ctl, arg)`: `opus_*_ctl(st, ctl, arg)`; for GET
 *   requests `arg` is a heap pointer to an int32 (verified: GET_COMPLEXITY reads back 9 by default).
 * - `OpusScriptHandler.destroy_handler(h)` frees both libopus states.
 *
 * So the fix is: allocate 8 bytes per sample for the encoder input and 4 bytes per sample for the
 * decoder output, pass the real byte pointers, and address the heap through views built from the
 * module's CURRENT `WebAssembly.Memory` buffer (memory growth detaches the old views).
 *
 * One WASM module instance per process, shared by all wrapper instances. Why that is safe: JS is
 * single-threaded and every call into the module is synchronous, so no two calls interleave; each
 * instance owns disjoint `_malloc` blocks, sized for the worst case the glue can touch; and no JS
 * view outlives a call. Why it is the right trade: each Emscripten module instance starts with a
 * 16 MB heap (64 decoders on separate modules would cost > 1 GB), while an extra codec on the
 * shared module costs ~100–150 KB. The module is separate from the one opusscript's own class
 * loads (prism-media may use that one), so the two never share a heap.
 *
 * If the WASM code ever traps (it should not: libopus validates packets and reports
 * OPUS_INVALID_PACKET), the Emscripten stack pointer is not restored, so the shared module is
 * retired: the failing call throws, and codecs created afterwards get a fresh module.
 */
import { createRequire } from 'node:module';

const requireCjs = createRequire(import.meta.url);

/** The slice of the WebAssembly API used here (the project's TS lib has no DOM/WebAssembly types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
const Wasm = (globalThis as unknown as { WebAssembly: { Memory: abstract new (...args: never[]) => WasmMemory; RuntimeError: abstract new (...args: never[]) => Error } }).WebAssembly;

/** The Emscripten embind class compiled from opusscript's C++ glue. */
interface NativeHandler {
  _encode(inPtr: number, bytes: number, outPtr: number, frameSize: number): number;
  _decode(inPtr: number, bytes: number, outPtr: number): number;
  _encoder_ctl(ctl: number, arg: number): number;
  _decoder_ctl(ctl: number, arg: number): number;
}

interface NativeModule {
  OpusScriptHandler: {
    new (sampleRate: number, channels: number, application: number): NativeHandler;
    destroy_handler(handler: NativeHandler): void;
  };
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  asm: Record<string, unknown>;
}

/** One loaded module plus fresh-on-demand views of its memory. */
class OpusRuntime {
  readonly native: NativeModule;
  private readonly memory: WasmMemory;
  private viewBuffer: ArrayBufferLike | undefined;
  private u8 = new Uint8Array(0);
  private u32 = new Uint32Array(0);
  private i32 = new Int32Array(0);
  /** A 4-byte cell for GET ctls. */
  readonly scratchPtr: number;
  /** Set once the WASM code trapped: no new codec is created on this runtime. */
  retired = false;
  liveCodecs = 0;

  constructor() {
    const factory = requireCjs('opusscript/build/opusscript_native_wasm.js') as () => NativeModule;
    this.native = factory();
    const memory = Object.values(this.native.asm).find((v) => v instanceof Wasm.Memory);
    if (!(memory instanceof Wasm.Memory)) throw new Error('opusscript WASM build exposes no memory');
    this.memory = memory;
    this.scratchPtr = this.malloc(16);
  }

  get heapBytes(): number {
    return this.memory.buffer.byteLength;
  }

  malloc(bytes: number): number {
    const ptr = this.native._malloc(bytes);
    if (!ptr) throw new Error(`opus heap exhausted (malloc ${bytes} bytes failed)`);
    return ptr;
  }

  /** Views of the current heap. Call after anything that may have grown memory; cheap otherwise. */
  heapU8(): Uint8Array {
    if (this.memory.buffer !== this.viewBuffer) this.refreshViews();
    return this.u8;
  }
  heapU32(): Uint32Array {
    if (this.memory.buffer !== this.viewBuffer) this.refreshViews();
    return this.u32;
  }
  heapI32(): Int32Array {
    if (this.memory.buffer !== this.viewBuffer) this.refreshViews();
    return this.i32;
  }

  private refreshViews(): void {
    const buf = this.memory.buffer;
    this.viewBuffer = buf;
    this.u8 = new Uint8Array(buf);
    this.u32 = new Uint32Array(buf);
    this.i32 = new Int32Array(buf);
  }
}

let currentRuntime: OpusRuntime | undefined;

function runtime(): OpusRuntime {
  if (!currentRuntime || currentRuntime.retired) currentRuntime = new OpusRuntime();
  return currentRuntime;
}

/** libopus error codes (opus_defines.h). */
const OPUS_ERRORS: Record<number, string> = {
  [-1]: 'bad argument',
  [-2]: 'buffer too small',
  [-3]: 'internal error',
  [-4]: 'invalid packet',
  [-5]: 'unimplemented',
  [-6]: 'invalid state',
  [-7]: 'memory allocation failed',
};

/** A packet libopus refused (or could not be given to it). The decoder stays usable. */
export class OpusDecodeError extends Error {
  override readonly name = 'OpusDecodeError';
  /** libopus error code (negative) when libopus reported it; undefined for checks done here. */
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.code = code;
  }
}

/** Encoder misuse (wrong frame length) or a libopus encode/ctl failure. */
export class OpusEncodeError extends Error {
  override readonly name = 'OpusEncodeError';
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.code = code;
  }
}

export type OpusSampleRate = 8000 | 12000 | 16000 | 24000 | 48000;
export type OpusChannels = 1 | 2;
export type OpusApplication = 'voip' | 'audio' | 'lowdelay';
export type OpusSignal = 'auto' | 'voice' | 'music';

export const OPUS_SAMPLE_RATES: readonly OpusSampleRate[] = [8000, 12000, 16000, 24000, 48000];

const APPLICATION_CODES: Record<OpusApplication, number> = { voip: 2048, audio: 2049, lowdelay: 2051 };
const SIGNAL_CODES: Record<OpusSignal, number> = { auto: -1000, voice: 3001, music: 3002 };

/** CTL request numbers (opus_defines.h). */
const CTL = {
  SET_BITRATE: 4002,
  GET_BITRATE: 4003,
  SET_VBR: 4006,
  SET_COMPLEXITY: 4010,
  GET_COMPLEXITY: 4011,
  SET_INBAND_FEC: 4012,
  SET_PACKET_LOSS_PERC: 4014,
  SET_DTX: 4016,
  SET_FORCE_CHANNELS: 4022,
  SET_SIGNAL: 4024,
  GET_LOOKAHEAD: 4027,
  RESET_STATE: 4028,
  GET_LAST_PACKET_DURATION: 4039,
} as const;

/** Largest frame the glue decodes into: 120 ms at 48 kHz (MAX_FRAME_SIZE in the glue). */
const MAX_FRAME_SAMPLES = 5760;
/** max_data_bytes the glue passes to opus_encode. */
const MAX_ENCODED_BYTES = 1276 * 3;
/** Largest packet accepted for decoding (120 ms at the 510 kb/s ceiling is 7650 bytes). */
export const MAX_OPUS_PACKET_BYTES = 8192;

function checkRate(sampleRate: number): void {
  if (!OPUS_SAMPLE_RATES.includes(sampleRate as OpusSampleRate)) {
    throw new RangeError(`Opus sample rate must be one of ${OPUS_SAMPLE_RATES.join(', ')}, got ${sampleRate}`);
  }
}
function checkChannels(channels: number): void {
  if (channels !== 1 && channels !== 2) throw new RangeError(`Opus channels must be 1 or 2, got ${channels}`);
}

/** Frees the native side of codecs that were dropped without destroy(). */
const leakGuard = new FinalizationRegistry<() => void>((free) => free());

/** Shared lifecycle: one native handler (encoder+decoder state, as the glue builds both) + heap blocks. */
abstract class OpusCodecBase {
  readonly sampleRate: OpusSampleRate;
  readonly channels: OpusChannels;
  protected readonly rt: OpusRuntime;
  protected handler: NativeHandler | undefined;
  private readonly ptrs: number[];
  private readonly unregisterToken = {};

  protected constructor(sampleRate: OpusSampleRate, channels: OpusChannels, application: number, blockSizes: number[]) {
    checkRate(sampleRate);
    checkChannels(channels);
    this.sampleRate = sampleRate;
    this.channels = channels;
    const rt = runtime();
    this.rt = rt;
    const handler = new rt.native.OpusScriptHandler(sampleRate, channels, application);
    const ptrs: number[] = [];
    try {
      for (const size of blockSizes) ptrs.push(rt.malloc(size));
    } catch (err) {
      for (const p of ptrs) rt.native._free(p);
      rt.native.OpusScriptHandler.destroy_handler(handler);
      throw err;
    }
    this.handler = handler;
    this.ptrs = ptrs;
    rt.liveCodecs++;
    leakGuard.register(this, () => releaseNative(rt, handler, ptrs), this.unregisterToken);
  }

  protected ptr(index: number): number {
    return this.ptrs[index]!;
  }

  protected live(): NativeHandler {
    if (!this.handler) throw new Error(`${this.constructor.name} used after destroy()`);
    return this.handler;
  }

  /** Runs a native call; a WASM trap retires the shared module (see the file comment). */
  protected guarded<T>(call: () => T, wrap: (message: string) => Error): T {
    try {
      return call();
    } catch (err) {
      if (err instanceof Wasm.RuntimeError) {
        this.rt.retired = true;
        throw wrap(`opus WASM fault (${err.message}); codec module retired`);
      }
      throw err;
    }
  }

  protected getCtl(isEncoder: boolean, ctl: number): number {
    const h = this.live();
    const cell = this.rt.scratchPtr;
    const rc = isEncoder ? h._encoder_ctl(ctl, cell) : h._decoder_ctl(ctl, cell);
    if (rc < 0) throw new Error(`opus ctl ${ctl} failed: ${OPUS_ERRORS[rc] ?? rc}`);
    return this.rt.heapI32()[cell >> 2]!;
  }

  protected setCtl(isEncoder: boolean, ctl: number, value: number): void {
    const h = this.live();
    const rc = isEncoder ? h._encoder_ctl(ctl, value) : h._decoder_ctl(ctl, value);
    if (rc < 0) {
      const msg = `opus ctl ${ctl}(${value}) failed: ${OPUS_ERRORS[rc] ?? rc}`;
      throw isEncoder ? new OpusEncodeError(msg, rc) : new OpusDecodeError(msg, rc);
    }
  }

  get destroyed(): boolean {
    return this.handler === undefined;
  }

  /** Frees the native state. Idempotent. */
  destroy(): void {
    const h = this.handler;
    if (!h) return;
    this.handler = undefined;
    leakGuard.unregister(this.unregisterToken);
    releaseNative(this.rt, h, this.ptrs);
  }
}

function releaseNative(rt: OpusRuntime, handler: NativeHandler, ptrs: number[]): void {
  rt.native.OpusScriptHandler.destroy_handler(handler);
  for (const p of ptrs) rt.native._free(p);
  rt.liveCodecs--;
}

/**
 * Opus decoder producing interleaved 16-bit PCM at `sampleRate` (libopus band-limits properly
 * when decoding a 48 kHz stream at 8–24 kHz, and down-mixes stereo packets for a mono decoder).
 */
export class OpusDecoder extends OpusCodecBase {
  /** Block 0: packet input. Block 1: PCM output, 4 bytes per sample as the glue writes it. */
  constructor(sampleRate: OpusSampleRate, channels: OpusChannels) {
    super(sampleRate, channels, APPLICATION_CODES.audio, [MAX_OPUS_PACKET_BYTES, MAX_FRAME_SAMPLES * channels * 4]);
  }

  /**
   * Decodes one packet. Throws {@link OpusDecodeError} for an empty, oversize or invalid packet;
   * the decoder keeps its state and stays usable.
   */
  decode(packet: Uint8Array): Int16Array {
    const h = this.live();
    const n = packet.length;
    if (n === 0) throw new OpusDecodeError('empty Opus packet');
    if (n > MAX_OPUS_PACKET_BYTES) throw new OpusDecodeError(`Opus packet too large (${n} bytes)`);
    const inPtr = this.ptr(0);
    const outPtr = this.ptr(1);
    this.rt.heapU8().set(packet, inPtr);
    const frames = this.guarded(
      () => h._decode(inPtr, n, outPtr),
      (m) => new OpusDecodeError(m),
    );
    if (frames < 0) throw new OpusDecodeError(`Opus decode failed: ${OPUS_ERRORS[frames] ?? frames}`, frames);
    return this.readPcm(outPtr, frames * this.channels);
  }

  /**
   * Packet-loss concealment for `samplesPerChannel` samples (e.g. one 20 ms frame). The glue can
   * only ask libopus for its maximum (5760 samples per channel, 120 ms at 48 kHz / 360 ms at
   * 16 kHz) of concealment, so the decoder's internal clock jumps by that much; the first
   * `samplesPerChannel` samples are returned. Good enough for a lost packet or two; for longer
   * gaps insert silence instead.
   */
  decodeLoss(samplesPerChannel: number): Int16Array {
    const h = this.live();
    const want = Math.max(0, Math.min(MAX_FRAME_SAMPLES, Math.floor(samplesPerChannel)));
    const outPtr = this.ptr(1);
    const frames = this.guarded(
      () => h._decode(this.ptr(0), 0, outPtr),
      (m) => new OpusDecodeError(m),
    );
    if (frames < 0) throw new OpusDecodeError(`Opus concealment failed: ${OPUS_ERRORS[frames] ?? frames}`, frames);
    return this.readPcm(outPtr, Math.min(want, frames) * this.channels);
  }

  /** Duration in samples per channel of the last decoded packet. */
  lastPacketDuration(): number {
    return this.getCtl(false, CTL.GET_LAST_PACKET_DURATION);
  }

  /** Forgets the stream history (as after a new speaker or a long gap). */
  reset(): void {
    this.setCtl(false, CTL.RESET_STATE, 0);
  }

  private readPcm(outPtr: number, count: number): Int16Array {
    const out = new Int16Array(count);
    const u32 = this.rt.heapU32();
    const base = outPtr >> 2;
    for (let i = 0; i < count; i++) {
      // Slot pair (lo byte, hi byte) read as one little-endian uint32: lo | hi << 16.
      const v = u32[base + i]!;
      out[i] = ((v >>> 8) & 0xff00) | (v & 0xff);
    }
    return out;
  }
}

export interface OpusEncoderSettings {
  bitrate?: number;
  complexity?: number;
  signal?: OpusSignal;
  vbr?: boolean;
  inbandFec?: boolean;
  packetLossPercent?: number;
  dtx?: boolean;
  /** 1 forces mono coding from a stereo encoder; 'auto' lets libopus decide. */
  forceChannels?: 1 | 2 | 'auto';
}

/** Opus encoder taking interleaved 16-bit PCM frames at `sampleRate`. */
export class OpusEncoder extends OpusCodecBase {
  readonly application: OpusApplication;

  /** Block 0: PCM input, 8 bytes per sample (see the glue's compaction loop). Block 1: packet output. */
  constructor(sampleRate: OpusSampleRate, channels: OpusChannels, application: OpusApplication = 'audio', settings: OpusEncoderSettings = {}) {
    if (!(application in APPLICATION_CODES)) throw new RangeError(`unknown Opus application ${String(application)}`);
    super(sampleRate, channels, APPLICATION_CODES[application], [MAX_FRAME_SAMPLES * channels * 8, MAX_ENCODED_BYTES + 4]);
    this.application = application;
    this.configure(settings);
  }

  /** Applies several settings at once. */
  configure(settings: OpusEncoderSettings): void {
    if (settings.bitrate !== undefined) this.setBitrate(settings.bitrate);
    if (settings.complexity !== undefined) this.setComplexity(settings.complexity);
    if (settings.signal !== undefined) this.setSignal(settings.signal);
    if (settings.vbr !== undefined) this.setCtl(true, CTL.SET_VBR, settings.vbr ? 1 : 0);
    if (settings.inbandFec !== undefined) this.setCtl(true, CTL.SET_INBAND_FEC, settings.inbandFec ? 1 : 0);
    if (settings.packetLossPercent !== undefined) this.setCtl(true, CTL.SET_PACKET_LOSS_PERC, settings.packetLossPercent);
    if (settings.dtx !== undefined) this.setCtl(true, CTL.SET_DTX, settings.dtx ? 1 : 0);
    if (settings.forceChannels !== undefined) {
      this.setCtl(true, CTL.SET_FORCE_CHANNELS, settings.forceChannels === 'auto' ? -1000 : settings.forceChannels);
    }
  }

  /** Target bitrate in bit/s (500–512000). */
  setBitrate(bps: number): void {
    if (!Number.isInteger(bps) || bps < 500 || bps > 512_000) throw new RangeError(`Opus bitrate out of range: ${bps}`);
    this.setCtl(true, CTL.SET_BITRATE, bps);
  }
  getBitrate(): number {
    return this.getCtl(true, CTL.GET_BITRATE);
  }
  /** 0 (cheapest) to 10 (best). libopus defaults to 9. */
  setComplexity(complexity: number): void {
    if (!Number.isInteger(complexity) || complexity < 0 || complexity > 10) throw new RangeError(`Opus complexity must be 0..10, got ${complexity}`);
    this.setCtl(true, CTL.SET_COMPLEXITY, complexity);
  }
  getComplexity(): number {
    return this.getCtl(true, CTL.GET_COMPLEXITY);
  }
  setSignal(signal: OpusSignal): void {
    this.setCtl(true, CTL.SET_SIGNAL, SIGNAL_CODES[signal]);
  }
  /** Encoder look-ahead in samples at `sampleRate` (the codec's algorithmic delay). */
  lookahead(): number {
    return this.getCtl(true, CTL.GET_LOOKAHEAD);
  }
  reset(): void {
    this.setCtl(true, CTL.RESET_STATE, 0);
  }

  /**
   * Encodes exactly one frame: `pcm.length / channels` must be 2.5, 5, 10, 20, 40 or 60 ms of
   * samples at `sampleRate`. Returns the packet (a fresh Buffer).
   */
  encode(pcm: Int16Array): Buffer {
    const h = this.live();
    const ch = this.channels;
    const total = pcm.length;
    const frameSize = total / ch;
    const unit = this.sampleRate / 400; // 2.5 ms
    if (!Number.isInteger(frameSize) || frameSize % unit !== 0 || ![1, 2, 4, 8, 16, 24].includes(frameSize / unit)) {
      throw new OpusEncodeError(`Opus frame must be 2.5/5/10/20/40/60 ms at ${this.sampleRate} Hz × ${ch} ch, got ${total} samples`);
    }
    const inPtr = this.ptr(0);
    const outPtr = this.ptr(1);
    const u32 = this.rt.heapU32();
    const base = inPtr >> 2;
    for (let i = 0; i < total; i++) {
      const s = pcm[i]!;
      // One PCM byte per 16-bit slot: (lo, hi) written as one little-endian uint32.
      u32[base + i] = (s & 0xff) | ((s & 0xff00) << 8);
    }
    const len = this.guarded(
      () => h._encode(inPtr, total * 2, outPtr, frameSize),
      (m) => new OpusEncodeError(m),
    );
    if (len < 0) throw new OpusEncodeError(`Opus encode failed: ${OPUS_ERRORS[len] ?? len}`, len);
    return Buffer.from(this.rt.heapU8().subarray(outPtr, outPtr + len));
  }
}

/** Diagnostics: how many codecs are alive on the current shared module. */
export function opusLiveCodecs(): number {
  return currentRuntime?.liveCodecs ?? 0;
}

/** Diagnostics: size of the shared module's heap in bytes (it grows, never shrinks). */
export function opusHeapBytes(): number {
  return currentRuntime?.heapBytes ?? 0;
}

/** Discord's silence frame (sent five times before a pause). */
export const OPUS_SILENCE_FRAME: Readonly<Uint8Array> = Uint8Array.of(0xf8, 0xff, 0xfe);
