/**
 * The scripted scene of `npm run demo`, step by step. Every step waits for what a person in the
 * server would see or hear (a message, the bot in the voice channel, the character's voice) with
 * its own timeout; the first step that does not happen ends the demo with its name.
 */
import type { InteractionHandle, SimMessage } from '../../sim/discord/index.js';
import { LINES } from './lines.js';
import { VoiceWatch, messagesSince, settled, sleep, waitUntil } from './observe.js';
import { clip, cyan, magenta, ms, yellow, type Report } from './report.js';
import { synthesizeSpeech, VOICES, type SynthVoice } from './speech.js';
import type { Stage } from './stage.js';

/** A step that did not happen. */
export class StepFailed extends Error {
  /** Why, in words (the cause's message). */
  readonly reason: string;

  constructor(
    readonly step: string,
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`${step}: ${reason}`, { cause });
    this.name = 'StepFailed';
    this.reason = reason;
  }
}

export interface SceneResult {
  steps: Array<{ name: string; ms: number }>;
  /** Member's end of speech → first packet of the character's spoken answer. */
  voiceLatencyMs: number;
  bargeInStopMs: number;
  interruptStopMs: number;
  characterName: string;
}

/** The last voiced frame of a `speak()` leaves 5 silence frames (minus one tick) before it resolves. */
const SPEECH_TAIL_MS = 80;

export class Scene {
  private readonly voiceWatch: VoiceWatch;
  private readonly printed = new Set<string>();
  private readonly steps: Array<{ name: string; ms: number }> = [];
  private character = 'Aria';

  constructor(
    private readonly stage: Stage,
    private readonly report: Report,
  ) {
    this.voiceWatch = new VoiceWatch(stage.discord, stage.guild.id);
  }

  async play(): Promise<SceneResult> {
    const s = this.stage;
    const r = this.report;

    await this.step('The bot comes online', 30_000, async () => {
      const login = await s.bot.waitForLog(/logged in to Discord/, 30_000);
      await s.discord.waitForBotReady(15_000);
      await s.discord.waitForCommands(['start', 'stop', 'interrupt'], undefined, 15_000);
      const names = s.discord.commands().map((c) => `/${c.name}`);
      this.say(login.at, 'bot', `logged in to the simulated Discord; registered ${names.length} slash commands: ${names.join(' ')}`);
    });

    await this.step('Alice, Bob and Sam join the voice channel', 10_000, async () => {
      for (const m of [s.alice, s.bob, s.sam]) {
        m.joinVoice(s.voice.id);
        this.say(Date.now(), this.name(m.id), `joins 🔊 ${s.voice.name}`);
      }
    });

    await this.step(`Sam (admin) starts a character with /start`, 25_000, async () => {
      // "ar" finds Aria on the simulator; a real server may have other characters: then the full list.
      let typed = 'ar';
      let choices = await s.sam.autocomplete(s.text.id, 'start', 'character', typed);
      if (choices.length === 0 && !s.voxta) {
        typed = '';
        choices = await s.sam.autocomplete(s.text.id, 'start', 'character', typed);
      }
      const pick = choices[0];
      if (!pick) throw new Error(`autocomplete offered no character${typed ? ` for “${typed}”` : ''}`);
      this.character = pick.name;
      const offered = choices.length > 6 ? `${choices.slice(0, 6).map((c) => c.name).join(', ')}, …` : choices.map((c) => c.name).join(', ');
      this.say(Date.now(), 'Sam', `types /start character:“${typed}”… autocomplete offers ${offered}`);
      const t = Date.now();
      const handle = await s.sam.runCommand(s.text.id, 'start', { character: String(pick.value) });
      this.say(t, 'Sam', `/start character:${pick.name}  (Sam is in 🔊 ${s.voice.name})`);
      const final = await this.finalAnswer(handle, 20_000);
      if (!/Started/.test(final.text)) throw new Error(`/start answered “${final.text}”`);
      this.say(final.at, 'bot', final.text, { colour: magenta });
      await s.discord.waitForBotVoice(s.guild.id, s.voice.id, 15_000);
      await waitUntil(() => s.discord.voiceServer.session(s.guild.id)?.ready, 15_000, 'the bot’s voice session to be ready');
      await s.discord.voiceServer.daveSettled(s.guild.id, 15_000);
      const info = s.discord.voiceServer.session(s.guild.id)!;
      this.say(Date.now(), 'voice', `bot joined 🔊 ${s.voice.name}: DAVE v${info.daveProtocolVersion} end-to-end encryption, MLS epoch ${info.daveEpoch}, ${info.daveUserIds.length} members in the group`, {
        colour: yellow,
      });
      await s.discord.waitForMessage(s.text.id, (m) => this.fromBot(m) && m.content.includes('listening in'), 15_000);
      if (s.voxta) await waitUntil(() => s.voxta!.sessions().find((x) => s.voxta!.audio(x.sessionId)?.header), 10_000, 'the bot’s microphone stream to Voxta');
      // A new chat opens with the character's greeting: the bot joined voice first, so it is spoken.
      if (s.voxta) {
        const greeting = await waitUntil(() => this.replyIdsSince(t)[0], 15_000, `${this.character}’s greeting`);
        await waitUntil(() => s.voxta!.playback(greeting).completes > 0, 30_000, 'the greeting to be spoken');
        const starts = s.voxta.playback(greeting).starts;
        const spokenMs = starts.reduce((n, x) => n + x.duration * 1000, 0);
        if (spokenMs === 0) throw new Error('the greeting was not spoken in the voice channel');
        this.say(starts[0]!.at, this.character, `▶ greets the channel: ${ms(spokenMs)} of speech`, { colour: cyan, voice: true });
      } else {
        await this.voiceWatch.quiet(t, 800, 30_000, 'a greeting, if any, to finish');
      }
    });

    await this.step('Alice types; the reply streams into #general (and is spoken)', 25_000, async () => {
      const t = Date.now();
      s.alice.say(s.text.id, LINES.typed);
      const reply = await this.waitForReply(t, 20_000);
      this.noteStreaming(reply, t);
      await this.listenToAnswer(t, 'the spoken reply');
    });

    await this.step('Sam brings a second character into the scene with /cast add; both answer, in text and in voice', 60_000, async () => {
      // "holt" finds Captain Holt on the simulator; a real server offers whoever else it has.
      const typed = s.voxta ? 'holt' : '';
      const choices = await s.sam.autocomplete(s.text.id, 'cast add', 'character', typed);
      const pick = choices[0];
      if (!pick) {
        this.say(Date.now(), 'demo', 'this Voxta server has no second character: the two-character scene is skipped');
        return;
      }
      const second = pick.name;
      this.say(Date.now(), 'Sam', `types /cast add character:“${typed}”… autocomplete offers ${choices.slice(0, 6).map((c) => c.name).join(', ')}`);
      const t = Date.now();
      const handle = await s.sam.runCommand(s.text.id, 'cast add', { character: String(pick.value) });
      this.say(t, 'Sam', `/cast add character:${second}`);
      const final = await this.finalAnswer(handle, 20_000);
      if (!/joined the chat/.test(final.text)) throw new Error(`/cast add answered “${final.text}”`);
      this.say(final.at, 'bot', final.text, { colour: magenta });

      const t2 = Date.now();
      s.alice.say(s.text.id, LINES.together);
      // Each answers under its own name and avatar: the bot posts through one webhook per character.
      const speakers = s.voxta ? [this.character, second] : [undefined];
      for (const name of speakers) this.noteStreaming(await this.waitForReply(t2, 25_000, name), t2);
      await this.voiceWatch.firstAudible(t2, 15_000, 'the characters’ spoken answers');
      // The second answer is synthesised only once the first has been spoken (Voxta holds its turn
      // until then), so there is a pause between them as long as the TTS takes: wait for both.
      if (s.voxta) {
        await waitUntil(
          () => {
            const ids = this.replyIdsSince(t2);
            return ids.length >= 2 && ids.slice(0, 2).every((id) => s.voxta!.playback(id).completes > 0);
          },
          40_000,
          'both characters to finish speaking',
        );
      }
      const quietAt = await this.voiceWatch.quiet(t2, 2500, 40_000, 'both characters to finish speaking');
      if (s.voxta) {
        // Strictly in order, whoever speaks: the first character's whole reply, then the second's.
        const ids = this.replyIdsSince(t2);
        if (ids.length < 2) throw new Error(`expected two replies, Voxta streamed ${ids.length}`);
        const spans = ids.slice(0, 2).map((id) => {
          const starts = s.voxta!.playback(id).starts;
          if (!starts.length) throw new Error('a reply was never played in the voice channel');
          const last = starts.at(-1)!;
          return { from: starts[0]!.at, to: last.at + last.duration * 1000 };
        });
        if (spans[1]!.from < spans[0]!.to - 100) throw new Error(`${second} started speaking before ${this.character} had finished`);
        for (const [i, name] of speakers.entries()) this.say(spans[i]!.from, name!, `▶ speaks the answer: ${ms(spans[i]!.to - spans[i]!.from)} of speech`, { colour: cyan, voice: true });
      } else {
        this.say(quietAt, 'voice', `the characters spoke until ${this.report.stamp(quietAt)}`, { colour: cyan, voice: true });
      }

      const t3 = Date.now();
      const removed = await this.finalAnswer(await s.sam.runCommand(s.text.id, 'cast remove', { character: String(pick.value) }), 20_000);
      this.say(t3, 'Sam', `/cast remove character:${second}`);
      if (!/left the chat/.test(removed.text)) throw new Error(`/cast remove answered “${removed.text}”`);
      this.say(removed.at, 'bot', removed.text, { colour: magenta });
    });

    let voiceLatencyMs = 0;
    await this.step(`Alice speaks; ${this.character} answers out loud`, 30_000, async () => {
      s.expectSpeech(LINES.spoken);
      const { end } = await this.speak(s.alice.id, LINES.spoken, VOICES.alto);
      await s.discord.waitForMessage(s.text.id, (m) => this.isMirror(m, 'Alice') && m.createdAt.getTime() >= end, 10_000);
      const first = await this.voiceWatch.firstAudible(end, 15_000, `the first packet of ${this.character}’s spoken answer`);
      voiceLatencyMs = first.at - end;
      await this.waitForReply(end, 15_000);
      const quietAt = await this.voiceWatch.quiet(end, 600, 20_000, `${this.character} to finish speaking`);
      this.say(first.at, this.character, `▶ answers out loud: ${ms(quietAt + 20 - first.at)} of speech`, { colour: cyan, voice: true });
      this.say(first.at, 'latency', `speech end → first reply audio: ${ms(voiceLatencyMs)}${this.latencyBreakdown(end, first.at)}`, { colour: yellow });
    });

    await this.step('Bob talks over Alice; both are heard, each by name', 30_000, async () => {
      s.expectSpeech(LINES.overlapAlice, LINES.overlapBob);
      const a0 = Date.now();
      const a = this.speak(s.alice.id, LINES.overlapAlice, VOICES.alto);
      await sleep(600);
      const b = this.speak(s.bob.id, LINES.overlapBob, VOICES.baritone);
      const [, bob] = await Promise.all([a, b]);
      // With the in-process Voxta the recognised words are scripted, so they can be checked too.
      await s.discord.waitForMessage(s.text.id, (m) => this.isMirror(m, 'Alice', s.voxta ? LINES.overlapAlice : undefined) && m.createdAt.getTime() >= a0, 12_000);
      await s.discord.waitForMessage(s.text.id, (m) => this.isMirror(m, 'Bob', s.voxta ? LINES.overlapBob : undefined) && m.createdAt.getTime() >= a0, 12_000);
      if (s.voxta) {
        const sends = s.voxta.received.filter((m) => m.payload.$type === 'send');
        const texts = sends.map((m) => String(m.payload.text));
        for (const want of [`Alice: ${LINES.overlapAlice}`, `Bob: ${LINES.overlapBob}`]) {
          const got = sends.find((m) => m.payload.text === want);
          if (!got) throw new Error(`Voxta did not receive “${want}” (got ${JSON.stringify(texts.slice(-3))})`);
          this.say(got.at, 'voxta', `received “${want}”`, { colour: yellow });
        }
      }
      await this.listenToAnswer(bob.end, `${this.character}’s answer to Bob`, 15_000);
    });

    let bargeInStopMs = 0;
    await this.step(`Bob interrupts ${this.character}’s story by speaking over it (barge-in)`, 40_000, async () => {
      s.expectSpeech(LINES.story);
      const { end } = await this.speak(s.alice.id, LINES.story, VOICES.alto);
      const first = await this.voiceWatch.firstAudible(end, 15_000, `${this.character} to start telling the story`);
      this.say(first.at, this.character, '▶ starts telling the story…', { colour: cyan, voice: true });
      await sleep(1500);
      s.expectSpeech(LINES.bargeIn);
      const seq = s.voxta?.seq() ?? 0;
      const bob = this.speak(s.bob.id, LINES.bargeIn, VOICES.baritone);
      const bobStart = (await bob.started) ?? Date.now();
      // The barge-in is told by what the bot did, not by a gap in its audio: on a busy machine a
      // sentence can stall for longer than any quiet threshold. With the in-process Voxta its
      // `interrupt` (sent when a member talks over the character) is the proof; then the moment
      // the character went quiet after Bob started is the stop.
      if (s.voxta) {
        const got = await s.voxta.waitForClientMessage('interrupt', { after: seq }, 8000);
        if (got.at < bobStart) throw new Error(`${this.character} was interrupted before Bob spoke`);
        this.say(got.at, 'voxta', 'received “interrupt” from the bot', { colour: yellow });
      }
      const stoppedAt = await this.voiceWatch.quiet(bobStart, 300, 8000, `${this.character} to stop talking when Bob talked over the story`);
      if (!s.voxta && stoppedAt <= bobStart) throw new Error(`${this.character} had already finished before Bob spoke: nothing was interrupted`);
      bargeInStopMs = Math.max(0, stoppedAt + 20 - bobStart);
      const storyMs = this.voiceWatch.audioMs(first.at, stoppedAt);
      this.say(stoppedAt, this.character, `■ stops talking ${ms(bargeInStopMs)} after Bob started (${ms(storyMs)} of the story played)`, { colour: cyan, voice: true });
      const { end: bobEnd } = await bob;
      await s.discord.waitForMessage(s.text.id, (m) => this.isMirror(m, 'Bob') && m.createdAt.getTime() >= bobStart, 10_000);
      await this.listenToAnswer(bobEnd, `${this.character}’s answer to Bob`, 15_000);
    });

    let interruptStopMs = 0;
    await this.step(`Sam cuts ${this.character} off with /interrupt`, 30_000, async () => {
      const t = Date.now();
      s.alice.say(s.text.id, LINES.goOn);
      const first = await this.voiceWatch.firstAudible(t, 15_000, `${this.character} to go on with the story`);
      this.say(first.at, this.character, '▶ goes on with the story…', { colour: cyan, voice: true });
      await sleep(1200);
      const seq = s.voxta?.seq() ?? 0;
      const at = Date.now();
      const handle = await s.sam.runCommand(s.text.id, 'interrupt');
      this.say(at, 'Sam', '/interrupt');
      const answer = await this.finalAnswer(handle, 10_000);
      this.say(answer.at, 'bot', `${answer.text}  (only Sam sees this)`, { colour: magenta });
      // As above: the bot's `interrupt` proves the cut; the stop is when the audio went quiet after it.
      if (s.voxta) {
        const got = await s.voxta.waitForClientMessage('interrupt', { after: seq }, 5000);
        this.say(got.at, 'voxta', 'received “interrupt” from the bot', { colour: yellow });
      }
      const stoppedAt = await this.voiceWatch.quiet(at, 300, 8000, `${this.character} to stop talking after /interrupt`);
      // Packets arrive every 20 ms: a stop right after the command leaves the last one just before it.
      if (!s.voxta && stoppedAt + 2 * 20 < at) throw new Error(`${this.character} had already stopped talking ${ms(at - stoppedAt)} before /interrupt: nothing was interrupted`);
      interruptStopMs = Math.max(0, stoppedAt + 20 - at);
      const within = interruptStopMs < 20 ? 'within one 20 ms frame of' : `${ms(interruptStopMs)} after`;
      this.say(Math.max(stoppedAt + 20, at + 1), this.character, `■ stops talking ${within} /interrupt`, { colour: cyan, voice: true });
      await sleep(400);
    });

    await this.step('Sam ends the chat with /stop', 20_000, async () => {
      const t = Date.now();
      const handle = await s.sam.runCommand(s.text.id, 'stop');
      this.say(t, 'Sam', '/stop');
      const answer = await this.finalAnswer(handle, 15_000);
      if (!/Stopped/.test(answer.text)) throw new Error(`/stop answered “${answer.text}”`);
      this.say(answer.at, 'bot', answer.text, { colour: magenta });
      await s.discord.waitForBotVoice(s.guild.id, null, 10_000);
      this.say(Date.now(), 'voice', `bot left 🔊 ${s.voice.name}`, { colour: yellow });
      if (s.voxta) await waitUntil(() => s.voxta!.sessions().length === 0, 10_000, 'the Voxta chat to be closed');
    });

    r.flush();
    return { steps: this.steps, voiceLatencyMs, bargeInStopMs, interruptStopMs, characterName: this.character };
  }

  // ---- steps and lines ------------------------------------------------------------------

  private async step(name: string, timeoutMs: number, body: () => Promise<void>): Promise<void> {
    this.report.heading(name);
    const t = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        body(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the step did not finish within ${ms(timeoutMs)}`)), timeoutMs);
        }),
        // A dead bot fails the step at once instead of at its timeout.
        this.stage.bot.exited.then((exit) => {
          throw new Error(`the bot process exited (${exit.signal ?? `code ${exit.code}`})`);
        }),
      ]);
    } catch (err) {
      this.collectMessages(t);
      this.collectBotEvents(t);
      if (process.env.DEMO_DEBUG) {
        const runs = this.voiceWatch.runs(t).map((x) => `${this.report.stamp(x.from)}–${this.report.stamp(x.to)} (${x.packets})`);
        this.report.line({ at: Date.now(), who: 'debug', text: `bot audio during the step: ${runs.join(', ') || 'none'}` });
      }
      throw new StepFailed(name, err);
    } finally {
      clearTimeout(timer);
    }
    this.collectMessages(t);
    this.collectBotEvents(t);
    this.steps.push({ name, ms: Date.now() - t });
  }

  private say(at: number, who: string, text: string, opts: { colour?: (s: string) => string; note?: string; voice?: boolean } = {}): void {
    const label = opts.voice ? `${who} (voice)` : who;
    this.report.line({ at, who: label, text, note: opts.note, colour: opts.colour });
  }

  private name(userId: string): string {
    return this.stage.names.get(userId) ?? (userId === this.stage.discord.botUserId ? 'bot' : userId);
  }

  /** Member speech: synthesised audio sent as real-time RTP; `started` resolves when it begins. */
  private speak(userId: string, text: string, voice: SynthVoice): Promise<{ end: number }> & { started: Promise<number> } {
    const pcm = synthesizeSpeech(text, voice);
    const durMs = (pcm.length / 48_000) * 1000;
    const who = this.name(userId);
    const member = this.stage.guild.member(who.toLowerCase());
    let markStarted: (at: number) => void = () => {};
    const started = new Promise<number>((r) => (markStarted = r));
    const run = (async () => {
      const t = Date.now();
      markStarted(t);
      this.say(t, who, `◀ “${text}”`, { voice: true, note: `${ms(durMs)} of speech` });
      await member.speak(pcm, { sampleRate: 48_000, channels: 1 });
      return { end: Date.now() - SPEECH_TAIL_MS };
    })();
    return Object.assign(run, { started });
  }

  /**
   * Waits for the character's spoken answer to finish. The simulated Voxta always speaks, so
   * silence is a failure there; a real server may have no TTS configured, which is only noted.
   */
  private async listenToAnswer(since: number, what: string, startTimeoutMs = 6000): Promise<void> {
    const voxta = this.stage.voxta;
    if (voxta) {
      // With the in-process Voxta the reply is known: wait until its playback was acknowledged and
      // report what was played (a pause while TTS synthesises is not taken for the end).
      const id = await waitUntil(() => this.replyIdsSince(since).at(-1), startTimeoutMs + 20_000, what);
      await waitUntil(() => voxta.playback(id).completes > 0, 40_000, `${what} to finish`);
      const starts = voxta.playback(id).starts;
      const spokenMs = starts.reduce((n, x) => n + x.duration * 1000, 0);
      if (spokenMs === 0) throw new Error(`${what} was not spoken in the voice channel`);
      this.say(starts[0]!.at, this.character, `▶ speaks the answer: ${ms(spokenMs)} of speech`, { colour: cyan, voice: true });
      return;
    }
    let first;
    try {
      first = await this.voiceWatch.firstAudible(since, startTimeoutMs, what);
    } catch {
      this.say(Date.now(), this.character, '(no spoken answer: does this Voxta server have text-to-speech?)', { voice: true });
      return;
    }
    // A real server's TTS may pause between sentences while it synthesises: a long quiet ends it.
    const quietAt = await this.voiceWatch.quiet(since, 2500, 40_000, `${what} to finish`);
    this.say(first.at, this.character, `▶ speaks the answer: ${ms(quietAt + 20 - first.at)} of speech`, { colour: cyan, voice: true });
  }

  /** The character's (or `name`'s) text reply created after `since`, once it stopped changing. */
  private async waitForReply(since: number, timeoutMs: number, name?: string): Promise<SimMessage> {
    const s = this.stage;
    return waitUntil(
      () => {
        const m = messagesSince(s.discord, s.text.id, since).find((x) => this.isReply(x) && (!name || x.webhook?.username === name));
        return m && settled(m, 700) && this.replyDone(since) ? m : undefined;
      },
      timeoutMs,
      `${name ?? 'the character'}’s reply in #general`,
    );
  }

  /** In-process Voxta: the ids of the replies streamed since `since`, in order. */
  private replyIdsSince(since: number): string[] {
    const ids: string[] = [];
    for (const m of this.stage.voxta?.sent ?? []) {
      const p = m.payload as { $type?: string; messageId?: string };
      if (m.at >= since && p.$type === 'replyChunk' && p.messageId && !ids.includes(p.messageId)) ids.push(p.messageId);
    }
    return ids;
  }

  /** In-process Voxta: the reply stream ended (otherwise the settled message is the signal). */
  private replyDone(since: number): boolean {
    const v = this.stage.voxta;
    if (!v) return true;
    return v.sent.some((m) => m.at >= since && (m.payload as { $type?: string }).$type === 'replyEnd');
  }

  private noteStreaming(reply: SimMessage, since: number): void {
    const created = reply.createdAt.getTime();
    const lastEdit = (reply.editedAt ?? reply.createdAt).getTime();
    const edits = reply.history.length;
    const note = edits > 0 ? `first words after ${ms(created - since)}, then ${edits} edit${edits === 1 ? '' : 's'} as the reply streamed, complete after ${ms(lastEdit - since)}` : `after ${ms(created - since)}`;
    this.noteFor.set(reply.id, note);
  }

  private readonly noteFor = new Map<string, string>();
  /** Characters whose first reply was printed. */
  private readonly introduced = new Set<string>();

  /** Prints the channel's messages (members' and the bot's) created since `since`. */
  private collectMessages(since: number): void {
    const s = this.stage;
    for (const m of messagesSince(s.discord, s.text.id, since - 1)) {
      if (this.printed.has(m.id) || m.interactionId !== null) continue;
      this.printed.add(m.id);
      const at = m.createdAt.getTime();
      if (!this.fromBot(m) && !this.isCharacter(m)) {
        this.say(at, `${this.name(m.authorId)} (text)`, this.readable(m.content));
      } else if (this.isMirror(m)) {
        this.say(at, '#general', this.readable(m.content), { note: 'the bot’s transcript of the voice turn' });
      } else if (this.isReply(m)) {
        // Said once per character: its replies come through its own webhook (its name and avatar).
        const first = m.webhook && !this.introduced.has(m.webhook.username);
        if (m.webhook) this.introduced.add(m.webhook.username);
        const note = [first ? 'posted under its own name and avatar (a webhook)' : '', this.noteFor.get(m.id) ?? ''].filter(Boolean).join('; ');
        this.say(at, `${m.webhook?.username ?? this.character} (text)`, clip(this.readable(m.content)), { colour: cyan, note: note || undefined });
      } else {
        this.say(at, 'bot', this.readable(m.content), { colour: magenta });
      }
    }
  }

  /** Notable bot log lines (barge-in decisions) of the step, as events. */
  private collectBotEvents(since: number): void {
    for (const l of this.stage.bot.lines) {
      if (l.at < since || this.printedLogLines.has(l)) continue;
      const msg = String(l.json?.msg ?? '');
      if (!/barge-in/.test(msg)) continue;
      this.printedLogLines.add(l);
      const who = this.name(String(l.json?.userId ?? ''));
      this.say(l.at, 'bot log', `barge-in: ${who} spoke over ${this.character}; playback stopped`, { colour: yellow });
    }
  }

  private readonly printedLogLines = new Set<object>();

  private fromBot(m: SimMessage): boolean {
    return m.authorId === this.stage.discord.botUserId && m.interactionId === null;
  }

  private isMirror(m: SimMessage, name?: string, text?: string): boolean {
    if (!this.fromBot(m) || !m.content.startsWith('🎙️')) return false;
    if (name && !m.content.includes(`**${name}**`)) return false;
    return !text || m.content.includes(text);
  }

  /** Posted by one of the bot's webhooks: a character speaking under its own name and avatar. */
  private isCharacter(m: SimMessage): boolean {
    if (!m.webhook) return false;
    const id = m.webhook.webhookId;
    return this.stage.discord.webhooks().some((w) => w.id === id && w.creatorId === this.stage.discord.botUserId);
  }

  /** A character reply (not a transcript mirror or a notice from the bot itself). */
  private isReply(m: SimMessage): boolean {
    if (!(this.fromBot(m) || this.isCharacter(m)) || m.content.startsWith('🎙️')) return false;
    const v = this.stage.voxta;
    if (v) {
      const chunks = v.sent.map((x) => x.payload as { $type?: string; text?: string }).filter((p) => p.$type === 'replyChunk' && p.text);
      return chunks.some((p) => m.content.includes(p.text!.trim()));
    }
    return !/^(I'm listening in|I was disconnected|I lost the connection|Reconnected to Voxta|Stopped the chat)/.test(m.content);
  }

  /** Discord markup → what a person reads (`<#id>` → `#name`, `**x**` → `x`). */
  private readable(text: string): string {
    const s = this.stage;
    return text
      .replace(/<#(\d+)>/g, (_, id: string) => (id === s.voice.id ? `🔊 ${s.voice.name}` : id === s.text.id ? `#${s.text.name}` : `#${id}`))
      .replace(/<@!?(\d+)>/g, (_, id: string) => `@${this.name(id)}`)
      .replace(/\*\*(.+?)\*\*/g, '$1');
  }

  /** The answer the invoker finally sees (an embed's title/description, or the text), and when it appeared. */
  private async finalAnswer(handle: InteractionHandle, timeoutMs: number): Promise<{ text: string; at: number }> {
    await handle.waitUntil(() => (handle.hasFinalContent || handle.followUps.length > 0 ? true : undefined), timeoutMs, 'an answer');
    await sleep(250);
    const msg = handle.finalMessage() ?? handle.followUps.at(-1);
    const embed = (msg?.embeds ?? [])[0] as { title?: string; description?: string; fields?: Array<{ name: string; value: string }> } | undefined;
    // Embeds read as "【Title】 description · field: value · …" (the chat id is noise here).
    const fields = (embed?.fields ?? []).filter((f) => f.name !== 'Chat').map((f) => `${f.name.toLowerCase()}: ${f.value}`);
    const avatar = (msg?.attachments ?? []).some((a) => /^image\//.test(a.contentType ?? '') || /\.png$/.test(a.filename)) ? 'with the character’s avatar' : '';
    const parts = [msg?.content ?? '', embed?.title ? `【${embed.title}】` : '', embed?.description ?? '', [...fields, avatar].filter(Boolean).join(' · ')].filter(Boolean);
    const at = msg ? (msg.editedAt ?? msg.createdAt).getTime() : Date.now();
    return { text: this.readable(parts.join(' ')), at };
  }

  /** With the in-process Voxta: where the time between speech end and the answer went. */
  private latencyBreakdown(speechEnd: number, firstAudio: number): string {
    const v = this.stage.voxta;
    if (!v) return '';
    const recognised = v.recognitions.filter((x) => x.at >= speechEnd && x.text).at(0);
    const chunk = v.sent.find((m) => m.at >= speechEnd && (m.payload as { $type?: string }).$type === 'replyChunk');
    if (!recognised || !chunk) return '';
    return ` (Voxta end-of-speech detection ${ms(recognised.at - speechEnd)} · transcript → first reply text ${ms(chunk.at - recognised.at)} · text → audio on the wire ${ms(firstAudio - chunk.at)})`;
  }
}
