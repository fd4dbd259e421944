/**
 * Turning failures into one plain sentence for the Discord user. Stack traces and server
 * internals stay in the log; the user learns what happened and what to do.
 */
import {
  VoxtaAuthError,
  VoxtaBusyError,
  VoxtaCapacityError,
  VoxtaChatLockedError,
  VoxtaError,
  VoxtaNotFoundError,
  VoxtaTimeoutError,
  VoxtaUnreachableError,
} from '../voxta/errors.js';

/** An error whose message is already meant for the user. */
export class UserFacingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserFacingError';
  }
}

export function describeForUser(err: unknown, maxChats?: number): string {
  if (err instanceof UserFacingError) return err.message;
  if (err instanceof VoxtaUnreachableError) {
    return 'Voxta is not reachable at the moment. Check that the Voxta server is running, then try again.';
  }
  if (err instanceof VoxtaCapacityError) {
    const n = err.limit ?? maxChats;
    const count = n === undefined ? 'as many chats as' : `${n} chat${n === 1 ? '' : 's'},`;
    return `Voxta already runs ${count} the most it allows. Stop one (here with /stop, or in the Voxta app) and try again.`;
  }
  if (err instanceof VoxtaChatLockedError) {
    return 'That chat is already open somewhere else (the Voxta app or another server). Close it there, or wait half a minute and try again.';
  }
  if (err instanceof VoxtaBusyError) return 'Voxta is busy starting or closing another chat. Try again in a few seconds.';
  if (err instanceof VoxtaNotFoundError) return 'Voxta does not know that character or chat (any more). Pick one from the list.';
  if (err instanceof VoxtaAuthError) return 'Voxta refused the bot’s credentials. The bot owner needs to check VOXTA_API_KEY.';
  if (err instanceof VoxtaTimeoutError) return 'Voxta did not answer in time. Try again in a moment.';
  if (err instanceof VoxtaError) return 'Voxta reported a problem; the bot’s log has the details. Try again in a moment.';
  return 'Something went wrong on the bot’s side; the log has the details.';
}
