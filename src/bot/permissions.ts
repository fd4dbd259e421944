/**
 * Who may change a guild's session. Discord already hides state-changing commands from members
 * without Manage Server (`default_member_permissions`), but server admins can override that per
 * command, so the handler checks again: Manage Server (or Administrator), or one of the roles in
 * `ADMIN_ROLE_IDS`.
 */
export interface InvokerAuthority {
  /** Manage Server or Administrator in this guild. */
  canManageGuild: boolean;
  roleIds: readonly string[];
}

export function mayControlSession(invoker: InvokerAuthority, adminRoleIds: readonly string[]): boolean {
  if (invoker.canManageGuild) return true;
  return invoker.roleIds.some((r) => adminRoleIds.includes(r));
}

export function refusalText(adminRoleIds: readonly string[]): string {
  return adminRoleIds.length > 0
    ? 'You need the Manage Server permission or one of the bot admin roles to do that.'
    : 'You need the Manage Server permission to do that.';
}
