/** `/say text`: the character says exactly this text (Voxta `characterSpeechRequest`). */
import { PermissionFlagsBits, SlashCommandBuilder } from 'discord.js';
import type { Command } from './types.js';

export const say: Command = {
  controlsSession: true,
  data: new SlashCommandBuilder()
    .setName('say')
    .setDescription('Make the character say exactly this text')
    .setDMPermission(false)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addStringOption((o) => o.setName('text').setDescription('What the character says').setRequired(true).setMaxLength(2000))
    .toJSON(),

  async execute(ctx) {
    await ctx.core.session(ctx.guildId).say(ctx.string('text') ?? '');
    await ctx.reply({ ephemeral: true, content: 'Sent; the character will say it next.' });
  },
};
