/** The embed `/start` and `/resume` answer with: who, which chat, where. */
import type { APIEmbed } from 'discord.js';
import type { StartOutcome } from '../bot/guild-session.js';
import { errorInfo } from '../log.js';
import type { CommandContext, CommandReply } from './types.js';

const AVATAR_FILE = 'avatar.png';
const EMBED_COLOR = 0x7c5cff;

export async function sessionEmbed(ctx: CommandContext, outcome: StartOutcome, thumbnailUrl: string | undefined, verb: 'Started' | 'Resumed'): Promise<CommandReply> {
  const { record, voiceNote } = outcome;
  const session = ctx.core.existingSession(ctx.guildId);
  const cast = session?.castNow() ?? record.cast?.map((c) => ({ name: c.name, role: undefined, narrator: false }));
  const characters = cast?.filter((c) => !c.narrator) ?? [];
  const who = record.scenario ? record.scenario.name : characters.length > 1 ? characters.map((c) => c.name).join(', ') : record.characterName;
  const embed: APIEmbed = {
    title: `${verb}: ${who}`.slice(0, 256),
    color: EMBED_COLOR,
    fields: [
      ...(cast && (cast.length > 1 || record.scenario) ? [{ name: 'Cast', value: castLines(cast), inline: false }] : []),
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
  const posting = session?.postingProblem();
  if (posting) embed.fields!.push({ name: 'Replies', value: postingNotice(posting), inline: false });
  const files: CommandReply['files'] = [];
  const avatar = await fetchAvatar(ctx, thumbnailUrl);
  if (avatar) {
    files.push({ name: AVATAR_FILE, data: avatar });
    embed.thumbnail = { url: `attachment://${AVATAR_FILE}` };
  }
  return { embeds: [embed], files };
}

/** The cast, one per line: "Aria", "Captain Holt (captain)", "Chronicler (narrator)". */
export function castLines(cast: ReadonlyArray<{ name: string; role?: string; narrator?: boolean }>): string {
  return cast
    .map((c) => (c.narrator ? `${c.name} (narrator)` : c.role ? `${c.name} (${c.role})` : c.name))
    .join('\n')
    .slice(0, 1024);
}

/** Why the characters do not post as themselves, and how to fix it, in one plain sentence. */
export function postingNotice(problem: string): string {
  return `Replies are posted by me, not under each character's own name and avatar, because ${problem}. Give me the Manage Webhooks permission in this channel (Server Settings → Roles, or the channel's permissions) and they will.`;
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
