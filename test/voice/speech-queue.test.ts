import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { PlaybackContract } from '../../src/voxta/playback-contract.js';
import type { ClientMessage } from '../../src/voxta/messages.js';
import { SpeechQueue, type PacketSource, type PlayerSink, type SinkItem, type SpeechChunk } from '../../src/voice/speech-queue.js';

const log = pino({ level: 'silent' });

/** A download the test resolves or rejects by hand, in any order. */
interface Deferred {
  url: string;
  signal: AbortSignal;
  resolve(bytes: Uint8Array): void;
  reject(err: Error): void;
}

/** A player stand-in: records clips, and plays them when the test says so. */
class FakeSink implements PlayerSink {
  items: SinkItem[] = [];
  played: { id: number; messageId: string; packets: number }[] = [];
  stops = 0;
  idles = 0;
  enqueue(item: SinkItem): void {
    this.items.push(item);
  }
  stop(): void {
    this.stops++;
    for (const i of this.items) i.source.close();
    this.items = [];
  }
  idle(): void {
    this.idles++;
  }
  /** Plays the first clip to its end. */
  playOne(): void {
    const item = this.items.shift();
    if (!item) throw new Error('nothing to play');
    let n = 0;
    for (let p = item.source.next(); p; p = item.source.next()) {
      if (n === 0) item.started();
      n++;
    }
    if (n === 0) item.started(); // a clip without packets starts (and ends) when its turn comes
    item.source.close();
    this.played.push({ id: item.id, messageId: item.messageId, packets: n });
    item.finished();
  }
  /** Starts the first clip (first packet taken) without finishing it. */
  startOne(): SinkItem {
    const item = this.items[0];
    if (!item) throw new Error('nothing to start');
    item.source.next();
    item.started();
    return item;
  }
  playAll(): void {
    while (this.items.length) this.playOne();
  }
}

function setup(opts: { maxInFlight?: number } = {}) {
  const downloads: Deferred[] = [];
  const sent: ClientMessage[] = [];
  const contract = new PlaybackContract({ send: (m) => sent.push(m), sessionId: () => 'sess-1' }, { autoAcknowledge: false, log });
  const sink = new FakeSink();
  const latencies: number[] = [];
  const playback: Array<number | undefined> = [];
  let t = 0;
  const queue = new SpeechQueue<{ durationSec: number; frames: number }>({
    playback: contract,
    sink,
    log,
    now: () => t,
    maxInFlight: opts.maxInFlight,
    fetchAudio: (url, signal) =>
      new Promise<Uint8Array>((resolve, reject) => {
        downloads.push({ url, signal, resolve, reject });
      }),
    // "Audio" in these tests: byte 0 = number of 20 ms frames; 255 = not audio.
    decode: (bytes) => {
      if (bytes[0] === 255) throw new Error('not a WAV file');
      return { durationSec: (bytes[0]! * 20) / 1000, frames: bytes[0]! };
    },
    packets: (audio) => counter(audio.frames),
    onFirstPacketLatency: (ms) => latencies.push(ms),
    onPlaybackChange: (since) => playback.push(since),
  });
  const download = (url: string) => {
    const d = downloads.find((x) => x.url === url);
    if (!d) throw new Error(`no download for ${url}`);
    return d;
  };
  const flush = () => new Promise((r) => setImmediate(r));
  return {
    queue,
    sink,
    sent,
    contract,
    downloads,
    download,
    flush,
    latencies,
    playback,
    setTime: (v: number) => (t = v),
    starts: (messageId?: string) =>
      sent.filter((m) => m.$type === 'speechPlaybackStart' && (!messageId || m.messageId === messageId)) as Extract<ClientMessage, { $type: 'speechPlaybackStart' }>[],
    completes: (messageId?: string) => sent.filter((m) => m.$type === 'speechPlaybackComplete' && (!messageId || m.messageId === messageId)),
    /** What the chat session does on replyEnd, plus the voice pipeline's part. */
    replyEnd: (messageId: string) => {
      contract.replyEnded(messageId);
      queue.replyEnded(messageId);
    },
  };
}

function counter(n: number): PacketSource & { closed: boolean } {
  let i = 0;
  return {
    closed: false,
    next() {
      return i < n ? Buffer.from([i++]) : null;
    },
    close() {
      this.closed = true;
    },
  };
}

const chunk = (messageId: string, i: number, audioUrl: string): SpeechChunk => ({
  messageId,
  audioUrl,
  startIndex: i * 10,
  endIndex: i * 10 + 9,
  isNarration: false,
});

describe('SpeechQueue', () => {
  it('prefetches every chunk at once and plays strictly in arrival order when downloads finish out of order', async () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, '/api/tts/gens/a'));
    s.queue.push(chunk('m1', 1, '/api/tts/gens/b'));
    s.queue.push(chunk('m1', 2, '/api/tts/gens/c'));
    expect(s.downloads.map((d) => d.url)).toEqual(['/api/tts/gens/a', '/api/tts/gens/b', '/api/tts/gens/c']);
    s.download('/api/tts/gens/c').resolve(Uint8Array.of(30));
    s.download('/api/tts/gens/b').resolve(Uint8Array.of(20));
    await s.flush();
    expect(s.sink.items).toHaveLength(0); // the first clip is not there yet: nothing may play
    s.download('/api/tts/gens/a').resolve(Uint8Array.of(10));
    await s.flush();
    expect(s.sink.items.map((i) => i.durationSec)).toEqual([0.2, 0.4, 0.6]);
    s.replyEnd('m1');
    s.sink.playAll();
    expect(s.starts().map((m) => [m.startIndex, m.duration])).toEqual([
      [0, 0.2],
      [10, 0.4],
      [20, 0.6],
    ]);
    expect(s.sink.played.map((p) => p.packets)).toEqual([10, 20, 30]);
    expect(s.completes('m1')).toHaveLength(1);
    expect(s.queue.stats()).toMatchObject({ chunksReceived: 3, chunksPlayed: 3, downloadFailures: 0 });
  });

  it('sends the complete only after replyEnd AND the last clip played', async () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, '/a'));
    s.download('/a').resolve(Uint8Array.of(5));
    await s.flush();
    s.sink.playOne();
    expect(s.completes()).toHaveLength(0); // played, but the reply has not ended: more may come
    s.queue.push(chunk('m1', 1, '/b'));
    s.replyEnd('m1');
    expect(s.completes()).toHaveLength(0); // ended, but /b is still downloading
    s.download('/b').resolve(Uint8Array.of(5));
    await s.flush();
    s.sink.playOne();
    expect(s.completes('m1')).toHaveLength(1);
  });

  it('limits downloads in flight and starts the next as one finishes', async () => {
    const s = setup({ maxInFlight: 2 });
    for (let i = 0; i < 4; i++) s.queue.push(chunk('m1', i, `/u${i}`));
    expect(s.downloads.map((d) => d.url)).toEqual(['/u0', '/u1']);
    s.download('/u1').resolve(Uint8Array.of(1));
    await s.flush();
    expect(s.downloads.map((d) => d.url)).toEqual(['/u0', '/u1', '/u2']);
  });

  it('interrupt stops the player, aborts downloads, drops late downloads (epoch) and yields exactly one complete', async () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, '/a'));
    s.queue.push(chunk('m1', 1, '/b'));
    s.download('/a').resolve(Uint8Array.of(50));
    await s.flush();
    s.sink.startOne(); // /a is playing, /b still downloading
    expect(s.queue.playing).toBe(true);
    const aborted = s.queue.interrupt();
    expect(aborted).toEqual(['m1']);
    expect(s.sink.stops).toBe(1);
    expect(s.download('/b').signal.aborted).toBe(true);
    // The late download completes anyway (a fetcher that ignores the signal): it must not play.
    s.download('/b').resolve(Uint8Array.of(10));
    await s.flush();
    expect(s.sink.items).toHaveLength(0);
    expect(s.queue.stats().lateDownloadsDropped).toBe(1);
    // replyCancelled/replyEnd follow the interruption on a real server.
    s.replyEnd('m1');
    s.replyEnd('m1');
    expect(s.completes('m1')).toHaveLength(1);
    expect(s.starts('m1')).toHaveLength(1);
    // A new reply after the interruption plays normally.
    s.queue.push(chunk('m2', 0, '/c'));
    s.download('/c').resolve(Uint8Array.of(3));
    await s.flush();
    s.replyEnd('m2');
    s.sink.playAll();
    expect(s.completes('m2')).toHaveLength(1);
  });

  it('a 404 or a non-audio file is acknowledged with duration 0 in order, and the reply still completes once', async () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, '/ok'));
    s.queue.push(chunk('m1', 1, '/missing'));
    s.queue.push(chunk('m1', 2, '/garbage'));
    s.queue.push(chunk('m1', 3, '/ok2'));
    s.download('/missing').reject(new Error('HTTP 404'));
    s.download('/garbage').resolve(Uint8Array.of(255));
    s.download('/ok2').resolve(Uint8Array.of(2));
    await s.flush();
    expect(s.starts()).toHaveLength(0); // nothing may be acknowledged before the first chunk
    s.download('/ok').resolve(Uint8Array.of(4));
    await s.flush();
    s.replyEnd('m1');
    s.sink.playAll();
    expect(s.starts().map((m) => [m.startIndex, m.duration])).toEqual([
      [0, 0.08],
      [10, 0],
      [20, 0],
      [30, 0.04],
    ]);
    expect(s.completes('m1')).toHaveLength(1);
    expect(s.queue.stats()).toMatchObject({ downloadFailures: 1, decodeFailures: 1, chunksPlayed: 2, chunksWithoutAudio: 2 });
  });

  it('a reply whose every download fails still completes exactly once', async () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, '/x'));
    s.replyEnd('m1');
    s.download('/x').reject(new Error('HTTP 502'));
    await s.flush();
    s.sink.playAll();
    expect(s.starts('m1').map((m) => m.duration)).toEqual([0]);
    expect(s.completes('m1')).toHaveLength(1);
  });

  it('"" and silence:<ms> are acknowledged with 0 in their turn, without a download or dead air, and the reply completes once', async () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, '/a'));
    s.queue.push(chunk('m1', 1, ''));
    s.queue.push(chunk('m1', 2, 'silence:680'));
    expect(s.downloads).toHaveLength(1);
    s.replyEnd('m1');
    s.download('/a').resolve(Uint8Array.of(3));
    await s.flush();
    expect(s.starts()).toHaveLength(0); // in order: after the clip before them
    s.sink.playAll();
    expect(s.starts().map((m) => m.duration)).toEqual([0.06, 0, 0]);
    // No silence is played for silence:680 (the companion acknowledges it at once, 0 s).
    expect(s.sink.played.map((p) => p.packets)).toEqual([3, 0, 0]);
    expect(s.completes('m1')).toHaveLength(1);
  });

  it('a reply of silence:<ms> chunks only (TTS off) is acknowledged at once, without the player, and completes exactly once', () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, 'silence:500'));
    s.queue.push(chunk('m1', 1, 'silence:900'));
    s.replyEnd('m1');
    // Nothing was given to the player: no stream, no padding frames.
    expect(s.sink.items).toHaveLength(0);
    expect(s.starts('m1').map((m) => m.duration)).toEqual([0, 0]);
    expect(s.completes('m1')).toHaveLength(1);
    expect(s.playback).toEqual([]); // nothing audible
  });

  it('audioGapMs reaches the player with clips that have audio, not with empty ones', async () => {
    const s = setup();
    s.queue.push({ ...chunk('m1', 0, '/a'), audioGapMs: 250 });
    s.queue.push({ ...chunk('m1', 1, ''), audioGapMs: 250 });
    s.queue.push(chunk('m1', 2, '/b'));
    s.download('/a').resolve(Uint8Array.of(2));
    s.download('/b').resolve(Uint8Array.of(2));
    await s.flush();
    expect(s.sink.items.map((i) => i.gapMs)).toEqual([250, undefined, undefined]);
  });

  it('reports when the character becomes audible and silent again', async () => {
    const s = setup();
    s.setTime(100);
    s.queue.push(chunk('m1', 0, '/a'));
    s.download('/a').resolve(Uint8Array.of(2));
    await s.flush();
    s.sink.startOne();
    expect(s.playback).toEqual([100]);
    s.queue.interrupt();
    expect(s.playback).toEqual([100, undefined]);
  });

  it('a text-only reply (all chunks without audio) completes right after replyEnd', () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, ''));
    s.queue.push(chunk('m1', 1, ''));
    s.replyEnd('m1');
    s.sink.playAll();
    expect(s.starts('m1').map((m) => m.duration)).toEqual([0, 0]);
    expect(s.completes('m1')).toHaveLength(1);
  });

  it('replyCancelled while playing stops playback and completes once; before playing it only drops that reply', async () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, '/a'));
    s.download('/a').resolve(Uint8Array.of(50));
    await s.flush();
    s.sink.startOne();
    s.queue.cancel('m1');
    expect(s.sink.stops).toBe(1);
    s.replyEnd('m1');
    expect(s.completes('m1')).toHaveLength(1);

    s.queue.push(chunk('m2', 0, '/b'));
    s.queue.cancel('m2');
    expect(s.download('/b').signal.aborted).toBe(true);
    s.replyEnd('m2');
    expect(s.completes('m2')).toHaveLength(1);
  });

  it('reset (new Voxta session) drops everything without acknowledging the dead session', async () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, '/a'));
    s.download('/a').resolve(Uint8Array.of(10));
    await s.flush();
    s.queue.reset();
    s.contract.reset();
    expect(s.sink.items).toHaveLength(0);
    expect(s.queue.pendingMessages).toEqual([]);
    expect(s.completes()).toHaveLength(0);
  });

  it('reports first-packet latency only for clips that did not wait behind another', async () => {
    const s = setup();
    s.setTime(1000);
    s.queue.push(chunk('m1', 0, '/a'));
    s.queue.push(chunk('m1', 1, '/b'));
    s.setTime(1012);
    s.download('/a').resolve(Uint8Array.of(5));
    s.download('/b').resolve(Uint8Array.of(5));
    await s.flush();
    s.setTime(1015);
    s.sink.playAll();
    expect(s.latencies).toEqual([15]);
  });

  it('tells the sink it may end its stream only when it holds everything there is', async () => {
    const s = setup();
    s.queue.push(chunk('m1', 0, '/a'));
    const before = s.sink.idles;
    s.download('/a').resolve(Uint8Array.of(5));
    await s.flush();
    expect(s.sink.idles).toBeGreaterThan(before);
    const mark = s.sink.idles;
    s.queue.push(chunk('m1', 1, '/b')); // downloading: the sink must wait, not end
    expect(s.sink.idles).toBe(mark);
  });
});
