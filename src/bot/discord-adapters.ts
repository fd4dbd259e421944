/**
 * discord.js → the core's ports (src/bot/ports.ts, src/commands/types.ts). The only place where
 * discord.js objects are turned into the small surfaces the sessions and commands use.
 */
import {
  AttachmentBuilder,
  ButtonStyle,
  ChannelType,
  DiscordAPIError,
  ComponentType,
  MessageFlags,
  PermissionFlagsBits,
  Routes,
  type APIActionRowComponent,
  type APIButtonComponentWithCustomId,
  type AutocompleteInteraction,
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type Client,
  type Guild,
  type Message,
  type PartialMessage,
  type SendableChannels,
  type APIMessage,
  type APIWebhook,
} from 'discord.js';
import type { AutocompleteContext, ButtonContext, ChannelOption, CommandContext, CommandReply, Invoker } from '../commands/types.js';
import type { BotCore } from './bot-core.js';
import { WebhookCallError, type GuildPort, type IncomingTextMessage, type MessageButton, type OutgoingMessage, type PostedMessage, type TextChannelPort, type WebhookApi } from './ports.js';
import type { ImageRef } from './channel-images.js';
import type { IncomingWebhookMessage } from './proxy-gate.js';

/** Never let a character's text ping @everyone, roles or users. */
const NO_MENTIONS = { parse: [] as never[] };

const BUTTON_STYLES = { primary: ButtonStyle.Primary, secondary: ButtonStyle.Secondary, success: ButtonStyle.Success, danger: ButtonStyle.Danger } as const;

/** One action row of buttons (Discord's component JSON); none for an empty list. */
export function buttonRows(buttons: readonly MessageButton[]): APIActionRowComponent<APIButtonComponentWithCustomId>[] {
  if (buttons.length === 0) return [];
  return [
    {
      type: ComponentType.ActionRow,
      components: buttons.slice(0, 5).map((b) => ({
        type: ComponentType.Button,
        style: BUTTON_STYLES[b.style],
        custom_id: b.customId,
        label: b.label,
        ...(b.emoji ? { emoji: { name: b.emoji } } : {}),
      })),
    },
  ];
}

function toPayload(message: string | OutgoingMessage) {
  const m = typeof message === 'string' ? { content: message } : message;
  return {
    ...(m.content !== undefined ? { content: m.content } : {}),
    ...(m.embeds ? { embeds: m.embeds } : {}),
    ...(m.files ? { files: m.files.map((f) => new AttachmentBuilder(f.data, { name: f.name })) } : {}),
    ...(m.buttons ? { components: buttonRows(m.buttons) } : {}),
    allowedMentions: NO_MENTIONS,
  };
}

export function textChannelPort(channel: SendableChannels & { id: string; name?: string | null }): TextChannelPort {
  return {
    id: channel.id,
    name: channel.name ?? channel.id,
    ...(channel.isThread() && channel.parentId ? { parentId: channel.parentId } : {}),
    async send(message): Promise<PostedMessage> {
      const sent = await channel.send(toPayload(message));
      return {
        id: sent.id,
        edit: async (content) => {
          await sent.edit({ content, allowedMentions: NO_MENTIONS });
        },
        setButtons: async (buttons) => {
          await sent.edit({ components: buttonRows(buttons) });
        },
        delete: async () => {
          await sent.delete();
        },
      };
    },
    async sendTyping() {
      await channel.sendTyping();
    },
    markable(messageId) {
      // The bot's own reaction, by REST: the message need not be in the cache (or fetched).
      const route = (emoji: string) => Routes.channelMessageOwnReaction(channel.id, messageId, encodeURIComponent(emoji));
      return {
        id: messageId,
        react: async (emoji) => {
          await channel.client.rest.put(route(emoji));
        },
        unreact: async (emoji) => {
          await channel.client.rest.delete(route(emoji));
        },
      };
    },
  };
}

/** When each client's current gateway session began (its last READY), for {@link GuildPort}. */
const gatewaySessions = new WeakMap<Client, number>();

/** Records that the client's gateway started a new session (READY, not a resume). */
export function noteGatewaySession(client: Client): void {
  gatewaySessions.set(client, Date.now());
}

export function guildPort(client: Client, guildId: string): GuildPort | undefined {
  const guild = client.guilds.cache.get(guildId);
  const botUserId = client.user?.id;
  if (!guild || !botUserId) return undefined;
  return {
    id: guild.id,
    name: guild.name,
    botUserId,
    available: guild.available,
    textChannel(channelId) {
      const ch = guild.channels.cache.get(channelId);
      if (!ch || !ch.isTextBased() || !ch.isSendable()) return undefined;
      // A channel the bot cannot write in would swallow every reply: treat it as unusable.
      const me = guild.members.me;
      const perms = me && 'permissionsFor' in ch ? ch.permissionsFor(me) : null;
      if (perms && !perms.has([PermissionFlagsBits.ViewChannel, PermissionFlagsBits.SendMessages])) return undefined;
      return textChannelPort(ch);
    },
    channelName: (channelId) => guild.channels.cache.get(channelId)?.name,
    isVoiceChannel: (channelId) => guild.channels.cache.get(channelId)?.isVoiceBased() ?? false,
    isStageChannel: (channelId) => guild.channels.cache.get(channelId)?.type === ChannelType.GuildStageVoice,
    botSuppressed: () => guild.members.me?.voice.suppress ?? false,
    async requestToSpeak() {
      const voice = guild.members.me?.voice;
      if (!voice?.channelId) return 'refused';
      try {
        await voice.setSuppressed(false);
        return 'speaking';
      } catch {
        // No Mute Members on this Stage: ask, like an audience member raising their hand.
      }
      try {
        await voice.setRequestToSpeak(true);
        return 'requested';
      } catch {
        return 'refused';
      }
    },
    voiceProblem(channelId) {
      const ch = guild.channels.cache.get(channelId);
      if (!ch?.isVoiceBased()) return 'that voice channel is gone';
      if (!ch.joinable) return ch.full ? 'that voice channel is full' : 'I lack the Connect permission in that voice channel';
      if (ch.type === ChannelType.GuildVoice && !ch.speakable) return 'I lack the Speak permission in that voice channel';
      return undefined;
    },
    voiceMembers(channelId) {
      const ch = guild.channels.cache.get(channelId);
      if (!ch?.isVoiceBased()) return [];
      return [...ch.members.values()].map((m) => ({ id: m.id, displayName: m.displayName, bot: m.user.bot }));
    },
    displayName: (userId) => guild.members.cache.get(userId)?.displayName ?? client.users.cache.get(userId)?.displayName ?? 'Someone',
    memberRoleIds: (userId) => [...(guild.members.cache.get(userId)?.roles.cache.keys() ?? [])],
    voiceAdapterCreator: () => guild.voiceAdapterCreator,
    isAgeRestricted(channelId) {
      const ch = guild.channels.cache.get(channelId);
      if (!ch) return false;
      // A thread has no flag of its own: its parent's applies.
      const own = ch.isThread() ? ch.parent : ch;
      return own !== null && 'nsfw' in own && own.nsfw === true;
    },
    guildRoles: () => [...guild.roles.cache.values()].sort((a, b) => b.position - a.position).map((r) => ({ id: r.id, name: r.name, managed: r.managed })),
    async fetchMemberRoleIds(userId) {
      try {
        const member = await guild.members.fetch({ user: userId, force: true });
        return [...member.roles.cache.keys()].filter((id) => id !== guild.id);
      } catch (err) {
        // 10007 Unknown Member: not (or no longer) in the server.
        if ((err as { code?: unknown }).code === 10007) return undefined;
        throw err;
      }
    },
    gatewaySessionStartedAt: () => gatewaySessions.get(client),
    webhooks: webhookApi(client, guild),
    async hasMember(userId) {
      if (guild.members.cache.has(userId)) return true;
      try {
        await guild.members.fetch({ user: userId, force: false });
        return true;
      } catch (err) {
        // 10007 Unknown Member, 10013 Unknown User: not here.
        if (err instanceof DiscordAPIError && (err.code === 10007 || err.code === 10013)) return false;
        throw err;
      }
    },
  };
}

/** Discord's webhook calls over the client's REST (its rate-limit queues included). */
function webhookApi(client: Client, guild: Guild): WebhookApi {
  const rest = client.rest;
  const noMentions = { parse: [] as string[] };
  const dataUri = (a: { bytes: Buffer; contentType: string }): string => `data:${a.contentType};base64,${a.bytes.toString('base64')}`;
  const threadQuery = (threadId: string | undefined): URLSearchParams | undefined => (threadId ? new URLSearchParams({ thread_id: threadId }) : undefined);
  return {
    problem(channelId) {
      const ch = guild.channels.cache.get(channelId);
      if (!ch) return 'that channel is gone';
      const me = guild.members.me;
      if (!me || !('permissionsFor' in ch)) return undefined;
      const perms = ch.permissionsFor(me);
      if (!perms.has(PermissionFlagsBits.ManageWebhooks)) return `I lack the Manage Webhooks permission in #${ch.name}`;
      return undefined;
    },
    list: (channelId) =>
      discordCall(async () => {
        const hooks = (await rest.get(Routes.channelWebhooks(channelId))) as APIWebhook[];
        const appId = client.application?.id ?? client.user?.id;
        return hooks.map((w) => ({
          id: w.id,
          name: w.name ?? '',
          own: w.application_id !== null && w.application_id !== undefined && w.application_id === appId,
          ...(w.token ? { token: w.token } : {}),
          ...(w.user?.id ? { creatorId: w.user.id } : {}),
          ...(w.application_id ? { applicationId: w.application_id } : {}),
        }));
      }),
    create: (channelId, p) =>
      discordCall(async () => {
        const w = (await rest.post(Routes.channelWebhooks(channelId), {
          body: { name: p.name, ...(p.avatar ? { avatar: dataUri(p.avatar) } : {}) },
          reason: 'A character posts here under its own name and avatar',
        })) as APIWebhook;
        if (!w.token) throw new WebhookCallError('other', 'Discord returned a webhook without a token');
        return { id: w.id, token: w.token, name: w.name ?? p.name };
      }),
    modify: (hook, p) =>
      discordCall(async () => {
        await rest.patch(Routes.webhook(hook.id, hook.token), { body: { name: p.name, avatar: p.avatar ? dataUri(p.avatar) : null }, auth: false });
      }),
    execute: (hook, p) =>
      discordCall(async () => {
        const query = new URLSearchParams({ wait: 'true', ...(p.threadId ? { thread_id: p.threadId } : {}) });
        // The bot's webhooks are application-owned: their messages may carry buttons.
        const body = { content: p.content, allowed_mentions: noMentions, ...(p.buttons ? { components: buttonRows(p.buttons) } : {}) };
        const sent = (await rest.post(Routes.webhook(hook.id, hook.token), { body, query, auth: false })) as APIMessage;
        const q = threadQuery(p.threadId);
        const patch = (change: Record<string, unknown>) =>
          discordCall(async () => {
            await rest.patch(Routes.webhookMessage(hook.id, hook.token, sent.id), { body: change, ...(q ? { query: q } : {}), auth: false });
          });
        return {
          id: sent.id,
          edit: (content: string) => patch({ content, allowed_mentions: noMentions }),
          setButtons: (buttons: MessageButton[]) => patch({ components: buttonRows(buttons) }),
          delete: () =>
            discordCall(async () => {
              await rest.delete(Routes.webhookMessage(hook.id, hook.token, sent.id), { ...(q ? { query: q } : {}), auth: false });
            }),
        };
      }),
  };
}

/** Runs a webhook call, turning Discord's refusals into {@link WebhookCallError}s. */
async function discordCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof DiscordAPIError)) throw err;
    const kind = err.code === 10015 ? 'unknown-webhook' : err.code === 50013 || err.code === 50001 ? 'forbidden' : err.code === 30007 ? 'limit' : 'other';
    throw new WebhookCallError(kind, `Discord: ${err.message} (${String(err.code)})`, { cause: err });
  }
}

function channelKind(type: ChannelType): ChannelOption['kind'] {
  if (type === ChannelType.GuildVoice || type === ChannelType.GuildStageVoice) return 'voice';
  if (
    type === ChannelType.GuildText ||
    type === ChannelType.GuildAnnouncement ||
    type === ChannelType.PublicThread ||
    type === ChannelType.PrivateThread ||
    type === ChannelType.AnnouncementThread
  ) {
    return 'text';
  }
  return 'other';
}

function invokerOf(interaction: ChatInputCommandInteraction | ButtonInteraction, guild: Guild | null): Invoker {
  const member = interaction.member;
  let roleIds: string[] = [];
  let displayName = interaction.user.displayName;
  if (member) {
    if (Array.isArray(member.roles)) roleIds = member.roles;
    else roleIds = [...member.roles.cache.keys()];
    if ('displayName' in member && typeof member.displayName === 'string') displayName = member.displayName;
  }
  return {
    id: interaction.user.id,
    displayName,
    canManageGuild: interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild) ?? false,
    roleIds,
    voiceChannelId: guild?.voiceStates.cache.get(interaction.user.id)?.channelId ?? undefined,
  };
}

export function commandContext(core: BotCore, interaction: ChatInputCommandInteraction<'cached' | 'raw'>): CommandContext {
  const guild = interaction.guild;
  let deferredEphemeral: boolean | undefined;
  return {
    core,
    commandName: interaction.commandName,
    guildId: interaction.guildId,
    guildName: guild?.name ?? '',
    channelId: interaction.channelId,
    invoker: invokerOf(interaction, guild),
    get acknowledged() {
      return interaction.deferred || interaction.replied;
    },
    string: (name) => interaction.options.getString(name) ?? undefined,
    channel(name) {
      const ch = interaction.options.getChannel(name);
      if (!ch) return undefined;
      return { id: ch.id, name: ch.name ?? ch.id, kind: channelKind(ch.type) };
    },
    user(name) {
      const user = interaction.options.getUser(name);
      if (!user) return undefined;
      const member = interaction.options.getMember(name);
      const displayName = member && 'displayName' in member && typeof member.displayName === 'string' ? member.displayName : user.displayName;
      return { id: user.id, displayName, bot: user.bot };
    },
    subcommand: () => interaction.options.getSubcommand(false) ?? undefined,
    async defer({ ephemeral }) {
      if (interaction.deferred || interaction.replied) return;
      deferredEphemeral = ephemeral;
      await interaction.deferReply(ephemeral ? { flags: MessageFlags.Ephemeral } : {});
    },
    async reply(r: CommandReply) {
      const payload = toPayload({ content: r.content, embeds: r.embeds, files: r.files });
      if (!interaction.deferred && !interaction.replied) {
        await interaction.reply({ ...payload, ...(r.ephemeral ? { flags: MessageFlags.Ephemeral } : {}) });
        return;
      }
      if (interaction.deferred && !interaction.replied) {
        if (r.ephemeral && deferredEphemeral === false) {
          // A public "thinking…" cannot turn private: remove it and answer privately.
          await interaction.deleteReply().catch(() => undefined);
          await interaction.followUp({ ...payload, flags: MessageFlags.Ephemeral });
          return;
        }
        await interaction.editReply(payload);
        return;
      }
      await interaction.followUp({ ...payload, ...(r.ephemeral ? { flags: MessageFlags.Ephemeral } : {}) });
    },
  };
}

export function autocompleteContext(core: BotCore, interaction: AutocompleteInteraction<'cached' | 'raw'>): AutocompleteContext {
  const focused = interaction.options.getFocused(true);
  return {
    core,
    commandName: interaction.commandName,
    guildId: interaction.guildId,
    channelId: interaction.channelId,
    focused: { name: focused.name, value: String(focused.value) },
    option(name) {
      // Options typed so far, as Discord sent them (channel options carry the channel id).
      const raw = interaction.options.data.flatMap((o) => (o.options ? o.options : [o])).find((o) => o.name === name);
      return raw?.value === undefined ? undefined : String(raw.value);
    },
    subcommand: () => interaction.options.getSubcommand(false) ?? undefined,
    respond: async (choices) => {
      if (interaction.responded) return;
      await interaction.respond(choices);
    },
  };
}

/** File names Discord would show as pictures (the bytes decide later; this only picks candidates). */
const PICTURE_NAME = /\.(png|jpe?g|webp|gif)$/i;

/**
 * The pictures of a message: image attachments, and embeds Discord resolved for image links
 * (their proxied copy on Discord's media CDN). Animated `gifv` embeds are videos: left out.
 */
export function imagesOf(message: Pick<Message, 'attachments' | 'embeds'>): ImageRef[] {
  const refs: ImageRef[] = [];
  for (const a of message.attachments.values()) {
    const type = a.contentType ?? undefined;
    if (!(type?.startsWith('image/') || PICTURE_NAME.test(a.name))) continue;
    refs.push({ url: a.url, name: a.name, ...(type ? { contentType: type } : {}), size: a.size });
  }
  for (const e of message.embeds) {
    if (e.data.type !== 'image' && e.data.type !== 'rich' && e.data.type !== 'article') continue;
    const img = e.data.type === 'image' ? (e.thumbnail ?? e.image) : (e.image ?? undefined);
    const url = img?.proxyURL ?? img?.url;
    if (url) refs.push({ url, name: url.split('?')[0]?.split('/').pop() ?? 'image' });
  }
  return refs;
}

export function buttonContext(core: BotCore, interaction: ButtonInteraction<'cached' | 'raw'>): ButtonContext {
  return {
    core,
    guildId: interaction.guildId,
    channelId: interaction.channelId,
    messageId: interaction.message.id,
    customId: interaction.customId,
    invoker: invokerOf(interaction, interaction.guild),
    get acknowledged() {
      return interaction.deferred || interaction.replied;
    },
    async deferUpdate() {
      if (interaction.deferred || interaction.replied) return;
      await interaction.deferUpdate();
    },
    async reply(content) {
      const payload = { content, allowedMentions: NO_MENTIONS, flags: MessageFlags.Ephemeral } as const;
      if (interaction.deferred || interaction.replied) await interaction.followUp(payload);
      else await interaction.reply(payload);
    },
  };
}

export function incomingMessage(message: Message<true>, botUserId: string): IncomingTextMessage {
  const images = imagesOf(message);
  return {
    id: message.id,
    channelId: message.channelId,
    authorId: message.author.id,
    authorName: message.member?.displayName ?? message.author.displayName,
    content: message.content,
    ...(images.length ? { images } : {}),
    // The message's member payload carries the author's roles as they are now.
    ...(message.member ? { roleIds: [...message.member.roles.cache.keys()].filter((id) => id !== message.guildId) } : {}),
    react: async (emoji) => {
      await message.react(emoji);
    },
    unreact: async (emoji) => {
      await message.reactions.resolve(emoji)?.users.remove(botUserId);
    },
  };
}

/** A webhook's message, as the proxy gate reads it: said by the webhook's name. */
export function incomingWebhookMessage(message: Message<true>, botUserId: string): IncomingWebhookMessage {
  const name = message.author.username;
  return {
    id: message.id,
    channelId: message.channelId,
    // One speaker per proxied name (a member may have several).
    authorId: `proxy:${name.toLowerCase()}`,
    authorName: name,
    content: message.content,
    webhookId: message.webhookId ?? '',
    ...(message.applicationId ? { applicationId: message.applicationId } : {}),
    react: async (emoji) => {
      await message.react(emoji);
    },
    unreact: async (emoji) => {
      await message.reactions.resolve(emoji)?.users.remove(botUserId);
    },
  };
}

/**
 * A webhook's message the bridge may read (a proxy bot's repost): in a guild, not the bot's own
 * (its webhooks, its interaction responses), not a system message.
 */
export function isForeignWebhookMessage(message: Message | PartialMessage, botUserId: string | undefined, applicationId: string | undefined): message is Message<true> {
  if (!message.inGuild() || message.partial || !message.webhookId || message.system) return false;
  if (message.author.id === botUserId || message.webhookId === applicationId) return false;
  if (applicationId !== undefined && message.applicationId === applicationId) return false;
  return true;
}

/** A message the bridge should consider: in a guild, from a human, not a system message. */
export function isHumanGuildMessage(message: Message | PartialMessage, botUserId: string | undefined): message is Message<true> {
  if (!message.inGuild() || message.partial) return false;
  if (message.author.bot || message.author.id === botUserId || message.system || message.webhookId) return false;
  return true;
}
