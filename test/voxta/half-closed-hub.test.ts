/**
 * Regression (issue: "a failed hub write crashes the whole bot"): a hub that sends a WebSocket
 * close frame and then holds TCP open (a proxy, a restarting Voxta) leaves SignalR saying
 * `Connected` while every write fails. A request made then must reject its caller once and leave
 * no reply waiter behind: the waiter's later rejection (timeout, drop, close) used to be
 * unhandled, and Node ended the process.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, type VoxtaSim } from '../../sim/voxta/index.js';
import type { VoxtaChatSession } from '../../src/voxta/chat-session.js';
import { VoxtaDisconnectedError } from '../../src/voxta/errors.js';
import { newSession, newSim } from './helpers.js';

let sim: VoxtaSim | undefined;
let session: VoxtaChatSession | undefined;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => void unhandled.push(reason);

afterEach(async () => {
  process.off('unhandledRejection', onUnhandled);
  unhandled.length = 0;
  await session?.close({ stopChat: false }).catch(() => undefined);
  await sim?.close();
  sim = undefined;
  session = undefined;
});

describe('a half-closed hub', () => {
  it('fails requests at once, leaves no waiter, and nothing rejects unhandled later', async () => {
    process.on('unhandledRejection', onUnhandled);
    sim = await newSim({ chunkDelayMs: 1 });
    session = newSession(sim, { timeouts: { requestMs: 200, stopMs: 200 }, reconnect: { initialDelayMs: 50, maxDelayMs: 100, giveUpAfterMs: 400 } });
    await session.startChat({ characterId: ARIA_ID });
    sim.halfCloseHubConnections();
    // The close frame has reached the client once a write fails (SignalR still reports Connected).
    const deadline = Date.now() + 3000;
    let err: unknown;
    while (Date.now() < deadline) {
      err = await session.loadCharacters().then(
        () => undefined,
        (e: unknown) => e,
      );
      // A write that went out before the close frame arrived just times out (the hub stopped reading).
      if (err instanceof VoxtaDisconnectedError) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(err).toBeInstanceOf(VoxtaDisconnectedError);
    // /stop on such a hub: stopChat's write fails too; it must reject (or resolve), not leave a waiter.
    await session.stopChat().catch(() => undefined);
    await session.close();
    // Longer than every timeout above: a waiter left behind would have rejected by now.
    await new Promise((r) => setTimeout(r, 500));
    expect(unhandled).toEqual([]);
  });
});
