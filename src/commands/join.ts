/** `/join [voice-channel]`: brings the running chat into a voice channel. */
import { ChannelType, PermissionFlagsBits, SlashCommandBuilder } from 'discord.js';
import { UserFacingError } from '../bot/user-errors.js';
import type { Command } from './types.js';

export const join: Command = {
  controlsSession: true,
  data: new SlashCommandBuilder()
    .setName('join')
    .setDescription('Bring the running chat into a voice channel')
    .setDMPermission(false)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addChannelOption((o) =>
      o.setName('voice-channel').setDescription('Default: the one you are in').addChannelTypes(ChannelType.GuildVoice, ChannelType.GuildStageVoice),
    )
    .toJSON(),

  async execute(ctx) {
    const channelId = ctx.channel('voice-channel')?.id ?? ctx.invoker.voiceChannelId;
    if (!channelId) throw new UserFacingError('Join a voice channel first, or pick one in the command.');
    await ctx.defer({ ephemeral: false });
    const note = await ctx.core.session(ctx.guildId).joinVoiceChannel(channelId);
    await ctx.reply(note ? { ephemeral: true, content: note } : { content: `Joined <#${channelId}>. Speak and I will listen (/listen off if you would rather I did not).` });
  },
};
