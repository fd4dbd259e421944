import { describe, expect, it } from 'vitest';
import { VoxtaAuthError, VoxtaChatLockedError, VoxtaNotFoundError } from '../../src/voxta/errors.js';
import { reconnectWithBackoff } from '../../src/voxta/reconnect-policy.js';

const fast = { initialDelayMs: 1, maxDelayMs: 4, jitter: 0 };

describe('reconnectWithBackoff', () => {
  it('retries a locked chat until an attempt succeeds, reporting each retry', async () => {
    const retries: number[] = [];
    let n = 0;
    const outcome = await reconnectWithBackoff(fast, new AbortController().signal, undefined, {
      attempt: async () => {
        if (++n < 3) throw new VoxtaChatLockedError('Chat session already exists');
        return 'chat';
      },
      retrying: (attempt) => retries.push(attempt),
    });
    expect(outcome).toEqual({ kind: 'reconnected', attempt: 3, value: 'chat' });
    expect(retries).toEqual([1, 2]);
  });

  it('gives up at once on errors that will not fix themselves', async () => {
    for (const err of [new VoxtaAuthError(), new VoxtaNotFoundError('Chat not found'), new TypeError('bug')]) {
      let attempts = 0;
      const outcome = await reconnectWithBackoff(fast, new AbortController().signal, undefined, {
        attempt: async () => {
          attempts++;
          throw err;
        },
        retrying: () => undefined,
      });
      expect(outcome).toEqual({ kind: 'gaveUp', lastError: err });
      expect(attempts).toBe(1);
    }
  });

  it('gives up after giveUpAfterMs of retriable failures', async () => {
    const err = new VoxtaChatLockedError('Chat session already exists');
    const outcome = await reconnectWithBackoff({ ...fast, giveUpAfterMs: 30 }, new AbortController().signal, undefined, {
      attempt: async () => {
        throw err;
      },
      retrying: () => undefined,
    });
    expect(outcome).toEqual({ kind: 'gaveUp', lastError: err });
  });

  it('stops when aborted during the back-off wait, without another attempt', async () => {
    const abort = new AbortController();
    let attempts = 0;
    // First attempt after 20 ms, the next one 40 ms after it fails: the abort comes 5 ms into that wait.
    const outcome = await reconnectWithBackoff({ initialDelayMs: 20, maxDelayMs: 60_000, jitter: 0 }, abort.signal, undefined, {
      attempt: async () => {
        attempts++;
        throw new VoxtaChatLockedError('Chat session already exists');
      },
      retrying: () => setTimeout(() => abort.abort(), 5),
    });
    expect(outcome).toEqual({ kind: 'aborted', duringWait: true });
    expect(attempts).toBe(1);
  });

  it('an attempt that succeeds after the abort does not count as reconnected', async () => {
    const abort = new AbortController();
    const outcome = await reconnectWithBackoff(fast, abort.signal, undefined, {
      attempt: async () => {
        abort.abort();
        return 'chat';
      },
      retrying: () => undefined,
    });
    expect(outcome).toEqual({ kind: 'aborted', duringWait: false });
  });
});
