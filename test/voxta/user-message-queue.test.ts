import { describe, expect, it } from 'vitest';
import { logger } from '../../src/log.js';
import type { HistoryMessage, ServerUpdateMessage } from '../../src/voxta/messages.js';
import type { SentInfo } from '../../src/voxta/session-events.js';
import { UserMessageQueue } from '../../src/voxta/user-message-queue.js';
import { ESCAPE_PREFIX } from '../../src/voxta/user-text.js';

/** The sink is the edge of this unit: it stands for the session's live chat and records the writes. */
function setup(opts: { maxQueued?: number } = {}) {
  const writes: Array<{ sessionId: string; text: string }> = [];
  const sent: SentInfo[] = [];
  let live: string | undefined;
  let failWrites = false;
  const queue = new UserMessageQueue(
    {
      liveSessionId: () => live,
      write: async (sessionId, text) => {
        if (failWrites) throw new Error('connection gone');
        writes.push({ sessionId, text });
      },
      sent: (info) => sent.push(info),
    },
    { maxQueued: opts.maxQueued ?? 100, log: logger() },
  );
  return {
    queue,
    writes,
    sent,
    goLive: (s: string | undefined) => (live = s),
    failWrites: (f: boolean) => (failWrites = f),
  };
}
/** Lets the flush that `enqueue` started in the background run to its end. */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));
const update = (sessionId: string, messageId: string, role: string, text: string): ServerUpdateMessage => ({ $type: 'update', sessionId, messageId, role, text });
const history = (...items: Array<[id: string, role: string, text: string]>): HistoryMessage[] => items.map(([messageId, role, text]) => ({ messageId, role, text }));

describe('UserMessageQueue', () => {
  it('holds messages while no chat is live, then writes them once, in order', async () => {
    const t = setup();
    t.queue.enqueue('one', {});
    t.queue.enqueue('two', {});
    await settle();
    expect(t.writes).toEqual([]);
    expect(t.queue.stats).toMatchObject({ queued: 2, inFlight: 0, sendsQueued: 2 });

    t.goLive('S1');
    await t.queue.flush();
    expect(t.writes).toEqual([
      { sessionId: 'S1', text: 'one' },
      { sessionId: 'S1', text: 'two' },
    ]);
    expect(t.sent.map((s) => [s.text, s.resend])).toEqual([
      ['one', false],
      ['two', false],
    ]);
    expect(t.queue.stats).toMatchObject({ queued: 0, inFlight: 2, sendsWritten: 2 });
  });

  it('keeps a message queued when its write fails', async () => {
    const t = setup();
    t.goLive('S1');
    t.failWrites(true);
    t.queue.enqueue('kept', {});
    await settle();
    expect(t.queue.stats).toMatchObject({ queued: 1, inFlight: 0, sendsWritten: 0 });
    t.failWrites(false);
    await t.queue.flush();
    expect(t.writes.map((w) => w.text)).toEqual(['kept']);
  });

  it('an echo confirms its message and every earlier one in flight, ignoring the escape prefix', async () => {
    const t = setup();
    t.goLive('S1');
    for (const text of ['a', `${ESCAPE_PREFIX}/b`, 'c']) t.queue.enqueue(text, {});
    await settle();
    expect(t.queue.stats.inFlight).toBe(3);
    t.queue.stored(update('S1', 'm2', 'User', '/b'));
    expect(t.queue.stats.inFlight).toBe(1);
    t.queue.stored(update('S2', 'm3', 'User', 'c')); // another session's message confirms nothing
    t.queue.stored(update('S1', 'm4', 'Assistant', 'c')); // nor does a character's
    expect(t.queue.stats.inFlight).toBe(1);
  });

  it('after a resume, in-flight messages found in the history are not sent again; the others go first, in order', async () => {
    const t = setup();
    t.goLive('S1');
    t.queue.chatStarted(history(['h1', 'User', 'earlier']));
    t.queue.enqueue('earlier', {}); // same text as a message stored BEFORE it was written: not a confirmation
    t.queue.enqueue('delivered', {});
    await settle();
    expect(t.queue.stats.inFlight).toBe(2);
    t.goLive(undefined); // the connection died with both in flight
    t.queue.enqueue('later', {});

    t.queue.chatStarted(history(['h1', 'User', 'earlier'], ['h2', 'User', 'delivered'], ['h3', 'Assistant', 'hi']));
    expect(t.queue.stats).toMatchObject({ queued: 2, inFlight: 0, sendsConfirmedByHistory: 1 });
    t.goLive('S2');
    await t.queue.flush();
    expect(t.writes.slice(2)).toEqual([
      { sessionId: 'S2', text: 'earlier' },
      { sessionId: 'S2', text: 'later' },
    ]);
    expect(t.sent.slice(2).map((s) => s.resend)).toEqual([true, false]);
    expect(t.queue.stats.sendsResent).toBe(1);
  });

  it('drops the oldest queued message beyond the cap, and everything on dropAll', () => {
    const t = setup({ maxQueued: 2 });
    t.queue.enqueue('1', {});
    t.queue.enqueue('2', {});
    t.queue.enqueue('3', {});
    expect(t.queue.stats).toMatchObject({ queued: 2, sendsDropped: 1 });
    t.queue.dropAll('test');
    expect(t.queue.stats).toMatchObject({ queued: 0, inFlight: 0, sendsDropped: 3 });
  });
});
