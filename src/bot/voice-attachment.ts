/**
 * A guild session's presence in voice: taking Voxta's voice slot (admission), joining through
 * `GuildVoice`, going on text-only when the connection ends, leaving an empty channel after a grace
 * period and coming back when a human joins it, and the voice figures kept across joins. The guild
 * session decides when voice is wanted; this module owns the connection and the slot.
 */
import type { Config } from '../config.js';
import { errorInfo, type Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { Admission } from './admission.js';
import type { GuildPort, GuildVoiceJoiner, GuildVoicePort, VoxtaSessionPort } from './ports.js';

/** How long the bot stays in a voice channel with no human in it. */
export const VOICE_IDLE_LEAVE_MS = 120_000;

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
  /** Posts one plain sentence in the bound channel (never throws). */
  post: (text: string) => Promise<void>;
  /** A voice turn, or a character's spoken reply, for the transcript mirror and turn figures. */
  mirror: (kind: 'member' | 'character' | 'unheard', name: string, text: string) => void;
  /** Who is present changed (joined here): Voxta's context should follow. */
  presenceChanged: () => void;
  /** Leave an empty voice channel after this long (tests shorten it). */
  idleLeaveMs?: number;
}

export class VoiceAttachment {
  private voice: GuildVoicePort | undefined;
  /** The voice channel we left because it was empty (we come back when a human joins it). */
  private awayFrom: string | undefined;
  private emptyTimer: NodeJS.Timeout | undefined;
  private rejoining = false;
  private decodeErrorsBefore = 0;

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
  async planAndConnect(guild: GuildPort, channelId: string): Promise<string | undefined> {
    const plan = this.plan(guild, channelId);
    return plan.join ? await this.connect(channelId) : plan.note;
  }

  /** Joins voice (slot already taken); returns a plain note when it could not (text-only then). */
  async connect(channelId: string): Promise<string | undefined> {
    const { guildId, admission } = this.deps;
    const guild = this.deps.guild();
    const voxta = this.deps.voxta();
    if (!this.deps.joinVoice || !guild || !voxta) {
      admission.releaseVoice(guildId);
      return 'Voice is not available right now, so this chat is text-only.';
    }
    try {
      const voice = await this.deps.joinVoice({
        guildId,
        channelId,
        adapterCreator: guild.voiceAdapterCreator(),
        botUserId: guild.botUserId,
        voxta,
        config: this.deps.config.voice,
        isListenable: (userId) => this.isListenable(userId),
        displayName: (userId) => this.deps.guild()?.displayName(userId) ?? 'Someone',
        notify: (text) => void this.deps.post(text),
        mirror: (kind, name, text) => this.deps.mirror(kind, name, text),
        gatewaySessionStartedAt: () => this.deps.guild()?.gatewaySessionStartedAt?.(),
        humansInChannel: () => (this.deps.guild()?.voiceMembers(channelId) ?? []).filter((m) => !m.bot && m.id !== guild.botUserId).map((m) => m.id),
      });
      this.voice = voice;
      voice.once('ended', (why: string) => {
        if (this.voice !== voice) return;
        this.voice = undefined;
        this.retireStats(voice);
        this.cancelEmptyTimer();
        admission.releaseVoice(guildId);
        this.deps.log().info({ why: String(why ?? '') }, 'guild session: voice ended, going on text-only');
        void this.deps.post('I was disconnected from the voice channel; the chat goes on here in text. Run /join to bring me back.');
      });
      this.deps.presenceChanged();
      this.checkOccupancy();
      return undefined;
    } catch (err) {
      admission.releaseVoice(guildId);
      this.deps.log().warn({ err: errorInfo(err), channelId }, 'guild session: joining voice failed');
      return 'I could not join the voice channel (check my Connect and Speak permissions there), so this chat is text-only.';
    }
  }

  /** Leaves voice (if in it) and gives the slot back. */
  async leave(reason: string): Promise<void> {
    this.cancelEmptyTimer();
    const voice = this.voice;
    if (!voice) return;
    this.voice = undefined;
    this.retireStats(voice);
    try {
      await voice.leave(reason);
    } catch (err) {
      this.deps.log().warn({ err: errorInfo(err) }, 'guild session: leaving voice failed');
    }
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

  /** Opus packets that failed to decode, over this guild's whole run (earlier joins too). */
  decodeErrorsTotal(): number {
    return this.decodeErrorsBefore + (this.voice?.stats().decodeErrors ?? 0);
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

  /**
   * Nobody to talk to in voice: leave after a grace period (and come back when someone joins),
   * so the bot does not sit in an empty channel holding Voxta's one voice slot.
   */
  private checkOccupancy(): void {
    if (!this.deps.bridging()) return;
    const voice = this.voice;
    if (voice) {
      const humans = this.present(voice.channelId).length;
      if (humans === 0 && !this.emptyTimer) {
        this.emptyTimer = setTimeout(() => void this.leaveBecauseEmpty(voice.channelId), this.deps.idleLeaveMs ?? VOICE_IDLE_LEAVE_MS);
        this.emptyTimer.unref();
      } else if (humans > 0 && this.emptyTimer) {
        this.cancelEmptyTimer();
      }
      return;
    }
    const away = this.awayFrom;
    if (away && this.present(away).length > 0 && !this.rejoining) void this.rejoinAfterAway(away);
  }

  private cancelEmptyTimer(): void {
    if (this.emptyTimer) clearTimeout(this.emptyTimer);
    this.emptyTimer = undefined;
  }

  private async leaveBecauseEmpty(channelId: string): Promise<void> {
    this.emptyTimer = undefined;
    if (!this.deps.bridging() || this.voice?.channelId !== channelId || this.present(channelId).length > 0) return;
    await this.leave('voice channel empty');
    this.awayFrom = channelId;
    this.deps.log().info({ channelId }, 'guild session: left the empty voice channel; will come back when someone joins');
    await this.deps.post(`Everyone left <#${channelId}>, so I left too. I will come back when someone joins it.`);
  }

  private async rejoinAfterAway(channelId: string): Promise<void> {
    const guild = this.deps.guild();
    if (!guild) return;
    this.rejoining = true;
    try {
      this.awayFrom = undefined;
      const note = await this.planAndConnect(guild, channelId);
      if (note) await this.deps.post(note);
      else this.checkOccupancy();
    } finally {
      this.rejoining = false;
    }
  }

  private isListenable(userId: string): boolean {
    const guild = this.deps.guild();
    if (!guild || userId === guild.botUserId) return false;
    if (this.deps.store.isVoiceOptedOut(this.deps.guildId, userId)) return false;
    const optOutRole = this.deps.config.voice.optOutRoleId;
    if (optOutRole && guild.memberRoleIds(userId).includes(optOutRole)) return false;
    const member = this.voice ? guild.voiceMembers(this.voice.channelId).find((m) => m.id === userId) : undefined;
    return !member?.bot;
  }

  private retireStats(voice: GuildVoicePort): void {
    try {
      this.decodeErrorsBefore += voice.stats().decodeErrors ?? 0;
    } catch {
      // stats of a torn-down connection are not worth failing over
    }
  }
}
