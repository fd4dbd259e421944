/** `/transcripts on|off`: mirror the voice conversation into the bound text channel. */
import { PermissionFlagsBits, SlashCommandBuilder } from 'discord.js';
import type { Command } from './types.js';

export const transcripts: Command = {
  controlsSession: true,
  data: new SlashCommandBuilder()
    .setName('transcripts')
    .setDescription('Show the voice conversation as text in the chat channel')
    .setDMPermission(false)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addSubcommand((s) => s.setName('on').setDescription('Post what is said in voice, and the replies, in the text channel'))
    .addSubcommand((s) => s.setName('off').setDescription('Keep the voice conversation out of the text channel'))
    .toJSON(),

  async execute(ctx) {
    const on = ctx.subcommand() === 'on';
    ctx.core.store.setSetting(ctx.guildId, 'mirrorTranscripts', on);
    await ctx.reply({
      ephemeral: true,
      content: on ? 'Voice transcripts and replies will be posted in the text channel.' : 'Voice conversations will no longer be posted in the text channel.',
    });
  },
};
