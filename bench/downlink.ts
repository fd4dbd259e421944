/**
 * Downlink CPU per second of speech played.
 *
 * Input: a 24 kHz mono 16-bit TTS WAV of speech-like audio (the Voxta simulator's and common TTS
 * servers' format).
 *
 * Every arm gets the WAV the way the bot does: an HTTP GET to a local server in this process
 * (so the client-side download cost is in every arm, and the server's in every run alike).
 *
 * Ours: exactly what the bot does for a reply chunk (src/voice/guild-voice.ts) — `openSpeech`
 * (progressive download, WAV parsed chunk by chunk with `parseWav`) → `progressivePackets`
 * (SpeechEncoder with its deployed defaults) → a `ClipStream`, read packet by packet as the
 * AudioPlayer does with `StreamType.Opus`. With the defaults a 24 kHz source is encoded by a
 * 24 kHz Opus encoder (Opus packets carry no sample rate; every decoder renders 48 kHz), so there is
 * no resampling step at all. A second row forces a 48 kHz encoder (whole body → `parseWav` →
 * polyphase resample 24 → 48 kHz → full-band encode), the path the issue describes literally.
 *
 * Baseline: prism-media's `StreamType.Raw` path as @discordjs/voice builds it — ONE long-lived
 * `new prism.opus.Encoder({ rate: 48000, channels: 2, frameSize: 960 })` (opusscript backend at its
 * defaults), fed 48 kHz stereo s16le in 64 KiB writes (a file or HTTP stream), its packets taken
 * from the stream's 'data' events. Getting there the way a typical bot does: the WAV header is
 * skipped (44 bytes), then linear interpolation 24 → 48 kHz with each sample duplicated to
 * stereo — no filter, no ffmpeg.
 *
 * Only one opusscript instance (the buggy class, docs/discord-voice.md §5.3) exists in the process.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import prism from 'prism-media';
import { parseWav, type WavAudio } from '../src/audio/wav.js';
import { VoxtaEndpoint } from '../src/voxta/endpoint.js';
import { SpeechEncoder } from '../src/audio/speech-encoder.js';
import { ClipStream } from '../src/voice/clip-stream.js';
import { clipPackets } from '../src/voice/downlink.js';
import type { PacketSource, SinkItem } from '../src/voice/speech-queue.js';
import { openSpeech, progressivePackets } from '../src/voice/tts-stream.js';
import { LinearResampler } from './lib/naive.js';
import type { BenchOptions } from './lib/options.js';
import type { SectionResult } from './lib/report.js';
import { speechLike, wavFile } from './lib/signals.js';
import { interleave, pairedRatios, ratio, scaleStat, stat } from './lib/stats.js';

/** clipPackets with the encoder forced to 48 kHz (same framing and flush as the deployed one). */
function clipPackets48k(audio: WavAudio): PacketSource {
  const enc = new SpeechEncoder({ inputRate: audio.sampleRate, inputChannels: audio.channels === 2 ? 2 : 1, opusRate: 48000 });
  const step = Math.round(audio.sampleRate / 50) * (audio.channels === 2 ? 2 : 1);
  let offset = 0;
  let flushed = false;
  const ready: Buffer[] = [];
  return {
    next() {
      while (ready.length === 0) {
        if (offset < audio.samples.length) {
          const end = Math.min(audio.samples.length, offset + step);
          ready.push(...enc.push(audio.samples.subarray(offset, end)));
          offset = end;
        } else if (!flushed) {
          flushed = true;
          ready.push(...enc.end());
        } else return null;
      }
      return ready.shift() ?? null;
    },
    close() {
      enc.destroy();
    },
  };
}

/** Plays one clip through a ClipStream the way the AudioPlayer reads it; resolves with the packet count. */
export async function playThroughClipStream(source: PacketSource, durationSec: number): Promise<number> {
  const stream = new ClipStream();
  let finished = false;
  const item: SinkItem = {
    id: 1,
    messageId: 'bench',
    durationSec,
    source,
    started() {},
    finished() {
      finished = true;
    },
  };
  stream.add(item);
  stream.endWhenEmpty();
  let packets = 0;
  for await (const _packet of stream) packets++;
  if (!finished) throw new Error('bench: the clip stream did not finish its clip');
  return packets;
}

/** Serves one WAV over HTTP on loopback (a TTS server). */
export async function wavServer(wav: Buffer): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': wav.length });
    res.end(wav);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/tts.wav`, server };
}

/** One long-lived prism Raw encoder and a way to push a run of PCM through it. */
class PrismRawPath {
  private readonly encoder: prism.opus.Encoder;
  private packets = 0;
  private bytesIn = 0;
  private waiting: { target: number; resolve: () => void } | undefined;

  constructor() {
    this.encoder = new prism.opus.Encoder({ rate: 48000, channels: 2, frameSize: 960 });
    this.encoder.on('data', () => {
      this.packets++;
      if (this.waiting && this.packets >= this.waiting.target) {
        const w = this.waiting;
        this.waiting = undefined;
        w.resolve();
      }
    });
  }

  /** Starts the stream flowing (a Readable delivers synchronously only once it flows). */
  async ready(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** Typical bot: download, skip the 44-byte header, linear-resample to 48 kHz stereo, write in 64 KiB pieces. */
  async play(source: string | Buffer): Promise<number> {
    const wav = typeof source === 'string' ? Buffer.from(await (await fetch(source)).arrayBuffer()) : source;
    const pcm = wav.subarray(44);
    const samples = new Int16Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + (pcm.byteLength & ~1)));
    const rate = wav.readUInt32LE(24);
    const stereo48 = new LinearResampler(rate, 48000, 1, true).process(samples);
    const bytes = Buffer.from(stereo48.buffer, stereo48.byteOffset, stereo48.byteLength);
    const before = this.packets;
    this.bytesIn += bytes.length;
    const target = Math.floor(this.bytesIn / 3840);
    const done = new Promise<void>((resolve) => {
      if (this.packets >= target) resolve();
      else this.waiting = { target, resolve };
    });
    for (let at = 0; at < bytes.length; at += 65536) this.encoder.write(bytes.subarray(at, Math.min(bytes.length, at + 65536)));
    await done;
    return this.packets - before;
  }

  close(): void {
    this.encoder.destroy();
  }
}

export async function benchDownlink(o: BenchOptions): Promise<SectionResult> {
  const seconds = o.quick ? 1 : 8;
  const rounds = o.quick ? 2 : 21;
  const rate = 24000;
  o.progress(`downlink: ${seconds} s speech-like 24 kHz mono WAV, ${rounds} interleaved rounds`);
  const wav = wavFile(speechLike(rate, seconds, 3), rate, 1);
  const { url, server } = await wavServer(wav);
  const endpoint = new VoxtaEndpoint({ url: new URL('/', url).href });
  const prismPath = new PrismRawPath();
  await prismPath.ready();
  try {
    const expect = Math.ceil(seconds * 50);
    const runOurs = async () => {
      const clip = await openSpeech(endpoint, url, new AbortController().signal);
      return playThroughClipStream(progressivePackets(clip), clip.durationSec);
    };
    const runOurs48 = async () => {
      const audio = parseWav(new Uint8Array(await (await fetch(url)).arrayBuffer()));
      return playThroughClipStream(clipPackets48k(audio), audio.durationSec);
    };
    // The same work without the download (the WAV already in memory): DSP and codec only.
    const runOursMem = () => {
      const audio = parseWav(wav);
      return playThroughClipStream(clipPackets(audio), audio.durationSec);
    };
    // Correctness check before timing: each path yields the clip's packets.
    const counts = [await runOurs(), await runOurs48(), await runOursMem(), await prismPath.play(url), await prismPath.play(wav)];
    if (counts.some((c) => c < expect - 2 || c > expect + 3)) throw new Error(`downlink paths produced ${counts.join(' / ')} packets, expected ≈${expect}`);
    const samples = await interleave(
      [
        { name: 'ours', run: runOurs },
        { name: 'baseline', run: () => prismPath.play(url) },
        { name: 'ours48', run: runOurs48 },
        { name: 'oursMem', run: runOursMem },
        { name: 'baselineMem', run: () => prismPath.play(wav) },
      ],
      { warmup: o.quick ? 1 : 3, rounds },
    );
    const cpu = (name: string) => samples.get(name)!.map((s) => s.cpuMs);
    const perSec = 1 / seconds;
    const ours = scaleStat(stat(cpu('ours')), perSec);
    const ours48 = scaleStat(stat(cpu('ours48')), perSec);
    const base = scaleStat(stat(cpu('baseline')), perSec);
    const oursMem = scaleStat(stat(cpu('oursMem')), perSec);
    const baseMem = scaleStat(stat(cpu('baselineMem')), perSec);
    return {
      name: 'downlink',
      rows: [
        {
          section: 'downlink',
          figure: 'Downlink CPU per second played (24 kHz WAV, deployed path)',
          unit: 'ms CPU / s of speech',
          ours,
          baseline: base,
          ratio: ratio(ours, base),
          ratioRange: pairedRatios(cpu('ours'), cpu('baseline')),
          target: { on: 'ratio', op: '<=', value: 0.5 },
          digits: 3,
        },
        {
          section: 'downlink',
          figure: 'Downlink CPU, forced 48 kHz (resample 24→48 + full-band encode)',
          unit: 'ms CPU / s of speech',
          ours: ours48,
          baseline: base,
          ratio: ratio(ours48, base),
          ratioRange: pairedRatios(cpu('ours48'), cpu('baseline')),
          target: { on: 'ratio', op: '<=', value: 0.5 },
          digits: 3,
        },
        {
          section: 'downlink',
          figure: 'Downlink CPU, WAV already in memory (parse + encode only, no download)',
          unit: 'ms CPU / s of speech',
          ours: oursMem,
          baseline: baseMem,
          ratio: ratio(oursMem, baseMem),
          ratioRange: pairedRatios(cpu('oursMem'), cpu('baselineMem')),
          target: { on: 'ratio', op: '<=', value: 0.5 },
          digits: 3,
        },
      ],
      notes: [
        `Downlink: ${seconds} s WAV per run fetched over loopback HTTP in every arm (except the "in memory" pair: parseWav → clipPackets → ClipStream vs header skip → linear → prism), ${rounds} rounds interleaved (5 arms rotating). Ours = openSpeech (progressive download + parseWav) → progressivePackets (SpeechEncoder defaults: 24 kHz Opus encoder for a 24 kHz source, stereo packets, 'audio', 48 kb/s, complexity 3) → ClipStream read like the AudioPlayer.`,
        'Baseline = fetch → skip 44-byte header → linear interpolation 24→48 kHz duplicated to stereo → one long-lived prism.opus.Encoder({rate:48000, channels:2, frameSize:960}) on opusscript defaults, written in 64 KiB pieces (the Raw path of createAudioResource, without ffmpeg).',
      ],
      details: {
        seconds,
        pairedRatio: pairedRatios(cpu('ours'), cpu('baseline')),
        pairedRatio48k: pairedRatios(cpu('ours48'), cpu('baseline')),
        wallMsPerRun: Object.fromEntries([...samples].map(([k, v]) => [k, stat(v.map((s) => s.wallMs))])),
      },
    };
  } finally {
    prismPath.close();
    server.closeAllConnections();
    server.close();
  }
}
