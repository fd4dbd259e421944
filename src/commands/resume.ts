/** `/resume [chat:<autocomplete>]`: picks up the last chat of this server, or the one chosen. */
import { PermissionFlagsBits, SlashCommandBuilder } from 'discord.js';
import { UserFacingError } from '../bot/user-errors.js';
import { errorInfo } from '../log.js';
import { sessionEmbed } from './embeds.js';
import type { Command } from './types.js';

export const resume: Command = {
  controlsSession: true,
  data: new SlashCommandBuilder()
    .setName('resume')
    .setDescription('Resume the last chat in this server, or pick an earlier one')
    .setDMPermission(false)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addStringOption((o) => o.setName('chat').setDescription('An earlier chat with the same character').setAutocomplete(true).setMaxLength(100))
    .toJSON(),

  async execute(ctx) {
    await ctx.defer({ ephemeral: false });
    const { core } = ctx;
    const session = core.session(ctx.guildId);
    const stored = session.record;
    if (!stored) throw new UserFacingError('There is no earlier chat to resume in this server. Start one with /start.');
    const chatId = ctx.string('chat')?.trim() || undefined;
    if (chatId && chatId !== stored.chatId) {
      // Only chats of this server's character: another character's chat would mislabel everything,
      // and any chat id on the Voxta account (ids appear in /status and embeds) could be taken
      // over from another server. An id that cannot be checked is refused.
      const chats = await core.catalog.chatsOf(stored.characterId).get().catch((err: unknown) => {
        core.log.info({ err: errorInfo(err) }, 'resume: listing chats failed; refusing the chat id it cannot verify');
        return undefined;
      });
      if (!chats) {
        throw new UserFacingError(`I could not check that chat against ${stored.characterName}'s chats on Voxta right now. Try again in a moment, or run /resume without a chat to resume the last one.`);
      }
      if (!chats.some((c) => c.id === chatId)) {
        throw new UserFacingError(`No chat with that id for ${stored.characterName}. Pick one from the list as you type.`);
      }
    }
    // The stored text channel, unless it is gone; then the one the command ran in.
    const textChannelId = core.guildHasTextChannel(ctx.guildId, stored.textChannelId) ? stored.textChannelId : ctx.channelId;
    const voiceChannelId = ctx.invoker.voiceChannelId ?? stored.voiceChannelId ?? null;
    const outcome = await session.resume({ ...(chatId ? { chatId } : {}), textChannelId, voiceChannelId });
    // Only once it runs: a /resume that failed leaves the automatic resume going.
    core.cancelAutoResume(ctx.guildId);
    const character = await core.catalog.resolveCharacter(outcome.record.characterId).catch(() => undefined);
    await ctx.reply(await sessionEmbed(ctx, outcome, character?.thumbnailUrl, 'Resumed'));
  },

  async autocomplete(ctx) {
    const stored = ctx.core.session(ctx.guildId).record;
    if (!stored) return ctx.respond([]);
    await ctx.respond(await ctx.core.catalog.chatChoices(stored.characterId, stored.characterName, ctx.focused.value));
  },
};

