import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { NoSubscriberBehavior } from '@discordjs/voice';
import { OpusDecoder } from '../../src/audio/opus.js';
import type { WavAudio } from '../../src/audio/wav.js';
import { ClipStream } from '../../src/voice/clip-stream.js';
import { clipPackets, DiscordPlayerSink, silencePackets } from '../../src/voice/downlink.js';
import type { PacketSource, SinkItem } from '../../src/voice/speech-queue.js';

const log = pino({ level: 'silent' });

function toneWav(ms: number, hz: number, rate = 24000, amplitude = 8000, channels = 1): WavAudio {
  const frames = Math.round((rate * ms) / 1000);
  const samples = new Int16Array(frames * channels);
  for (let i = 0; i < frames; i++) {
    const v = Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / rate));
    for (let c = 0; c < channels; c++) samples[i * channels + c] = v;
  }
  return { sampleRate: rate, channels, bitsPerSample: 16, format: 'pcm', samples, frames, durationSec: frames / rate };
}

/** A sink item that records its callbacks into a shared log. */
function item(id: number, source: PacketSource, events: string[]): SinkItem {
  return {
    id,
    messageId: 'm',
    durationSec: 0,
    source,
    started: () => events.push(`start ${id}`),
    finished: () => events.push(`end ${id}`),
  };
}

function emptySource(): PacketSource {
  return { next: () => null, close: () => {} };
}

function readAll(stream: ClipStream): Buffer[] {
  const out: Buffer[] = [];
  for (let p = stream.read(); p; p = stream.read()) out.push(p);
  return out;
}

describe('clipPackets / silencePackets', () => {
  it.each([1, 2, 4])('encodes a %i-channel clip into 20 ms packets that decode back to the tone, covering its whole length', (channels) => {
    const wav = toneWav(500, 440, 24000, 8000, channels);
    const src = clipPackets(wav);
    const packets: Buffer[] = [];
    for (let p = src.next(); p; p = src.next()) packets.push(p);
    src.close();
    // 500 ms = 25 frames, plus at most one frame flushing the encoder's look-ahead.
    expect(packets.length).toBeGreaterThanOrEqual(25);
    expect(packets.length).toBeLessThanOrEqual(27);
    const dec = new OpusDecoder(48000, 1);
    const pcm = packets.flatMap((p) => Array.from(dec.decode(p)));
    dec.destroy();
    // Goertzel-free check: zero crossings over the steady middle ≈ 2 × 440 per second.
    const mid = pcm.slice(4800, 4800 + 9600); // 200 ms at 48 kHz
    let crossings = 0;
    for (let i = 1; i < mid.length; i++) if ((mid[i - 1]! < 0) !== (mid[i]! < 0)) crossings++;
    expect(crossings).toBeGreaterThan(170);
    expect(crossings).toBeLessThan(182);
  });

  it('silencePackets(ms) is that many 20 ms silence frames', () => {
    const src = silencePackets(680);
    let n = 0;
    for (let p = src.next(); p; p = src.next()) {
      expect([...p]).toEqual([0xf8, 0xff, 0xfe]);
      n++;
    }
    expect(n).toBe(34);
  });
});

describe('ClipStream', () => {
  /** `n` recognisable packets (0xAA, id, k). */
  function tagged(id: number, n: number): PacketSource {
    let k = 0;
    return { next: () => (k < n ? Buffer.from([0xaa, id, k++]) : null), close: () => {} };
  }
  const describePackets = (ps: Buffer[]) => ps.map((p) => (p.length === 3 && p[0] === 0xf8 ? 'silence' : `${p[1]}.${p[2]}`));

  it('audioGapMs: a clip right after another gets the whole gap as silence frames first; its start is its first real packet', () => {
    const events: string[] = [];
    const s = new ClipStream({ highWaterMark: 2, now: () => 0 });
    s.add(item(1, tagged(1, 2), events));
    s.add({ ...item(2, tagged(2, 2), events), gapMs: 100 });
    s.endWhenEmpty();
    const seen: string[] = [];
    for (let p = s.read(); p; p = s.read()) seen.push(`${describePackets([p])[0]} [${events.join(',')}]`);
    expect(seen).toEqual([
      '1.0 [start 1]',
      '1.1 [start 1,end 1]',
      'silence [start 1,end 1]',
      'silence [start 1,end 1]',
      'silence [start 1,end 1]',
      'silence [start 1,end 1]',
      'silence [start 1,end 1]',
      '2.0 [start 1,end 1,start 2]',
      '2.1 [start 1,end 1,start 2,end 2]',
    ]);
    expect(s.gapPacketsPlayed).toBe(5);
  });

  it('audioGapMs is a minimum since the previous clip ended, not an added delay', async () => {
    let t = 1000;
    const events: string[] = [];
    const s = new ClipStream({ now: () => t });
    s.add(item(1, tagged(1, 1), events));
    expect(describePackets(readAll(s))).toEqual(['1.0']); // clip 1 ends at 1020
    t = 1080; // 60 ms later the next clip arrives, with a 100 ms gap: 40 ms are missing
    s.add({ ...item(2, tagged(2, 1), events), gapMs: 100 });
    await new Promise((r) => setImmediate(r));
    expect(describePackets(readAll(s))).toEqual(['silence', 'silence', '2.0']);
    t = 2000; // long after: nothing missing
    s.add({ ...item(3, tagged(3, 1), events), gapMs: 100 });
    await new Promise((r) => setImmediate(r));
    expect(describePackets(readAll(s))).toEqual(['3.0']);
    // A new stream measures from where the previous one's audio ended.
    const next = new ClipStream({ now: () => t, lastEndedAt: 1960 });
    next.add({ ...item(4, tagged(4, 1), events), gapMs: 100 });
    expect(describePackets(readAll(next))).toEqual(['silence', 'silence', 'silence', '4.0']);
    expect(events.filter((e) => e.startsWith('start'))).toEqual(['start 1', 'start 2', 'start 3', 'start 4']);
  });

  it('reports each clip started when its first packet is read and finished after its last, in order, with empty clips in place', () => {
    const events: string[] = [];
    const s = new ClipStream({ highWaterMark: 2 });
    s.add(item(1, silencePackets(60), events));
    s.add(item(2, emptySource(), events));
    s.add(item(3, silencePackets(40), events));
    s.endWhenEmpty();
    const taken: string[] = [];
    for (let i = 0; i < 10; i++) {
      const p = s.read();
      if (!p) break;
      taken.push(`pkt(${events.join(',')})`);
    }
    expect(events).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
    // clip 1 was started by the first packet, and not finished before its third.
    expect(taken[0]).toBe('pkt(start 1)');
    expect(taken[1]).toBe('pkt(start 1)');
    expect(taken[2]).toBe('pkt(start 1,end 1,start 2,end 2)');
    expect(taken).toHaveLength(5);
  });

  it('waits when dry (no end requested) and goes on when a clip is added', async () => {
    const events: string[] = [];
    const s = new ClipStream();
    s.add(item(1, silencePackets(20), events));
    expect(readAll(s)).toHaveLength(1);
    expect(s.isClosed).toBe(false);
    s.add(item(2, silencePackets(20), events));
    await new Promise((r) => setImmediate(r));
    expect(readAll(s)).toHaveLength(1);
    expect(events).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('a clip that is still downloading (next() → undefined) is waited for, then goes on in order', () => {
    const events: string[] = [];
    let available = 1;
    let wake: (() => void) | undefined;
    let sent = 0;
    const slow: PacketSource = {
      next: () => (sent < available ? Buffer.from([sent++]) : sent >= 3 ? null : undefined),
      wait: (cb) => {
        wake = cb;
      },
      close: () => {},
    };
    const s = new ClipStream({ highWaterMark: 4 });
    s.add(item(1, slow, events));
    s.add(item(2, silencePackets(20), events));
    s.endWhenEmpty();
    expect(readAll(s)).toHaveLength(1);
    expect(events).toEqual(['start 1']);
    expect(wake).toBeDefined();
    available = 3;
    wake!();
    expect(readAll(s)).toHaveLength(3); // the two late packets of clip 1, then clip 2
    expect(events).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('discard() closes every pending source without callbacks; releaseAll() reports them instead', () => {
    const events: string[] = [];
    const closed: number[] = [];
    const tracked = (id: number): PacketSource => {
      const inner = silencePackets(100);
      return { next: () => inner.next(), close: () => closed.push(id) };
    };
    const a = new ClipStream();
    a.add(item(1, tracked(1), events));
    a.add(item(2, tracked(2), events));
    a.read();
    a.discard();
    expect(events).toEqual(['start 1']);
    expect(closed.sort()).toEqual([1, 2]);
    expect(a.destroyed).toBe(true);

    events.length = 0;
    const b = new ClipStream();
    b.add(item(3, silencePackets(100), events));
    b.add(item(4, silencePackets(100), events));
    b.read();
    b.releaseAll();
    expect(events).toEqual(['start 3', 'end 3', 'start 4', 'end 4']);
  });
});

describe('DiscordPlayerSink (real AudioPlayer, no connection)', () => {
  it('plays clips back to back through one resource and stop(true) halts at once', async () => {
    const sink = new DiscordPlayerSink({ log, connection: () => undefined, waitForE2ee: false, noSubscriber: NoSubscriberBehavior.Play });
    const events: string[] = [];
    const done = new Promise<void>((resolve) => {
      sink.enqueue(item(1, clipPackets(toneWav(100, 300)), events));
      sink.enqueue({ ...item(2, clipPackets(toneWav(100, 600)), events), finished: () => (events.push('end 2'), resolve()) });
      sink.idle();
    });
    const states: string[] = [];
    sink.player.on('stateChange', (_o, n) => states.push(n.status));
    await done;
    expect(events).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
    // one buffering → playing run for both clips (no idle between them)
    expect(states.filter((s) => s === 'playing')).toHaveLength(1);
    await new Promise<void>((r) => sink.player.once('idle', () => r()));

    // A long clip, stopped after it started: the player is idle synchronously and the clip never finishes.
    const events2: string[] = [];
    const started = new Promise<void>((resolve) => {
      sink.enqueue({ ...item(3, clipPackets(toneWav(2000, 300)), events2), started: () => (events2.push('start 3'), resolve()) });
    });
    await started;
    sink.stop();
    expect(sink.player.state.status).toBe('idle');
    await new Promise((r) => setTimeout(r, 100));
    expect(events2).toEqual(['start 3']);
    sink.destroy();
  });
});
