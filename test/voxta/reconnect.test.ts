import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, type VoxtaSim } from '../../sim/voxta/index.js';
import type { ReconnectedInfo, VoxtaChatSession } from '../../src/voxta/chat-session.js';
import type { ReplyChunkMessage, ReplyEndMessage } from '../../src/voxta/messages.js';
import { attachPipeline, newSession, newSim, waitEvent, waitFor } from './helpers.js';

let sims: VoxtaSim[] = [];
let sessions: VoxtaChatSession[] = [];
afterEach(async () => {
  for (const s of sessions) await s.close({ stopChat: false }).catch(() => undefined);
  for (const s of sims) await s.close();
  sims = [];
  sessions = [];
});

async function setup(simOpts: Parameters<typeof newSim>[0] = {}, sessionOpts: Parameters<typeof newSession>[1] = {}) {
  const sim = await newSim(simOpts);
  sims.push(sim);
  const session = newSession(sim, sessionOpts);
  sessions.push(session);
  return { sim, session };
}

const received = (sim: VoxtaSim, type: string) => sim.received.filter((r) => r.payload.$type === type);
const sendsWithText = (sim: VoxtaSim, text: string) => received(sim, 'send').filter((r) => r.payload.text === text);
const historyTexts = (sim: VoxtaSim, chatId: string) => sim.chats().find((c) => c.id === chatId)!.messages.filter((m) => m.role === 'User').map((m) => m.text);

describe('VoxtaChatSession reconnects', () => {
  it('hub dropped mid-reply → reconnect, re-authenticate, resume (retrying the chat lock); queued messages delivered once, in order; no stale completes', async () => {
    const { sim, session } = await setup({ chunkDelayMs: 60, chatLockReleaseDelayMs: 300, reply: (t) => [`About ${t}, one.`, 'Two.', 'Three.', 'Four.'] });
    const chat = await session.startChat({ characterId: ARIA_ID });
    const oldSession = chat.sessionId;
    const states: string[] = [];
    session.on('state', (s) => states.push(s));

    const firstChunk = waitEvent<[ReplyChunkMessage]>(session, 'replyChunk');
    session.send('a story');
    const [chunk] = await firstChunk;
    const dropSeq = sim.seq();
    const reconnected = waitEvent<[ReconnectedInfo]>(session, 'reconnected', 8000);
    sim.dropHubConnections();
    await waitFor(session, 'state', (s: string) => s === 'reconnecting');
    // Typed while Voxta is away: must arrive once each, in this order, on the new session.
    session.send('queued one');
    session.send('queued two');
    expect(session.stats.queued).toBe(2);

    const [info] = await reconnected;
    expect(info.sessionId).toBeTruthy();
    expect(info.sessionId).not.toBe(oldSession);
    expect(info.chatId).toBe(chat.chatId);
    expect(session.sessionId).toBe(info.sessionId);
    expect(states).toEqual(['reconnecting', 'ready']);

    // Re-authenticated on the new connection, and resumed (after at least one lock refusal).
    expect(received(sim, 'authenticate')).toHaveLength(2);
    const resumes = received(sim, 'resumeChat').filter((r) => r.seq > dropSeq);
    expect(resumes.length).toBeGreaterThanOrEqual(2);
    expect(resumes.every((r) => r.payload.chatId === chat.chatId)).toBe(true);
    expect(sim.sent.some((s) => s.seq > dropSeq && (s.payload as { message?: string }).message === 'Chat session already exists for this chat')).toBe(true);

    // Both queued messages reach the chat exactly once, in order.
    await sim.waitFor(() => historyTexts(sim, chat.chatId).includes('queued two'), 5000, 'queued messages stored');
    const history = historyTexts(sim, chat.chatId);
    expect(history.filter((t) => t === 'queued one')).toHaveLength(1);
    expect(history.filter((t) => t === 'queued two')).toHaveLength(1);
    expect(history.indexOf('queued one')).toBeLessThan(history.indexOf('queued two'));
    expect(sendsWithText(sim, 'queued one')).toHaveLength(1);
    expect(sendsWithText(sim, 'queued two')).toHaveLength(1);
    expect(sendsWithText(sim, 'queued one')[0]!.payload.sessionId).toBe(info.sessionId);

    // Nothing owed to the dead session was sent on the new connection; no complete twice.
    const after = sim.received.filter((r) => r.seq > dropSeq);
    expect(after.filter((r) => r.payload.sessionId === oldSession)).toHaveLength(0);
    expect(sim.playback(chunk.messageId).completes).toBe(0);
    await sim.waitFor(() => sim.heldSessions().length === 0 && sim.sessions().every((s) => !s.generating && s.queued === 0), 5000, 'chat idle');
    const counts = new Map<string, number>();
    for (const r of received(sim, 'speechPlaybackComplete')) counts.set(String(r.payload.messageId), (counts.get(String(r.payload.messageId)) ?? 0) + 1);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it('a send in flight when the socket died, which the server stored, is not sent again', async () => {
    const { sim, session } = await setup({ tts: { enabled: false } });
    const chat = await session.startChat({ characterId: ARIA_ID });
    // Kill the connection the instant the server receives the message: it is stored, but its
    // echo (and the reply) go to a dead socket.
    sim.on('clientMessage', (m) => {
      if (m.payload.$type === 'send' && m.payload.text === 'fragile') sim.dropHubConnections();
    });
    const reconnected = waitEvent<[ReconnectedInfo]>(session, 'reconnected', 8000);
    session.send('fragile');
    await reconnected;
    await new Promise((r) => setTimeout(r, 200));
    expect(sendsWithText(sim, 'fragile')).toHaveLength(1);
    expect(historyTexts(sim, chat.chatId).filter((t) => t === 'fragile')).toHaveLength(1);
    expect(session.stats).toMatchObject({ sendsConfirmedByHistory: 1, sendsResent: 0, queued: 0, inFlight: 0 });
  });

  it('a send waiting behind the playback hold when the socket died is sent again, once', async () => {
    const { sim, session } = await setup({ reply: () => ['Still playing.'] });
    let first: string | undefined;
    attachPipeline(session, { hold: (id) => (first ??= id) === id }); // the first reply never finishes playing
    const chat = await session.startChat({ characterId: ARIA_ID });
    const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
    session.send('first');
    await end;
    await sim.waitFor(() => sim.heldSessions().length === 1, 3000, 'hold');
    session.send('behind the hold');
    await sim.waitFor(() => sendsWithText(sim, 'behind the hold').length === 1, 3000, 'send received');
    expect(historyTexts(sim, chat.chatId)).not.toContain('behind the hold'); // queued server-side, not stored

    const reconnected = waitEvent<[ReconnectedInfo]>(session, 'reconnected', 8000);
    sim.dropHubConnections();
    const [info] = await reconnected;
    await sim.waitFor(() => historyTexts(sim, chat.chatId).includes('behind the hold'), 5000, 'resent message stored');
    expect(historyTexts(sim, chat.chatId).filter((t) => t === 'behind the hold')).toHaveLength(1);
    const sends = sendsWithText(sim, 'behind the hold');
    expect(sends).toHaveLength(2); // once per connection: the first never got past the dead session's hold
    expect(sends[1]!.payload.sessionId).toBe(info.sessionId);
    expect(session.stats.sendsResent).toBe(1);
  });

  it('survives a Voxta restart, resuming the chat', async () => {
    const { sim, session } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    const reconnecting = waitEvent(session, 'reconnecting');
    await sim.stop();
    await reconnecting;
    await new Promise((r) => setTimeout(r, 300));
    const reconnected = waitEvent<[ReconnectedInfo]>(session, 'reconnected', 8000);
    await sim.start();
    const [info] = await reconnected;
    expect(info.chatId).toBe(chat.chatId);
    expect(session.state).toBe('ready');
    // The chat works again.
    const end = waitEvent<[ReplyEndMessage]>(session, 'replyEnd');
    session.send('back?');
    const [e] = await end;
    await sim.waitFor(() => sim.playback(e.messageId).completes === 1, 3000, 'complete');
  });

  it('gives up after the configured period: emits failed and closes', async () => {
    const { sim, session } = await setup({}, { reconnect: { initialDelayMs: 30, maxDelayMs: 100, giveUpAfterMs: 600, jitter: 0 } });
    await session.startChat({ characterId: ARIA_ID });
    const failed = waitEvent<[Error]>(session, 'failed', 5000);
    const attempts: number[] = [];
    session.on('reconnecting', (i) => attempts.push(i.attempt));
    await sim.stop();
    const [err] = await failed;
    expect(err.message).toMatch(/Gave up reconnecting/);
    expect(session.state).toBe('closed');
    expect(attempts.length).toBeGreaterThanOrEqual(3);
    expect(() => session.send('x')).toThrow(/closed/);
  });

  it('a chat that no longer exists after a reconnect is reported as lost; the connection stays usable', async () => {
    const { sim, session } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    const lost = waitEvent<[{ chatId: string; error: string }]>(session, 'chatLost', 8000);
    const reconnected = waitEvent<[ReconnectedInfo]>(session, 'reconnected', 8000);
    // Voxta comes back on the same port without that chat (a fresh simulator: empty chat store).
    const port = sim.port;
    await sim.close();
    const fresh = await newSim({ port });
    sims.push(fresh);
    const [info] = await lost;
    expect(info.chatId).toBe(chat.chatId);
    expect(info.error).toMatch(/not found/i);
    const [r] = await reconnected;
    expect(r.sessionId).toBeUndefined();
    expect(session.state).toBe('ready');
    expect(session.chat).toBeUndefined();
    expect(session.chatId).toBeUndefined();
    // A new chat can be started on the same session object.
    await session.startChat({ characterId: ARIA_ID });
    expect(fresh.sessions()).toHaveLength(1);
  });

  it('a server-side close (SignalR close message) is handled like a drop', async () => {
    const { sim, session } = await setup();
    const chat = await session.startChat({ characterId: ARIA_ID });
    const reconnected = waitEvent<[ReconnectedInfo]>(session, 'reconnected', 8000);
    sim.closeHubConnections({ allowReconnect: true, error: 'Server restarting' });
    const [info] = await reconnected;
    expect(info.chatId).toBe(chat.chatId);
    expect(info.sessionId).not.toBe(chat.sessionId);
  });

  it('stopChat while reconnecting cancels the resume and drops queued messages', async () => {
    const { sim, session } = await setup({ chatLockReleaseDelayMs: 400 });
    await session.startChat({ characterId: ARIA_ID });
    const reconnected = waitEvent<[ReconnectedInfo]>(session, 'reconnected', 8000);
    sim.dropHubConnections();
    await waitFor(session, 'state', (s: string) => s === 'reconnecting');
    session.send('never delivered');
    await session.stopChat();
    const [info] = await reconnected;
    expect(info.sessionId).toBeUndefined();
    expect(session.chat).toBeUndefined();
    expect(session.stats.queued).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    expect(sendsWithText(sim, 'never delivered')).toHaveLength(0);
    expect(sim.sessions()).toHaveLength(0);
  });
});
