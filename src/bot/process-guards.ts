/**
 * The last line of defence for a bot that serves many guilds at once: an unhandled promise
 * rejection or an uncaught exception is logged with context and counted
 * (`voxta_discord_unhandled_errors_total`), and the process goes on. Node's default — exit 1 —
 * would end every guild's conversation for one guild's bug. Every known path handles its own
 * errors (and a lint rule keeps promises handled); this catches what slipped through, visibly.
 */
import { errorInfo, type Logger } from '../log.js';

export function installProcessGuards(log: Logger, onError?: (kind: 'unhandledRejection' | 'uncaughtException') => void): void {
  const onRejection = (reason: unknown): void => {
    onError?.('unhandledRejection');
    log.error({ err: errorInfo(reason, true), kind: 'unhandledRejection' }, 'a promise rejection was not handled (a bug); the bot goes on');
  };
  const onException = (err: Error, origin: string): void => {
    onError?.('uncaughtException');
    log.error({ err: errorInfo(err, true), kind: 'uncaughtException', origin }, 'an exception was not caught (a bug); the bot goes on');
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
}
