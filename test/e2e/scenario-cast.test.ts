/**
 * The cast end to end (production bot, real discord.js and @discordjs/voice, both simulators):
 * characters post through channel webhooks under their own name and with the avatar Voxta serves,
 * streamed by edits and spoken in order; a scenario from autocomplete with its narrator; the
 * fallback without Manage Webhooks, said plainly; a webhook deleted by a moderator made again;
 * a PluralKit-proxied message read once, under the proxied name.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_BOT_PERMISSIONS, Perm, type InteractionHandle, type SimMessage } from '../../sim/discord/index.js';
import { ARIA_ID, BRIDGE_SCENARIO_ID, CHRONICLER_ID, HOLT_ID, MIRA_ID, type SimReply } from '../../sim/voxta/index.js';
import { startE2E, type E2EEnv } from '../harness/env.js';
import { goertzel, replyIds, sends } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const WITH_WEBHOOKS = DEFAULT_BOT_PERMISSIONS | Perm.ManageWebhooks;

const bothAnswer = (text: string): SimReply[] => [
  { senderId: ARIA_ID, text: [`Aria hears “${text}”.`, 'She smiles at the crew.'] },
  { senderId: HOLT_ID, text: ['Holt nods.', 'Noted, everyone.'] },
];

async function boot(opts: Parameters<typeof startE2E>[0] = {}): Promise<E2EEnv> {
  env = await startE2E(opts);
  await env.spawnBot({ env: { DISCORD_GUILD_ID: env.guild.id } });
  await env.discord.waitForBotReady(15_000);
  await env.discord.waitForCommands(['start', 'cast', 'status'], env.guild.id, 15_000);
  return env;
}

async function answer(handle: InteractionHandle) {
  await handle.waitUntil(() => (handle.hasFinalContent || handle.followUps.length > 0 ? true : undefined), 20_000, 'an answer');
  await new Promise((r) => setTimeout(r, 250));
  const last = handle.followUps.at(-1);
  const m = last ?? { content: handle.content, embeds: handle.embeds, ephemeral: handle.ephemeral };
  return { content: m.content, embeds: m.embeds as Array<{ title?: string; description?: string; fields?: Array<{ name: string; value: string }> }>, ephemeral: m.ephemeral };
}

const field = (a: Awaited<ReturnType<typeof answer>>, name: string) => a.embeds[0]?.fields?.find((f) => f.name === name)?.value;

async function thumbnail(e: E2EEnv, id: string): Promise<Buffer> {
  return Buffer.from(await (await fetch(`${e.voxtaUrl}/api/characters/${id}/thumbnail`)).arrayBuffer());
}

const byWebhook = (e: E2EEnv, name: string) => (m: SimMessage) => m.webhook?.username === name;

/** The reply's message once Voxta finished streaming it and the last edit landed. */
async function settledReply(e: E2EEnv, name: string, ending: string): Promise<SimMessage> {
  return e.discord.waitForMessage(e.text.id, (m) => byWebhook(e, name)(m) && m.content.endsWith(ending), 15_000);
}

describe('the cast end to end', () => {
  it('two characters answer in text and voice: each through its own webhook, with its avatar bytes, streamed by edits, spoken in order', async () => {
    // Discord's own rate limits (webhook executes and edits included): the bot keeps under them.
    // Sentences 400 ms apart: the first is posted (webhook made, avatar uploaded) before the next
    // comes, even on a busy machine, so the reply is visibly streamed by edits.
    const e = await boot({ discord: { botPermissions: WITH_WEBHOOKS, rateLimit: 'discord' }, voxta: { reply: bothAnswer, chunkDelayMs: 400, tts: { sampleRate: 24000 } } });
    e.alice.joinVoice(e.voice.id);
    const started = await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID, character2: HOLT_ID, 'voice-channel': e.voice.id }));
    expect(started.embeds[0]!.title).toBe('Started: Aria, Captain Holt');
    expect(field(started, 'Replies')).toBeUndefined();
    await e.discord.waitForBotVoice(e.guild.id, e.voice.id, 15_000);
    expect(e.voxta!.sessions()[0]!.characterIds).toEqual([ARIA_ID, HOLT_ID]);

    e.alice.say(e.text.id, 'Good evening, crew');
    const aria = await settledReply(e, 'Aria', 'She smiles at the crew.');
    const holt = await settledReply(e, 'Captain Holt', 'Noted, everyone.');
    expect(aria.content).toBe('Aria hears “Good evening, crew”. She smiles at the crew.');
    expect(aria.webhook!.avatar!.equals(await thumbnail(e, ARIA_ID))).toBe(true);
    expect(holt.webhook!.avatar!.equals(await thumbnail(e, HOLT_ID))).toBe(true);
    // Streamed: each was created with its first sentence and edited as the next one came.
    for (const m of [aria, holt]) {
      expect(m.history.length).toBeGreaterThanOrEqual(1);
      expect(m.history[0]!.content.length).toBeLessThan(m.content.length);
    }
    const hooks = e.discord.webhooks(e.text.id);
    expect(hooks.map((w) => w.name).sort()).toEqual(['Aria', 'Captain Holt']);
    expect(hooks.every((w) => w.creatorId === e.discord.botUserId)).toBe(true);

    // Spoken strictly in order: Aria's whole reply, then Holt's (Voxta holds Holt until Aria's complete).
    const voxta = e.voxta!;
    const [ariaId, holtId] = await voxta.waitFor(() => (replyIds(e).length >= 2 ? replyIds(e) : undefined), 10_000, 'both replies');
    await voxta.waitFor(() => voxta.playback(holtId!).completes >= 1, 20_000, 'Holt’s reply to be played');
    const pa = voxta.playback(ariaId!);
    const ph = voxta.playback(holtId!);
    expect(pa.completes).toBe(1);
    expect(pa.starts.at(-1)!.at).toBeLessThanOrEqual(ph.starts[0]!.at);
    // What the voice channel heard: Aria's clips' pitches, then Holt's.
    const clips = [ariaId!, holtId!].flatMap((id) => voxta.ttsServed.filter((t) => t.messageId === id));
    expect(clips).toHaveLength(4);
    const freqs = clips.map((t) => t.frequency!);
    const pcm = e.discord.voiceServer.botAudio(e.guild.id).pcm(48_000, 1);
    let at = pcm.findIndex((s) => Math.abs(s) > 500);
    for (const [i, t] of clips.entries()) {
      while (at < pcm.length && Math.abs(pcm[at]!) < 300) at++;
      const len = Math.round((t.durationMs / 1000) * 48_000);
      const mid = pcm.subarray(at + Math.round(len * 0.25), at + Math.round(len * 0.75));
      const power = freqs.map((f) => goertzel(mid, 48_000, f));
      expect(power.indexOf(Math.max(...power)), `clip ${i} (${t.text})`).toBe(i);
      at += len;
    }

    const status = await answer(await e.alice.runCommand(e.text.id, 'status'));
    expect(field(status, 'Cast')).toBe('Aria\nCaptain Holt');
    expect(e.discord.requests.filter((r) => r.status === 429)).toEqual([]);
  }, 90_000);

  it('a scenario picked from autocomplete starts with its cast in a thread, and the narrator speaks as the narrator', async () => {
    const e = await boot({
      discord: { voice: false, botPermissions: WITH_WEBHOOKS },
      voxta: {
        chunkDelayMs: 400,
        reply: () => [
          { isNarration: true, text: ['The stars drift past the viewport.'] },
          { senderId: MIRA_ID, text: ['The ferns are thriving,', 'Captain.'] },
        ],
      },
    });
    // In a thread: webhooks belong to the parent channel and post into the thread (thread_id).
    const thread = e.text.addThread('bridge log');
    const choices = await e.admin.autocomplete(e.text.id, 'start', 'scenario', 'bri');
    expect(choices).toEqual([{ name: 'The Bridge', value: BRIDGE_SCENARIO_ID }]);
    const started = await answer(await e.admin.runCommand(e.text.id, 'start', { scenario: String(choices[0]!.value), 'text-channel': thread.id }));
    expect(started.embeds[0]!.title).toBe('Started: The Bridge');
    expect(field(started, 'Cast')).toBe('Captain Holt (captain)\nMira (botanist)\nChronicler (narrator)');

    e.alice.say(thread.id, 'Status report, please.');
    const inThread = (name: string, ending: string) => e.discord.waitForMessage(thread.id, (m) => byWebhook(e, name)(m) && m.content.endsWith(ending), 15_000);
    const narration = await inThread('Chronicler', '*The stars drift past the viewport.*');
    expect(narration.content).toBe('*The stars drift past the viewport.*');
    expect(narration.webhook!.avatar!.equals(await thumbnail(e, CHRONICLER_ID))).toBe(true);
    const mira = await inThread('Mira', 'The ferns are thriving, Captain.');
    expect(mira.history.length).toBeGreaterThanOrEqual(1); // streamed: edited in the thread too
    expect(e.discord.webhooks(e.text.id).map((w) => w.name).sort()).toEqual(['Chronicler', 'Mira']);
    expect(e.discord.messages(e.text.id).filter((m) => m.webhook)).toEqual([]);
  }, 60_000);

  it('without Manage Webhooks: posts as the bot with names in bold and says why; once granted, characters post as themselves, and a deleted webhook is made again', async () => {
    const e = await boot({ discord: { voice: false }, voxta: { reply: bothAnswer } });
    const started = await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID, character2: HOLT_ID }));
    expect(field(started, 'Replies')).toMatch(/because I lack the Manage Webhooks permission in #general\. Give me the Manage Webhooks permission/);
    e.alice.say(e.text.id, 'Hello');
    const fromBot = (m: SimMessage) => m.authorId === e.discord.botUserId && m.interactionId === null;
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(m) && m.content === '**Captain Holt**: Holt nods. Noted, everyone.', 15_000);
    expect(e.discord.messages(e.text.id).filter(fromBot).map((m) => m.content)).toContain('**Aria**: Aria hears “Hello”. She smiles at the crew.');
    const status = await answer(await e.alice.runCommand(e.text.id, 'status'));
    expect(field(status, 'Replies')).toMatch(/^Replies are posted by me, not under each character's own name and avatar, because I lack the Manage Webhooks permission/);
    expect(e.discord.webhooks(e.text.id)).toEqual([]);

    // An admin grants the permission: the next replies come from the characters themselves.
    const role = e.guild.addRole({ name: 'Webhooks', permissions: Perm.ManageWebhooks });
    e.guild.botMember.addRole(role.id);
    await new Promise((r) => setTimeout(r, 300));
    e.alice.say(e.text.id, 'And now?');
    await settledReply(e, 'Captain Holt', 'Noted, everyone.');
    const holtHook = e.discord.webhooks(e.text.id).find((w) => w.name === 'Captain Holt')!;

    // A moderator deletes Holt's webhook: the next reply makes a new one (Discord: 10015 first).
    e.discord.deleteWebhook(holtHook.id);
    e.alice.say(e.text.id, 'Once more');
    const again = await e.discord.waitForMessage(e.text.id, (m) => byWebhook(e, 'Captain Holt')(m) && m.content.endsWith('Noted, everyone.') && m.webhook!.webhookId !== holtHook.id, 15_000);
    expect(e.discord.webhooks(e.text.id).find((w) => w.name === 'Captain Holt')!.id).toBe(again.webhook!.webhookId);
    expect(again.webhook!.avatar!.equals(await thumbnail(e, HOLT_ID))).toBe(true);
  }, 60_000);

  it('a PluralKit-proxied message reaches Voxta once, under the proxied name', async () => {
    const e = await boot({ discord: { voice: false, botPermissions: WITH_WEBHOOKS } });
    e.guild.addProxyBot();
    await answer(await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID }));
    // PluralKit's real order: the member's message, the repost ~0.3 s later, the original deleted 1 s after that.
    const proxied = await e.alice.sayProxied(e.text.id, 'Hello from the system!', { as: 'Luna' });
    const reply = await e.discord.waitForMessage(e.text.id, (m) => byWebhook(e, 'Aria')(m) && m.content.includes('reply number 1'), 15_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(sends(e)).toEqual(['Luna: Hello from the system!']);
    expect(reply.content).toBe('You said: Luna: Hello from the system! This is Aria, reply number 1.');
    expect(e.discord.messages(e.text.id).filter(byWebhook(e, 'Aria'))).toHaveLength(1);
    // The original's deletion by PluralKit did not delete the message in Voxta.
    expect(e.voxta!.received.some((m) => m.payload.$type === 'deleteMessage')).toBe(false);
    expect(proxied.original.deleted).toBe(true);
  }, 60_000);
});
