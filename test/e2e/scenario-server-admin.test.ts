/**
 * Scenario: server admins in control, end to end (the production bot in a child process, real
 * discord.js against the Discord simulator, the Voxta simulator): `/config` with real subcommand
 * and option validation, chat roles learnt from message payloads (no Guild Members intent), the
 * reply buttons as real message components (Regenerate, Undo), an explicit character in
 * age-restricted channels only and stopped by CHANNEL_UPDATE when the flag goes, and chat roles in
 * voice, learnt from the voice state and from `GET /guilds/:id/members/:id`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { InteractionHandle, SimMessage } from '../../sim/discord/index.js';
import { ARIA_ID, VEX_ID } from '../../sim/voxta/index.js';
import { fromBot, startE2E, type E2EEnv } from '../harness/env.js';
import { sends, tone } from '../voice/e2e-helpers.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function boot(e: E2EEnv, botEnv: Record<string, string> = {}) {
  await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id, ...botEnv } });
  await e.discord.waitForBotReady(15_000);
  await e.discord.waitForCommands(['start', 'config'], e.guild.id, 15_000);
}

/** What the member privately saw: the answer to a command, or a follow-up to a button. */
async function privateAnswer(h: InteractionHandle): Promise<string> {
  const m = await h.waitUntil(() => h.followUps[0] ?? (h.callbackType === 4 ? h.original : undefined) ?? (h.hasFinalContent ? h.finalMessage() : undefined), 10_000, 'an answer');
  expect(m.ephemeral).toBe(true);
  return m.content;
}

const buttonIds = (m: SimMessage): string[] =>
  (m.components as Array<{ components?: Array<{ custom_id?: string }> }>).flatMap((row) => row.components ?? []).map((c) => c.custom_id ?? '');

describe('scenario: server admins in control', () => {
  it('chat roles (⛔), /config, and the reply buttons as real components: Regenerate replaces, Undo strikes through', async () => {
    const e = (env = await startE2E({ discord: { voice: false } }));
    const regulars = e.guild.addRole({ name: 'Regulars' });
    e.alice.addRole(regulars.id);
    await boot(e);
    const voxta = e.voxta!;

    // Discord validates the subcommand and its options before the bot sees anything.
    await expect(e.admin.runCommand(e.text.id, 'config set', { setting: 'loudness', value: '11' })).rejects.toThrow(/choice/i);
    expect(await privateAnswer(await e.admin.runCommand(e.text.id, 'config set', { setting: 'chat-roles', value: `<@&${regulars.id}>` }))).toBe(
      `**chat-roles** is now <@&${regulars.id}> in this server. It applies to the next message, and in voice within a few seconds.`,
    );
    expect(await privateAnswer(await e.admin.runCommand(e.text.id, 'config set', { setting: 'text-rate', value: 'often' }))).toMatch(/^text-rate must be a number of messages per time/);
    const roleChoices = (await e.admin.autocomplete(e.text.id, 'config set', 'value', '', { setting: 'chat-roles' })).map((c) => String(c.value));
    expect(roleChoices[0]).toBe('everyone');
    expect(roleChoices).toContain('Regulars');
    expect(roleChoices).not.toContain('@everyone');
    expect(roleChoices.some((r) => /voxta|bot/i.test(r))).toBe(false); // the bot's own managed role
    const shown = await privateAnswer(await e.admin.runCommand(e.text.id, 'config show'));
    expect(shown).toContain(`**chat-roles**: <@&${regulars.id}> — set for this server`);
    expect(shown).toContain('**text-rate**: 6 per 30 seconds — default (TEXT_RATE_LIMIT)');

    await (await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID })).waitForResponse();
    await voxta.waitFor(() => voxta.sessions()[0], 10_000, 'the chat');

    // Bob has no chat role: one ⛔, nothing forwarded, nothing posted.
    const bobs = e.bob.say(e.text.id, 'can I join in?');
    await e.discord.waitForRequest('PUT /channels/:channelId/messages/:messageId/reactions/:emoji/@me', (r) => r.path.includes(bobs.id));
    expect([...e.discord.messages(e.text.id).find((m) => m.id === bobs.id)!.reactions.keys()]).toEqual(['⛔']);
    // The role given without the Guild Members intent reaches the bot with Bob's next message.
    e.bob.addRole(regulars.id);
    e.bob.say(e.text.id, 'and now?');
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('reply number 1'), 10_000);

    e.alice.say(e.text.id, 'first question');
    const first = await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('first question. This is Aria'), 10_000);
    expect(sends(e).map((t) => t.replace(/^\w+: /, ''))).toEqual(['and now?', 'first question']);
    await e.discord.waitForMessage(e.text.id, (m) => m.id === first.id && buttonIds(m).length === 3, 5000);
    expect(buttonIds(first).map((id) => id.split(':')[1])).toEqual(['regenerate', 'stop', 'undo']);

    // A member without the role may not press them.
    e.bob.removeRole(regulars.id); // not seen by the bot (no intent); the click carries the roles
    const refused = await e.bob.clickButton(first.id, buttonIds(first)[0]!);
    expect(await privateAnswer(refused)).toBe('Only members with one of this server’s chat roles can use these buttons.');

    // Regenerate: the reply is replaced (the old message deleted, a new one with the buttons).
    await e.alice.clickButton(first.id, buttonIds(first)[0]!);
    await voxta.waitFor(() => voxta.received.find((m) => m.payload.$type === 'retry'), 5000, 'the retry');
    const fresh = await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.id !== first.id && m.content.includes('first question. This is Aria') && buttonIds(m).length === 3, 10_000);
    await voxta.waitFor(() => e.discord.messages(e.text.id, { includeDeleted: true }).find((m) => m.id === first.id)?.deleted, 5000, 'the old reply deleted');

    // Undo: the exchange leaves the chat; the reply is struck through, Alice's message marked ↩️.
    const second = e.alice.say(e.text.id, 'second question');
    const answer = await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('second question. This is Aria') && buttonIds(m).length === 3, 10_000);
    await voxta.waitFor(() => e.discord.messages(e.text.id).find((m) => m.id === fresh.id && buttonIds(m).length === 0), 5000, 'the buttons gone from the older reply');
    await sleep(300); // the turn settles (echoes, links)
    await e.alice.clickButton(answer.id, buttonIds(answer)[2]!);
    await e.discord.waitForMessage(e.text.id, (m) => m.id === answer.id && m.content.startsWith('~~You said: Alice: second question'), 10_000);
    await voxta.waitFor(() => e.discord.messages(e.text.id).find((m) => m.id === second.id)?.reactions.has('↩️'), 5000, 'the member’s message marked');
    const chat = voxta.chats().find((c) => c.id === voxta.sessions()[0]!.chatId)!;
    expect(chat.messages.some((m) => m.text.includes('second question'))).toBe(false);
    expect(e.discord.requests.filter((r) => r.status === 429)).toEqual([]);
  }, 90_000);

  it('an explicit character only in age-restricted channels; losing the flag stops the chat with one notice', async () => {
    const e = (env = await startE2E({ discord: { voice: false } }));
    const afterDark = e.guild.addTextChannel('after-dark', { nsfw: true });
    await boot(e, { EXPLICIT_CHARACTERS: 'age-restricted' });
    const voxta = e.voxta!;

    expect((await e.admin.autocomplete(afterDark.id, 'start', 'character', 'v')).map((c) => c.name)).toEqual(['🔞 Vex']);
    expect(await e.admin.autocomplete(e.text.id, 'start', 'character', 'v')).toEqual([]);
    expect(await privateAnswer(await e.admin.runCommand(e.text.id, 'start', { character: VEX_ID }))).toBe(
      `Vex is marked explicit on Voxta, so it can only talk in age-restricted channels, and <#${e.text.id}> is not one.`,
    );
    expect(voxta.sessions()).toEqual([]);

    const started = await (await e.admin.runCommand(afterDark.id, 'start', { character: VEX_ID })).waitForFinal({ timeoutMs: 15_000 });
    expect(String((started.embeds[0] as { title?: string }).title)).toBe('Started: Vex');
    await voxta.waitFor(() => voxta.sessions()[0], 10_000, 'the chat');

    afterDark.setNsfw(false); // CHANNEL_UPDATE
    const notice = await e.discord.waitForMessage(afterDark.id, (m) => fromBot(e)(m) && m.content.includes('no longer age-restricted'), 10_000);
    expect(notice.content).toBe('This channel is no longer age-restricted, so I stopped the chat with Vex (marked explicit on Voxta). It stays saved: /resume picks it up once the channels are age-restricted again.');
    await voxta.waitFor(() => voxta.received.find((m) => m.payload.$type === 'stopChat'), 5000, 'stopChat');
    e.alice.say(afterDark.id, 'still there?');
    await sleep(500);
    expect(sends(e)).toEqual([]);
    expect(e.discord.messages(afterDark.id).filter((m) => fromBot(e)(m) && m.content.includes('no longer age-restricted'))).toHaveLength(1);
  }, 60_000);

  it('voice: a member without a chat role is not forwarded; roles come from the voice state and a member fetch', async () => {
    const e = (env = await startE2E({ discord: { dave: 'off' }, voxta: { stt: { transcripts: (i) => `utterance ${i.index + 1}` }, tts: { enabled: false } } }));
    const regulars = e.guild.addRole({ name: 'Regulars' });
    e.bob.addRole(regulars.id);
    e.alice.joinVoice(e.voice.id);
    e.bob.joinVoice(e.voice.id);
    await boot(e, { CHAT_ROLE_IDS: regulars.id });
    const voxta = e.voxta!;
    await (await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID, 'voice-channel': e.voice.id })).waitForResponse();
    await e.discord.waitForBotVoice(e.guild.id, e.voice.id, 15_000);
    const session = await voxta.waitFor(() => voxta.sessions()[0], 10_000, 'the chat');
    await voxta.waitFor(() => voxta.audio(session.sessionId)?.header, 10_000, 'the audio socket');

    // The bot fetched the roles of the members present when it joined (it has no Guild Members
    // intent). Alice (no role) speaks: her voice is not passed on.
    await e.alice.speak(tone(440, 1200), { sampleRate: 48_000, channels: 1 });
    await sleep(1500);
    expect(e.discord.requests.some((r) => r.method === 'GET' && r.route === '/guilds/:guildId/members/:userId' && r.path.endsWith(`/${e.alice.id}`))).toBe(true);
    expect(voxta.recognitions).toEqual([]);
    expect(sends(e)).toEqual([]);

    // Bob (with the role) is heard.
    await e.bob.speak(tone(660, 1200), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(e).length === 1, 10_000, 'Bob’s turn');
    expect(sends(e)[0]).toMatch(/utterance 1$/);

    // Alice gets the role (the bot is not told: no intent) and rejoins: the voice state carries it.
    e.alice.addRole(regulars.id);
    e.alice.leaveVoice();
    await sleep(300);
    e.alice.joinVoice(e.voice.id);
    await sleep(1000);
    await e.alice.speak(tone(440, 1200), { sampleRate: 48_000, channels: 1 });
    await voxta.waitFor(() => sends(e).length === 2, 10_000, 'Alice’s turn');
    expect(sends(e)[1]).toMatch(/^Alice: utterance 2$/);
  }, 90_000);
});
