/**
 * Voice states on the gateway side: the bot's op 4 (join, move, leave), members joining and
 * leaving voice and stage channels, stage speakers and audience (suppress, raised hands), and
 * keeping the voice server told who is in the bot's channel and who is suppressed.
 *
 * Ordering follows what @discordjs/voice needs (gotcha 1): VOICE_STATE_UPDATE for the bot (with
 * the gateway session id, as Discord does) first, then the voice server session is opened (for
 * its token) and VOICE_SERVER_UPDATE sent. The time between the two is controllable (a delay,
 * and a gate a test holds and releases) so "the voice join is still in flight" can be made to
 * happen deterministically.
 */
import type { Logger } from '../../src/log.js';
import type { Gateway, GatewaySession, VoiceStateUpdateRequest } from './gateway.js';
import { voiceStatePayload } from './payloads.js';
import { Perm, hasAll } from './permissions.js';
import { SimError, isVoiceChannel, type SimState, type SimVoiceState } from './state.js';
import type { VoiceBackend } from './voice-link.js';

export interface BotVoiceState {
  channelId: string;
  sessionId: string;
  selfMute: boolean;
  selfDeaf: boolean;
  /** Stage channels: audience (true) or speaker. */
  suppress: boolean;
  requestToSpeakTimestamp: string | null;
}

/** A voice join the bot asked for whose VOICE_SERVER_UPDATE has not been sent yet. */
export interface PendingVoiceJoin {
  guildId: string;
  channelId: string;
  /** When the op 4 arrived. */
  at: number;
  /** Waiting at the gate (`holdVoiceJoins`), as opposed to still in its delay. */
  held: boolean;
}

export class VoiceStates {
  /** Per guild: the members the voice server currently believes are in the bot's channel. */
  private readonly announced = new Map<string, Set<string>>();
  /** Per guild: who the voice server believes is suppressed. */
  private readonly reportedSuppressed = new Map<string, Set<string>>();
  /** Op 4 requests the bot sent, in order (what @discordjs/voice asked for). */
  readonly botRequests: Array<VoiceStateUpdateRequest & { at: number }> = [];
  /** Time between the bot's op 4 and VOICE_SERVER_UPDATE. */
  joinDelayMs: number;
  private gateClosed = false;
  private stopped = false;
  private readonly gateWaiters = new Set<() => void>();
  /** Per guild: bumped by every change of the bot's voice state, so a superseded pending join does nothing. */
  private readonly generation = new Map<string, number>();
  private readonly pending = new Map<string, PendingVoiceJoin>();
  private readonly pendingListeners = new Set<() => void>();

  constructor(
    private readonly state: SimState,
    private readonly gateway: Gateway,
    private readonly backend: VoiceBackend,
    private readonly log: Logger,
    opts: { joinDelayMs?: number } = {},
  ) {
    this.joinDelayMs = opts.joinDelayMs ?? 0;
  }

  botVoiceState(guildId: string): BotVoiceState | undefined {
    const v = this.state.guilds.get(guildId)?.voiceStates.get(this.state.botUserId);
    return v
      ? {
          channelId: v.channelId,
          sessionId: v.sessionId,
          selfMute: v.selfMute,
          selfDeaf: v.selfDeaf,
          suppress: v.suppress,
          requestToSpeakTimestamp: v.requestToSpeakAt ? v.requestToSpeakAt.toISOString() : null,
        }
      : undefined;
  }

  // ---- the join gate ----

  /** From now on the bot's voice joins stop before VOICE_SERVER_UPDATE until {@link releaseJoins}. */
  holdJoins(): void {
    this.gateClosed = true;
  }

  /** Opens the gate: held joins continue (each still checks that it was not superseded). */
  releaseJoins(): void {
    this.gateClosed = false;
    const waiters = [...this.gateWaiters];
    this.gateWaiters.clear();
    for (const w of waiters) w();
  }

  /** The simulator is closing: pending joins are dropped, never completed. */
  stop(): void {
    this.stopped = true;
    this.releaseJoins();
  }

  /** Joins in flight (op 4 received, VOICE_SERVER_UPDATE not sent). */
  pendingJoins(): PendingVoiceJoin[] {
    return [...this.pending.values()].map((p) => ({ ...p }));
  }

  /** Resolves once a join of the guild is held at the gate. */
  waitForHeldJoin(guildId: string, timeoutMs: number): Promise<PendingVoiceJoin> {
    const find = () => [...this.pending.values()].find((p) => p.guildId === guildId && p.held);
    const hit = find();
    if (hit) return Promise.resolve({ ...hit });
    return new Promise<PendingVoiceJoin>((resolve, reject) => {
      const check = () => {
        const p = find();
        if (!p) return;
        cleanup();
        resolve({ ...p });
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`discord-sim: no voice join of guild ${guildId} held at the gate within ${timeoutMs} ms (did the bot send op 4? is the gate held?)`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.pendingListeners.delete(check);
      };
      this.pendingListeners.add(check);
    });
  }

  private pendingChanged(): void {
    for (const l of [...this.pendingListeners]) l();
  }

  private bump(guildId: string): number {
    const next = (this.generation.get(guildId) ?? 0) + 1;
    this.generation.set(guildId, next);
    return next;
  }

  /** Gateway op 4 from the bot. */
  onBotRequest(session: GatewaySession, d: VoiceStateUpdateRequest): void {
    this.botRequests.push({ ...d, at: Date.now() });
    const guild = this.state.guilds.get(d.guild_id);
    if (!guild || !guild.botPresent) {
      this.log.warn({ guildId: d.guild_id }, 'discord-sim: op 4 for a guild the bot is not in; ignored (as Discord does)');
      return;
    }
    const bot = this.state.botUserId;
    if (d.channel_id === null) {
      const prev = guild.voiceStates.get(bot);
      this.bump(guild.id);
      if (!prev) return;
      guild.voiceStates.delete(bot);
      this.dispatchLeft(prev);
      this.backend.closeSession(guild.id);
      return;
    }
    const channel = this.state.findChannel(d.channel_id);
    if (!channel || channel.guildId !== guild.id || !isVoiceChannel(channel)) {
      this.log.warn({ guildId: guild.id, channelId: d.channel_id }, 'discord-sim: op 4 for an unknown or non-voice channel; ignored');
      return;
    }
    if (!hasAll(this.state.channelPermissions(channel.id, bot), Perm.ViewChannel | Perm.Connect)) {
      this.log.warn({ channel: channel.name }, 'discord-sim: op 4 but the bot lacks Connect in that channel; ignored (Discord sends nothing)');
      return;
    }
    const prev = guild.voiceStates.get(bot);
    const sameChannel = prev?.channelId === channel.id;
    const vs: SimVoiceState = {
      guildId: guild.id,
      channelId: channel.id,
      userId: bot,
      sessionId: session.id,
      selfMute: Boolean(d.self_mute),
      selfDeaf: Boolean(d.self_deaf),
      mute: false,
      deaf: false,
      // Everyone joins a stage as audience; staying in the same stage keeps the current state.
      suppress: channel.kind === 'stage' ? (sameChannel ? (prev?.suppress ?? true) : true) : false,
      requestToSpeakAt: sameChannel ? (prev?.requestToSpeakAt ?? null) : null,
    };
    guild.voiceStates.set(bot, vs);
    const generation = this.bump(guild.id);
    this.gateway.dispatch('VOICE_STATE_UPDATE', voiceStatePayload(this.state, vs));
    const complete = () => {
      // A later op 4, a leave, a kick or a new gateway session superseded this join.
      if (this.stopped || this.generation.get(guild.id) !== generation || guild.voiceStates.get(bot) !== vs) return;
      // Every op 4 to a channel opens (or reopens) the voice session: rejoins need a fresh
      // VOICE_SERVER_UPDATE, exactly like a first join.
      const { token } = this.backend.openSession({ guildId: guild.id, channelId: channel.id, botUserId: bot, sessionId: session.id });
      this.reconcileMembers(guild.id);
      this.gateway.dispatch('VOICE_SERVER_UPDATE', { token, guild_id: guild.id, endpoint: this.backend.endpoint });
    };
    if (this.joinDelayMs <= 0 && !this.gateClosed) {
      complete();
      return;
    }
    this.finishLater(guild.id, channel.id, generation, complete);
  }

  /** Waits the join delay, then the gate, then completes the join (unless superseded meanwhile). */
  private finishLater(guildId: string, channelId: string, generation: number, complete: () => void): void {
    const key = `${guildId}:${generation}`;
    const entry: PendingVoiceJoin = { guildId, channelId, at: Date.now(), held: false };
    this.pending.set(key, entry);
    this.pendingChanged();
    const run = async () => {
      if (this.joinDelayMs > 0) await new Promise((r) => setTimeout(r, this.joinDelayMs));
      while (this.gateClosed && this.generation.get(guildId) === generation) {
        entry.held = true;
        this.pendingChanged();
        this.log.debug({ guildId, channelId }, 'discord-sim: voice join held at the gate');
        await new Promise<void>((resolve) => this.gateWaiters.add(resolve));
      }
      this.pending.delete(key);
      this.pendingChanged();
      complete();
    };
    run().catch((err: unknown) => this.log.error({ err: String(err) }, 'discord-sim: delayed voice join failed'));
  }

  /**
   * A new gateway session (the bot restarted or re-identified) ends the voice connections of the
   * old one, as on Discord: the bot is no longer in voice anywhere and must send op 4 again. No
   * dispatch: the new session learns its state from GUILD_CREATE.
   */
  dropStaleBotStates(sessionId: string): void {
    for (const guild of this.state.guilds.values()) {
      const v = guild.voiceStates.get(this.state.botUserId);
      if (!v || v.sessionId === sessionId) continue;
      this.bump(guild.id);
      guild.voiceStates.delete(this.state.botUserId);
      this.backend.closeSession(guild.id);
      this.log.debug({ guildId: guild.id }, 'discord-sim: new gateway session; the old session left voice');
    }
  }

  /** Server-side removal of the bot from voice (kicked / channel deleted / left the guild). */
  disconnectBot(guildId: string): void {
    const guild = this.state.guild(guildId);
    const prev = guild.voiceStates.get(this.state.botUserId);
    this.bump(guildId);
    if (!prev) return;
    guild.voiceStates.delete(this.state.botUserId);
    this.dispatchLeft(prev);
    this.backend.closeSession(guildId);
  }

  memberJoin(guildId: string, userId: string, channelId: string, opts: { selfMute?: boolean; selfDeaf?: boolean } = {}): void {
    const channel = this.state.channel(channelId);
    if (channel.guildId !== guildId || !isVoiceChannel(channel)) throw new SimError(`channel ${channel.name} is not a voice channel of guild ${guildId}`);
    this.state.member(guildId, userId);
    if (!hasAll(this.state.channelPermissions(channelId, userId), Perm.ViewChannel | Perm.Connect)) {
      throw new SimError(`member ${userId} lacks Connect in ${channel.name}`);
    }
    const guild = this.state.guild(guildId);
    const prev = guild.voiceStates.get(userId);
    if (prev?.channelId === channelId) return;
    const vs: SimVoiceState = {
      guildId,
      channelId,
      userId,
      sessionId: prev?.sessionId ?? this.state.ids.next(),
      selfMute: opts.selfMute ?? false,
      selfDeaf: opts.selfDeaf ?? false,
      mute: false,
      deaf: false,
      suppress: channel.kind === 'stage',
      requestToSpeakAt: null,
    };
    guild.voiceStates.set(userId, vs);
    this.gateway.dispatch('VOICE_STATE_UPDATE', voiceStatePayload(this.state, vs));
    this.reconcileMembers(guildId);
  }

  // ---- stage channels ----

  /**
   * Changes a participant's stage state (suppress, raised hand): VOICE_STATE_UPDATE, and the voice
   * server learns who is suppressed. Permission checks are the caller's (REST route or scenario).
   */
  updateStageState(guildId: string, userId: string, change: { suppress?: boolean; requestToSpeakAt?: Date | null }): SimVoiceState {
    const guild = this.state.guild(guildId);
    const v = guild.voiceStates.get(userId);
    if (!v) throw new SimError(`user ${userId} is not in voice in guild ${guildId}`);
    if (this.state.channel(v.channelId).kind !== 'stage') throw new SimError(`user ${userId} is not in a stage channel`);
    if (change.suppress !== undefined) v.suppress = change.suppress;
    if (change.requestToSpeakAt !== undefined) v.requestToSpeakAt = change.requestToSpeakAt;
    this.gateway.dispatch('VOICE_STATE_UPDATE', voiceStatePayload(this.state, v));
    this.reconcileMembers(guildId);
    return v;
  }

  memberLeave(guildId: string, userId: string): void {
    const guild = this.state.guild(guildId);
    const prev = guild.voiceStates.get(userId);
    if (!prev) return;
    guild.voiceStates.delete(userId);
    this.dispatchLeft(prev);
    this.reconcileMembers(guildId);
  }

  /** Everyone in a deleted channel is disconnected, the bot included. */
  channelDeleted(guildId: string, channelId: string): void {
    const guild = this.state.guild(guildId);
    for (const v of [...guild.voiceStates.values()]) {
      if (v.channelId !== channelId) continue;
      if (v.userId === this.state.botUserId) this.disconnectBot(guildId);
      else this.memberLeave(guildId, v.userId);
    }
  }

  /** Members (not the bot) in the bot's current voice channel of the guild. */
  membersWithBot(guildId: string): string[] {
    return [...(this.announced.get(guildId) ?? [])];
  }

  /**
   * Makes the voice server's member list match the members in the bot's channel. When the bot is
   * not in voice the server keeps its list (it keeps members across closeSession), and the next
   * join reconciles it.
   */
  private reconcileMembers(guildId: string): void {
    const guild = this.state.guild(guildId);
    const botState = guild.voiceStates.get(this.state.botUserId);
    if (!botState) return;
    const want = new Set(
      [...guild.voiceStates.values()].filter((v) => v.userId !== this.state.botUserId && v.channelId === botState.channelId).map((v) => v.userId),
    );
    let have = this.announced.get(guildId);
    if (!have) this.announced.set(guildId, (have = new Set()));
    for (const userId of [...have]) {
      if (!want.has(userId)) {
        have.delete(userId);
        this.backend.memberLeft(guildId, userId);
      }
    }
    for (const userId of want) {
      if (!have.has(userId)) {
        have.add(userId);
        this.backend.memberJoined(guildId, userId);
      }
    }
    // Suppression of everyone in the bot's channel, the bot included; only changes are reported.
    let told = this.reportedSuppressed.get(guildId);
    if (!told) this.reportedSuppressed.set(guildId, (told = new Set()));
    for (const userId of [this.state.botUserId, ...want]) {
      const suppressed = guild.voiceStates.get(userId)?.suppress ?? false;
      if (suppressed === told.has(userId)) continue;
      if (suppressed) told.add(userId);
      else told.delete(userId);
      this.backend.setSuppressed(guildId, userId, suppressed);
    }
    for (const userId of [...told]) {
      if (userId !== this.state.botUserId && !want.has(userId)) {
        told.delete(userId);
        this.backend.setSuppressed(guildId, userId, false);
      }
    }
  }

  private dispatchLeft(prev: SimVoiceState): void {
    this.gateway.dispatch('VOICE_STATE_UPDATE', voiceStatePayload(this.state, { ...prev, channelId: null }));
  }
}
