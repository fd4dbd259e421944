/**
 * Message components and modals through the simulator and the real discord.js client: a member
 * clicks a button (update, type 7), picks in a select menu (deferUpdate + editReply, type 6), and
 * fills in a modal the bot showed (type 9 → modal submit).
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  Events,
  ModalBuilder,
  StringSelectMenuBuilder,
  TextInputBuilder,
  TextInputStyle,
  type Client,
  type Interaction,
  type TextChannel,
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

async function setUp(): Promise<World & { client: Client<true> }> {
  world = await startWorld();
  const c = await loginClient(world.sim);
  client = c;
  await c.application.commands.set([{ name: 'rename', description: 'Rename' }], world.guild.id);
  return { ...world, client: c };
}

describe('discord-sim components and modals', () => {
  it('a button click is a ButtonInteraction; update() edits the message', async () => {
    const { sim, text, alice, client: c } = await setUp();
    const channel = (await c.channels.fetch(text.id)) as TextChannel;
    const row = new ActionRowBuilder<ButtonBuilder>().addComponents(
      new ButtonBuilder().setCustomId('stop').setLabel('Stop').setStyle(ButtonStyle.Danger),
      new ButtonBuilder().setCustomId('off').setLabel('Off').setStyle(ButtonStyle.Secondary).setDisabled(true),
    );
    const sent = await channel.send({ content: 'Playing', components: [row] });
    let clickedBy: string | undefined;
    c.on(Events.InteractionCreate, (i: Interaction) => {
      if (!i.isButton()) return;
      clickedBy = `${i.customId} by ${i.user.username} on ${i.message.id}`;
      void i.update({ content: 'Stopped', components: [] });
    });
    const handle = await alice.clickButton(sent.id, 'stop');
    const final = await handle.waitForFinal();
    expect(clickedBy).toBe(`stop by alice on ${sent.id}`);
    expect(handle.callbackType).toBe(7);
    expect(final.content).toBe('Stopped');
    expect(sim.messages(text.id).map((m) => [m.content, m.components.length])).toEqual([['Stopped', 0]]);
    await expect(alice.clickButton(sent.id, 'nope')).rejects.toBeInstanceOf(CommandRejectedError);
  });

  it('a disabled button cannot be clicked; a select menu gives its values; deferUpdate + editReply edit the message', async () => {
    const { sim, text, alice, client: c } = await setUp();
    const channel = (await c.channels.fetch(text.id)) as TextChannel;
    const sent = await channel.send({
      content: 'Pick a character',
      components: [
        new ActionRowBuilder<StringSelectMenuBuilder>().addComponents(
          new StringSelectMenuBuilder().setCustomId('who').addOptions({ label: 'Aria', value: 'aria' }, { label: 'Holt', value: 'holt' }),
        ),
        new ActionRowBuilder<ButtonBuilder>().addComponents(new ButtonBuilder().setCustomId('off').setLabel('Off').setStyle(ButtonStyle.Secondary).setDisabled(true)),
      ],
    });
    await expect(alice.clickButton(sent.id, 'off')).rejects.toThrow(/disabled/);
    await expect(alice.selectOptions(sent.id, 'who', ['nobody'])).rejects.toThrow(/not an option/);
    c.on(Events.InteractionCreate, (i: Interaction) => {
      if (!i.isStringSelectMenu()) return;
      void (async () => {
        await i.deferUpdate();
        await i.editReply({ content: `Picked ${i.values.join(',')}`, components: [] });
      })();
    });
    const handle = await alice.selectOptions(sent.id, 'who', ['holt']);
    const final = await handle.waitForFinal();
    expect(handle.callbackType).toBe(6);
    expect(final.content).toBe('Picked holt');
    expect(sim.messages(text.id)[0]?.history.map((h) => h.content)).toEqual(['Pick a character']);
  });

  it('showModal, then the member submits it as a ModalSubmitInteraction', async () => {
    const { text, alice, client: c } = await setUp();
    let submitted: string | undefined;
    c.on(Events.InteractionCreate, (i: Interaction) => {
      if (i.isChatInputCommand()) {
        void i.showModal(
          new ModalBuilder()
            .setCustomId('rename-modal')
            .setTitle('Rename')
            .addComponents(new ActionRowBuilder<TextInputBuilder>().addComponents(new TextInputBuilder().setCustomId('name').setLabel('Name').setStyle(TextInputStyle.Short))),
        );
      } else if (i.isModalSubmit()) {
        submitted = i.fields.getTextInputValue('name');
        void i.reply(`Renamed to ${submitted}`);
      }
    });
    const opened = await alice.runCommand(text.id, 'rename');
    await opened.waitForResponse();
    expect(opened.callbackType).toBe(9);
    await expect(alice.submitModal(opened, {})).rejects.toThrow(/required/);
    const submit = await alice.submitModal(opened, { name: 'Nova' });
    const final = await submit.waitForFinal();
    expect(submitted).toBe('Nova');
    expect(final.content).toBe('Renamed to Nova');
  });
});
