/**
 * The slash-command registry and the entry points `app.ts` calls: {@link runCommand} (checks
 * permission, answers within Discord's 3 s, turns every failure into an ephemeral sentence),
 * {@link runAutocomplete} (never throws, always answers) and {@link runButton} (buttons under the
 * bot's messages, routed by custom id, answered the same way).
 */
import type { RESTPostAPIChatInputApplicationCommandsJSONBody } from 'discord.js';
import { mayControlSession, refusalText } from '../bot/permissions.js';
import { describeForUser, UserFacingError } from '../bot/user-errors.js';
import { errorInfo } from '../log.js';
import { cast } from './cast.js';
import { config } from './config.js';
import { interrupt } from './interrupt.js';
import { join } from './join.js';
import { leave } from './leave.js';
import { listen } from './listen.js';
import { replyButtons } from './reply-buttons.js';
import { resume } from './resume.js';
import { say } from './say.js';
import { start } from './start.js';
import { status } from './status.js';
import { stop } from './stop.js';
import { transcripts } from './transcripts.js';
import type { AutocompleteContext, ButtonContext, ButtonHandler, Command, CommandContext } from './types.js';

export type { AutocompleteContext, ButtonContext, Command, CommandContext, CommandReply, ChannelOption, Invoker } from './types.js';

export const COMMANDS: readonly Command[] = [start, resume, stop, status, say, interrupt, join, leave, listen, transcripts, cast, config];

export const BUTTONS: readonly ButtonHandler[] = [replyButtons];

const byName = new Map(COMMANDS.map((c) => [c.data.name, c]));

export function findCommand(name: string): Command | undefined {
  return byName.get(name);
}

/** The JSON bodies for a bulk overwrite (`PUT applications/{id}/commands`). */
export function commandDefinitions(): RESTPostAPIChatInputApplicationCommandsJSONBody[] {
  return COMMANDS.map((c) => c.data);
}

/** Past this, an unanswered interaction is deferred so Discord's 3 s limit is never missed. */
export const SAFETY_DEFER_MS = 2000;

/**
 * The context a handler sees: its `defer` and `reply` calls (and the safety defer) go to Discord
 * one after another. Without this, a safety defer still in flight when the handler answers makes
 * the answer a second initial response (Discord 40060) and the user sees a failure instead of it.
 */
function serialisedResponses(ctx: CommandContext): CommandContext {
  let tail: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
  // The original stays the prototype: its getters (`acknowledged`) and options still answer.
  return Object.create(ctx, {
    defer: { value: (o: { ephemeral: boolean }) => inTurn(() => (ctx.acknowledged ? Promise.resolve() : ctx.defer(o))) },
    reply: { value: (r: Parameters<CommandContext['reply']>[0]) => inTurn(() => ctx.reply(r)) },
  }) as CommandContext;
}

export async function runCommand(original: CommandContext): Promise<void> {
  const ctx = serialisedResponses(original);
  const { core } = ctx;
  const log = core.log.child({ guildId: ctx.guildId, command: ctx.commandName, userId: ctx.invoker.id });
  const command = findCommand(ctx.commandName);
  if (!command) {
    await ctx.reply({ ephemeral: true, content: 'I do not know that command any more; Discord may still be updating the list.' });
    return;
  }
  if (command.controlsSession && !mayControlSession(ctx.invoker, core.config.discord.adminRoleIds)) {
    log.info('command refused: missing permission');
    core.metrics.commands.inc({ command: ctx.commandName, outcome: 'refused' });
    await ctx.reply({ ephemeral: true, content: refusalText(core.config.discord.adminRoleIds) });
    return;
  }
  const safety = setTimeout(() => {
    ctx.defer({ ephemeral: false }).catch((err: unknown) => log.debug({ err: errorInfo(err) }, 'the safety defer failed'));
  }, SAFETY_DEFER_MS);
  try {
    await command.execute(ctx);
    core.metrics.commands.inc({ command: ctx.commandName, outcome: 'ok' });
  } catch (err) {
    const expected = err instanceof UserFacingError;
    if (expected) log.info({ reason: err.message }, 'command answered with a refusal');
    else log.warn({ err: errorInfo(err, !(err instanceof Error && err.name.startsWith('Voxta'))) }, 'command failed');
    core.metrics.commands.inc({ command: ctx.commandName, outcome: 'failed' });
    try {
      await ctx.reply({ ephemeral: true, content: describeForUser(err, core.config.voxta.maxChats) });
    } catch (replyErr) {
      log.warn({ err: errorInfo(replyErr) }, 'could not tell the user the command failed');
    }
  } finally {
    clearTimeout(safety);
  }
}

export async function runAutocomplete(ctx: AutocompleteContext): Promise<void> {
  const command = findCommand(ctx.commandName);
  try {
    if (command?.autocomplete) await command.autocomplete(ctx);
    else await ctx.respond([]);
  } catch (err) {
    ctx.core.log.debug({ err: errorInfo(err), command: ctx.commandName }, 'autocomplete failed; answering with no choices');
    await ctx.respond([]).catch(() => undefined);
  }
}

/**
 * A button press: the handler whose custom ids match, acknowledged within Discord's 3 s (the
 * safety defer), every failure one private sentence.
 */
export async function runButton(ctx: ButtonContext): Promise<void> {
  const { core } = ctx;
  const handler = BUTTONS.find((b) => b.matches(ctx.customId));
  const log = core.log.child({ guildId: ctx.guildId, button: handler?.name ?? ctx.customId.slice(0, 40), userId: ctx.invoker.id });
  if (!handler) {
    await ctx.reply('This button does nothing any more.');
    return;
  }
  // A defer still in flight when the handler answers must go first (as for commands).
  let tail: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
  const turnTaking: ButtonContext = Object.create(ctx, {
    deferUpdate: { value: () => inTurn(() => (ctx.acknowledged ? Promise.resolve() : ctx.deferUpdate())) },
    reply: { value: (content: string) => inTurn(() => ctx.reply(content)) },
  }) as ButtonContext;
  const safety = setTimeout(() => {
    turnTaking.deferUpdate().catch((err: unknown) => log.debug({ err: errorInfo(err) }, 'the safety defer failed'));
  }, SAFETY_DEFER_MS);
  const metric = `button:${handler.name}`;
  try {
    await handler.execute(turnTaking);
    core.metrics.commands.inc({ command: metric, outcome: 'ok' });
  } catch (err) {
    const expected = err instanceof UserFacingError;
    if (expected) log.info({ reason: err.message }, 'button answered with a refusal');
    else log.warn({ err: errorInfo(err, !(err instanceof Error && err.name.startsWith('Voxta'))) }, 'button failed');
    core.metrics.commands.inc({ command: metric, outcome: expected ? 'refused' : 'failed' });
    try {
      await turnTaking.reply(describeForUser(err, core.config.voxta.maxChats));
    } catch (replyErr) {
      log.warn({ err: errorInfo(replyErr) }, 'could not tell the member the button failed');
    }
  } finally {
    clearTimeout(safety);
  }
}
