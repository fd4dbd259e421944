/**
 * Voice states on the gateway side: the bot's op 4 (join, move, leave), members joining and
 * leaving voice channels, and keeping the voice server told who is in the bot's channel.
 *
 * Ordering follows what @discordjs/voice needs (gotcha 1): the voice server session is opened
 * first (for its token), then VOICE_STATE_UPDATE for the bot (with the gateway session id, as
 * Discord does), then VOICE_SERVER_UPDATE.
 */
import type { Logger } from '../../src/log.js';
import type { Gateway, GatewaySession, VoiceStateUpdateRequest } from './gateway.js';
import { voiceStatePayload } from './payloads.js';
import { Perm, hasAll } from './permissions.js';
import { SimError, type SimState, type SimVoiceState } from './state.js';
import type { VoiceBackend } from './voice-link.js';

export interface BotVoiceState {
  channelId: string;
  sessionId: string;
  selfMute: boolean;
  selfDeaf: boolean;
}

export class VoiceStates {
  /** Per guild: the members the voice server currently believes are in the bot's channel. */
  private readonly announced = new Map<string, Set<string>>();
  /** Op 4 requests the bot sent, in order (what @discordjs/voice asked for). */
  readonly botRequests: Array<VoiceStateUpdateRequest & { at: number }> = [];

  constructor(
    private readonly state: SimState,
    private readonly gateway: Gateway,
    private readonly backend: VoiceBackend,
    private readonly log: Logger,
  ) {}

  botVoiceState(guildId: string): BotVoiceState | undefined {
    const v = this.state.guilds.get(guildId)?.voiceStates.get(this.state.botUserId);
    return v ? { channelId: v.channelId, sessionId: v.sessionId, selfMute: v.selfMute, selfDeaf: v.selfDeaf } : undefined;
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
      if (!prev) return;
      guild.voiceStates.delete(bot);
      this.dispatchLeft(prev);
      this.backend.closeSession(guild.id);
      return;
    }
    const channel = this.state.findChannel(d.channel_id);
    if (!channel || channel.guildId !== guild.id || channel.kind !== 'voice') {
      this.log.warn({ guildId: guild.id, channelId: d.channel_id }, 'discord-sim: op 4 for an unknown or non-voice channel; ignored');
      return;
    }
    if (!hasAll(this.state.channelPermissions(channel.id, bot), Perm.ViewChannel | Perm.Connect)) {
      this.log.warn({ channel: channel.name }, 'discord-sim: op 4 but the bot lacks Connect in that channel; ignored (Discord sends nothing)');
      return;
    }
    const vs: SimVoiceState = {
      guildId: guild.id,
      channelId: channel.id,
      userId: bot,
      sessionId: session.id,
      selfMute: Boolean(d.self_mute),
      selfDeaf: Boolean(d.self_deaf),
      mute: false,
      deaf: false,
    };
    guild.voiceStates.set(bot, vs);
    // Every op 4 to a channel opens (or reopens) the voice session: rejoins need a fresh
    // VOICE_SERVER_UPDATE, exactly like a first join.
    const { token } = this.backend.openSession({ guildId: guild.id, channelId: channel.id, botUserId: bot, sessionId: session.id });
    this.reconcileMembers(guild.id);
    this.gateway.dispatch('VOICE_STATE_UPDATE', voiceStatePayload(this.state, vs));
    this.gateway.dispatch('VOICE_SERVER_UPDATE', { token, guild_id: guild.id, endpoint: this.backend.endpoint });
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
      guild.voiceStates.delete(this.state.botUserId);
      this.backend.closeSession(guild.id);
      this.log.debug({ guildId: guild.id }, 'discord-sim: new gateway session; the old session left voice');
    }
  }

  /** Server-side removal of the bot from voice (kicked / channel deleted / left the guild). */
  disconnectBot(guildId: string): void {
    const guild = this.state.guild(guildId);
    const prev = guild.voiceStates.get(this.state.botUserId);
    if (!prev) return;
    guild.voiceStates.delete(this.state.botUserId);
    this.dispatchLeft(prev);
    this.backend.closeSession(guildId);
  }

  memberJoin(guildId: string, userId: string, channelId: string, opts: { selfMute?: boolean; selfDeaf?: boolean } = {}): void {
    const channel = this.state.channel(channelId);
    if (channel.guildId !== guildId || channel.kind !== 'voice') throw new SimError(`channel ${channel.name} is not a voice channel of guild ${guildId}`);
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
    };
    guild.voiceStates.set(userId, vs);
    this.gateway.dispatch('VOICE_STATE_UPDATE', voiceStatePayload(this.state, vs));
    this.reconcileMembers(guildId);
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
  }

  private dispatchLeft(prev: SimVoiceState): void {
    this.gateway.dispatch('VOICE_STATE_UPDATE', voiceStatePayload(this.state, { ...prev, channelId: null }));
  }
}
