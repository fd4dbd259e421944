/**
 * `/config show | set <setting> <value> | reset <setting> | block <member> | unblock <member>`:
 * this server's settings over the environment's defaults (src/bot/guild-settings.ts), and the
 * members who may not talk to the character. Manage Server or an admin role. Every answer is
 * private; a value that cannot be used is refused in one sentence.
 */
import { PermissionFlagsBits, SlashCommandBuilder } from 'discord.js';
import { isSettingName, SETTING_NAMES, type SettingContext, type SettingName } from '../bot/guild-settings.js';
import { UserFacingError } from '../bot/user-errors.js';
import type { Command, CommandContext } from './types.js';

const SETTING_CHOICES = SETTING_NAMES.map((name) => ({ name, value: name }));
const DISCORD_LIMIT = 2000;

/** What changes at once, said after a change. */
const TAKES_EFFECT: Partial<Record<SettingName, string>> = {
  'barge-in': 'The voice connection uses it at once.',
  'chat-roles': 'It applies to the next message, and in voice within a few seconds.',
  'explicit-characters': 'A running explicit chat that this no longer allows is stopped.',
  'start-voice': 'It applies to the next /start.',
};

function settingContext(ctx: { core: CommandContext['core']; guildId: string }): SettingContext {
  return { guildId: ctx.guildId, roles: ctx.core.guild(ctx.guildId)?.guildRoles?.() };
}

function settingOption(ctx: CommandContext): SettingName {
  const name = ctx.string('setting') ?? '';
  if (!isSettingName(name)) throw new UserFacingError(`There is no setting called “${name.slice(0, 40)}”. Pick one from the list.`);
  return name;
}

function show(ctx: CommandContext): string {
  const { settings, store } = ctx.core;
  const lines = ['**Settings in this server** (a value set here, or the default from the bot’s configuration)'];
  for (const name of SETTING_NAMES) {
    const s = settings.get(ctx.guildId, name);
    lines.push(`• **${name}**: ${s.shown} — ${s.source === 'server' ? 'set for this server' : `default (${s.env})`}`);
  }
  const blocked = store.listBlockedMembers(ctx.guildId);
  // Mentions show names without pinging (answers never ping); the list is cut to fit one message.
  const budget = DISCORD_LIMIT - lines.join('\n').length - 200;
  const shown: string[] = [];
  for (const id of blocked) {
    if (shown.join(', ').length + id.length + 5 > budget) break;
    shown.push(`<@${id}>`);
  }
  const rest = blocked.length - shown.length;
  lines.push(`• **blocked members**: ${blocked.length === 0 ? 'none' : `${shown.join(', ')}${rest > 0 ? ` and ${rest} more` : ''}`}`);
  lines.push('Change one with /config set, go back to the default with /config reset.');
  return lines.join('\n');
}

export const config: Command = {
  controlsSession: true,
  data: new SlashCommandBuilder()
    .setName('config')
    .setDescription('This server’s settings for the Voxta bot')
    .setDMPermission(false)
    .setDefaultMemberPermissions(PermissionFlagsBits.ManageGuild)
    .addSubcommand((s) => s.setName('show').setDescription('Show every setting and where its value comes from'))
    .addSubcommand((s) =>
      s
        .setName('set')
        .setDescription('Change a setting for this server')
        .addStringOption((o) => o.setName('setting').setDescription('The setting').setRequired(true).addChoices(...SETTING_CHOICES))
        .addStringOption((o) => o.setName('value').setDescription('The new value').setRequired(true).setAutocomplete(true).setMaxLength(1000)),
    )
    .addSubcommand((s) =>
      s
        .setName('reset')
        .setDescription('Go back to the default for a setting')
        .addStringOption((o) => o.setName('setting').setDescription('The setting').setRequired(true).addChoices(...SETTING_CHOICES)),
    )
    .addSubcommand((s) =>
      s
        .setName('block')
        .setDescription('Stop a member from talking to the character in this server')
        .addUserOption((o) => o.setName('member').setDescription('The member').setRequired(true)),
    )
    .addSubcommand((s) =>
      s
        .setName('unblock')
        .setDescription('Let a blocked member talk to the character again')
        .addUserOption((o) => o.setName('member').setDescription('The member').setRequired(true)),
    )
    .toJSON(),

  async execute(ctx) {
    const { core } = ctx;
    switch (ctx.subcommand()) {
      case 'show':
        await ctx.reply({ ephemeral: true, content: show(ctx) });
        return;
      case 'set': {
        const name = settingOption(ctx);
        const now = core.settings.set(settingContext(ctx), name, ctx.string('value') ?? '');
        core.log.info({ guildId: ctx.guildId, userId: ctx.invoker.id, setting: name, value: now.shown }, 'config: setting changed');
        core.settingChanged(ctx.guildId, name);
        const after = TAKES_EFFECT[name];
        await ctx.reply({ ephemeral: true, content: `**${name}** is now ${now.shown} in this server.${after ? ` ${after}` : ''}` });
        return;
      }
      case 'reset': {
        const name = settingOption(ctx);
        const now = core.settings.reset(ctx.guildId, name);
        core.log.info({ guildId: ctx.guildId, userId: ctx.invoker.id, setting: name }, 'config: setting reset');
        core.settingChanged(ctx.guildId, name);
        await ctx.reply({ ephemeral: true, content: `**${name}** is back to the default: ${now.shown} (${now.env}).` });
        return;
      }
      case 'block':
      case 'unblock': {
        const member = ctx.user?.('member');
        if (!member) throw new UserFacingError('Pick a member.');
        const block = ctx.subcommand() === 'block';
        if (block && member.bot) throw new UserFacingError('Bots never talk to the character anyway.');
        const was = core.store.isMemberBlocked(ctx.guildId, member.id);
        if (was === block) {
          await ctx.reply({ ephemeral: true, content: block ? `${member.displayName} is already blocked.` : `${member.displayName} is not blocked.` });
          return;
        }
        core.store.setMemberBlocked(ctx.guildId, member.id, block);
        core.log.info({ guildId: ctx.guildId, userId: ctx.invoker.id, member: member.id, blocked: block }, 'config: member block changed');
        await ctx.reply({
          ephemeral: true,
          content: block
            ? `${member.displayName} can no longer talk to the character in this server: their messages get ⛔ and their voice is not passed on. /config unblock undoes it.`
            : `${member.displayName} can talk to the character again.`,
        });
        return;
      }
      default:
        throw new UserFacingError('Pick what to do: show, set, reset, block or unblock.');
    }
  },

  async autocomplete(ctx) {
    const name = ctx.option?.('setting') ?? '';
    if (ctx.focused.name !== 'value' || !isSettingName(name)) return ctx.respond([]);
    await ctx.respond(ctx.core.settings.suggestions(settingContext(ctx), name, ctx.focused.value));
  },
};
