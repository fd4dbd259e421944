/** The embed `/start` and `/resume` answer with: who, which chat, where. */
import type { APIEmbed } from 'discord.js';
import type { StartOutcome } from '../bot/guild-session.js';
import { errorInfo } from '../log.js';
import type { CommandContext, CommandReply } from './types.js';

const AVATAR_FILE = 'avatar.png';
const EMBED_COLOR = 0x7c5cff;

export async function sessionEmbed(ctx: CommandContext, outcome: StartOutcome, thumbnailUrl: string | undefined, verb: 'Started' | 'Resumed'): Promise<CommandReply> {
  const { record, voiceNote } = outcome;
  const embed: APIEmbed = {
    title: `${verb}: ${record.characterName}`,
    color: EMBED_COLOR,
    fields: [
      { name: 'Chat', value: `\`${record.chatId ?? 'unknown'}\``, inline: false },
      { name: 'Text channel', value: `<#${record.textChannelId}>`, inline: true },
      { name: 'Voice channel', value: record.voiceChannelId ? `<#${record.voiceChannelId}>` : 'none (text only)', inline: true },
    ],
  };
  const notes: string[] = [];
  if (voiceNote) notes.push(voiceNote);
  if (!ctx.core.messageContentAvailable) {
    notes.push('Text bridging is unavailable: the Message Content intent is off for this bot (see /status).');
  }
  if (notes.length) embed.description = notes.join('\n');
  const files: CommandReply['files'] = [];
  const avatar = await fetchAvatar(ctx, thumbnailUrl);
  if (avatar) {
    files.push({ name: AVATAR_FILE, data: avatar });
    embed.thumbnail = { url: `attachment://${AVATAR_FILE}` };
  }
  return { embeds: [embed], files };
}

/** The character's avatar from Voxta (with auth), or undefined: an embed without it is fine. */
async function fetchAvatar(ctx: CommandContext, thumbnailUrl: string | undefined): Promise<Buffer | undefined> {
  if (!thumbnailUrl) return undefined;
  try {
    const { bytes, contentType } = await ctx.core.catalog.rest.fetchBytes(thumbnailUrl, { timeoutMs: 3000 });
    if (!contentType.startsWith('image/') || bytes.byteLength === 0 || bytes.byteLength > 8 * 1024 * 1024) return undefined;
    return Buffer.from(bytes);
  } catch (err) {
    ctx.core.log.debug({ err: errorInfo(err) }, 'start: fetching the character avatar failed');
    return undefined;
  }
}
