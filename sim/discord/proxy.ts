/**
 * PluralKit-like proxy bots. A member's message is picked up by a proxy bot, reposted through a
 * webhook the proxy bot owns in that channel (with another name and avatar), and the original is
 * deleted. What the bot under test sees: MESSAGE_CREATE (the member), MESSAGE_CREATE with
 * `webhook_id` (the proxy), MESSAGE_DELETE (the original). PluralKit posts first and deletes the
 * trigger a second later (`MessageDeletionDelay` of 1000 ms in PluralKit's ProxyService); the
 * reverse order is available for bots that do it the other way.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { SimMemberHandle } from './handles.js';
import { SimMemberHandle as MemberHandle } from './handles.js';
import { avatarHash, sniffImage } from './images.js';
import type { DiscordSim } from './index.js';
import { memberPayload } from './payloads.js';
import { Perm, hasAll } from './permissions.js';
import { SimError, type SimMessage, type SimWebhook } from './state.js';

/** PluralKit's real bot user id (Tupperbox: 431544605209788416). */
export const PLURALKIT_USER_ID = '466378653216014359';

export interface SayProxiedOptions {
  /** The proxied name (the webhook `username`). */
  as: string;
  /** The proxied avatar image; none: the webhook's own (none). */
  avatar?: Buffer;
  /** Time from the member's message to the proxy bot's first action (default 300 ms). */
  delayMs?: number;
  /** Time between the repost and the deletion of the original (default 1000 ms, PluralKit's). */
  deleteDelayMs?: number;
  /** 'postFirst' (PluralKit, default): repost, then delete the original; 'deleteFirst': the other way round. */
  order?: 'postFirst' | 'deleteFirst';
  /** The proxy bot's user id when the guild has several (default: the first one added). */
  via?: string;
}

export interface ProxiedMessage {
  /** The member's own message (deleted by the proxy bot). */
  originalId: string;
  /** The webhook message that replaced it. */
  proxiedId: string;
  webhookId: string;
  original: SimMessage;
  proxied: SimMessage;
}

const PROXY_BOT_PERMISSIONS =
  Perm.ViewChannel | Perm.SendMessages | Perm.SendMessagesInThreads | Perm.ReadMessageHistory | Perm.ManageWebhooks | Perm.ManageMessages | Perm.EmbedLinks | Perm.AttachFiles | Perm.AddReactions;

export class ProxyBots {
  /** guild id → proxy bot user ids, in the order they were added. */
  private readonly byGuild = new Map<string, string[]>();

  constructor(private readonly sim: DiscordSim) {}

  add(guildId: string, p: { userId?: string; name?: string }): SimMemberHandle {
    const state = this.sim.state;
    const userId = p.userId ?? PLURALKIT_USER_ID;
    const name = p.name ?? (userId === PLURALKIT_USER_ID ? 'PluralKit' : 'Proxy');
    // The same bot user may be in several guilds.
    if (!state.users.has(userId)) state.createUser({ id: userId, username: name, bot: true });
    const guild = state.guild(guildId);
    if (!guild.members.get(userId)?.present) {
      const role = state.createRole(guildId, { name, permissions: PROXY_BOT_PERMISSIONS, managed: true });
      const member = state.addMember(guildId, userId, [role.id]);
      this.sim.dispatch('GUILD_MEMBER_ADD', { ...memberPayload(state, member), guild_id: guildId }, guildId);
    }
    const list = this.byGuild.get(guildId) ?? [];
    if (!list.includes(userId)) list.push(userId);
    this.byGuild.set(guildId, list);
    return new MemberHandle(this.sim, guildId, userId);
  }

  async proxy(member: SimMemberHandle, channelId: string, text: string, opts: SayProxiedOptions): Promise<ProxiedMessage> {
    const state = this.sim.state;
    const botId = opts.via ?? this.byGuild.get(member.guildId)?.[0];
    if (!botId || !state.guild(member.guildId).members.get(botId)?.present) throw new SimError(`guild ${member.guildId} has no proxy bot (guild.addProxyBot())`);
    const original = member.say(channelId, text);
    await sleep(opts.delayMs ?? 300);
    const channel = state.channel(original.channelId);
    const hookChannelId = channel.kind === 'thread' ? (channel.parentId as string) : channel.id;
    if (!hasAll(state.channelPermissions(channel.id, botId), Perm.ViewChannel | Perm.ManageMessages)) throw new SimError(`the proxy bot lacks Manage Messages in #${channel.name}`);
    const webhook = this.webhookIn(hookChannelId, botId);
    const order = opts.order ?? 'postFirst';
    if (order === 'deleteFirst') this.deleteOriginal(original);
    const proxied = this.repost(webhook, channel.kind === 'thread' ? channel.id : null, text, opts);
    if (order === 'postFirst') {
      await sleep(opts.deleteDelayMs ?? 1000);
      this.deleteOriginal(original);
    }
    return { originalId: original.id, proxiedId: proxied.id, webhookId: webhook.id, original, proxied };
  }

  /** The proxy bot's webhook in the channel, created on first use (WEBHOOKS_UPDATE), like PluralKit. */
  private webhookIn(channelId: string, botId: string): SimWebhook {
    const existing = [...this.sim.state.webhooks.values()].find((w) => !w.deleted && w.channelId === channelId && w.creatorId === botId);
    if (existing) return existing;
    const name = `${this.sim.state.user(botId).username} Proxy Webhook`;
    return this.sim.webhookService.create(channelId, botId, { name });
  }

  /** Executes the webhook like the proxy bot's HTTP call would (same validation and channel limit). */
  private repost(webhook: SimWebhook, threadId: string | null, text: string, opts: SayProxiedOptions): SimMessage {
    const body: Record<string, unknown> = { content: text, username: opts.as };
    if (opts.avatar) {
      // PluralKit passes avatar_url pointing at its own image host; here that is the simulator's CDN.
      const hash = avatarHash(opts.avatar);
      body.avatar_url = this.sim.cdn.putAvatar(webhook.id, hash, opts.avatar, sniffImage(opts.avatar)?.contentType ?? 'image/png');
    }
    const query = new URLSearchParams({ wait: 'true', ...(threadId ? { thread_id: threadId } : {}) });
    const result = this.sim.webhookService.execute(webhook.id, webhook.token, body, [], query);
    const id = (result.body as { id: string }).id;
    return this.sim.state.messages.get(id) as SimMessage;
  }

  private deleteOriginal(original: SimMessage): void {
    // The member may have deleted it already; PluralKit then just moves on.
    if (!original.deleted) this.sim.messageService.remove(original);
  }
}
