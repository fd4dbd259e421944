/**
 * Slash commands through the simulator and the real discord.js client: registration, dispatch as
 * ChatInputCommandInteraction, reply/defer/editReply/followUp with embeds and files, autocomplete,
 * permission filtering and Discord's acknowledgement rules.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  ChannelType,
  Events,
  MessageFlags,
  PermissionFlagsBits,
  SlashCommandBuilder,
  type AutocompleteInteraction,
  type ChatInputCommandInteraction,
  type Client,
  type Interaction,
} from 'discord.js';
import { CommandRejectedError } from '../../sim/discord/index.js';
import { loginClient, startWorld, type World } from './helpers.js';

let world: World | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.destroy();
  client = undefined;
  await world?.sim.close();
  world = undefined;
});

const commands = [
  new SlashCommandBuilder()
    .setName('start')
    .setDescription('Start a chat')
    .addStringOption((o) => o.setName('character').setDescription('Who').setRequired(true).setAutocomplete(true))
    .addChannelOption((o) => o.setName('voice').setDescription('Voice channel').addChannelTypes(ChannelType.GuildVoice))
    .addIntegerOption((o) => o.setName('volume').setDescription('Volume').setMinValue(0).setMaxValue(100)),
  new SlashCommandBuilder().setName('status').setDescription('Show status'),
  new SlashCommandBuilder()
    .setName('config')
    .setDescription('Configure')
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addSubcommand((s) => s.setName('show').setDescription('Show config')),
].map((c) => c.toJSON());

async function setUp(opts: Parameters<typeof startWorld>[0] = {}): Promise<World & { client: Client<true> }> {
  world = await startWorld(opts);
  const c = await loginClient(world.sim);
  client = c;
  await c.application.commands.set(commands, world.guild.id);
  return { ...world, client: c };
}

function onCommand(c: Client, handler: (i: ChatInputCommandInteraction) => Promise<void>): void {
  c.on(Events.InteractionCreate, (i: Interaction) => {
    if (i.isChatInputCommand()) void handler(i).catch(() => undefined);
  });
}

describe('discord-sim interactions with a real discord.js client', () => {
  it('stores guild commands with ids and keeps ids across re-registration', async () => {
    const { sim, guild, client: c } = await setUp();
    const stored = sim.commands(guild.id);
    expect(stored.map((s) => s.name)).toEqual(['start', 'status', 'config']);
    expect(stored.every((s) => /^\d+$/.test(s.id))).toBe(true);
    expect(stored.find((s) => s.name === 'config')?.default_member_permissions).toBe(String(PermissionFlagsBits.ManageGuild));
    const firstIds = stored.map((s) => s.id);
    const again = await c.application.commands.set(commands, guild.id);
    expect([...again.keys()].sort()).toEqual([...firstIds].sort());
    expect(sim.commands()).toEqual([]);
    // Discord refuses an invalid command the same way.
    await expect(c.application.commands.set([{ name: 'Bad Name', description: 'x' }], guild.id)).rejects.toMatchObject({ code: 50035 });
  });

  it('dispatches a chat-input command with typed options and resolved channels; deferReply + editReply reach the sim', async () => {
    const { sim, text, voice, alice, client: c } = await setUp();
    let seen: ChatInputCommandInteraction | undefined;
    onCommand(c, async (i) => {
      seen = i;
      await i.deferReply();
      await new Promise((r) => setTimeout(r, 50));
      await i.editReply('Started Aria in Lounge');
    });
    const handle = await alice.runCommand(text.id, 'start', { character: 'aria', voice: voice.id, volume: 80 });
    const first = await handle.waitForResponse();
    expect(first).toMatchObject({ kind: 'callback', type: 5 });
    const final = await handle.waitForFinal();
    expect(final.content).toBe('Started Aria in Lounge');
    expect(final.ephemeral).toBe(false);

    expect(seen?.commandName).toBe('start');
    expect(seen?.options.getString('character')).toBe('aria');
    expect(seen?.options.getInteger('volume')).toBe(80);
    expect(seen?.options.getChannel('voice')?.id).toBe(voice.id);
    expect(seen?.options.getChannel('voice')?.type).toBe(ChannelType.GuildVoice);
    expect(seen?.member?.user.id).toBe(alice.id);
    expect(seen?.guildId).toBe(world?.guild.id);
    expect(seen?.channelId).toBe(text.id);
    expect(seen?.appPermissions.has('SendMessages')).toBe(true);
    expect(seen?.memberPermissions?.has('ManageGuild')).toBe(false);
    expect(seen?.locale).toBe('en-US');
    // The reply is a real channel message, with the placeholder in its history.
    const msgs = sim.messages(text.id);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]?.content).toBe('Started Aria in Lounge');
    expect(msgs[0]?.history[0]?.content).toBe('');
  });

  it('reply with embeds and files, then a follow-up; ephemeral replies stay out of the channel', async () => {
    const { sim, text, alice, client: c } = await setUp();
    onCommand(c, async (i) => {
      await i.reply({ content: 'Status', embeds: [{ title: 'Aria', description: 'active' }], files: [{ attachment: Buffer.from('RIFF'), name: 'clip.wav' }] });
      await i.followUp({ content: 'only you', flags: MessageFlags.Ephemeral });
    });
    const handle = await alice.runCommand(text.id, 'status');
    const final = await handle.waitForFinal();
    expect(final.content).toBe('Status');
    expect(final.embeds).toMatchObject([{ title: 'Aria', description: 'active' }]);
    expect(final.attachments.map((a) => [a.filename, a.data.toString()])).toEqual([['clip.wav', 'RIFF']]);
    await handle.waitUntil(() => (handle.followUps.length ? true : undefined), 3000);
    expect(handle.followUps[0]).toMatchObject({ content: 'only you', ephemeral: true });
    expect(sim.messages(text.id).map((m) => m.content)).toEqual(['Status']);
  });

  it('an ephemeral deferred reply filled by followUp', async () => {
    const { text, alice, client: c } = await setUp();
    onCommand(c, async (i) => {
      await i.deferReply({ flags: MessageFlags.Ephemeral });
      await i.followUp('done');
    });
    const handle = await alice.runCommand(text.id, 'status');
    const final = await handle.waitForFinal();
    expect(final).toMatchObject({ content: 'done', ephemeral: true, followUps: [] });
  });

  it('autocomplete respond() reaches the sim as choices', async () => {
    const { text, alice, client: c } = await setUp();
    let focused: unknown;
    c.on(Events.InteractionCreate, (i: Interaction) => {
      if (!i.isAutocomplete()) return;
      const ac = i as AutocompleteInteraction;
      focused = ac.options.getFocused(true);
      void ac.respond(
        ['Aria', 'Ares', 'Bob'].filter((n) => n.toLowerCase().startsWith(String(ac.options.getFocused()).toLowerCase())).map((n) => ({ name: n, value: n.toLowerCase() })),
      );
    });
    const choices = await alice.autocomplete(text.id, 'start', 'character', 'ar');
    expect(choices).toEqual([
      { name: 'Aria', value: 'aria' },
      { name: 'Ares', value: 'ares' },
    ]);
    expect(focused).toMatchObject({ name: 'character', value: 'ar' });
  });

  it('hides commands from members without default_member_permissions; admins and the owner see them', async () => {
    const { guild, text, alice, boss, client: c } = await setUp();
    const names: string[] = [];
    onCommand(c, async (i) => {
      names.push(`${i.commandName} ${i.options.getSubcommand()} by ${i.user.username}`);
      await i.reply('ok');
    });
    await expect(alice.runCommand(text.id, 'config show')).rejects.toBeInstanceOf(CommandRejectedError);
    await (await boss.runCommand(text.id, 'config show')).waitForFinal();
    await (await guild.owner.runCommand(text.id, 'config show')).waitForFinal();
    const manager = guild.addMember({ username: 'manager', permissions: PermissionFlagsBits.ManageGuild });
    await (await manager.runCommand(text.id, 'config show')).waitForFinal();
    expect(names).toEqual(['config show by boss', `config show by ${guild.owner.username}`, 'config show by manager']);
  });

  it('refuses options the Discord client would refuse', async () => {
    const { text, voice, alice } = await setUp();
    await expect(alice.runCommand(text.id, 'start', {})).rejects.toThrow(/required option "character"/);
    await expect(alice.runCommand(text.id, 'start', { character: 'a', voice: text.id })).rejects.toThrow(/type/);
    await expect(alice.runCommand(text.id, 'start', { character: 'a', volume: 101 })).rejects.toThrow(/at most 100/);
    await expect(alice.runCommand(text.id, 'start', { character: 'a', nope: 1 })).rejects.toThrow(/unknown option/);
    await expect(alice.runCommand(text.id, 'nothing')).rejects.toThrow(/no such command/);
    await expect(alice.runCommand(voice.id, 'config')).rejects.toThrow(CommandRejectedError);
  });

  it('an interaction not acknowledged in time fails like Discord (10062 on a late reply)', async () => {
    const { text, alice, client: c } = await setUp({ interactionAckTimeoutMs: 200 });
    let late: Promise<unknown> | undefined;
    onCommand(c, async (i) => {
      await new Promise((r) => setTimeout(r, 400));
      late = i.reply('too late');
      await late;
    });
    const handle = await alice.runCommand(text.id, 'status');
    await expect(handle.waitForResponse(2000)).rejects.toThrow(/did not respond/);
    await new Promise((r) => setTimeout(r, 400));
    await expect(late).rejects.toMatchObject({ code: 10062 });
  });

  it('a second acknowledgement is refused (40060)', async () => {
    const { text, alice, client: c } = await setUp();
    let second: Promise<unknown> | undefined;
    onCommand(c, async (i) => {
      await i.reply('one');
      // Bypass discord.js's own guard to see what the API says.
      second = c.rest.post(`/interactions/${i.id}/${i.token}/callback`, { body: { type: 4, data: { content: 'two' } }, auth: false });
      await second;
    });
    const handle = await alice.runCommand(text.id, 'status');
    await handle.waitForFinal();
    await expect(second).rejects.toMatchObject({ code: 40060 });
    expect(handle.content).toBe('one');
  });
});

describe('discord-sim interactions: replacing a public placeholder by a private answer', () => {
  it('deleteReply after a public defer, then an ephemeral followUp, is the final answer', async () => {
    const { sim, text, alice, client: c } = await setUp();
    onCommand(c, async (i) => {
      await i.deferReply();
      await i.deleteReply();
      await i.followUp({ content: 'just for you', flags: MessageFlags.Ephemeral });
    });
    const handle = await alice.runCommand(text.id, 'status');
    const final = await handle.waitForFinal();
    expect(final).toMatchObject({ content: 'just for you', ephemeral: true, followUps: [] });
    expect(handle.responses.map((r) => r.kind)).toEqual(['callback', 'delete', 'followup']);
    expect(sim.messages(text.id)).toEqual([]);
    expect(sim.messages(text.id, { includeDeleted: true })).toHaveLength(1);
  });

  it('fetchReply and with_response return the message', async () => {
    const { text, alice, client: c } = await setUp();
    let fetched: string | undefined;
    let responseMessageId: string | undefined;
    onCommand(c, async (i) => {
      const res = await i.reply({ content: 'hi', withResponse: true });
      responseMessageId = res.resource?.message?.id;
      fetched = (await i.fetchReply()).content;
    });
    const handle = await alice.runCommand(text.id, 'status');
    await handle.waitForFinal();
    await handle.waitUntil(() => fetched, 3000);
    expect(fetched).toBe('hi');
    expect(responseMessageId).toBe(handle.original?.id);
  });
});

describe('discord-sim interactions: files on edits and follow-ups', () => {
  it('editReply with a file (multipart PATCH) and a follow-up with a file', async () => {
    const { text, alice, client: c } = await setUp();
    onCommand(c, async (i) => {
      await i.deferReply();
      await i.editReply({ content: 'here', files: [{ attachment: Buffer.from('one'), name: 'one.txt' }] });
      await i.followUp({ content: 'more', files: [{ attachment: Buffer.from('two'), name: 'two.txt' }] });
    });
    const handle = await alice.runCommand(text.id, 'status');
    await handle.waitUntil(() => (handle.followUps.length ? true : undefined), 3000);
    const final = await handle.waitForFinal();
    expect(final.content).toBe('here');
    expect(final.attachments.map((a) => a.data.toString())).toEqual(['one']);
    expect(final.followUps.map((m) => [m.content, m.attachments[0]?.filename, m.attachments[0]?.data.toString()])).toEqual([['more', 'two.txt', 'two']]);
  });
});
