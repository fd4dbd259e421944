/** `/listen on|off`: whether the bot listens to YOU in voice. Anyone may set it for themselves. */
import { SlashCommandBuilder } from 'discord.js';
import type { Command } from './types.js';

export const listen: Command = {
  controlsSession: false,
  data: new SlashCommandBuilder()
    .setName('listen')
    .setDescription('Choose whether the bot listens to you in voice channels')
    .setDMPermission(false)
    .addSubcommand((s) => s.setName('on').setDescription('The bot may listen to you in voice (default)'))
    .addSubcommand((s) => s.setName('off').setDescription('The bot never listens to you in voice'))
    .toJSON(),

  async execute(ctx) {
    const off = ctx.subcommand() === 'off';
    ctx.core.store.setVoiceOptOut(ctx.guildId, ctx.invoker.id, off);
    await ctx.reply({
      ephemeral: true,
      content: off
        ? 'From now on I will not listen to you in voice in this server. /listen on undoes it.'
        : 'I may listen to you in voice again in this server. /listen off stops it.',
    });
  },
};
