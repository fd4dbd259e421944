/**
 * What a stop for good tells about messages still pending (issue: "every typed message delivered
 * once or visibly marked not delivered"): never written → ❌ and named; written but never
 * echoed → ❌ and named only when Voxta confirmed the stop (it then drops what it had queued),
 * otherwise left unmarked (it may be in the chat).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PendingMessages } from '../../src/bot/pending-messages.js';
import { createLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { humanMessage, RecordingChannel } from './fixtures.js';

let store: Store | undefined;
afterEach(() => store?.close());

function setup() {
  store = Store.open(fs.mkdtempSync(path.join(os.tmpdir(), 'vd-pending-')));
  const channel = new RecordingChannel('200000000000000001', 'general');
  const posts: string[] = [];
  const pending = new PendingMessages({
    guildId: 'g1',
    store,
    log: () => createLogger({ level: 'silent', pretty: false }),
    channel: () => channel,
    post: async (t) => void posts.push(t),
    link: () => undefined,
  });
  /** A message handed to Voxta; `written` when the client wrote it on a live connection. */
  const hand = (text: string, written: boolean) => {
    const msg = humanMessage(channel.id, 'u1', 'Alice', text);
    const row = pending.persist(msg.id, text, 'chat-1');
    pending.expectEcho(msg.id, text, row);
    if (written) pending.written(text);
    return msg;
  };
  const marks = (id: string) => channel.marks.get(id) ?? new Set<string>();
  return { pending, hand, marks, posts };
}

describe('PendingMessages.abandon', () => {
  it('without a confirmed stop, reports only what was never written', () => {
    const { pending, hand, marks, posts } = setup();
    const written = hand('written', true);
    const queued = hand('queued', false);
    pending.abandon();
    expect(marks(written.id).has('❌')).toBe(false);
    expect(marks(queued.id).has('❌')).toBe(true);
    expect(posts).toEqual(['This message did not reach the character and will not be delivered: “queued”.']);
    expect(store!.listPendingMessages('g1')).toEqual([]);
  });

  it('after a confirmed stop, a written message never echoed is reported too', () => {
    const { pending, hand, marks, posts } = setup();
    const written = hand('written', true);
    const echoed = hand('echoed', true);
    pending.echoed('echoed', 'voxta-1', 'chat-1');
    pending.abandon({ unconfirmedLost: true });
    expect(marks(written.id).has('❌')).toBe(true);
    expect(marks(echoed.id).has('❌')).toBe(false);
    expect(posts).toEqual(['This message did not reach the character and will not be delivered: “written”.']);
  });
});
