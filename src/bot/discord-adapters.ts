/**
 * discord.js → the core's ports (src/bot/ports.ts, src/commands/types.ts). The only place where
 * discord.js objects are turned into the small surfaces the sessions and commands use.
 */
import {
  AttachmentBuilder,
  ButtonStyle,
  ChannelType,
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
} from 'discord.js';
import type { AutocompleteContext, ButtonContext, ChannelOption, CommandContext, CommandReply, Invoker } from '../commands/types.js';
import type { BotCore } from './bot-core.js';
import type { GuildPort, IncomingTextMessage, MessageButton, OutgoingMessage, PostedMessage, TextChannelPort } from './ports.js';

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
  };
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
  return {
    id: message.id,
    channelId: message.channelId,
    authorId: message.author.id,
    authorName: message.member?.displayName ?? message.author.displayName,
    content: message.content,
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

/** A message the bridge should consider: in a guild, from a human, not a system message. */
export function isHumanGuildMessage(message: Message | PartialMessage, botUserId: string | undefined): message is Message<true> {
  if (!message.inGuild() || message.partial) return false;
  if (message.author.bot || message.author.id === botUserId || message.system || message.webhookId) return false;
  return true;
}
