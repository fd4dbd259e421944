/**
 * The slash-command registry and the entry points `app.ts` calls: {@link runCommand} (checks
 * permission, answers within Discord's 3 s, turns every failure into an ephemeral sentence),
 * {@link runAutocomplete} (never throws, always answers) and {@link runButton} (buttons under the
 * bot's messages, routed by custom id, answered the same way).
 */
import type { RESTPostAPIChatInputApplicationCommandsJSONBody } from 'discord.js';
import { mayControlSession, refusalText } from '../bot/permissions.js';
import { describeForUser, UserFacingError } from '../bot/user-errors.js';
import { errorInfo, type Logger } from '../log.js';
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
  const inTurn = turnTaker();
  // The original stays the prototype: its getters (`acknowledged`) and options still answer.
  return Object.create(ctx, {
    defer: { value: (o: { ephemeral: boolean }) => inTurn(() => (ctx.acknowledged ? Promise.resolve() : ctx.defer(o))) },
    reply: { value: (r: Parameters<CommandContext['reply']>[0]) => inTurn(() => ctx.reply(r)) },
  }) as CommandContext;
}

/** Runs the functions given to it one after another, each once the previous one has settled. */
function turnTaker(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}

/**
 * Runs a command or button handler with the safety defer armed: success and failure are counted,
 * a failure is logged with context and answered in one private sentence.
 */
async function runHandler(o: {
  what: 'command' | 'button';
  core: CommandContext['core'];
  log: Logger;
  metric: string;
  /** How a refusal (UserFacingError) is counted. */
  refusedOutcome: 'refused' | 'failed';
  execute: () => Promise<void>;
  safetyDefer: () => Promise<void>;
  answer: (text: string) => Promise<void>;
}): Promise<void> {
  const { core, log } = o;
  const safety = setTimeout(() => {
    o.safetyDefer().catch((err: unknown) => log.debug({ err: errorInfo(err) }, 'the safety defer failed'));
  }, SAFETY_DEFER_MS);
  try {
    await o.execute();
    core.metrics.commands.inc({ command: o.metric, outcome: 'ok' });
  } catch (err) {
    const expected = err instanceof UserFacingError;
    if (expected) log.info({ reason: err.message }, `${o.what} answered with a refusal`);
    else log.warn({ err: errorInfo(err, !(err instanceof Error && err.name.startsWith('Voxta'))) }, `${o.what} failed`);
    core.metrics.commands.inc({ command: o.metric, outcome: expected ? o.refusedOutcome : 'failed' });
    try {
      await o.answer(describeForUser(err, core.config.voxta.maxChats));
    } catch (replyErr) {
      log.warn({ err: errorInfo(replyErr) }, `could not say that the ${o.what} failed`);
    }
  } finally {
    clearTimeout(safety);
  }
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
  await runHandler({
    what: 'command',
    core,
    log,
    metric: ctx.commandName,
    refusedOutcome: 'failed',
    execute: () => command.execute(ctx),
    safetyDefer: () => ctx.defer({ ephemeral: false }),
    answer: (content) => ctx.reply({ ephemeral: true, content }),
  });
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
  const inTurn = turnTaker();
  const turnTaking: ButtonContext = Object.create(ctx, {
    deferUpdate: { value: () => inTurn(() => (ctx.acknowledged ? Promise.resolve() : ctx.deferUpdate())) },
    reply: { value: (content: string) => inTurn(() => ctx.reply(content)) },
  }) as ButtonContext;
  await runHandler({
    what: 'button',
    core,
    log,
    metric: `button:${handler.name}`,
    refusedOutcome: 'refused',
    execute: () => handler.execute(turnTaking),
    safetyDefer: () => turnTaking.deferUpdate(),
    answer: (content) => turnTaking.reply(content),
  });
}
