/**
 * Model-based concurrency test of the per-guild orchestration (issue "Guild sessions that cannot
 * race, wedge or crash"). fast-check generates sequences of steps across three guilds — /start
 * (with and without voice), /resume, /stop, /join, /leave, typed messages, members joining and
 * leaving voice, text or voice channels deleted, the bot removed from a guild, Voxta dropping,
 * restarting, refusing (capacity, 401) or half-closing its hub, voice joins held in flight, the
 * database locked by another connection, time passing — most of them fired WITHOUT waiting for
 * the previous ones, so operations overlap in every order the generator finds. The core runs
 * in-process against the real Voxta simulator and a real SQLite store; Discord is the `FakeGuild`
 * port fixture and the voice module a cancellable fake joiner (the e2e suites cover the real ones).
 *
 * After every step: no unhandled rejection, slots agree with states, never two voice
 * connections for a guild, never voice without its slot, never voice for an idle guild.
 * At quiescence (faults lifted, everything settled): every guild is idle or active; an active
 * guild has its record active, one live chat on Voxta and voice exactly when it says so; an idle
 * guild has no open Voxta connection, and a record left active only with an automatic resume
 * pending; Voxta holds no orphan chat and no chat waiting for a playback acknowledgement, and no
 * reply got two; every typed message the bot took on was delivered once or visibly marked.
 *
 * A failing run prints its seed, path and sequence. `MODEL_RUNS=200 npx vitest run
 * test/bot/guild-model.test.ts` runs more; `MODEL_SEED=<seed> MODEL_PATH=<path>` replays one
 * (real sockets and timers: a replay takes the same steps, not always the same interleaving), and
 * `MODEL_SHRINK=1` lets fast-check shrink it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BotCore } from '../../src/bot/bot-core.js';
import type { GuildVoiceJoiner } from '../../src/bot/ports.js';
import { runCommand } from '../../src/commands/index.js';
import { pino } from 'pino';
import { DB_FILE_NAME, Store } from '../../src/store/store.js';
import { VoxtaChatSession } from '../../src/voxta/chat-session.js';
import { VoxtaEndpoint } from '../../src/voxta/endpoint.js';
import { VoxtaRest } from '../../src/voxta/rest.js';
import { ARIA_ID, HOLT_ID, MIRA_ID, startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import { FakeGuild, FakeVoice, humanMessage, interaction, makeConfig, type RecordingChannel } from './fixtures.js';

const RUNS = Number(process.env.MODEL_RUNS ?? 15);
const SEED = process.env.MODEL_SEED === undefined ? undefined : Number(process.env.MODEL_SEED);
const GUILDS = 3;
const MAX_CHATS = 2;
const CHARACTERS = [ARIA_ID, HOLT_ID, MIRA_ID];
const ALICE = { id: '500000000000000001', displayName: 'Alice', bot: false };

// ---- the world ---------------------------------------------------------------------------------

interface TypedMessage {
  guild: number;
  channelId: string;
  text: string;
  msg: ReturnType<typeof humanMessage>;
  /** The bot took it on when it was typed (a chat ran, was starting, or waited for a resume). */
  owned: boolean;
}

/** A voice joiner that holds joins while `holding`, and otherwise completes them on the next turn. Cancellable, like GuildVoice.join. */
class ModelVoice {
  holding = false;
  readonly joined: Array<FakeVoice & { guildId: string }> = [];
  private readonly waiting: Array<() => void> = [];

  join: GuildVoiceJoiner = (o) =>
    new Promise((resolve, reject) => {
      const done = (): void => {
        o.signal?.removeEventListener('abort', cancel);
        const v = Object.assign(new FakeVoice(o.channelId), { guildId: o.guildId });
        this.joined.push(v);
        resolve(v as unknown as Awaited<ReturnType<GuildVoiceJoiner>>);
      };
      const cancel = (): void => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(o.signal?.reason instanceof Error ? o.signal.reason : new Error('cancelled'));
      };
      const go = (): void => done();
      if (o.signal?.aborted) return cancel();
      o.signal?.addEventListener('abort', cancel, { once: true });
      if (this.holding) this.waiting.push(go);
      else setImmediate(() => (this.waiting.includes(go) ? undefined : done()));
    });

  release(): void {
    this.holding = false;
    for (const go of this.waiting.splice(0)) go();
  }

  live(guildId: string): FakeVoice[] {
    return this.joined.filter((v) => v.guildId === guildId && v.left === undefined);
  }
}

class World {
  readonly guilds: FakeGuild[] = [];
  readonly texts: Array<RecordingChannel | undefined> = [];
  readonly voices: Array<string | undefined> = [];
  readonly present = new Map<string, FakeGuild>();
  readonly voice = new ModelVoice();
  readonly typed: TypedMessage[] = [];
  readonly sessions = new Map<string, VoxtaChatSession[]>();
  readonly inFlight: Array<Promise<unknown>> = [];
  readonly unhandled: unknown[] = [];
  readonly log: string[] = [];
  readonly logLines: string[] = [];
  core!: BotCore;
  store!: Store;
  dataDir!: string;
  lock: DatabaseSync | undefined;
  voxtaDown = false;
  private counter = 0;

  constructor(readonly sim: VoxtaSim) {}

  async open(): Promise<void> {
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vd-model-'));
    const config = makeConfig(this.sim.url, this.dataDir, { VOXTA_MAX_CHATS: String(MAX_CHATS), VOXTA_MAX_VOICE_SESSIONS: '1' });
    this.store = Store.open(this.dataDir, { busyTimeoutMs: 5 });
    const endpoint = VoxtaEndpoint.fromConfig(config.voxta);
    for (let i = 0; i < GUILDS; i++) {
      const g = new FakeGuild(`13000000000000010${i}`, `Guild ${i}`);
      this.guilds.push(g);
      this.texts.push(g.addText('general'));
      const v = g.addVoice('Lounge');
      this.voices.push(v);
      g.voiceChannels.get(v)!.members.push(ALICE);
      this.present.set(g.id, g);
    }
    this.core = new BotCore({
      config,
      store: this.store,
      rest: new VoxtaRest(endpoint),
      createVoxta: (guildId, { voice }) => {
        const s = new VoxtaChatSession({
          endpoint,
          textOnly: !voice,
          logBindings: { guildId },
          reconnect: { initialDelayMs: 30, maxDelayMs: 100, giveUpAfterMs: 600 },
          timeouts: { chatStartMs: 3000, connectMs: 2000, welcomeMs: 2000, stopMs: 1000, requestMs: 2000 },
          serverTimeoutMs: 1500,
          keepAliveMs: 500,
        });
        this.sessions.set(guildId, [...(this.sessions.get(guildId) ?? []), s]);
        return s;
      },
      joinVoice: this.voice.join,
      voiceIdleLeaveMs: 60,
      guild: (id) => this.present.get(id),
      // Kept in memory: a failing sequence writes them to a file for the post-mortem.
      log: pino({ level: 'debug' }, { write: (line: string) => void this.logLines.push(line) }),
      editIntervalMs: 5,
      contextDebounceMs: 5,
      resumeRetryMs: { first: 50, max: 200 },
      recordRetryMs: 50,
    });
    this.core.discordReady = true;
  }

  async close(): Promise<void> {
    this.unlock();
    await this.core.shutdown();
    this.store.close();
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  id(g: number): string {
    return this.guilds[g]!.id;
  }

  /** Fires a step's work without waiting for it (steps overlap); its failure is the core's to have handled. */
  fire(what: string, p: Promise<unknown>): void {
    this.log.push(what);
    this.inFlight.push(
      p.catch((err: unknown) => {
        // Commands answer their errors themselves; anything escaping is a bug.
        this.unhandled.push(new Error(`${what} rejected: ${String(err)}`));
      }),
    );
  }

  command(g: number, name: string, o: Parameters<typeof interaction>[4] = {}): void {
    const guild = this.guilds[g]!;
    const text = this.texts[g];
    if (!this.present.has(guild.id)) return; // Discord would not deliver a command from a guild the bot left
    const ctx = interaction(this.core, guild, text?.id ?? guild.id, name, o);
    this.fire(`${name} g${g}`, runCommand(ctx));
  }

  type(g: number): void {
    const text = this.texts[g];
    if (!text || !this.present.has(this.id(g))) return;
    const body = `m${++this.counter} for guild ${g}`;
    const msg = humanMessage(text.id, ALICE.id, 'Alice', body);
    const s = this.core.existingSession(this.id(g));
    const owned = (s !== undefined && s.ownsChannel(text.id)) || (s?.state === 'idle' && s.record?.active === true && s.record.textChannelId === text.id) || (!s && this.store.getGuildSession(this.id(g))?.active === true);
    this.typed.push({ guild: g, channelId: text.id, text: body, msg, owned: owned === true });
    this.fire(`type g${g}`, this.core.humanMessage(this.id(g), msg));
  }

  lockStore(): void {
    if (this.lock) return;
    this.lock = new DatabaseSync(path.join(this.dataDir, DB_FILE_NAME));
    this.lock.exec('BEGIN EXCLUSIVE');
  }

  unlock(): void {
    if (!this.lock) return;
    this.lock.exec('ROLLBACK');
    this.lock.close();
    this.lock = undefined;
  }

  // ---- invariants ------------------------------------------------------------------------------

  /** What must hold at every moment between steps. */
  checkAlways(): void {
    expect(this.unhandled, 'unhandled rejections').toEqual([]);
    const a = this.core.admission;
    expect(a.chatCount).toBeLessThanOrEqual(MAX_CHATS);
    expect(a.voiceCount).toBeLessThanOrEqual(1);
    for (let g = 0; g < GUILDS; g++) {
      const id = this.id(g);
      const s = this.core.existingSession(id);
      const state = s?.state ?? 'idle';
      expect(a.holdsChat(id), `g${g}: chat slot ⇔ not idle (state ${state})`).toBe(state !== 'idle');
      const live = this.voice.live(id);
      expect(live.length, `g${g}: at most one voice connection`).toBeLessThanOrEqual(1);
      if (live.length) {
        expect(a.holdsVoice(id), `g${g}: in voice without the voice slot`).toBe(true);
        expect(state, `g${g}: in voice while idle`).not.toBe('idle');
      }
    }
  }

  /** Lifts every fault and waits until nothing moves any more. */
  async quiesce(): Promise<void> {
    this.voice.release();
    this.unlock();
    this.sim.options.maxChats = MAX_CHATS;
    this.sim.options.apiKey = undefined;
    if (this.voxtaDown) {
      await this.sim.start();
      this.voxtaDown = false;
    }
    // A proxy that half-closed the hub lets go in the end.
    this.sim.dropHalfClosedHubConnections();
    await Promise.all(this.inFlight.splice(0));
    const deadline = Date.now() + 20_000;
    let stableSince = Date.now();
    let last = '';
    for (;;) {
      const snapshot = this.snapshot();
      const moving = this.moving();
      if (snapshot !== last || moving) {
        last = snapshot;
        stableSince = Date.now();
      } else if (Date.now() - stableSince >= 400) {
        return;
      }
      if (Date.now() > deadline) throw new Error(`no quiescence within 20 s (still moving: ${moving || 'state changing'}; ${snapshot})`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private moving(): string {
    for (let g = 0; g < GUILDS; g++) {
      const s = this.core.existingSession(this.id(g));
      if (!s) continue;
      if (s.busy) return `g${g} busy`;
      if (s.state !== 'idle' && s.state !== 'active') return `g${g} ${s.state}`;
      if (s.voxtaState !== 'none' && s.voxtaState !== 'ready') return `g${g} voxta ${s.voxtaState}`;
      if (s.state === 'idle' && s.record?.active && !this.core.autoResumePending(this.id(g)) && this.present.has(this.id(g))) return `g${g} idle+active without a resume`;
      if (s.status().storeProblem) return `g${g} store behind`;
    }
    if (this.sim.heldSessions().length) return 'a chat holds for playback';
    return '';
  }

  private snapshot(): string {
    return JSON.stringify([
      this.guilds.map((g) => [this.core.existingSession(g.id)?.state, this.core.existingSession(g.id)?.voiceChannelId, this.voice.live(g.id).length]),
      this.sim.sessions().map((s) => s.sessionId),
      this.sim.received.length,
    ]);
  }

  /** What must hold once everything has settled. */
  checkQuiescent(): void {
    this.checkAlways();
    const simSessions = this.sim.sessions().filter((s) => s.state === 'active');
    let active = 0;
    for (let g = 0; g < GUILDS; g++) {
      const id = this.id(g);
      const s = this.core.existingSession(id);
      const state = s?.state ?? 'idle';
      expect(['idle', 'active'], `g${g} settled state`).toContain(state);
      const stored = this.store.getGuildSession(id);
      const open = (this.sessions.get(id) ?? []).filter((v) => v.state !== 'closed');
      if (state === 'active') {
        active++;
        expect(stored?.active, `g${g}: running ⇒ record active`).toBe(true);
        expect(open.length, `g${g}: one Voxta connection`).toBe(1);
        expect(open[0]!.state).toBe('ready');
        expect(simSessions.filter((x) => x.sessionId === open[0]!.sessionId), `g${g}: its chat is live on Voxta`).toHaveLength(1);
        const live = this.voice.live(id);
        expect(live.map((v) => v.channelId), `g${g}: in voice ⇔ says so`).toEqual(s!.voiceChannelId ? [s!.voiceChannelId] : []);
      } else {
        expect(open, `g${g}: idle ⇒ no open Voxta connection`).toEqual([]);
        expect(this.voice.live(id)).toEqual([]);
        if (stored?.active) expect(this.core.autoResumePending(id) || !this.present.has(id), `g${g}: record active while idle ⇒ a resume is pending`).toBe(true);
      }
    }
    expect(simSessions.length, 'no orphan chat on Voxta').toBe(active);
    expect(this.sim.heldSessions(), 'no live chat waits for a playback acknowledgement').toEqual([]);
    for (const m of this.sim.sent) {
      const p = m.payload as { $type?: string; messageId?: string };
      if (p.$type === 'replyEnd' && p.messageId) expect(this.sim.playback(p.messageId).completes, `one complete for reply ${p.messageId}`).toBeLessThanOrEqual(1);
    }
    const history = this.sim.chats().flatMap((c) => c.messages.filter((m) => m.role === 'User').map((m) => m.text));
    for (const t of this.typed) {
      const delivered = history.filter((h) => h.endsWith(t.text)).length;
      expect(delivered, `"${t.text}" delivered at most once`).toBeLessThanOrEqual(1);
      // A message in a channel that was deleted since went with it: nothing left to mark.
      if (!t.owned || !this.guilds[t.guild]!.channels.has(t.channelId)) continue;
      const s = this.core.existingSession(this.id(t.guild));
      // The bot marks a message through its own handle, or by id through the channel.
      const reactions = new Set([...t.msg.reactions, ...(this.guilds[t.guild]!.channels.get(t.channelId)?.marks.get(t.msg.id) ?? [])]);
      const heldForResume = reactions.has('⏳') && s?.state === 'idle' && s.record?.active === true;
      // Not forwarded, and said so: not delivered (❌), over a rate limit (🐢), not allowed (⛔).
      const marked = reactions.has('❌') || reactions.has('🐢') || reactions.has('⛔');
      expect(delivered === 1 || marked || heldForResume, `"${t.text}" delivered once, or marked ❌/🐢/⛔, or still held ⏳ for a pending resume (reactions: ${[...reactions].join('')})`).toBe(true);
      if (delivered === 1) expect(reactions.has('⏳'), `"${t.text}" delivered but still ⏳`).toBe(false);
    }
  }
}

// ---- the steps -----------------------------------------------------------------------------

type Step = { name: string; run(w: World): Promise<void> | void };

/** Steps print as their names in a counterexample. */
function named(arb: fc.Arbitrary<Step>): fc.Arbitrary<Step> {
  return arb.map((s) => Object.assign(s, { [fc.toStringMethod]: () => s.name }));
}

const guildArb = fc.integer({ min: 0, max: GUILDS - 1 });

const stepArb: fc.Arbitrary<Step> = named(fc.oneof(
  { weight: 4, arbitrary: fc.record({ g: guildArb, voice: fc.boolean(), c: fc.integer({ min: 0, max: 2 }) }).map(({ g, voice, c }) => ({
    name: `start g${g}${voice ? ' +voice' : ''}`,
    run: (w: World) => w.command(g, 'start', { strings: { character: CHARACTERS[c]! }, invoker: { voiceChannelId: voice ? w.voices[g] : undefined } }),
  })) },
  { weight: 2, arbitrary: guildArb.map((g) => ({ name: `resume g${g}`, run: (w: World) => w.command(g, 'resume', { invoker: { voiceChannelId: w.voices[g] } }) })) },
  { weight: 3, arbitrary: guildArb.map((g) => ({ name: `stop g${g}`, run: (w: World) => w.command(g, 'stop') })) },
  { weight: 2, arbitrary: guildArb.map((g) => ({ name: `join g${g}`, run: (w: World) => w.command(g, 'join', { invoker: { voiceChannelId: w.voices[g] } }) })) },
  { weight: 1, arbitrary: guildArb.map((g) => ({ name: `leave g${g}`, run: (w: World) => w.command(g, 'leave') })) },
  { weight: 4, arbitrary: guildArb.map((g) => ({ name: `type g${g}`, run: (w: World) => w.type(g) })) },
  {
    weight: 2,
    arbitrary: fc.record({ g: guildArb, joins: fc.boolean() }).map(({ g, joins }) => ({
      name: `member ${joins ? 'joins' : 'leaves'} voice g${g}`,
      run: (w: World) => {
        const v = w.voices[g];
        if (!v) return;
        const members = w.guilds[g]!.voiceChannels.get(v)!.members;
        if (joins && !members.includes(ALICE)) members.push(ALICE);
        if (!joins) members.splice(members.indexOf(ALICE) >>> 0, members.includes(ALICE) ? 1 : 0);
        w.core.voiceStateChanged(w.id(g), joins ? undefined : v, joins ? v : undefined);
      },
    })),
  },
  {
    weight: 1,
    arbitrary: guildArb.map((g) => ({
      name: `text channel deleted g${g}`,
      run: (w: World) => {
        const t = w.texts[g];
        if (!t) return;
        w.guilds[g]!.channels.delete(t.id);
        w.texts[g] = undefined;
        w.fire(`channel deleted g${g}`, w.core.channelDeleted(w.id(g), t.id));
      },
    })),
  },
  {
    weight: 1,
    arbitrary: guildArb.map((g) => ({
      name: `voice channel deleted g${g}`,
      run: (w: World) => {
        const v = w.voices[g];
        if (!v) return;
        w.guilds[g]!.voiceChannels.delete(v);
        w.voices[g] = undefined;
        w.fire(`voice deleted g${g}`, w.core.channelDeleted(w.id(g), v));
      },
    })),
  },
  {
    weight: 1,
    arbitrary: guildArb.map((g) => ({
      name: `channels recreated g${g}`,
      run: (w: World) => {
        if (!w.texts[g]) w.texts[g] = w.guilds[g]!.addText('general');
        if (!w.voices[g]) {
          const v = w.guilds[g]!.addVoice('Lounge');
          w.guilds[g]!.voiceChannels.get(v)!.members.push(ALICE);
          w.voices[g] = v;
        }
      },
    })),
  },
  {
    weight: 1,
    arbitrary: guildArb.map((g) => ({
      name: `bot removed from g${g}`,
      run: (w: World) => {
        if (!w.present.delete(w.id(g))) return;
        w.fire(`removed g${g}`, w.core.guildRemoved(w.id(g)));
      },
    })),
  },
  { weight: 1, arbitrary: guildArb.map((g) => ({ name: `bot re-added to g${g}`, run: (w: World) => void w.present.set(w.id(g), w.guilds[g]!) })) },
  { weight: 1, arbitrary: fc.constant({ name: 'Voxta drops every hub connection', run: (w: World) => w.sim.dropHubConnections() }) },
  { weight: 1, arbitrary: fc.constant({ name: 'Voxta half-closes every hub connection', run: (w: World) => w.sim.halfCloseHubConnections() }) },
  {
    weight: 1,
    arbitrary: fc.constant({
      name: 'Voxta goes down',
      run: async (w: World) => {
        if (w.voxtaDown) return;
        w.voxtaDown = true;
        await w.sim.stop();
      },
    }),
  },
  {
    weight: 1,
    arbitrary: fc.constant({
      name: 'Voxta comes back',
      run: async (w: World) => {
        if (!w.voxtaDown) return;
        w.voxtaDown = false;
        await w.sim.start();
      },
    }),
  },
  { weight: 1, arbitrary: fc.boolean().map((on) => ({ name: `Voxta ${on ? 'refuses' : 'accepts'} new chats (capacity)`, run: (w: World) => void (w.sim.options.maxChats = on ? 0 : MAX_CHATS) })) },
  { weight: 1, arbitrary: fc.boolean().map((on) => ({ name: `Voxta ${on ? 'refuses' : 'accepts'} the credentials (401)`, run: (w: World) => void (w.sim.options.apiKey = on ? 'rotated-key' : undefined) })) },
  { weight: 2, arbitrary: fc.constant({ name: 'voice joins held', run: (w: World) => void (w.voice.holding = true) }) },
  { weight: 2, arbitrary: fc.constant({ name: 'voice joins released', run: (w: World) => w.voice.release() }) },
  { weight: 1, arbitrary: fc.constant({ name: 'database locked by another connection', run: (w: World) => w.lockStore() }) },
  { weight: 1, arbitrary: fc.constant({ name: 'database unlocked', run: (w: World) => w.unlock() }) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 120 }).map((ms) => ({ name: `wait ${ms} ms`, run: () => new Promise<void>((r) => setTimeout(r, ms)) })) },
  {
    weight: 2,
    arbitrary: fc.constant({
      name: 'settle',
      run: async (w: World) => {
        await w.quiesce();
        w.checkQuiescent();
      },
    }),
  },
));

// ---- the property ----------------------------------------------------------------------------


describe('guild orchestration under generated interleavings', () => {
  it(`holds its invariants over ${RUNS} generated sequences across ${GUILDS} guilds`, async () => {
    let sequences = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 5, maxLength: 30 }), async (steps) => {
        sequences++;
        const sim = await startVoxtaSim({ chunkDelayMs: 2, capacityDelayMs: 30, maxChats: MAX_CHATS });
        const w = new World(sim);
        const onUnhandled = (r: unknown): void => void w.unhandled.push(r);
        process.on('unhandledRejection', onUnhandled);
        await w.open();
        try {
          for (const step of steps) {
            await step.run(w);
            w.checkAlways();
          }
          await w.quiesce();
          w.checkQuiescent();
        } catch (err) {
          const file = path.join(os.tmpdir(), `guild-model-failure-${process.pid}-${sequences}.log`);
          fs.writeFileSync(file, [`steps: ${steps.map((x) => x.name).join(', ')}`, ...w.logLines].join('\n'));
          throw new Error(`${(err as Error).message} (the bot's log of this sequence: ${file})`, { cause: err });
        } finally {
          process.off('unhandledRejection', onUnhandled);
          await w.close();
          await sim.close();
        }
      }),
      {
        numRuns: RUNS,
        ...(SEED === undefined ? {} : { seed: SEED }),
        ...(process.env.MODEL_PATH === undefined ? {} : { path: process.env.MODEL_PATH }),
        // Real sockets and timers: a shrunk replay is not bit-identical, so shrinking is bounded.
        endOnFailure: process.env.MODEL_SHRINK === undefined,
        reporter: (out) => {
          if (out.failed) {
            const why = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
            throw new Error(`model failed after ${sequences} sequences: ${why}\n${fc.defaultReportMessage(out)}`);
          }
        },
      },
    );
    console.info(`guild model: ${sequences} sequences run`);
  }, 240_000);
});
