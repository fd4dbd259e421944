import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVoiceServer, type VoiceServer } from '../../sim/discord/voice/index.js';
import { tone, waitFor } from './helpers.js';

/**
 * Fault: an MLS Add proposal (op 27) for a user the voice server never announced in op 11.
 * @discordjs/voice 0.19.2 passes its op-11 set to davey as "recognised users"; davey refuses the
 * proposal with `UnexpectedUser`, and Networking.onWsBinary does not catch it, so it escapes the
 * ws 'message' handler. The bot runs in a child process here because that exception is
 * process-wide (in the test runner it would be reported as an unhandled error).
 */
const CHANNEL = '1300000000000000001';
const BOT = '1100000000000000001';
const ALICE = '1100000000000000002';
const CHILD = fileURLToPath(new URL('./fixtures/child-bot.ts', import.meta.url));

type ChildMessage = { type: string; [k: string]: unknown };

class ChildBot {
  readonly messages: ChildMessage[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  private readonly waiters: { pred: (m: ChildMessage) => boolean; resolve: (m: ChildMessage) => void }[] = [];

  constructor(readonly proc: ChildProcess, voice: VoiceServer) {
    proc.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    proc.on('message', (raw) => {
      const m = raw as ChildMessage;
      this.messages.push(m);
      if (m.type === 'op4') {
        const { d } = m.payload as { d: { guild_id: string; channel_id: string | null } };
        if (!d.channel_id) return;
        const sessionId = `child-session-${this.messages.length}`;
        const { token } = voice.openSession({ guildId: d.guild_id, channelId: d.channel_id, botUserId: BOT, sessionId });
        proc.send({ type: 'voiceUpdate', guildId: d.guild_id, channelId: d.channel_id, botUserId: BOT, sessionId, token, endpoint: voice.endpoint });
      }
      for (const w of [...this.waiters]) {
        if (w.pred(m)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    });
  }

  static start(voice: VoiceServer, guard: boolean): ChildBot {
    const proc = fork(CHILD, guard ? ['--guard'] : [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, NODE_EXTRA_CA_CERTS: voice.caCertPath },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    return new ChildBot(proc, voice);
  }

  next(type: string, timeoutMs = 10_000): Promise<ChildMessage> {
    const seen = this.messages.find((m) => m.type === type);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child: no '${type}' within ${timeoutMs} ms; stderr: ${this.stderr.slice(-500)}`)), timeoutMs);
      this.waiters.push({ pred: (m) => m.type === type, resolve: (m) => (clearTimeout(timer), resolve(m)) });
    });
  }

  async status(): Promise<ChildMessage> {
    const p = new Promise<ChildMessage>((resolve) => this.waiters.push({ pred: (m) => m.type === 'status', resolve }));
    this.proc.send({ type: 'status' });
    return p;
  }
}

describe('DAVE proposal for an unannounced user (fault injection)', () => {
  let voice: VoiceServer;
  const children: ChildBot[] = [];

  beforeAll(async () => {
    voice = await startVoiceServer({ dave: 'v1', helloIntervalMs: 500 });
  });
  afterAll(async () => {
    for (const c of children) c.proc.kill();
    await voice?.stop();
  });

  async function joinedChild(guildId: string, guard: boolean): Promise<ChildBot> {
    voice.memberJoined(guildId, ALICE);
    const child = ChildBot.start(voice, guard);
    children.push(child);
    await child.next('started');
    child.proc.send({ type: 'join', guildId, channelId: CHANNEL, botUserId: BOT });
    await child.next('ready');
    await voice.daveSettled(guildId);
    return child;
  }

  it('without a guard, the uncaught UnexpectedUser kills the bot process', async () => {
    const guildId = '1200000000000000011';
    const child = await joinedChild(guildId, false);
    const stranger = voice.proposeUnknownUser(guildId);
    const exit = await child.exited;
    expect(exit.code).toBe(1);
    expect(child.stderr).toContain(`UnexpectedUser(${stranger})`);
    expect(child.stderr).toContain('Networking.onWsBinary');
  });

  it('with an uncaughtException guard the process lives, but the connection is a zombie until destroyed and rejoined', async () => {
    const guildId = '1200000000000000012';
    const child = await joinedChild(guildId, true);
    child.proc.send({ type: 'listen', userId: ALICE });
    const disconnected = waitFor<{ guildId: string }>(voice.events, 'botDisconnected', (e) => e.guildId === guildId);
    const stranger = voice.proposeUnknownUser(guildId);
    const uncaught = await child.next('uncaught');
    expect(uncaught.message).toBe(`Failed to process proposals: UnexpectedUser(${stranger})`);

    // The exception left ws's receiver mid-write: nothing more is read from the voice websocket.
    // Heartbeat ACKs go unread, so after 3 misses (500 ms interval here) the client closes the
    // socket, but its own 'close' never fires: no resume, and the state stays 'ready'.
    await disconnected;
    await voice.speak(guildId, ALICE, tone(880, 0.2), { sampleRate: 48_000, channels: 1 });
    await new Promise((r) => setTimeout(r, 150));
    // Alice's op 5 (SSRC mapping) was never read, so the receiver drops all her packets.
    expect(await child.status()).toMatchObject({ status: 'ready', received: 0 });
    expect(voice.frames(guildId).some((f) => f.dir === 'in' && f.op === 7)).toBe(false);

    // Workaround: destroy the connection and join again.
    child.proc.send({ type: 'rejoin', guildId, channelId: CHANNEL });
    await child.next('rejoined');
    await voice.daveSettled(guildId);
    child.proc.send({ type: 'listen', userId: ALICE });
    await voice.speak(guildId, ALICE, tone(880, 0.2), { sampleRate: 48_000, channels: 1 });
    let status = await child.status();
    for (let i = 0; i < 100 && (status.received as number) < 15; i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = await child.status();
    }
    expect(status).toMatchObject({ status: 'ready', received: 10 + 5 });
  });
});
