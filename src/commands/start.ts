/** `/start character:<autocomplete> [voice-channel] [text-channel]`: a new chat for this server. */
import { ChannelType, PermissionFlagsBits, SlashCommandBuilder } from 'discord.js';
import { UserFacingError } from '../bot/user-errors.js';
import { sessionEmbed } from './embeds.js';
import type { Command } from './types.js';

export const start: Command = {
  controlsSession: true,
  data: new SlashCommandBuilder()
    .setName('start')
    .setDescription('Start a new chat with a Voxta character in this server')
    .setDMPermission(false)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addStringOption((o) => o.setName('character').setDescription('The character to talk with').setRequired(true).setAutocomplete(true).setMaxLength(200))
    .addChannelOption((o) =>
      o
        .setName('voice-channel')
        .setDescription('Voice channel to join (default: the one you are in; none = text only)')
        .addChannelTypes(ChannelType.GuildVoice, ChannelType.GuildStageVoice),
    )
    .addChannelOption((o) =>
      o
        .setName('text-channel')
        .setDescription('Text channel for the conversation (default: this one)')
        .addChannelTypes(ChannelType.GuildText, ChannelType.GuildVoice, ChannelType.PublicThread, ChannelType.PrivateThread),
    )
    .toJSON(),

  async execute(ctx) {
    await ctx.defer({ ephemeral: false });
    const { core } = ctx;
    const typed = ctx.string('character') ?? '';
    const character = await core.catalog.resolveCharacter(typed);
    if (!character) throw new UserFacingError(`No character named “${typed.slice(0, 80)}” on Voxta. Pick one from the list as you type.`);

    const text = ctx.channel('text-channel');
    if (text && text.kind === 'other') throw new UserFacingError('Pick a text channel for the conversation.');
    const textChannelId = text?.id ?? ctx.channelId;
    // Without a voice channel given: the invoker's, unless this server starts chats text-only.
    const voiceChannelId = ctx.channel('voice-channel')?.id ?? (core.settings.startVoice(ctx.guildId) === 'join' ? ctx.invoker.voiceChannelId : undefined);

    core.cancelAutoResume(ctx.guildId);
    const session = core.session(ctx.guildId);
    const outcome = await session.start({ characterId: character.id, characterName: character.name, textChannelId, voiceChannelId });
    await ctx.reply(await sessionEmbed(ctx, outcome, character.thumbnailUrl, 'Started'));
  },

  async autocomplete(ctx) {
    // Explicit characters are offered (marked 🔞) only where they may run: the server allows them
    // and the chosen text channel is age-restricted. The voice channel is checked on submit.
    const { core } = ctx;
    const textChannelId = ctx.option?.('text-channel') ?? ctx.channelId;
    const allowed =
      core.settings.explicitCharacters(ctx.guildId) === 'age-restricted' && textChannelId !== undefined && core.guild(ctx.guildId)?.isAgeRestricted?.(textChannelId) === true;
    await ctx.respond(await core.catalog.characterChoices(ctx.focused.value, undefined, { explicit: allowed ? 'mark' : 'hide' }));
  },
};
