/**
 * The buttons under the character's latest reply (src/bot/reply-controls.ts): Regenerate, Stop,
 * Undo. Whoever may talk to the character may use them (chat roles, block list; Regenerate and
 * Undo also take a turn from their text allowance). The press is acknowledged at once without an
 * answer of its own (the channel shows what it did); a refusal is one private sentence.
 */
import { parseReplyButton } from '../bot/reply-controls.js';
import type { RefusalReason } from '../bot/talk-gate.js';
import { UserFacingError } from '../bot/user-errors.js';
import type { ButtonHandler } from './types.js';

const REFUSALS: Record<RefusalReason, string> = {
  role: 'Only members with one of this server’s chat roles can use these buttons.',
  blocked: 'You cannot talk to the character in this server.',
  rate: '🐢 You are going faster than this server allows; try again in a few seconds.',
  queue: '🐢 The character has too much to answer right now; try again in a moment.',
};

export const replyButtons: ButtonHandler = {
  name: 'reply',
  matches: (customId) => parseReplyButton(customId) !== undefined,

  async execute(ctx) {
    const pressed = parseReplyButton(ctx.customId)!;
    const { core } = ctx;
    const session = core.existingSession(ctx.guildId);
    if (!session?.bridging || session.textChannelId !== ctx.channelId) throw new UserFacingError('This chat is not running any more.');
    const refusal = core.gate.admitButton(ctx.guildId, ctx.invoker.id, ctx.invoker.roleIds, { countsAsTurn: pressed.action !== 'stop' });
    if (refusal) throw new UserFacingError(REFUSALS[refusal.reason]);
    await ctx.deferUpdate();
    const note = await session.pressReplyButton(pressed.action, pressed.messageId);
    if (note) await ctx.reply(note);
  },
};
