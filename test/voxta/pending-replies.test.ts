import { describe, expect, it } from 'vitest';
import { PendingReplies } from '../../src/voxta/pending-replies.js';
import { VoxtaTimeoutError } from '../../src/voxta/errors.js';

describe('PendingReplies', () => {
  it('cancel() removes a waiter whose request could not be written: no timer, no rejection, no answer taken', async () => {
    const replies = new PendingReplies();
    const wait = replies.begin(1, (m) => (m.$type === 'scenariosListLoaded' ? m.scenarios : undefined), 30, 'the scenario list');
    let settled = false;
    wait.result.then(
      () => (settled = true),
      () => (settled = true),
    );
    expect(replies.size).toBe(1);
    wait.cancel();
    expect(replies.size).toBe(0);
    replies.offer({ $type: 'scenariosListLoaded', scenarios: [] }, 1);
    await new Promise((r) => setTimeout(r, 60)); // past the 30 ms timeout
    expect(settled).toBe(false);
  });

  it('without cancel, the same waiter times out with a typed error', async () => {
    const replies = new PendingReplies();
    await expect(replies.begin(1, () => undefined, 20, 'nothing').result).rejects.toBeInstanceOf(VoxtaTimeoutError);
    expect(replies.size).toBe(0);
  });
});
