/**
 * Fault: garbage on the voice receive path. 10 000 random, truncated, bit-flipped and oversize
 * Opus packets go through the real uplink (`src/voice/uplink.ts`: its per-member
 * `OpusDecoder(16000, 1)`, VAD and floor arbiter; only the receiver at its edge is a stand-in),
 * then a smaller storm goes through the REAL bot over RTP from the Discord voice simulator. No
 * crash, every packet counted (decoded or counted as a decode error, exactly as many as an
 * independent decoder rejects), and speech afterwards is still heard.
 */
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { VoiceReceiver } from '@discordjs/voice';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { OpusDecoder, OpusEncoder } from '../../src/audio/opus.js';
import { Uplink } from '../../src/voice/uplink.js';
import type { E2EEnv } from '../harness/env.js';
import { bootVoice, freePort, httpGet, metricValue, prng, sends, sleep, tone, voiceLeaveStats } from './helpers.js';

let env: E2EEnv | undefined;
let uplink: Uplink | undefined;
afterEach(async () => {
  uplink?.close();
  uplink = undefined;
  await env?.close();
  env = undefined;
});

/** 20 ms stereo 48 kHz Opus packets of a tone, as a Discord client sends them. */
function validPackets(frames: number, hz = 440): Buffer[] {
  const enc = new OpusEncoder(48_000, 2, 'audio');
  const out: Buffer[] = [];
  try {
    for (let f = 0; f < frames; f++) {
      const pcm = new Int16Array(960 * 2);
      for (let i = 0; i < 960; i++) {
        const s = Math.round(8000 * Math.sin((2 * Math.PI * hz * (f * 960 + i)) / 48_000));
        pcm[2 * i] = s;
        pcm[2 * i + 1] = s;
      }
      out.push(Buffer.from(enc.encode(pcm)));
    }
  } finally {
    enc.destroy();
  }
  return out;
}

/** A storm of bad (and some good) packets; `allowEmpty` adds zero-length ones. */
function storm(n: number, seed: number, allowEmpty: boolean): Buffer[] {
  const rnd = prng(seed);
  const good = validPackets(50);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const randomBytes = (len: number) => Buffer.from(Array.from({ length: len }, () => int(0, 255)));
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const g = good[int(0, good.length - 1)]!;
    const r = rnd();
    if (r < 0.3) out.push(randomBytes(int(1, 400)));
    else if (r < 0.55) out.push(Buffer.from(g.subarray(0, int(1, g.length - 1)))); // truncated
    else if (r < 0.7) {
      const b = Buffer.from(g);
      for (let k = int(1, 4); k > 0; k--) b[int(0, b.length - 1)] = int(0, 255); // corrupted
      out.push(b);
    } else if (r < 0.8) out.push(Buffer.concat([g.subarray(0, 1), randomBytes(int(0, 300))])); // real TOC, random frames
    else if (r < 0.83) out.push(randomBytes(int(1276, 3000))); // larger than any Opus packet
    else if (r < 0.85 && allowEmpty) out.push(Buffer.alloc(0));
    else out.push(Buffer.from(g));
  }
  return out;
}

/** How many packets an independent decoder, used as the uplink uses it, rejects. */
function countInvalid(packets: Buffer[]): number {
  const dec = new OpusDecoder(16_000, 1);
  let bad = 0;
  try {
    for (const p of packets) {
      try {
        dec.decode(p);
      } catch {
        bad++;
      }
    }
  } finally {
    dec.destroy();
  }
  return bad;
}

/** What the uplink uses of @discordjs/voice's VoiceReceiver (the edge only). */
class StandInReceiver {
  speaking = Object.assign(new EventEmitter(), { users: new Map<string, number>() });
  ssrcMap = new EventEmitter();
  subscriptions = new Map<string, Readable>();
  subscribe(userId: string): Readable {
    const existing = this.subscriptions.get(userId);
    if (existing) return existing;
    const s = new Readable({ objectMode: true, read() {} });
    s.once('close', () => this.subscriptions.delete(userId));
    this.subscriptions.set(userId, s);
    return s;
  }
  start(userId: string): void {
    this.speaking.users.set(userId, Date.now());
    this.speaking.emit('start', userId);
  }
}

const tick = () => new Promise((r) => setImmediate(r));

describe('fault: invalid Opus packets on the receive path', () => {
  it('10 000 random, truncated and oversize packets through the uplink: no crash, all counted, speech still decoded', async () => {
    const receiver = new StandInReceiver();
    const written: Int16Array[] = [];
    const voiced: boolean[] = [];
    uplink = new Uplink({
      log: pino({ level: 'silent' }),
      botUserId: 'bot',
      isListenable: () => true,
      input: { write: (pcm) => written.push(pcm) },
      floor: { endOfUtteranceMs: 300, floorHangoverMs: 0 },
      onVoice: (_id, v) => voiced.push(v),
    });
    uplink.attach(receiver as unknown as VoiceReceiver);
    receiver.start('alice');
    const stream = receiver.subscriptions.get('alice')!;

    const packets = storm(10_000, 0x5eed, true);
    const invalid = countInvalid(packets);
    // libopus decodes much of random data as (noise) audio; what it rejects must be rejected here too.
    console.info(`opus storm: ${invalid} of 10000 packets invalid`);
    expect(invalid).toBeGreaterThan(1000);
    expect(invalid).toBeLessThan(10_000);
    for (let i = 0; i < packets.length; i++) {
      stream.push(packets[i]);
      if (i % 500 === 499) await tick();
    }
    await tick();
    const afterStorm = uplink.stats();
    expect(afterStorm.packetsReceived).toBe(10_000);
    expect(afterStorm.decodeErrors).toBe(invalid);
    expect(afterStorm.framesDecoded).toBe(10_000 - invalid);
    expect(afterStorm.invalidChunks).toBe(0);
    expect(stream.destroyed).toBe(false);

    // The same member's pipeline still decodes real speech: voiced 16 kHz frames reach Voxta's input.
    const writtenBefore = written.length;
    const voicedBefore = voiced.filter(Boolean).length;
    for (const p of validPackets(25, 300)) stream.push(p);
    await tick();
    expect(uplink.stats()).toMatchObject({ packetsReceived: 10_025, decodeErrors: invalid, framesDecoded: 10_025 - invalid });
    expect(voiced.filter(Boolean).length - voicedBefore).toBeGreaterThan(15);
    expect(written.length).toBeGreaterThan(writtenBefore);
    // (Decodable garbage may carry 2.5–120 ms frames; the tone's are 20 ms = 320 samples at 16 kHz.)
    expect(written.slice(-5).every((f) => f.length === 320)).toBe(true);
  });

  it.each(['off', 'v1'] as const)('the real bot (DAVE %s) survives a storm of invalid packets over RTP, counts every one, and still hears the member afterwards', async (dave) => {
    const port = await freePort();
    const boot = await bootVoice((x) => (env = x), {
      dave,
      e2e: { voxta: { stt: { transcripts: ({ index }) => `utterance ${index}` }, tts: { enabled: false } } },
      botEnv: { HEALTH_PORT: String(port), HEALTH_HOST: '127.0.0.1' },
    });
    const e = boot.env;
    const voxta = e.voxta!;
    // No empty payloads here: an RTP packet always carries at least a byte of Opus.
    const packets = storm(200, 0xbad, false);
    const invalid = countInvalid(packets);
    expect(invalid).toBeGreaterThan(10);
    await e.discord.voiceServer.sendRawOpus(e.guild.id, e.alice.id, packets);
    // The bot's count reaches exactly what the independent decoder rejected (polled: UDP and the
    // receive stream are asynchronous), and stays there.
    const decodeErrors = async () => metricValue((await httpGet(port, '/metrics')).body, 'voxta_discord_voice_decode_errors');
    const deadline = Date.now() + 5000;
    while ((await decodeErrors()) !== invalid && Date.now() < deadline) await sleep(100);
    await sleep(200);
    expect(await decodeErrors()).toBe(invalid);

    // Speech after the storm is recognised and reaches the chat.
    await sleep(900); // let any utterance the decodable noise started end
    const before = voxta.recognitions.length;
    await e.alice.speak(tone(440, 900), { sampleRate: 48_000, channels: 1 });
    const rec = await voxta.waitFor(() => voxta.recognitions.slice(before).find((r) => r.text !== null), 10_000, 'speech recognised after the storm');
    await voxta.waitFor(() => sends(e).includes(rec.text!), 10_000, 'the transcript sent to the chat');

    // Every packet was counted: on the way out the voice module reports exactly what it saw.
    const exit = await boot.bot.kill('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    const stats = await voiceLeaveStats(boot.bot, 1000);
    expect(stats.decodeErrors).toBe(invalid);
    expect(stats.invalidChunks).toBe(0);
    expect(stats.packetsReceived).toBeGreaterThan(200); // the storm plus the spoken tone
    expect((stats.framesDecoded ?? 0) + (stats.decodeErrors ?? 0)).toBe(stats.packetsReceived);
  }, 60_000);
});
