/**
 * A guild session's presence in voice: taking Voxta's voice slot (admission), joining through
 * `GuildVoice`, going on text-only when the connection ends, leaving an empty channel after a grace
 * period and coming back when a human joins it, and the voice figures kept across joins. The guild
 * session decides when voice is wanted; this module owns the connection and the slot.
 *
 * Every change this module makes on its own (voice ended, the empty channel left, the channel
 * rejoined) runs as an operation of the guild's queue (`deps.enqueue`), so it never interleaves
 * with a start, a stop or a /join half-way; and a join takes the operation's `AbortSignal`, so a
 * stop during a slow join leaves the channel at once instead of after the join completes.
 */
import type { BargeInMode, Config } from '../config.js';
import { errorInfo, type Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { Admission } from './admission.js';
import { abortable, checkNotAborted } from './guild-operations.js';
import type { GuildPort, GuildVoiceJoiner, GuildVoicePort, VoxtaSessionPort } from './ports.js';
import { listeningNotice } from './session-notices.js';

/** How long the bot stays in a voice channel with no human in it. */
export const VOICE_IDLE_LEAVE_MS = 120_000;
/** Roles fetched from Discord for the opt-out check are reused this long. */
export const FRESH_ROLES_MS = 15_000;

/** Voice counters kept over a guild's whole run. */
export type RetiredCounter = 'decodeErrors' | 'utterancesUnheard';

/** Whether to join, and when not, the plain sentence the user sees. */
export interface VoicePlan {
  join: boolean;
  note: string | undefined;
}

export interface VoiceAttachmentDeps {
  guildId: string;
  guild: () => GuildPort | undefined;
  store: Store;
  admission: Admission;
  config: Config;
  joinVoice: GuildVoiceJoiner | undefined;
  /** The session's logger as it is now (it gains the chat id while a chat runs). */
  log: () => Logger;
  /** The running chat's Voxta session, which voice streams to. */
  voxta: () => VoxtaSessionPort | undefined;
  /** True while the session bridges (voice is only kept up for a running chat). */
  bridging: () => boolean;
  /** Runs a state change as an operation of the guild's queue (one at a time; a stop cancels it). */
  enqueue: (kind: string, fn: (signal: AbortSignal) => Promise<void>) => Promise<void>;
  /** Posts one plain sentence in the bound channel (never throws). */
  post: (text: string) => Promise<void>;
  /** A voice turn, or a character's spoken reply, for the transcript mirror and turn figures. */
  mirror: (kind: 'member' | 'character' | 'unheard', name: string, text: string) => void;
  /** Who is present changed (joined here): Voxta's context should follow. */
  presenceChanged: () => void;
  /** Discord ended the connection (kicked, channel gone): the stored chat no longer names a voice channel. */
  voiceLost: () => void;
  /** Leave an empty voice channel after this long (tests shorten it). */
  idleLeaveMs?: number;
  /** The voice settings for a new connection (the server's barge-in mode); default `config.voice`. */
  voiceConfig?: () => Config['voice'];
  /**
   * Whether this member's voice may go to the character now (chat roles, block list, spoken-turn
   * limit), after the privacy checks; default: yes. Called often: quick and synchronous.
   */
  mayListen?: (userId: string) => boolean;
}

export class VoiceAttachment {
  private voice: GuildVoicePort | undefined;
  /** The voice channel we left because it was empty (we come back when a human joins it). */
  private awayFrom: string | undefined;
  private emptyTimer: NodeJS.Timeout | undefined;
  private rejoinQueued = false;
  /** On a Stage: whether the bot could be heard when last checked (to say so when it changes). */
  private stageSpeaking: boolean | undefined;
  /** What the Stage said about speaking when the bot joined it, told with the listening notice. */
  private stageNote: string | undefined;
  /** Members' roles as fetched from Discord when they started speaking (privacy checks). */
  private readonly freshRoles = new Map<string, { roles: string[]; at: number }>();
  /** Counters of earlier (left) voice connections, so guild totals survive rejoins. */
  private readonly retired: Record<RetiredCounter, number> = { decodeErrors: 0, utterancesUnheard: 0 };

  constructor(private readonly deps: VoiceAttachmentDeps) {}

  /** The voice connection, while in voice. */
  get connection(): GuildVoicePort | undefined {
    return this.voice;
  }

  get channelId(): string | undefined {
    return this.voice?.channelId;
  }

  /** Left an empty channel and waiting for someone to join it. */
  get isAway(): boolean {
    return this.awayFrom !== undefined;
  }

  /** No coming back to the channel left empty (stopped, moved, or asked to leave). */
  forgetAway(): void {
    this.awayFrom = undefined;
  }

  /**
   * Whether this guild may join voice now; takes the voice slot when it may. A refusal comes with
   * the plain sentence the user sees (the chat then runs text-only: our documented choice, rather
   * than refusing the whole /start).
   */
  plan(guild: GuildPort, channelId: string): VoicePlan {
    if (!this.deps.joinVoice) return { join: false, note: 'Voice is not available in this build, so this chat is text-only.' };
    const problem = guild.voiceProblem(channelId);
    if (problem) return { join: false, note: `I cannot join: ${problem}, so this chat is text-only.` };
    if (!this.deps.admission.tryAcquireVoice(this.deps.guildId)) {
      const max = this.deps.admission.maxVoice;
      const note =
        max === 0
          ? 'Voice is turned off on this bot (VOXTA_MAX_VOICE_SESSIONS=0), so this chat is text-only.'
          : `Voice is busy in another server (Voxta can listen to ${max === 1 ? 'one voice channel' : `${max} voice channels`} at a time), so this chat is text-only for now.`;
      return { join: false, note };
    }
    return { join: true, note: undefined };
  }

  /** Plans and, when allowed, joins; returns a plain note when it did not (text-only then). */
  async planAndConnect(guild: GuildPort, channelId: string, signal: AbortSignal): Promise<string | undefined> {
    const plan = this.plan(guild, channelId);
    return plan.join ? await this.connect(channelId, signal) : plan.note;
  }

  /**
   * Joins voice (slot already taken); returns a plain note when it could not (text-only then).
   * Rejects only when `signal` fires (with its reason): the slot is given back and nothing is left
   * in the channel.
   */
  async connect(channelId: string, signal: AbortSignal): Promise<string | undefined> {
    const { guildId, admission } = this.deps;
    const guild = this.deps.guild();
    const voxta = this.deps.voxta();
    if (!this.deps.joinVoice || !guild || !voxta) {
      admission.releaseVoice(guildId);
      return 'Voice is not available right now, so this chat is text-only.';
    }
    let voice: GuildVoicePort;
    try {
      voice = await this.deps.joinVoice({
        guildId,
        channelId,
        adapterCreator: guild.voiceAdapterCreator(),
        botUserId: guild.botUserId,
        voxta,
        config: this.deps.voiceConfig?.() ?? this.deps.config.voice,
        isListenable: (userId) => this.isListenable(userId),
        canSpeak: () => this.audible,
        // Only when a role can opt members out: the check costs a REST call per speaker (cached).
        verifyListenable: this.deps.config.voice.optOutRoleId ? (userId) => this.verifyListenable(userId) : undefined,
        displayName: (userId) => this.deps.guild()?.displayName(userId) ?? 'Someone',
        notify: (text) => {
          this.deps.post(text).catch(() => undefined);
        },
        mirror: (kind, name, text) => this.deps.mirror(kind, name, text),
        gatewaySessionStartedAt: () => this.deps.guild()?.gatewaySessionStartedAt?.(),
        humansInChannel: () => (this.deps.guild()?.voiceMembers(channelId) ?? []).filter((m) => !m.bot && m.id !== guild.botUserId).map((m) => m.id),
        signal,
      });
    } catch (err) {
      admission.releaseVoice(guildId);
      checkNotAborted(signal);
      this.deps.log().warn({ err: errorInfo(err), channelId }, 'guild session: joining voice failed');
      return 'I could not join the voice channel (check my Connect and Speak permissions there), so this chat is text-only.';
    }
    if (signal.aborted) {
      // A joiner that resolved although cancelled: leave at once, and say nothing.
      await this.leaveConnection(voice, 'cancelled while joining');
      admission.releaseVoice(guildId);
      checkNotAborted(signal);
    }
    this.voice = voice;
    // Listened for before anything else is awaited: an end while asking for the stage is not missed.
    voice.once('ended', (why: string) => {
      this.deps.enqueue('voice ended', async () => this.ended(voice, String(why ?? ''))).catch((err: unknown) => {
        this.deps.log().debug({ err: errorInfo(err) }, 'guild session: voice-ended handling did not run (the session stopped)');
      });
    });
    await this.takeTheStage(guild, channelId, signal);
    this.deps.presenceChanged();
    this.checkOccupancy();
    return undefined;
  }

  /** The one sentence that says the bot listens in the channel it is in now (posted by the caller). */
  listeningNotice(): string | undefined {
    if (!this.voice) return undefined;
    return this.stageNote ? `${listeningNotice(this.voice.channelId)} ${this.stageNote}` : listeningNotice(this.voice.channelId);
  }

  /** The character can be heard in the channel (in voice, and not a Stage audience). */
  get audible(): boolean {
    if (!this.voice) return false;
    return !(this.deps.guild()?.isStageChannel(this.voice.channelId) && this.deps.guild()?.botSuppressed());
  }

  /**
   * On a Stage a bot joins as audience and nobody hears it: it asks to speak (un-suppresses itself
   * when it may, else raises its hand) and says plainly what happened; until it speaks, replies are
   * answered in text and never acknowledged to Voxta as heard.
   */
  private async takeTheStage(guild: GuildPort, channelId: string, signal: AbortSignal): Promise<void> {
    this.stageNote = undefined;
    this.stageSpeaking = undefined;
    if (!guild.isStageChannel(channelId)) return;
    // A stop while Discord answers does not wait for it (the join is left by the stop).
    const outcome = guild.botSuppressed() ? await abortable(guild.requestToSpeak().catch(() => 'refused' as const), signal) : 'speaking';
    checkNotAborted(signal);
    this.stageSpeaking = outcome === 'speaking' && !guild.botSuppressed();
    this.deps.log().info({ channelId, outcome }, 'guild session: joined a Stage');
    if (this.stageSpeaking) return;
    this.stageNote =
      outcome === 'requested'
        ? 'This is a Stage and I joined as audience, so nobody can hear me yet: I asked to speak, and a stage moderator can invite me up (or give me the Mute Members permission there). Until then I answer here in text.'
        : 'This is a Stage and I joined as audience, so nobody can hear me: I may not even ask to speak (I need the Request to Speak permission there). I answer here in text; move me to a voice channel or invite me to speak.';
  }

  /** The bot's own voice state changed (a stage moderator invited it up, or moved it back). */
  botVoiceChanged(): void {
    if (!this.voice || this.stageSpeaking === undefined) return;
    const now = this.audible;
    if (now === this.stageSpeaking) return;
    this.stageSpeaking = now;
    this.deps
      .post(now ? `I can speak on the stage now; you will hear me in <#${this.voice.channelId}>.` : 'I was moved to the stage audience, so nobody can hear me; I answer here in text until I am invited to speak again.')
      .catch(() => undefined);
  }

  /** The server's barge-in mode changed: the live connection uses it from now on. */
  setBargeIn(mode: BargeInMode): void {
    this.voice?.setBargeInMode(mode);
  }

  /** Leaves voice (if in it) and gives the slot back. Never throws. */
  async leave(reason: string): Promise<void> {
    this.cancelEmptyTimer();
    const voice = this.voice;
    this.voice = undefined;
    if (voice) await this.leaveConnection(voice, reason);
    this.deps.admission.releaseVoice(this.deps.guildId);
  }

  /** Voice members changed (join/leave/move) in these channels. */
  membersChanged(channelIds: Array<string | undefined>): void {
    if (this.voice && channelIds.includes(this.voice.channelId)) {
      this.deps.presenceChanged();
      this.checkOccupancy();
    } else if (this.awayFrom && channelIds.includes(this.awayFrom)) {
      this.checkOccupancy();
    }
  }

  stats(): Record<string, number> | undefined {
    return this.voice?.stats();
  }

  /**
   * A counter over this guild's whole run (earlier joins too): Opus packets that failed to decode,
   * or members' utterances Voxta never got (held past their bound, session gone).
   */
  total(counter: RetiredCounter): number {
    return this.retired[counter] + (this.voice?.stats()[counter] ?? 0);
  }

  /** Humans (not bots, not us) in the channel now. */
  present(channelId: string): string[] {
    const guild = this.deps.guild();
    if (!guild) return [];
    return guild
      .voiceMembers(channelId)
      .filter((m) => !m.bot && m.id !== guild.botUserId)
      .map((m) => m.displayName);
  }

  /** Discord ended this voice connection (kicked, channel gone, recovery gave up): go on text-only. */
  private ended(voice: GuildVoicePort, why: string): void {
    if (this.voice !== voice) return;
    this.voice = undefined;
    this.retireStats(voice);
    this.cancelEmptyTimer();
    this.deps.admission.releaseVoice(this.deps.guildId);
    this.deps.voiceLost();
    this.deps.log().info({ why }, 'guild session: voice ended, going on text-only');
    // Not awaited: a slow Discord does not hold the guild's next operation (post never rejects).
    this.deps.post('I was disconnected from the voice channel; the chat goes on here in text. Run /join to bring me back.').catch(() => undefined);
  }

  /**
   * Nobody to talk to in voice: leave after a grace period (and come back when someone joins),
   * so the bot does not sit in an empty channel holding Voxta's one voice slot. Also run by the
   * session when it becomes active (presence changes are not acted on while starting).
   */
  checkOccupancy(): void {
    if (!this.deps.bridging()) return;
    const voice = this.voice;
    if (voice) {
      const humans = this.present(voice.channelId).length;
      if (humans === 0 && !this.emptyTimer) {
        const channelId = voice.channelId;
        this.emptyTimer = setTimeout(() => {
          this.emptyTimer = undefined;
          this.deps.enqueue('leave empty channel', async () => this.leaveBecauseEmpty(channelId)).catch((err: unknown) => {
            this.deps.log().debug({ err: errorInfo(err) }, 'guild session: leaving the empty channel did not run (the session stopped)');
          });
        }, this.deps.idleLeaveMs ?? VOICE_IDLE_LEAVE_MS);
        this.emptyTimer.unref();
      } else if (humans > 0 && this.emptyTimer) {
        this.cancelEmptyTimer();
      }
      return;
    }
    const away = this.awayFrom;
    if (away && this.present(away).length > 0 && !this.rejoinQueued) {
      this.rejoinQueued = true;
      this.deps
        .enqueue('rejoin', (signal) => this.rejoinAfterAway(away, signal))
        .catch((err: unknown) => this.deps.log().debug({ err: errorInfo(err) }, 'guild session: rejoining did not run (the session stopped)'))
        .finally(() => {
          this.rejoinQueued = false;
        });
    }
  }

  private cancelEmptyTimer(): void {
    if (this.emptyTimer) clearTimeout(this.emptyTimer);
    this.emptyTimer = undefined;
  }

  private async leaveBecauseEmpty(channelId: string): Promise<void> {
    if (!this.deps.bridging() || this.voice?.channelId !== channelId || this.present(channelId).length > 0) return;
    await this.leave('voice channel empty');
    this.awayFrom = channelId;
    this.deps.log().info({ channelId }, 'guild session: left the empty voice channel; will come back when someone joins');
    this.deps.post(`Everyone left <#${channelId}>, so I left too. I will come back when someone joins it.`).catch(() => undefined);
  }

  private async rejoinAfterAway(channelId: string, signal: AbortSignal): Promise<void> {
    const guild = this.deps.guild();
    // Stopped, moved, or asked to leave since: nothing to come back to.
    if (!guild || this.awayFrom !== channelId || this.voice || !this.deps.bridging() || this.present(channelId).length === 0) return;
    this.awayFrom = undefined;
    const note = await this.planAndConnect(guild, channelId, signal);
    if (note) {
      this.deps.post(note).catch(() => undefined);
      return;
    }
    const listening = this.listeningNotice();
    if (listening) this.deps.post(listening).catch(() => undefined);
    this.checkOccupancy();
  }

  private async leaveConnection(voice: GuildVoicePort, reason: string): Promise<void> {
    this.retireStats(voice);
    try {
      await voice.leave(reason);
    } catch (err) {
      this.deps.log().warn({ err: errorInfo(err) }, 'guild session: leaving voice failed');
    }
  }

  /**
   * The opt-out role against fresh member data: without the Guild Members intent the bot never
   * hears of role changes, so a member given the role while in voice would go on being streamed.
   * Checked when a member starts speaking (the uplink holds their audio meanwhile), cached briefly.
   */
  private async verifyListenable(userId: string): Promise<boolean> {
    const optOutRole = this.deps.config.voice.optOutRoleId;
    const guild = this.deps.guild();
    if (!optOutRole || !guild?.fetchMemberRoleIds) return true;
    const cached = this.freshRoles.get(userId);
    const now = Date.now();
    let roles = cached && now - cached.at < FRESH_ROLES_MS ? cached.roles : undefined;
    if (!roles) {
      // Not a member any more (undefined): nobody to listen to.
      const fetched = await guild.fetchMemberRoleIds(userId);
      if (fetched === undefined) return false;
      roles = fetched;
      this.freshRoles.set(userId, { roles, at: now });
      if (this.freshRoles.size > 500) this.freshRoles.delete(this.freshRoles.keys().next().value!);
    }
    return !roles.includes(optOutRole);
  }

  private isListenable(userId: string): boolean {
    const guild = this.deps.guild();
    if (!guild || userId === guild.botUserId) return false;
    try {
      if (this.deps.store.isVoiceOptedOut(this.deps.guildId, userId)) return false;
    } catch (err) {
      // A privacy promise: when the opt-out cannot be read, do not listen.
      this.deps.log().warn({ err: errorInfo(err), userId }, 'guild session: reading voice opt-outs failed; not listening to this member');
      return false;
    }
    const optOutRole = this.deps.config.voice.optOutRoleId;
    if (optOutRole && guild.memberRoleIds(userId).includes(optOutRole)) return false;
    const member = this.voice ? guild.voiceMembers(this.voice.channelId).find((m) => m.id === userId) : undefined;
    if (member?.bot) return false;
    return this.deps.mayListen?.(userId) ?? true;
  }

  private retireStats(voice: GuildVoicePort): void {
    try {
      const st = voice.stats();
      for (const k of Object.keys(this.retired) as RetiredCounter[]) this.retired[k] += st[k] ?? 0;
    } catch {
      // stats of a torn-down connection are not worth failing over
    }
  }
}
