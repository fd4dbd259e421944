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
    const session = ctx.core.session(ctx.guildId);
    const wasActive = session.record?.active === true;
    const name = session.record?.characterName ?? 'the character';
    // Always through the session: it cancels whatever is in flight or queued (a /start still
    // joining voice, an automatic resume), and when nothing runs it forgets the pending resume
    // and the messages held for it.
    if (session.state !== 'idle' || session.busy) await ctx.defer({ ephemeral: false });
    const wasRunning = await session.stop(`/stop by ${ctx.invoker.id}`);
    if (wasRunning) {
      await ctx.reply({ content: `Stopped the chat with ${name}. /resume picks it up again.` });
      return;
    }
    await ctx.reply({
      ephemeral: true,
      content: wasActive ? 'No chat was running; I will no longer try to resume the last one.' : 'No chat is running in this server.',
    });
  },
};
