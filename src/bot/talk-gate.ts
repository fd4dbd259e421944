/**
 * Who may talk to the character, and how often: the server's chat roles and block list, a token
 * bucket per member for text turns, a bound on the turns waiting per server, and a per-member
 * limit on spoken turns. One gate for all guilds; the settings are read per guild each time, so a
 * `/config` change applies to the next message (and within two seconds in voice, where the voice
 * module re-checks each speaker that often).
 *
 * What members see when refused is decided here: ⛔ (may not talk: role or block list) or 🐢
 * (too fast: their own limit, or the server's queue is full), one reaction on the message that was
 * not forwarded. In voice nothing is forwarded; a member over the spoken-turn limit is told once
 * per limit period in the text channel, a member who may not talk is not (as for opted-out members).
 *
 * Role data: the bot has no Guild Members intent, so a member's roles are as fresh as the last
 * payload that carried them. Text messages and button presses carry the member's current roles.
 * In voice, roles are taken from the voice state when a member joins the bot's channel (it carries
 * them), fetched (`GET /guilds/:id/members/:id`) for the members present when the bot joins or the
 * chat roles change, and fetched again when a member speaks and what we know is older than
 * {@link ROLES_FRESH_MS} (the old roles apply meanwhile). Unknown roles mean not listened to until
 * Discord has answered.
 */
import { errorInfo, type Logger } from '../log.js';
import { describeRate, type RateLimit } from '../config.js';
import type { Store } from '../store/store.js';
import type { BotMetrics } from './bot-metrics.js';
import type { GuildSettings } from './guild-settings.js';
import type { GuildPort } from './ports.js';

export const NOT_ALLOWED_EMOJI = '⛔';
export const TOO_FAST_EMOJI = '🐢';
/** Roles fetched (or seen in a payload) this recently are used as they are. */
export const ROLES_FRESH_MS = 60_000;
/** Silence that separates one spoken turn from the next, as the gate counts them (longer than the voice module's re-check period). */
export const UTTERANCE_GAP_MS = 2500;

export type RefusalReason = 'role' | 'blocked' | 'rate' | 'queue';
export type TurnSource = 'text' | 'voice' | 'button';

export interface Refusal {
  reason: RefusalReason;
  emoji: typeof NOT_ALLOWED_EMOJI | typeof TOO_FAST_EMOJI;
}

/** A token bucket: `count` at once, refilled at `count / perSeconds`. */
export class TokenBucket {
  private tokens: number;
  private at: number;
  constructor(
    readonly rate: RateLimit,
    now: number,
  ) {
    this.tokens = rate.count;
    this.at = now;
  }

  take(now: number): boolean {
    const refill = ((now - this.at) / 1000) * (this.rate.count / this.rate.perSeconds);
    this.tokens = Math.min(this.rate.count, this.tokens + refill);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Full again (nothing taken for a whole period): the bucket can be forgotten. */
  idle(now: number): boolean {
    return now - this.at >= this.rate.perSeconds * 1000;
  }
}

interface RolesEntry {
  roles: string[] | undefined;
  at: number;
  fetching: boolean;
}

interface VoiceMemberState {
  lastSeen: number;
  verdict: 'ok' | RefusalReason;
  starts: number[];
  toldAt: number | undefined;
}

export interface TalkGateDeps {
  settings: GuildSettings;
  store: Store;
  metrics: BotMetrics;
  log: Logger;
  guild: (guildId: string) => GuildPort | undefined;
  now?: () => number;
}

/** A Discord user id (members' roles can only be fetched for those). */
const SNOWFLAKE = /^\d{15,21}$/;

export class TalkGate {
  private readonly roles = new Map<string, RolesEntry>();
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly voice = new Map<string, VoiceMemberState>();
  private readonly now: () => number;

  constructor(private readonly deps: TalkGateDeps) {
    this.now = deps.now ?? Date.now;
  }

  // ---- who may talk ------------------------------------------------------------------------

  /**
   * Whether this member may talk to the character, with the roles known for them (undefined:
   * unknown, which fails closed when chat roles are set). Roles are only looked up when the
   * server has chat roles.
   */
  access(guildId: string, userId: string, roles: () => readonly string[] | undefined): 'ok' | 'role' | 'blocked' {
    try {
      if (this.deps.store.isMemberBlocked(guildId, userId)) return 'blocked';
    } catch (err) {
      // The block list is a moderation promise: when it cannot be read, nobody gets through.
      this.deps.log.warn({ err: errorInfo(err), guildId }, 'talk gate: reading the block list failed; not forwarding');
      return 'blocked';
    }
    const allowed = this.deps.settings.chatRoleIds(guildId);
    if (allowed.length === 0) return 'ok';
    const roleIds = roles();
    if (!roleIds) return 'role';
    return roleIds.some((r) => allowed.includes(r)) ? 'ok' : 'role';
  }

  /** Roles carried by a fresh payload (a message, an interaction, a voice state). */
  noteRoles(guildId: string, userId: string, roleIds: readonly string[]): void {
    this.roles.set(`${guildId}:${userId}`, { roles: [...roleIds], at: this.now(), fetching: false });
    this.pruneRoles();
  }

  /**
   * The member's roles for a decision that cannot wait (voice): fresh ones as they are; stale
   * ones as they are while a fetch refreshes them; unknown ones are fetched (undefined meanwhile).
   */
  knownRoles(guildId: string, userId: string): string[] | undefined {
    const key = `${guildId}:${userId}`;
    const e = this.roles.get(key);
    const guild = this.deps.guild(guildId);
    if (e && this.now() - e.at < ROLES_FRESH_MS) return e.roles;
    if (!guild?.fetchMemberRoleIds) {
      // No way to fetch (a port without it): the client's cache is all there is.
      return guild?.memberRoleIds(userId);
    }
    // A proxied name no member's message matched (`proxy:<name>`) is no Discord user: nothing to fetch.
    if (!e?.fetching && SNOWFLAKE.test(userId)) this.fetchRoles(guild, key, userId, e);
    return e?.roles;
  }

  /**
   * Members about to be heard (present in the voice channel, or the chat roles just changed):
   * their roles are fetched now, so that their first words are not lost waiting for them. Only
   * when the server has chat roles.
   */
  prefetchRoles(guildId: string, userIds: readonly string[]): void {
    if (this.deps.settings.chatRoleIds(guildId).length === 0) return;
    for (const userId of userIds) this.knownRoles(guildId, userId);
  }

    private fetchRoles(guild: GuildPort, key: string, userId: string, previous: RolesEntry | undefined): void {
    const entry: RolesEntry = { roles: previous?.roles, at: previous?.at ?? 0, fetching: true };
    this.roles.set(key, entry);
    guild.fetchMemberRoleIds!(userId).then(
      (roles) => {
        // Not a member any more: no roles (they cannot talk where roles are required).
        this.roles.set(key, { roles: roles ?? [], at: this.now(), fetching: false });
      },
      (err: unknown) => {
        this.deps.log.debug({ err: errorInfo(err), guildId: guild.id, userId }, 'talk gate: fetching a member’s roles failed');
        entry.fetching = false;
      },
    );
  }

  private pruneRoles(): void {
    if (this.roles.size < 5000) return;
    const cutoff = this.now() - 10 * ROLES_FRESH_MS;
    for (const [k, e] of this.roles) if (e.at < cutoff && !e.fetching) this.roles.delete(k);
  }

  // ---- text ----------------------------------------------------------------------------------

  /**
   * A member's message for the character. `roleIds`: the roles its payload carried (fresh), when
   * known. `queued`: the server's turns waiting for the character now. Undefined = forward it.
   */
  admitText(guildId: string, userId: string, roleIds: readonly string[] | undefined, queued: number): Refusal | undefined {
    return this.admit('text', guildId, userId, roleIds, queued);
  }

  /**
   * A reply button. Who may press it is who may talk; Regenerate and Undo (`countsAsTurn`) also
   * take a turn from the member's text allowance.
   */
  admitButton(guildId: string, userId: string, roleIds: readonly string[] | undefined, opts: { countsAsTurn: boolean }): Refusal | undefined {
    return this.admit('button', guildId, userId, roleIds, opts.countsAsTurn ? 0 : undefined);
  }

  /** `queued` undefined: access only (no turn taken). */
  private admit(source: TurnSource, guildId: string, userId: string, roleIds: readonly string[] | undefined, queued: number | undefined): Refusal | undefined {
    if (roleIds) this.noteRoles(guildId, userId, roleIds);
    const access = this.access(guildId, userId, () => roleIds ?? this.knownRoles(guildId, userId));
    if (access !== 'ok') return this.refuse(source, access);
    if (queued === undefined) return undefined;
    if (source === 'text' && queued >= this.deps.settings.maxQueuedTurns(guildId)) return this.refuse(source, 'queue');
    const rate = this.deps.settings.textRate(guildId);
    if (!rate) return undefined;
    const now = this.now();
    const key = `${guildId}:${userId}`;
    let bucket = this.buckets.get(key);
    if (!bucket || bucket.rate.count !== rate.count || bucket.rate.perSeconds !== rate.perSeconds) {
      bucket = new TokenBucket(rate, now);
      this.buckets.set(key, bucket);
    }
    if (!bucket.take(now)) return this.refuse(source, 'rate');
    if (this.buckets.size > 5000) for (const [k, b] of this.buckets) if (b.idle(now)) this.buckets.delete(k);
    return undefined;
  }

  private refuse(source: TurnSource, reason: RefusalReason): Refusal {
    this.deps.metrics.refusedTurns.inc({ source, reason });
    return { reason, emoji: reason === 'role' || reason === 'blocked' ? NOT_ALLOWED_EMOJI : TOO_FAST_EMOJI };
  }

  // ---- voice ---------------------------------------------------------------------------------

  /**
   * Whether this member's voice may be forwarded now. Called by the voice module when a member
   * starts talking and every few seconds while they talk, so it must be quick and synchronous.
   * Speech separated by {@link UTTERANCE_GAP_MS} of silence is a new spoken turn; each turn is
   * decided once (and counted once in the metrics when refused). `notice`: one sentence for the
   * text channel, at most once per limit period per member.
   */
  admitVoice(guildId: string, userId: string): { ok: boolean; notice?: string } {
    const now = this.now();
    const key = `${guildId}:${userId}`;
    let st = this.voice.get(key);
    if (!st) {
      st = { lastSeen: -Infinity, verdict: 'ok', starts: [], toldAt: undefined };
      this.voice.set(key, st);
      if (this.voice.size > 5000) for (const [k, s] of this.voice) if (now - s.lastSeen > 3600_000) this.voice.delete(k);
    }
    const newTurn = now - st.lastSeen > UTTERANCE_GAP_MS;
    st.lastSeen = now;
    const access = this.access(guildId, userId, () => this.knownRoles(guildId, userId));
    if (access !== 'ok') {
      if (newTurn || st.verdict !== access) this.deps.metrics.refusedTurns.inc({ source: 'voice', reason: access });
      st.verdict = access;
      return { ok: false };
    }
    if (!newTurn && st.verdict !== 'role' && st.verdict !== 'blocked') return { ok: st.verdict === 'ok' };
    const rate = this.deps.settings.voiceRate(guildId);
    if (rate) {
      st.starts = st.starts.filter((t) => now - t < rate.perSeconds * 1000);
      if (st.starts.length >= rate.count) {
        st.verdict = 'rate';
        this.deps.metrics.refusedTurns.inc({ source: 'voice', reason: 'rate' });
        if (st.toldAt === undefined || now - st.toldAt >= rate.perSeconds * 1000) {
          st.toldAt = now;
          const name = this.deps.guild(guildId)?.displayName(userId) ?? 'Someone';
          return {
            ok: false,
            notice: `🐢 ${name}, you are talking to the character more often than this server allows (${describeRate(rate)}), so I am not passing on what you say for a moment.`,
          };
        }
        return { ok: false };
      }
      st.starts.push(now);
    }
    st.verdict = 'ok';
    return { ok: true };
  }
}
