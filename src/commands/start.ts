/**
 * `/start [character] [character2] [character3] [scenario] [voice-channel] [text-channel]`: a new
 * chat for this server, with one character, a group of up to three (`startChat {characterIds}`),
 * or a Voxta scenario (`startChat {scenarioId}`: its roles bring their characters and narrator).
 * Every character and the scenario are autocompleted.
 */
import { ChannelType, PermissionFlagsBits, SlashCommandBuilder } from 'discord.js';
import { UserFacingError } from '../bot/user-errors.js';
import type { CastEntry } from '../store/store.js';
import type { CharacterSummary } from '../voxta/rest.js';
import { sessionEmbed } from './embeds.js';
import type { Command, CommandContext } from './types.js';

/** The character options, in order: the first is the main character. */
export const CHARACTER_OPTIONS = ['character', 'character2', 'character3'] as const;

export const start: Command = {
  controlsSession: true,
  data: new SlashCommandBuilder()
    .setName('start')
    .setDescription('Start a new chat with Voxta characters (or a scenario) in this server')
    .setDMPermission(false)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addStringOption((o) => o.setName('character').setDescription('The character to talk with').setAutocomplete(true).setMaxLength(200))
    .addStringOption((o) => o.setName('character2').setDescription('A second character in the same chat').setAutocomplete(true).setMaxLength(200))
    .addStringOption((o) => o.setName('character3').setDescription('A third character in the same chat').setAutocomplete(true).setMaxLength(200))
    .addStringOption((o) => o.setName('scenario').setDescription('A Voxta scenario instead of characters (it brings its own cast)').setAutocomplete(true).setMaxLength(200))
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
    const typedScenario = ctx.string('scenario')?.trim();
    const characters = await pickedCharacters(ctx);
    let scenario: { id: string; name: string } | undefined;
    if (typedScenario) {
      if (characters.length) throw new UserFacingError('Pick characters or a scenario, not both: a scenario brings its own characters.');
      const found = await core.catalog.resolveScenario(typedScenario);
      if (!found) throw new UserFacingError(`No scenario named “${typedScenario.slice(0, 80)}” on Voxta. Pick one from the list as you type.`);
      scenario = { id: found.id, name: found.name };
    } else if (characters.length === 0) {
      throw new UserFacingError('Pick a character (up to three), or a scenario, from the lists as you type.');
    }

    const text = ctx.channel('text-channel');
    if (text && text.kind === 'other') throw new UserFacingError('Pick a text channel for the conversation.');
    const textChannelId = text?.id ?? ctx.channelId;
    // Without a voice channel given: the invoker's, unless this server starts chats text-only.
    const voiceChannelId = ctx.channel('voice-channel')?.id ?? (core.settings.startVoice(ctx.guildId) === 'join' ? ctx.invoker.voiceChannelId : undefined);

    const session = core.session(ctx.guildId);
    const main = characters[0];
    const cast: CastEntry[] = characters.map((c) => ({ id: c.id, name: c.name }));
    const outcome = await session.start({
      characterId: main?.id ?? '',
      characterName: main?.name ?? scenario?.name ?? '',
      textChannelId,
      voiceChannelId,
      ...(cast.length > 1 ? { cast } : {}),
      ...(scenario ? { scenario } : {}),
    });
    // Only once it runs: a /start that failed leaves a stored chat's automatic resume going.
    core.cancelAutoResume(ctx.guildId);
    const shownMain = main ?? (await core.catalog.resolveCharacter(outcome.record.characterId).catch(() => undefined));
    await ctx.reply(await sessionEmbed(ctx, outcome, shownMain?.thumbnailUrl, 'Started'));
  },

  async autocomplete(ctx) {
    if (ctx.focused.name === 'scenario') {
      await ctx.respond(await ctx.core.catalog.scenarioChoices(ctx.focused.value));
      return;
    }
    // Explicit characters are offered (marked 🔞) only where they may run: the server allows them
    // and the chosen text channel is age-restricted. The voice channel is checked on submit.
    const { core } = ctx;
    const textChannelId = ctx.option?.('text-channel') ?? ctx.channelId;
    const guild = core.guild(ctx.guildId);
    const allowed = guild !== undefined && textChannelId !== undefined && core.ageGate.channelsAllow(guild, textChannelId, undefined);
    await ctx.respond(await core.catalog.characterChoices(ctx.focused.value, undefined, { explicit: allowed ? 'mark' : 'hide' }));
  },
};

/** The characters named in the options, resolved, without repeats. */
async function pickedCharacters(ctx: CommandContext): Promise<CharacterSummary[]> {
  const out: CharacterSummary[] = [];
  for (const option of CHARACTER_OPTIONS) {
    const typed = ctx.string(option)?.trim();
    if (!typed) continue;
    const character = await ctx.core.catalog.resolveCharacter(typed);
    if (!character) throw new UserFacingError(`No character named “${typed.slice(0, 80)}” on Voxta. Pick one from the list as you type.`);
    if (!out.some((c) => c.id === character.id)) out.push(character);
  }
  return out;
}
