/**
 * The uplink against a stand-in receiver (the very edge: subscribe/speaking/ssrcMap as
 * @discordjs/voice 0.19.2 exposes them), with real Opus packets and the real decoder, VAD and
 * floor arbiter behind it.
 */
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { VoiceReceiver } from '@discordjs/voice';
import { OpusEncoder } from '../../src/audio/opus.js';
import { Uplink, packetOf } from '../../src/voice/uplink.js';

const log = pino({ level: 'silent' });

class FakeStream extends Readable {
  constructor() {
    super({ objectMode: true });
  }
  override _read(): void {}
}

/** What the uplink uses of VoiceReceiver, behaving like the library (same stream for a second subscribe, removal on close). */
class FakeReceiver {
  speaking = Object.assign(new EventEmitter(), { users: new Map<string, number>() });
  ssrcMap = new EventEmitter();
  subscriptions = new Map<string, FakeStream>();
  subscribeCalls: string[] = [];
  subscribe(userId: string): FakeStream {
    this.subscribeCalls.push(userId);
    const existing = this.subscriptions.get(userId);
    if (existing) return existing;
    const s = new FakeStream();
    s.once('close', () => this.subscriptions.delete(userId));
    this.subscriptions.set(userId, s);
    return s;
  }
  start(userId: string): void {
    this.speaking.users.set(userId, Date.now());
    this.speaking.emit('start', userId);
  }
}

const BOT = 'bot-1';
let uplink: Uplink | undefined;
afterEach(() => {
  uplink?.close();
  uplink = undefined;
});

function setup(opts: { listenable?: (id: string) => boolean; deafAfterMs?: number } = {}) {
  const receiver = new FakeReceiver();
  const written: Int16Array[] = [];
  const voice: Array<[string, boolean]> = [];
  const deaf: string[] = [];
  uplink = new Uplink({
    log,
    botUserId: BOT,
    isListenable: opts.listenable ?? ((id) => id !== 'opted-out'),
    input: { write: (pcm) => written.push(pcm) },
    floor: { endOfUtteranceMs: 300, floorHangoverMs: 0 },
    onVoice: (id, v) => voice.push([id, v]),
    onDeaf: (why) => deaf.push(why),
    deafAfterMs: opts.deafAfterMs,
  });
  uplink.attach(receiver as unknown as VoiceReceiver);
  return { receiver, written, voice, deaf, uplink };
}

const encoder = new OpusEncoder(48000, 2, 'audio');
function opusTone(frames: number, hz = 440): Buffer[] {
  const out: Buffer[] = [];
  for (let f = 0; f < frames; f++) {
    const pcm = new Int16Array(960 * 2);
    for (let i = 0; i < 960; i++) {
      const s = Math.round(8000 * Math.sin((2 * Math.PI * hz * (f * 960 + i)) / 48000));
      pcm[2 * i] = s;
      pcm[2 * i + 1] = s;
    }
    out.push(encoder.encode(pcm));
  }
  return out;
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Uplink', () => {
  it('subscribes once per member however often speaking starts, decodes at 16 kHz and forwards voiced frames', async () => {
    const s = setup();
    s.receiver.start('alice');
    s.receiver.start('alice');
    s.receiver.start('alice');
    expect(s.receiver.subscribeCalls).toEqual(['alice']);
    const stream = s.receiver.subscriptions.get('alice')!;
    for (const p of opusTone(10)) stream.push(p);
    await tick();
    expect(s.uplink.stats()).toMatchObject({ packetsReceived: 10, decodeErrors: 0, framesDecoded: 10, subscriptions: 1 });
    // 20 ms at 16 kHz mono = 320 samples per frame; voiced frames reach the Voxta input.
    expect(s.written.length).toBeGreaterThan(5);
    expect(s.written.every((f) => f.length === 320)).toBe(true);
    expect(s.voice.filter(([, v]) => v).length).toBeGreaterThan(5);
  });

  it('never subscribes to the bot itself or to members who are not listenable', () => {
    const s = setup();
    s.receiver.start(BOT);
    s.receiver.start('opted-out');
    expect(s.receiver.subscribeCalls).toEqual([]);
    expect(s.uplink.stats().ignoredSpeakers).toBe(2);
  });

  it('drops and counts invalid packets without ending the stream; accepts { payload } chunks', async () => {
    const s = setup();
    s.receiver.start('alice');
    const stream = s.receiver.subscriptions.get('alice')!;
    const good = opusTone(6);
    stream.push(good[0]);
    stream.push(Buffer.from([0xff, 0xff, 0xff, 0x01, 0xff]));
    stream.push({ payload: good[1] });
    stream.push({ nothing: true });
    stream.push(good[2]);
    await tick();
    expect(s.uplink.stats()).toMatchObject({ packetsReceived: 5, decodeErrors: 1, invalidChunks: 1, framesDecoded: 3 });
    expect(stream.destroyed).toBe(false);
  });

  it('re-subscribes at once when the stream dies with an error while the member talks; asks for a rejoin when errors keep coming', async () => {
    const s = setup();
    s.receiver.start('alice');
    for (let i = 0; i < 5; i++) {
      const stream = s.receiver.subscriptions.get('alice')!;
      stream.destroy(new Error('Failed to decrypt'));
      await tick();
      await tick();
    }
    expect(s.uplink.stats().streamErrors).toBe(5);
    // Four immediate re-subscriptions; the fifth error in 10 s asks for a rejoin instead and the
    // member's pipeline is rebuilt on their next speaking start.
    expect(s.uplink.stats().resubscribes).toBe(4);
    expect(s.deaf).toHaveLength(1);
    expect(s.receiver.subscriptions.has('alice')).toBe(false);
    s.receiver.start('alice');
    expect(s.receiver.subscriptions.has('alice')).toBe(true);
  });

  it('a member speaking with nothing reaching us is re-subscribed, then reported deaf', async () => {
    const s = setup({ deafAfterMs: 100 });
    s.receiver.start('alice');
    s.receiver.speaking.users.set('alice', Date.now() - 1000);
    const first = s.receiver.subscriptions.get('alice');
    await new Promise((r) => setTimeout(r, 700));
    expect(s.uplink.stats().resubscribes).toBeGreaterThanOrEqual(1);
    expect(s.receiver.subscriptions.get('alice')).not.toBe(first);
    await new Promise((r) => setTimeout(r, 600));
    expect(s.deaf.length).toBeGreaterThanOrEqual(1);
  });

  it('a member who opts out mid-stream is dropped at the next packet', async () => {
    let allowed = true;
    let now = 0;
    const s = setup({ listenable: () => allowed });
    (s.uplink as unknown as { now: () => number }).now = () => now;
    s.receiver.start('alice');
    const stream = s.receiver.subscriptions.get('alice')!;
    const packets = opusTone(4);
    stream.push(packets[0]);
    await tick();
    allowed = false;
    now = 10_000; // past the cached decision
    stream.push(packets[1]);
    await tick();
    expect(stream.destroyed).toBe(true);
    expect(s.uplink.stats().framesDecoded).toBe(1);
  });

  it('packetOf adapts Buffer and AudioPacket-like chunks', () => {
    const b = Buffer.from([1, 2, 3]);
    expect(packetOf(b)).toBe(b);
    expect(packetOf({ payload: b, sequence: 1 })).toBe(b);
    expect(packetOf('x')).toBeUndefined();
    expect(packetOf(null)).toBeUndefined();
  });
});
