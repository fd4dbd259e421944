/** `/interrupt`: stops the reply being generated or spoken. Anyone may (like barging in by voice). */
import { SlashCommandBuilder } from 'discord.js';
import type { Command } from './types.js';

export const interrupt: Command = {
  controlsSession: false,
  data: new SlashCommandBuilder().setName('interrupt').setDescription('Stop the character’s current reply').setDMPermission(false).toJSON(),

  async execute(ctx) {
    await ctx.core.session(ctx.guildId).interrupt();
    await ctx.reply({ ephemeral: true, content: 'Interrupted.' });
  },
};
