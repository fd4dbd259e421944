import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ClientMessage } from '../../src/voxta/messages.js';
import { PlaybackContract } from '../../src/voxta/playback-contract.js';

/** The sink is the edge of this unit: it records what would go on the wire. */
function setup(opts: { safetyTimeoutMs?: number } = {}) {
  const sent: ClientMessage[] = [];
  let sessionId: string | undefined = 'S1';
  const contract = new PlaybackContract({ send: (m) => sent.push(m), sessionId: () => sessionId }, { autoAcknowledge: false, ...opts });
  const completes = (id?: string) => sent.filter((m) => m.$type === 'speechPlaybackComplete' && (id === undefined || m.messageId === id));
  return { sent, contract, completes, setSession: (s: string | undefined) => (sessionId = s) };
}
const chunk = { startIndex: 0, endIndex: 5, isNarration: false };

afterEach(() => vi.useRealTimers());

describe('PlaybackContract', () => {
  it('sends speechPlaybackStart with the true duration, and one complete after end + drain', () => {
    const { sent, contract, completes } = setup();
    expect(contract.chunkStarted('m1', chunk, 1.2345)).toBe(true);
    expect(sent[0]).toEqual({ $type: 'speechPlaybackStart', sessionId: 'S1', messageId: 'm1', startIndex: 0, endIndex: 5, duration: 1.235, isNarration: false });
    contract.replyEnded('m1');
    expect(completes()).toHaveLength(0); // still playing
    contract.drained('m1');
    contract.drained('m1');
    contract.abort('m1');
    contract.replyEnded('m1');
    expect(completes('m1')).toHaveLength(1);
    expect(contract.stats).toMatchObject({ startsSent: 1, completesSent: 1, owed: 0 });
  });

  it('a drain before replyEnd waits for the end; a later chunk re-arms the drain', () => {
    const { contract, completes } = setup();
    contract.chunkStarted('m1', chunk, 1);
    contract.drained('m1'); // played faster than generated
    contract.chunkStarted('m1', { ...chunk, startIndex: 6, endIndex: 9 }, 1);
    contract.replyEnded('m1');
    expect(completes()).toHaveLength(0); // second chunk still playing
    contract.drained('m1');
    expect(completes()).toHaveLength(1);
  });

  it('completes at once when aborted, and never twice for replyCancelled followed by replyEnd', () => {
    const { contract, completes } = setup();
    contract.chunkStarted('m1', chunk, 2);
    contract.abort('m1'); // replyCancelled
    expect(completes()).toHaveLength(0); // no hold before replyEnd
    contract.replyEnded('m1');
    expect(completes('m1')).toHaveLength(1);
    contract.drained('m1');
    contract.replyEnded('m1');
    expect(completes('m1')).toHaveLength(1);
    expect(contract.chunkStarted('m1', chunk, 1)).toBe(false); // late audio of a completed reply
  });

  it('a reply with no audio at all completes on drain', () => {
    const { contract, completes } = setup();
    contract.replyEnded('m2');
    contract.drained('m2');
    expect(completes('m2')).toHaveLength(1);
  });

  it('keeps replies apart: completing one does not complete the other', () => {
    const { contract, completes } = setup();
    contract.chunkStarted('a', chunk, 1);
    contract.chunkStarted('b', chunk, 1);
    contract.replyEnded('a');
    contract.drained('a');
    expect(completes('a')).toHaveLength(1);
    expect(completes('b')).toHaveLength(0);
    expect(contract.owedIds()).toEqual(['b']);
  });

  it('reset forgets what the dead session was owed and sends nothing for it', () => {
    const { contract, completes, setSession, sent } = setup();
    contract.chunkStarted('m1', chunk, 1);
    contract.replyEnded('m1');
    setSession('S2');
    contract.reset();
    contract.drained('m1');
    expect(completes()).toHaveLength(0);
    expect(contract.stats.droppedOnReset).toBe(1);
    contract.chunkStarted('m9', chunk, 1);
    expect(sent.at(-1)).toMatchObject({ sessionId: 'S2', messageId: 'm9' });
  });

  it('the safety timer completes an ended reply that is never drained, once', () => {
    vi.useFakeTimers();
    const { contract, completes } = setup({ safetyTimeoutMs: 1000 });
    contract.chunkStarted('m1', chunk, 2);
    contract.replyEnded('m1');
    vi.advanceTimersByTime(2500); // safety 1 s + 2 s of reported audio not yet over
    expect(completes()).toHaveLength(0);
    vi.advanceTimersByTime(600);
    expect(completes('m1')).toHaveLength(1);
    expect(contract.stats.timeouts).toBe(1);
    contract.drained('m1');
    expect(completes('m1')).toHaveLength(1);
  });

  it('abortAll completes every ended reply', () => {
    const { contract, completes } = setup();
    contract.replyEnded('x');
    contract.replyEnded('y');
    contract.abortAll();
    expect(completes()).toHaveLength(2);
  });
});
