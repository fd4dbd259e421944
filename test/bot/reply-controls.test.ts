/**
 * The buttons under the character's latest reply, against the Voxta simulator (real retry/revert
 * and their deletion echoes): only the latest reply carries them; Regenerate replaces the reply,
 * Undo removes the last exchange (the reply struck through, the member's message marked ↩️), Stop
 * interrupts; a button of an older reply, or a member who may not talk, is refused privately.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runButton, runCommand } from '../../src/commands/index.js';
import { ARIA_ID, startVoxtaSim, type VoxtaSim } from '../../sim/voxta/index.js';
import { buttonPress, FakeGuild, humanMessage, interaction, makeCore, waitUntil, type CoreHarness, type Posted } from './fixtures.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let sim: VoxtaSim;
let h: CoreHarness;
let guild: FakeGuild;
let general: ReturnType<FakeGuild['addText']>;
const ALICE = '500000000000000001';

beforeEach(async () => {
  sim = await startVoxtaSim({ chunkDelayMs: 1, capacityDelayMs: 50 });
  guild = new FakeGuild('160000000000000001', 'Buttons Server');
  general = guild.addText('general');
  h = makeCore(sim.url, { guilds: new Map([[guild.id, guild]]) });
  await runCommand(interaction(h.core, guild, general.id, 'start', { strings: { character: ARIA_ID } }));
});
afterEach(async () => {
  await h.close();
  await sim.close();
});

const received = (type: string) => sim.received.filter((m) => m.payload.$type === type);
const chatTexts = () => sim.chats()[0]!.messages.map((m) => m.text);

async function exchange(text: string, n: number): Promise<{ msg: ReturnType<typeof humanMessage>; reply: Posted }> {
  const msg = humanMessage(general.id, ALICE, 'Alice', text);
  await h.core.humanMessage(guild.id, msg);
  const reply = await waitUntil(() => general.posted.find((p) => p.content.endsWith(`reply number ${n}.`)), `reply ${n}`);
  // Settled: echoes seen, links stored, the playback acknowledged.
  await waitUntil(() => sim.heldSessions().length === 0 && h.core.session(guild.id).queuedTurns === 0, 'the turn settled');
  await sleep(30);
  return { msg, reply };
}

async function press(reply: Posted, action: string, invoker: object = {}) {
  const id = reply.buttons.find((b) => b.startsWith(`reply:${action}:`)) ?? `reply:${action}:unknown`;
  const ctx = buttonPress(h.core, guild, general.id, reply.id, id, invoker);
  await runButton(ctx);
  return ctx;
}

describe('reply controls', () => {
  it('only the latest reply carries Regenerate, Stop and Undo', async () => {
    const first = (await exchange('hello', 1)).reply;
    expect(first.buttons.map((b) => b.split(':').slice(0, 2).join(':'))).toEqual(['reply:regenerate', 'reply:stop', 'reply:undo']);
    const second = (await exchange('again', 2)).reply;
    expect(second.buttons).toHaveLength(3);
    await waitUntil(() => first.buttons.length === 0, 'the older reply’s buttons removed');
    // One edit moved them; the new reply was posted with its buttons (no extra request).
    expect(second.edits).toBeLessThanOrEqual(1);
  });

  it('Regenerate: Voxta retries, the old reply is deleted and the new one takes its place with the buttons', async () => {
    await exchange('hello', 1);
    const { reply } = await exchange('tell me more', 2);
    const ctx = await press(reply, 'regenerate');
    expect(ctx.updateDeferred).toBe(true);
    expect(ctx.replies).toEqual([]);
    await waitUntil(() => received('retry').length === 1, 'the retry');
    const fresh = await waitUntil(() => general.posted.find((p) => p !== reply && !p.deleted && p.content.includes('You said: tell me more') && p.content.includes('reply number') && p.buttons.length > 0), 'the regenerated reply');
    await waitUntil(() => reply.deleted, 'the old reply deleted');
    expect(fresh.content).toMatch(/^You said: tell me more\. This is Aria, reply number \d\.$/);
    // Deleting our own message did not delete anything else on Voxta.
    expect(received('deleteMessage')).toEqual([]);
    await waitUntil(() => sim.heldSessions().length === 0, 'settled');
    expect(chatTexts().filter((t) => t.startsWith('You said: tell me more'))).toHaveLength(1);
  });

  it('Undo: the last exchange leaves the chat; the reply is struck through and the member’s message marked ↩️', async () => {
    await exchange('hello', 1);
    const { msg, reply } = await exchange('forget this', 2);
    const ctx = await press(reply, 'undo');
    expect(ctx.replies).toEqual([]);
    await waitUntil(() => received('revert').length === 1, 'the revert');
    await waitUntil(() => reply.content.startsWith('~~'), 'the reply struck through');
    expect(reply.content).toBe('~~You said: forget this. This is Aria, reply number 2.~~\n*(undone)*');
    expect(reply.buttons).toEqual([]);
    await waitUntil(() => general.marks.get(msg.id)?.has('↩️'), 'the member’s message marked');
    expect(chatTexts().some((t) => t.includes('forget this'))).toBe(false);
    expect(chatTexts().some((t) => t.includes('hello'))).toBe(true);
    // Its links are gone: editing the member's message now changes nothing on Voxta.
    expect(h.store.findMessageLink(msg.id)).toBeUndefined();
    expect(h.store.findMessageLink(reply.id)).toBeUndefined();
  });

  it('Stop interrupts like /interrupt', async () => {
    const { reply } = await exchange('hello', 1);
    const ctx = await press(reply, 'stop');
    expect(ctx.replies).toEqual([]);
    await waitUntil(() => received('interrupt').length === 1, 'the interrupt');
  });

  it('refuses a button of an older reply, a member who may not talk, and a chat that stopped', async () => {
    const first = (await exchange('hello', 1)).reply;
    const firstRegenerate = first.buttons[0]!;
    const second = (await exchange('again', 2)).reply;
    const stale = buttonPress(h.core, guild, general.id, first.id, firstRegenerate);
    await runButton(stale);
    expect(stale.replies).toEqual(['That is no longer the latest reply; only the latest one can be regenerated.']);
    expect(received('retry')).toEqual([]);

    guild.serverRoles.set('610000000000000001', 'Regulars');
    await runCommand(interaction(h.core, guild, general.id, 'config', { subcommand: 'set', strings: { setting: 'chat-roles', value: 'Regulars' } }));
    const outsider = await press(second, 'undo', { roleIds: [] });
    expect(outsider.replies).toEqual(['Only members with one of this server’s chat roles can use these buttons.']);
    expect(outsider.updateDeferred).toBe(false);
    expect(received('revert')).toEqual([]);
    const regular = await press(second, 'stop', { roleIds: ['610000000000000001'] });
    expect(regular.replies).toEqual([]);

    await runCommand(interaction(h.core, guild, general.id, 'stop'));
    expect(second.buttons).toEqual([]);
    const late = buttonPress(h.core, guild, general.id, second.id, `reply:undo:x`);
    await runButton(late);
    expect(late.replies).toEqual(['This chat is not running any more.']);
  });
});
