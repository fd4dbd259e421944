/**
 * Discord's permission arithmetic, as the server computes it: base permissions from roles, the
 * guild owner and Administrator short-circuit, then channel overwrites (@everyone, roles, member).
 * See https://discord.com/developers/docs/topics/permissions#permission-overwrites.
 */
import { PermissionFlagsBits } from 'discord-api-types/v10';

export const Perm = PermissionFlagsBits;

/** Every permission bit discord-api-types knows: what Discord reports for an administrator. */
export const ALL_PERMISSIONS: bigint = Object.values(PermissionFlagsBits).reduce((acc, bit) => acc | bit, 0n);

/** What a fresh server's @everyone role may do (close to Discord's defaults). */
export const DEFAULT_EVERYONE_PERMISSIONS: bigint =
  Perm.CreateInstantInvite |
  Perm.ChangeNickname |
  Perm.ViewChannel |
  Perm.SendMessages |
  Perm.SendMessagesInThreads |
  Perm.CreatePublicThreads |
  Perm.CreatePrivateThreads |
  Perm.EmbedLinks |
  Perm.AttachFiles |
  Perm.AddReactions |
  Perm.UseExternalEmojis |
  Perm.ReadMessageHistory |
  Perm.UseApplicationCommands |
  Perm.Connect |
  Perm.Speak |
  Perm.Stream |
  Perm.UseVAD |
  Perm.RequestToSpeak;

/** What a well-configured voice bot is granted by its invite link in the simulator by default. */
export const DEFAULT_BOT_PERMISSIONS: bigint =
  Perm.ViewChannel |
  Perm.SendMessages |
  Perm.EmbedLinks |
  Perm.AttachFiles |
  Perm.AddReactions |
  Perm.ReadMessageHistory |
  Perm.UseApplicationCommands |
  Perm.Connect |
  Perm.Speak |
  Perm.UseVAD;

export interface Overwrite {
  /** Role or member id. */
  id: string;
  /** 0 = role, 1 = member (Discord's OverwriteType). */
  type: 0 | 1;
  allow: bigint;
  deny: bigint;
}

export interface PermissionSubject {
  userId: string;
  roleIds: readonly string[];
}

export interface PermissionContext {
  guildId: string;
  ownerId: string;
  /** Role id → permissions; must contain the @everyone role (id = guild id). */
  rolePermissions: ReadonlyMap<string, bigint>;
}

export function basePermissions(ctx: PermissionContext, who: PermissionSubject): bigint {
  if (who.userId === ctx.ownerId) return ALL_PERMISSIONS;
  let perms = ctx.rolePermissions.get(ctx.guildId) ?? 0n;
  for (const roleId of who.roleIds) perms |= ctx.rolePermissions.get(roleId) ?? 0n;
  if ((perms & Perm.Administrator) !== 0n) return ALL_PERMISSIONS;
  return perms;
}

export function channelPermissions(ctx: PermissionContext, who: PermissionSubject, overwrites: readonly Overwrite[]): bigint {
  const base = basePermissions(ctx, who);
  if ((base & Perm.Administrator) !== 0n) return ALL_PERMISSIONS;
  let perms = base;
  const everyone = overwrites.find((o) => o.type === 0 && o.id === ctx.guildId);
  if (everyone) perms = (perms & ~everyone.deny) | everyone.allow;
  let allow = 0n;
  let deny = 0n;
  for (const o of overwrites) {
    if (o.type === 0 && o.id !== ctx.guildId && who.roleIds.includes(o.id)) {
      allow |= o.allow;
      deny |= o.deny;
    }
  }
  perms = (perms & ~deny) | allow;
  const member = overwrites.find((o) => o.type === 1 && o.id === who.userId);
  if (member) perms = (perms & ~member.deny) | member.allow;
  // Without View Channel nothing else in the channel is usable (Discord applies this implicitly).
  if ((perms & Perm.ViewChannel) === 0n) return 0n;
  return perms;
}

export function hasAll(perms: bigint, required: bigint): boolean {
  return (perms & required) === required;
}
