/**
 * Application command registration (bulk overwrite, create, delete) with the validation Discord
 * applies, so that a command the real API would refuse is refused here too, with Discord's
 * 50035 "Invalid Form Body" error naming the field.
 */
import { Errors, fieldError } from './rest/http.js';
import type { RegisteredCommand, RegisteredCommandData, RegisteredCommandOption, SimState } from './state.js';

const NAME_RE = /^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$/u;
const MAX_COMMANDS = 100;

function invalid(path: string, message: string, code = 'APPLICATION_COMMAND_INVALID'): never {
  throw Errors.invalidFormBody(fieldError(path, code, message));
}

function validateName(name: unknown, path: string, lowercase: boolean): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) invalid(`${path}.name`, 'Command name is invalid', 'APPLICATION_COMMAND_INVALID_NAME');
  if (lowercase && name !== name.toLowerCase()) invalid(`${path}.name`, 'Command name is invalid', 'APPLICATION_COMMAND_INVALID_NAME');
  return name;
}

function validateDescription(d: unknown, path: string): string {
  if (typeof d !== 'string' || d.length < 1 || d.length > 100) invalid(`${path}.description`, 'Must be between 1 and 100 in length.', 'BASE_TYPE_BAD_LENGTH');
  return d;
}

function validateOptions(options: unknown, path: string, depth: number): RegisteredCommandOption[] | undefined {
  if (options === undefined || options === null) return undefined;
  if (!Array.isArray(options)) invalid(`${path}.options`, 'Must be a list.', 'BASE_TYPE_LIST');
  if (options.length > 25) invalid(`${path}.options`, 'Must be 25 or fewer in length.', 'BASE_TYPE_MAX_LENGTH');
  const names = new Set<string>();
  let seenOptional = false;
  return options.map((raw: unknown, i: number) => {
    const p = `${path}.options.${i}`;
    const o = raw as RegisteredCommandOption;
    if (!o || typeof o !== 'object' || typeof o.type !== 'number' || o.type < 1 || o.type > 11) invalid(`${p}.type`, 'Value is not a valid option type');
    validateName(o.name, p, true);
    validateDescription(o.description, p);
    if (names.has(o.name)) invalid(`${p}.name`, 'Application command option names must be unique', 'APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS');
    names.add(o.name);
    const isSub = o.type === 1 || o.type === 2;
    if (isSub) {
      if (depth >= 2 || (o.type === 2 && depth >= 1)) invalid(`${p}.type`, 'Sub-command groups cannot be nested that deep');
      return { ...o, options: validateOptions(o.options, p, depth + 1) ?? [] };
    }
    if (o.required) {
      if (seenOptional) invalid(`${p}.required`, 'Required options must be placed before non-required options', 'APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID');
    } else {
      seenOptional = true;
    }
    if (o.choices && o.autocomplete) invalid(`${p}.autocomplete`, 'Autocomplete cannot be set if choices are present.');
    if (o.choices && o.choices.length > 25) invalid(`${p}.choices`, 'Must be 25 or fewer in length.', 'BASE_TYPE_MAX_LENGTH');
    return { ...o };
  });
}

/** Validates one command body and gives it Discord's server-side fields. */
export function toRegistered(state: SimState, raw: unknown, index: number, guildId: string | undefined, existing: readonly RegisteredCommand[]): RegisteredCommand {
  const path = String(index);
  if (!raw || typeof raw !== 'object') invalid(path, 'Only dictionaries may be used in a DictType', 'DICT_TYPE_CONVERT');
  const body = raw as Record<string, unknown>;
  const type = typeof body.type === 'number' ? body.type : 1;
  const name = validateName(body.name, path, type === 1);
  const description = type === 1 ? validateDescription(body.description, path) : '';
  const options = type === 1 ? validateOptions(body.options, path, 0) : undefined;
  let dmp: string | null = null;
  if (body.default_member_permissions !== undefined && body.default_member_permissions !== null) {
    if (typeof body.default_member_permissions !== 'string' || !/^\d+$/.test(body.default_member_permissions)) {
      invalid(`${path}.default_member_permissions`, 'Invalid permission bitfield', 'NUMBER_TYPE_COERCE');
    }
    dmp = body.default_member_permissions;
  }
  const prior = existing.find((c) => c.data.name === name && c.data.type === type);
  const id = prior?.id ?? state.ids.next();
  const version = state.ids.next();
  const data: RegisteredCommandData = {
    ...body,
    id,
    application_id: state.applicationId,
    ...(guildId ? { guild_id: guildId } : {}),
    version,
    type,
    name,
    description,
    ...(options ? { options } : {}),
    default_member_permissions: dmp,
    name_localizations: body.name_localizations ?? null,
    description_localizations: body.description_localizations ?? null,
    nsfw: body.nsfw ?? false,
    contexts: body.contexts ?? null,
    integration_types: body.integration_types ?? [0],
  };
  return { id, applicationId: state.applicationId, guildId, version, data };
}

/** PUT …/commands: replaces the whole set (same name keeps its id, like Discord). */
export function bulkOverwrite(state: SimState, guildId: string | undefined, body: unknown): RegisteredCommand[] {
  if (!Array.isArray(body)) invalid('_body', 'Must be a list.', 'BASE_TYPE_LIST');
  if (body.length > MAX_COMMANDS) invalid('_body', `Must be ${MAX_COMMANDS} or fewer in length.`, 'BASE_TYPE_MAX_LENGTH');
  const existing = state.commandsFor(guildId);
  const out = body.map((raw, i) => toRegistered(state, raw, i, guildId, existing));
  const seen = new Set<string>();
  out.forEach((c, i) => {
    const key = `${c.data.type}:${c.data.name}`;
    if (seen.has(key)) invalid(`${i}.name`, 'Application command names must be unique', 'APPLICATION_COMMANDS_DUPLICATE_NAME');
    seen.add(key);
  });
  state.setCommands(guildId, out);
  return out;
}

/** POST …/commands: creates or replaces one command by name. */
export function upsertOne(state: SimState, guildId: string | undefined, body: unknown): { command: RegisteredCommand; created: boolean } {
  const existing = state.commandsFor(guildId);
  const cmd = toRegistered(state, body, 0, guildId, existing);
  const idx = existing.findIndex((c) => c.id === cmd.id);
  const next = [...existing];
  if (idx >= 0) next[idx] = cmd;
  else next.push(cmd);
  state.setCommands(guildId, next);
  return { command: cmd, created: idx < 0 };
}

export function deleteOne(state: SimState, guildId: string | undefined, commandId: string): void {
  const existing = state.commandsFor(guildId);
  if (!existing.some((c) => c.id === commandId)) throw Errors.unknownCommand();
  state.setCommands(guildId, existing.filter((c) => c.id !== commandId));
}
