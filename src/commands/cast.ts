/**
 * `/cast add character:<autocomplete>` and `/cast remove character:<autocomplete>`: who takes part
 * in the running chat (Voxta's `addChatParticipant` / `removeChatParticipant`). The new cast is
 * stored with the chat, so `/resume` and a restart bring it back.
 */
import { PermissionFlagsBits, SlashCommandBuilder } from 'discord.js';
import { UserFacingError } from '../bot/user-errors.js';
import { castLines } from './embeds.js';
import type { Command } from './types.js';

export const cast: Command = {
  controlsSession: true,
  data: new SlashCommandBuilder()
    .setName('cast')
    .setDescription('Bring a character into the running chat, or send one away')
    .setDMPermission(false)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addSubcommand((sc) =>
      sc
        .setName('add')
        .setDescription('A character joins the running chat')
        .addStringOption((o) => o.setName('character').setDescription('Who joins').setRequired(true).setAutocomplete(true).setMaxLength(200)),
    )
    .addSubcommand((sc) =>
      sc
        .setName('remove')
        .setDescription('A character leaves the running chat')
        .addStringOption((o) => o.setName('character').setDescription('Who leaves').setRequired(true).setAutocomplete(true).setMaxLength(200)),
    )
    .toJSON(),

  async execute(ctx) {
    const { core } = ctx;
    const session = core.existingSession(ctx.guildId);
    const running = session?.castNow();
    if (!session || !running) throw new UserFacingError('No chat is running in this server. Start one with /start.');
    const typed = ctx.string('character')?.trim() ?? '';
    if (ctx.subcommand() === 'remove') {
      const lower = typed.toLowerCase();
      const who = running.find((c) => !c.narrator && (c.id === typed || c.name.toLowerCase() === lower));
      if (!who) throw new UserFacingError(`No one named “${typed.slice(0, 80)}” is in this chat. Pick one from the list as you type.`);
      await ctx.defer({ ephemeral: false });
      const now = await session.removeCastMember(who.id);
      await ctx.reply({ content: `${who.name} left the chat. In the chat now: ${castLines(now).split('\n').join(', ')}.` });
      return;
    }
    const character = await core.catalog.resolveCharacter(typed);
    if (!character) throw new UserFacingError(`No character named “${typed.slice(0, 80)}” on Voxta. Pick one from the list as you type.`);
    await ctx.defer({ ephemeral: false });
    const now = await session.addCastMember(character.id, character.name);
    await ctx.reply({ content: `${character.name} joined the chat. In the chat now: ${castLines(now).split('\n').join(', ')}.` });
  },

  async autocomplete(ctx) {
    const session = ctx.core.existingSession(ctx.guildId);
    const running = session?.castNow() ?? [];
    const sub = ctx.subcommand?.();
    if (sub === 'remove') {
      const q = ctx.focused.value.trim().toLowerCase();
      await ctx.respond(
        running
          .filter((c) => !c.narrator && c.name.toLowerCase().includes(q))
          .slice(0, 25)
          .map((c) => ({ name: c.name.slice(0, 100), value: c.id })),
      );
      return;
    }
    const present = new Set(running.map((c) => c.id));
    // Explicit characters only where the chat may hold them (as /start's list does).
    const { core } = ctx;
    const channelId = core.session(ctx.guildId).textChannelId ?? ctx.channelId;
    const guild = core.guild(ctx.guildId);
    const allowed = guild !== undefined && channelId !== undefined && core.ageGate.channelsAllow(guild, channelId, undefined);
    await ctx.respond(await core.catalog.characterChoices(ctx.focused.value, undefined, { explicit: allowed ? 'mark' : 'hide', keep: (c) => !present.has(c.id) }));
  },
};
