/** `/stop`: ends the chat and leaves voice; the record stays so `/resume` can pick it up. */
import { PermissionFlagsBits, SlashCommandBuilder } from 'discord.js';
import type { Command } from './types.js';

export const stop: Command = {
  controlsSession: true,
  data: new SlashCommandBuilder()
    .setName('stop')
    .setDescription('Stop the chat in this server (it can be resumed later)')
    .setDMPermission(false)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .toJSON(),

  async execute(ctx) {
    ctx.core.cancelAutoResume(ctx.guildId);
    const session = ctx.core.existingSession(ctx.guildId);
    if (!session || session.state === 'idle') {
      const wasPending = ctx.core.store.getGuildSession(ctx.guildId)?.active;
      if (wasPending) ctx.core.store.setGuildSessionActive(ctx.guildId, false);
      // Messages held for the resume that will not happen now (stored ones too, from before a restart).
      if (session || wasPending) ctx.core.session(ctx.guildId).dropPending();
      await ctx.reply({
        ephemeral: true,
        content: wasPending ? 'No chat was running; I will no longer try to resume the last one.' : 'No chat is running in this server.',
      });
      return;
    }
    await ctx.defer({ ephemeral: false });
    const name = session.record?.characterName ?? 'the character';
    await session.stop(`/stop by ${ctx.invoker.id}`);
    await ctx.reply({ content: `Stopped the chat with ${name}. /resume picks it up again.` });
  },
};
