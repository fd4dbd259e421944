/** `/leave`: leaves voice; the chat goes on in text. */
import { PermissionFlagsBits, SlashCommandBuilder } from 'discord.js';
import type { Command } from './types.js';

export const leave: Command = {
  controlsSession: true,
  data: new SlashCommandBuilder()
    .setName('leave')
    .setDescription('Leave the voice channel; the chat goes on in text')
    .setDMPermission(false)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .toJSON(),

  async execute(ctx) {
    const session = ctx.core.existingSession(ctx.guildId);
    const left = session ? await session.leaveVoiceChannel() : false;
    await ctx.reply(left ? { content: 'Left the voice channel; the chat goes on in text.' } : { ephemeral: true, content: 'I am not in a voice channel here.' });
  },
};
