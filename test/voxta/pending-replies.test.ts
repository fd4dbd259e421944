import { describe, expect, it } from 'vitest';
import { PendingReplies } from '../../src/voxta/pending-replies.js';
import { VoxtaDisconnectedError, VoxtaTimeoutError } from '../../src/voxta/errors.js';

describe('PendingReplies', () => {
  it('a request whose write fails rejects with the write error and leaves no waiter: no timer, no later rejection, no answer taken', async () => {
    const replies = new PendingReplies();
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown): void => void unhandled.push(r);
    process.on('unhandledRejection', onUnhandled);
    try {
      const asked = replies.ask(1, (m) => (m.$type === 'scenariosListLoaded' ? m.scenarios : undefined), 30, 'the scenario list', async () => {
        throw new VoxtaDisconnectedError();
      });
      await expect(asked).rejects.toBeInstanceOf(VoxtaDisconnectedError);
      expect(replies.size).toBe(0);
      replies.offer({ $type: 'scenariosListLoaded', scenarios: [] }, 1);
      await new Promise((r) => setTimeout(r, 60)); // past the 30 ms timeout
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('the answer may arrive before the write settles: the waiter is registered first', async () => {
    const replies = new PendingReplies();
    const asked = replies.ask(1, (m) => (m.$type === 'scenariosListLoaded' ? m.scenarios : undefined), 1000, 'the scenario list', async () => {
      replies.offer({ $type: 'scenariosListLoaded', scenarios: [] }, 1);
    });
    await expect(asked).resolves.toEqual([]);
    expect(replies.size).toBe(0);
  });

  it('a written request nobody answers times out with a typed error', async () => {
    const replies = new PendingReplies();
    await expect(replies.ask(1, () => undefined, 20, 'nothing', async () => undefined)).rejects.toBeInstanceOf(VoxtaTimeoutError);
    expect(replies.size).toBe(0);
  });
});
