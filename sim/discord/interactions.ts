/**
 * Slash commands and autocomplete from a member's point of view, and the bot's answers to them.
 *
 * `runCommand` behaves like the Discord client: a command the member cannot see (default member
 * permissions, Use Application Commands) or options that do not fit the registered definition are
 * refused before anything is sent. Otherwise an INTERACTION_CREATE goes out and an
 * {@link InteractionHandle} records every answer: the callback (reply, defer, autocomplete
 * result, modal), edits of the original response and follow-ups, with Discord's rules (3 s to
 * acknowledge, one acknowledgement, follow-ups only after it).
 */
import { EventEmitter } from 'node:events';
import { ApplicationCommandOptionType, InteractionResponseType, InteractionType, MessageFlags } from 'discord-api-types/v10';
import type { Logger } from '../../src/log.js';
import type { Gateway } from './gateway.js';
import type { MessageService } from './messages.js';
import { readMessageBody } from './messages.js';
import { channelPayload, memberPayload, messagePayload, rolePayload, userPayload } from './payloads.js';
import { ALL_PERMISSIONS, Perm, hasAll } from './permissions.js';
import { Errors, fieldError, type RestResult, type UploadedFile } from './rest/http.js';
import type { RegisteredCommand, RegisteredCommandOption, SimAttachment, SimMessage, SimState } from './state.js';

export type OptionValue = string | number | boolean | { id: string };

export type InteractionKind = 'command' | 'autocomplete' | 'component' | 'modal';

export interface AutocompleteChoice {
  name: string;
  value: string | number;
}

export type InteractionResponseRecord =
  | { kind: 'callback'; type: number; data: unknown; at: number }
  | { kind: 'edit'; messageId: string; data: unknown; at: number }
  | { kind: 'followup'; messageId: string; data: unknown; at: number }
  | { kind: 'delete'; messageId: string; at: number };

export interface FinalReply {
  content: string;
  embeds: unknown[];
  attachments: SimAttachment[];
  ephemeral: boolean;
  /** Follow-up messages after the original response, in order. */
  followUps: SimMessage[];
}

/** Thrown by `runCommand`/`autocomplete` when the Discord client would not let the member do it. */
export class CommandRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandRejectedError';
  }
}

/** Everything the bot did in answer to one interaction. */
export class InteractionHandle extends EventEmitter<{ change: [] }> {
  readonly responses: InteractionResponseRecord[] = [];
  readonly followUps: SimMessage[] = [];
  /** The callback type (4 reply, 5 defer, 8 autocomplete result, 9 modal), once acknowledged. */
  callbackType: number | undefined;
  original: SimMessage | undefined;
  choices: AutocompleteChoice[] | undefined;
  modal: unknown;
  /** No acknowledgement within the deadline: Discord shows "The application did not respond". */
  expired = false;
  readonly createdAt = Date.now();

  constructor(
    readonly id: string,
    readonly token: string,
    readonly kind: InteractionKind,
    /** The command name, or `component:<custom_id>` / `modal:<custom_id>`. */
    readonly commandName: string,
    readonly guildId: string,
    readonly channelId: string,
    readonly userId: string,
    /** The INTERACTION_CREATE payload that was dispatched. */
    readonly payload: Record<string, unknown>,
    /** For component interactions (and modals opened from one): the message the component is on. */
    readonly message: SimMessage | undefined = undefined,
  ) {
    super();
  }

  get acknowledged(): boolean {
    return this.callbackType !== undefined;
  }

  get deferred(): boolean {
    return this.callbackType === InteractionResponseType.DeferredChannelMessageWithSource;
  }

  get ephemeral(): boolean {
    return (this.finalMessage() ?? this.original)?.ephemeral ?? false;
  }

  /** Content of {@link finalMessage} (empty while there is none). */
  get content(): string {
    return this.finalMessage()?.content ?? '';
  }

  get embeds(): unknown[] {
    return this.finalMessage()?.embeds ?? [];
  }

  get attachments(): SimAttachment[] {
    return this.finalMessage()?.attachments ?? [];
  }

  /** The original response is visible with real content (not the "is thinking…" placeholder). */
  get hasFinalContent(): boolean {
    return this.finalMessage() !== undefined;
  }

  /**
   * The message that answers the command: the original response once it has real content, or,
   * when the bot deleted its placeholder and answered with a follow-up instead, that follow-up.
   */
  finalMessage(): SimMessage | undefined {
    const o = this.original;
    if (o && !o.deleted && (o.flags & MessageFlags.Loading) === 0) return o;
    if (o?.deleted) return this.followUps.find((m) => !m.deleted);
    return undefined;
  }

  /** @internal */
  changed(): void {
    this.emit('change');
  }

  /** Resolves with the first callback (reply, defer, autocomplete result, modal). */
  waitForResponse(timeoutMs = 5000): Promise<InteractionResponseRecord> {
    return this.waitUntil(() => this.responses.find((r) => r.kind === 'callback'), timeoutMs, 'a response');
  }

  /**
   * Resolves once the original response has real content (a reply, or a defer followed by
   * editReply / a follow-up) and nothing changed for `settleMs` (so streamed edits are complete).
   */
  async waitForFinal(opts: { timeoutMs?: number; settleMs?: number } = {}): Promise<FinalReply> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const settleMs = opts.settleMs ?? 250;
    const deadline = Date.now() + timeoutMs;
    await this.waitUntil(() => (this.hasFinalContent ? true : undefined), timeoutMs, 'a final reply');
    for (;;) {
      const before = this.responses.length;
      await new Promise((r) => setTimeout(r, settleMs));
      if (this.responses.length === before || Date.now() > deadline) break;
    }
    const o = this.finalMessage() as SimMessage;
    return { content: o.content, embeds: o.embeds, attachments: o.attachments, ephemeral: o.ephemeral, followUps: this.followUps.filter((m) => m !== o) };
  }

  /** Resolves when `check` returns something other than undefined (re-checked on every change). */
  waitUntil<T>(check: () => T | undefined, timeoutMs: number, what = 'a condition'): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const onChange = () => {
        const v = check();
        if (v !== undefined) {
          cleanup();
          resolve(v);
        } else if (this.expired && !this.acknowledged) {
          cleanup();
          reject(new Error(`discord-sim: /${this.commandName}: the application did not respond (no interaction callback within the acknowledgement deadline)`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`discord-sim: /${this.commandName}: waited ${timeoutMs} ms for ${what}; responses so far: ${JSON.stringify(this.responses.map((r) => ('type' in r ? `${r.kind}:${r.type}` : r.kind)))}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('change', onChange);
      };
      this.on('change', onChange);
      onChange();
    });
  }
}

export interface InteractionOptions {
  /** How long the bot has to acknowledge (Discord: 3 s). */
  ackTimeoutMs: number;
  log: Logger;
}

interface Target {
  command: RegisteredCommand;
  /** Names below the command: [subcommand] or [group, subcommand]. */
  path: string[];
  leafOptions: RegisteredCommandOption[];
}

export class Interactions {
  private readonly byId = new Map<string, InteractionHandle>();
  private readonly byToken = new Map<string, InteractionHandle>();

  constructor(
    private readonly state: SimState,
    private readonly gateway: Gateway,
    private readonly messages: MessageService,
    private readonly opts: InteractionOptions,
  ) {}

  all(): InteractionHandle[] {
    return [...this.byId.values()];
  }

  // ---- member side ----

  async runCommand(userId: string, channelId: string, name: string, options: Record<string, OptionValue> = {}): Promise<InteractionHandle> {
    const channel = this.state.channel(channelId);
    const target = this.findVisibleCommand(userId, channel.guildId, channelId, name);
    const built = this.buildOptions(target, options, channel.guildId, userId, channelId, undefined);
    const data: Record<string, unknown> = {
      id: target.command.id,
      name: target.command.data.name,
      type: 1,
      ...(target.command.guildId ? { guild_id: target.command.guildId } : {}),
      ...(built.options.length ? { options: built.options } : {}),
      ...(Object.keys(built.resolved).length ? { resolved: built.resolved } : {}),
    };
    return this.dispatch('command', InteractionType.ApplicationCommand, data, name, userId, channelId);
  }

  async autocomplete(
    userId: string,
    channelId: string,
    name: string,
    focused: string,
    value: string,
    others: Record<string, OptionValue> = {},
    timeoutMs = 3000,
  ): Promise<AutocompleteChoice[]> {
    const channel = this.state.channel(channelId);
    const target = this.findVisibleCommand(userId, channel.guildId, channelId, name);
    const def = target.leafOptions.find((o) => o.name === focused);
    if (!def) throw new CommandRejectedError(`/${name} has no option "${focused}"`);
    if (!def.autocomplete) throw new CommandRejectedError(`/${name} option "${focused}" does not have autocomplete enabled`);
    const built = this.buildOptions(target, others, channel.guildId, userId, channelId, { name: focused, type: def.type, value });
    const data: Record<string, unknown> = {
      id: target.command.id,
      name: target.command.data.name,
      type: 1,
      ...(target.command.guildId ? { guild_id: target.command.guildId } : {}),
      options: built.options,
    };
    const handle = await this.dispatch('autocomplete', InteractionType.ApplicationCommandAutocomplete, data, name, userId, channelId);
    await handle.waitUntil(() => handle.choices, timeoutMs, 'autocomplete choices');
    return handle.choices ?? [];
  }

  private findVisibleCommand(userId: string, guildId: string, channelId: string, fullName: string): Target {
    const [name, ...path] = fullName.trim().split(/\s+/);
    if (!this.state.guild(guildId).botPresent) throw new CommandRejectedError(`/${fullName}: the bot is not in guild ${guildId}`);
    const command = this.state.findChatInputCommand(guildId, name ?? '');
    if (!command) throw new CommandRejectedError(`/${fullName}: no such command is registered for guild ${guildId} (nor globally)`);
    const channelPerms = this.state.channelPermissions(channelId, userId);
    if (!hasAll(channelPerms, Perm.ViewChannel)) throw new CommandRejectedError(`/${fullName}: the member cannot see channel ${channelId}`);
    if (!hasAll(channelPerms, Perm.UseApplicationCommands)) throw new CommandRejectedError(`/${fullName}: the member lacks Use Application Commands in this channel`);
    const required = command.data.default_member_permissions;
    if (required !== null) {
      const perms = this.state.guildPermissions(guildId, userId);
      const needed = BigInt(required);
      const visible = perms === ALL_PERMISSIONS || (needed !== 0n && hasAll(perms, needed));
      if (!visible) throw new CommandRejectedError(`/${fullName}: not visible to this member (default_member_permissions ${required})`);
    }
    let leaf = command.data.options ?? [];
    for (const part of path) {
      const next = leaf.find((o) => o.name === part && (o.type === ApplicationCommandOptionType.Subcommand || o.type === ApplicationCommandOptionType.SubcommandGroup));
      if (!next) throw new CommandRejectedError(`/${fullName}: "${part}" is not a subcommand`);
      leaf = next.options ?? [];
    }
    if (leaf.some((o) => o.type === ApplicationCommandOptionType.Subcommand || o.type === ApplicationCommandOptionType.SubcommandGroup)) {
      throw new CommandRejectedError(`/${fullName}: choose a subcommand (${leaf.map((o) => o.name).join(', ')})`);
    }
    return { command, path, leafOptions: leaf };
  }

  private buildOptions(
    target: Target,
    given: Record<string, OptionValue>,
    guildId: string,
    userId: string,
    channelId: string,
    focused: { name: string; type: number; value: string } | undefined,
  ): { options: unknown[]; resolved: Record<string, Record<string, unknown>> } {
    const resolved: Record<string, Record<string, unknown>> = {};
    const put = (kind: string, id: string, value: unknown) => {
      (resolved[kind] ??= {})[id] = value;
    };
    const leaf: unknown[] = [];
    const cmdName = target.command.data.name;
    for (const key of Object.keys(given)) {
      if (!target.leafOptions.some((o) => o.name === key)) throw new CommandRejectedError(`/${cmdName}: unknown option "${key}"`);
    }
    for (const def of target.leafOptions) {
      if (focused && def.name === focused.name) {
        leaf.push({ name: def.name, type: def.type, value: focused.value, focused: true });
        continue;
      }
      const raw = given[def.name];
      if (raw === undefined) {
        if (def.required && !focused) throw new CommandRejectedError(`/${cmdName}: required option "${def.name}" is missing`);
        continue;
      }
      const value = this.coerce(cmdName, def, raw, guildId, userId, channelId, put, focused !== undefined);
      leaf.push({ name: def.name, type: def.type, value });
    }
    let options: unknown[] = leaf;
    for (let i = target.path.length - 1; i >= 0; i--) {
      const isGroup = i === 0 && target.path.length === 2;
      options = [{ name: target.path[i], type: isGroup ? ApplicationCommandOptionType.SubcommandGroup : ApplicationCommandOptionType.Subcommand, options }];
    }
    return { options, resolved };
  }

  private coerce(
    cmd: string,
    def: RegisteredCommandOption,
    raw: OptionValue,
    guildId: string,
    userId: string,
    channelId: string,
    put: (kind: string, id: string, value: unknown) => void,
    partial: boolean,
  ): string | number | boolean {
    const fail = (why: string): never => {
      throw new CommandRejectedError(`/${cmd}: option "${def.name}" ${why}`);
    };
    const idOf = (v: OptionValue) => (typeof v === 'object' ? v.id : String(v));
    const T = ApplicationCommandOptionType;
    switch (def.type) {
      case T.String: {
        if (typeof raw !== 'string') fail('must be a string');
        const s = raw as string;
        if (!partial) {
          if (def.min_length !== undefined && s.length < def.min_length) fail(`must be at least ${def.min_length} characters`);
          if (def.max_length !== undefined && s.length > def.max_length) fail(`must be at most ${def.max_length} characters`);
          if (def.choices && !def.choices.some((c) => c.value === s)) fail(`must be one of the choices ${JSON.stringify(def.choices.map((c) => c.value))}`);
        }
        return s;
      }
      case T.Integer:
      case T.Number: {
        const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
        if (!Number.isFinite(n)) fail('must be a number');
        if (def.type === T.Integer && !Number.isInteger(n)) fail('must be a whole number');
        if (def.min_value !== undefined && n < def.min_value) fail(`must be at least ${def.min_value}`);
        if (def.max_value !== undefined && n > def.max_value) fail(`must be at most ${def.max_value}`);
        if (def.choices && !def.choices.some((c) => c.value === n)) fail('must be one of the choices');
        return n;
      }
      case T.Boolean:
        if (typeof raw !== 'boolean') fail('must be true or false');
        return raw as boolean;
      case T.Channel: {
        const id = idOf(raw);
        const ch = this.state.findChannel(id);
        if (!ch || ch.guildId !== guildId) fail(`refers to channel ${id}, which is not in this guild`);
        const c = ch as NonNullable<typeof ch>;
        if (def.channel_types && def.channel_types.length && !def.channel_types.includes(c.type)) fail(`does not accept a channel of type ${c.type} (${c.name})`);
        const perms = this.state.channelPermissions(c.id, userId);
        if (!hasAll(perms, Perm.ViewChannel)) fail(`refers to channel ${c.name}, which the member cannot see`);
        const { permission_overwrites: _o, position: _p, ...partialChannel } = channelPayload(c) as unknown as Record<string, unknown>;
        put('channels', c.id, { ...partialChannel, permissions: perms.toString() });
        return c.id;
      }
      case T.User:
      case T.Mentionable: {
        const id = idOf(raw);
        const guild = this.state.guild(guildId);
        const role = guild.roles.get(id);
        if (role && def.type === T.Mentionable) {
          put('roles', id, rolePayload(role));
          return id;
        }
        const user = this.state.users.get(id);
        if (!user) fail(`refers to unknown user ${id}`);
        put('users', id, userPayload(user as NonNullable<typeof user>));
        const member = guild.members.get(id);
        if (member?.present) {
          const { user: _u, deaf: _d, mute: _m, ...m } = memberPayload(this.state, member) as unknown as Record<string, unknown>;
          put('members', id, { ...m, permissions: this.state.channelPermissions(channelId, id).toString() });
        }
        return id;
      }
      case T.Role: {
        const id = idOf(raw);
        const role = this.state.guild(guildId).roles.get(id);
        if (!role) fail(`refers to unknown role ${id}`);
        put('roles', id, rolePayload(role as NonNullable<typeof role>));
        return id;
      }
      default:
        return fail(`has type ${def.type}, which the simulator cannot fill in`);
    }
  }

  // ---- components and modals (member side) ----

  /**
   * Clicks a button (no `values`) or picks options in a select menu on a message, as the Discord
   * client allows: the component must exist on the message, be enabled, and be of the right kind.
   */
  async useComponent(userId: string, messageId: string, customId: string, values?: string[]): Promise<InteractionHandle> {
    const msg = this.state.messages.get(messageId);
    if (!msg || msg.deleted) throw new CommandRejectedError(`message ${messageId} does not exist`);
    if (msg.ephemeral && this.byId.get(msg.interactionId ?? '')?.userId !== userId) throw new CommandRejectedError(`message ${messageId} is ephemeral for another member`);
    if (!hasAll(this.state.channelPermissions(msg.channelId, userId), Perm.ViewChannel)) throw new CommandRejectedError(`the member cannot see channel ${msg.channelId}`);
    if (!this.state.guild(msg.guildId).botPresent) throw new CommandRejectedError(`the bot is not in guild ${msg.guildId}`);
    const component = findComponent(msg.components, customId);
    if (!component) throw new CommandRejectedError(`message ${messageId} has no component with custom_id "${customId}"`);
    if (component.disabled) throw new CommandRejectedError(`component "${customId}" is disabled`);
    const isButton = component.type === 2;
    if (isButton && values !== undefined) throw new CommandRejectedError(`"${customId}" is a button: click it without values`);
    if (!isButton && values === undefined) throw new CommandRejectedError(`"${customId}" is a select menu (type ${component.type}): pass the chosen values`);
    if (isButton && component.style === 5) throw new CommandRejectedError(`"${customId}" is a link button: it opens a URL and sends no interaction`);
    if (values !== undefined) {
      const min = component.min_values ?? 1;
      const max = component.max_values ?? 1;
      if (values.length < min || values.length > max) throw new CommandRejectedError(`select "${customId}" takes ${min} to ${max} values`);
      if (component.type === 3) {
        const allowed = (component.options ?? []).map((o) => o.value);
        const bad = values.find((v) => !allowed.includes(v));
        if (bad !== undefined) throw new CommandRejectedError(`"${bad}" is not an option of select "${customId}"`);
      }
    }
    const data = { custom_id: customId, component_type: component.type, ...(values !== undefined ? { values } : {}) };
    return this.dispatch('component', InteractionType.MessageComponent, data, `component:${customId}`, userId, msg.channelId, msg);
  }

  /** Fills in and submits the modal the bot showed in answer to `source`. */
  async submitModal(userId: string, source: InteractionHandle, values: Record<string, string>): Promise<InteractionHandle> {
    const modal = source.modal as { custom_id: string; components: unknown[] } | undefined;
    if (!modal) throw new CommandRejectedError(`the bot showed no modal for ${source.commandName}`);
    if (source.userId !== userId) throw new CommandRejectedError('only the member who opened a modal can submit it');
    const known = new Set<string>();
    const fill = (c: RawComponent): RawComponent => {
      if (Array.isArray(c.components)) return { type: c.type, components: c.components.map(fill) };
      if (c.component) return { type: c.type, component: fill(c.component) };
      if (c.type === 4 && c.custom_id) {
        known.add(c.custom_id);
        const value = values[c.custom_id] ?? '';
        if ((c.required ?? true) && value === '') throw new CommandRejectedError(`modal field "${c.custom_id}" is required`);
        if (c.max_length !== undefined && value.length > c.max_length) throw new CommandRejectedError(`modal field "${c.custom_id}" takes at most ${c.max_length} characters`);
        return { type: 4, custom_id: c.custom_id, value };
      }
      return { type: c.type, ...(c.custom_id ? { custom_id: c.custom_id } : {}) };
    };
    const components = (modal.components as RawComponent[]).map(fill);
    const unknown = Object.keys(values).find((k) => !known.has(k));
    if (unknown) throw new CommandRejectedError(`the modal has no field "${unknown}"`);
    return this.dispatch('modal', InteractionType.ModalSubmit, { custom_id: modal.custom_id, components }, `modal:${modal.custom_id}`, userId, source.channelId, source.message);
  }

  private async dispatch(kind: InteractionKind, type: InteractionType, data: Record<string, unknown>, name: string, userId: string, channelId: string, message?: SimMessage): Promise<InteractionHandle> {
    const channel = this.state.channel(channelId);
    const guild = this.state.guild(channel.guildId);
    const member = this.state.member(guild.id, userId);
    const id = this.state.ids.next();
    const token = `aW50ZXJhY3Rpb246${id}:${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    const memberPerms = this.state.channelPermissions(channelId, userId);
    const payload: Record<string, unknown> = {
      id,
      application_id: this.state.applicationId,
      type,
      data,
      guild_id: guild.id,
      guild: { id: guild.id, locale: guild.locale, features: [] },
      channel: { ...(channelPayload(channel) as unknown as Record<string, unknown>), permissions: memberPerms.toString() },
      channel_id: channel.id,
      member: { ...(memberPayload(this.state, member) as unknown as Record<string, unknown>), permissions: memberPerms.toString() },
      token,
      version: 1,
      app_permissions: this.state.channelPermissions(channelId, this.state.botUserId).toString(),
      locale: this.state.user(userId).locale,
      guild_locale: guild.locale,
      entitlements: [],
      authorizing_integration_owners: { '0': guild.id },
      context: 0,
      attachment_size_limit: 10 * 1024 * 1024,
      ...(message ? { message: messagePayload(this.state, message) } : {}),
    };
    const handle = new InteractionHandle(id, token, kind, name, guild.id, channelId, userId, payload, message);
    this.byId.set(id, handle);
    this.byToken.set(token, handle);
    const timer = setTimeout(() => {
      if (handle.acknowledged) return;
      handle.expired = true;
      this.opts.log.warn({ command: name, kind }, 'discord-sim: interaction not acknowledged in time ("The application did not respond")');
      handle.changed();
    }, this.opts.ackTimeoutMs);
    timer.unref();
    this.gateway.dispatch('INTERACTION_CREATE', payload);
    return handle;
  }

  // ---- bot side (REST) ----

  /** POST /interactions/:id/:token/callback */
  callback(interactionId: string, token: string, json: unknown, files: UploadedFile[], withResponse: boolean): RestResult {
    const handle = this.byId.get(interactionId);
    if (!handle || handle.token !== token || handle.expired) throw Errors.unknownInteraction();
    if (handle.acknowledged) throw Errors.alreadyAcknowledged();
    const body = (json ?? {}) as { type?: unknown; data?: unknown };
    const type = body.type;
    const at = Date.now();
    const T = InteractionResponseType;
    if (handle.kind === 'autocomplete') {
      if (type !== T.ApplicationCommandAutocompleteResult) throw Errors.invalidFormBody(fieldError('type', 'INTERACTION_RESPONSE_TYPE_INVALID', 'Interaction response type must be 8 for autocomplete'));
      handle.choices = validateChoices((body.data as { choices?: unknown } | undefined)?.choices);
      handle.callbackType = T.ApplicationCommandAutocompleteResult;
      handle.responses.push({ kind: 'callback', type, data: body.data, at });
      handle.changed();
      return callbackResult(handle, withResponse, undefined);
    }
    switch (type) {
      case T.ChannelMessageWithSource: {
        const data = readMessageBody(body.data, files, { requireSomething: true });
        const ephemeral = ((data.flags ?? 0) & MessageFlags.Ephemeral) !== 0;
        const msg = this.responseMessage(handle, { ...data, attachments: this.messages.storeFiles(handle.channelId, files, data.attachments), flags: ephemeral ? MessageFlags.Ephemeral : 0 });
        handle.callbackType = type;
        handle.original = this.messages.post(msg);
        break;
      }
      case T.DeferredChannelMessageWithSource: {
        const flags = Number((body.data as { flags?: unknown } | undefined)?.flags ?? 0);
        const ephemeral = (flags & MessageFlags.Ephemeral) !== 0;
        const msg = this.responseMessage(handle, { flags: MessageFlags.Loading | (ephemeral ? MessageFlags.Ephemeral : 0) });
        handle.callbackType = type;
        handle.original = this.messages.post(msg);
        break;
      }
      case T.Modal: {
        if (handle.kind === 'modal') throw Errors.invalidFormBody(fieldError('type', 'INTERACTION_RESPONSE_TYPE_INVALID', 'A modal submit cannot be answered with another modal'));
        const data = body.data as { custom_id?: unknown; title?: unknown; components?: unknown } | undefined;
        if (!data || typeof data.custom_id !== 'string' || typeof data.title !== 'string' || !Array.isArray(data.components)) {
          throw Errors.invalidFormBody(fieldError('data', 'BASE_TYPE_REQUIRED', 'A modal needs custom_id, title and components'));
        }
        handle.callbackType = type;
        handle.modal = data;
        break;
      }
      case T.DeferredMessageUpdate:
      case T.UpdateMessage: {
        // Only component interactions (and modals opened from one) have a message to update.
        const target = handle.message;
        if (!target || target.deleted) {
          throw Errors.invalidFormBody(fieldError('type', 'INTERACTION_RESPONSE_TYPE_INVALID', `Interaction response type ${String(type)} is only valid for component interactions`));
        }
        if (type === T.UpdateMessage) {
          const data = readMessageBody(body.data, files, { requireSomething: false });
          const change: Parameters<MessageService['edit']>[1] = {};
          if (data.content !== undefined) change.content = data.content;
          if (data.embeds !== undefined) change.embeds = data.embeds;
          if (data.components !== undefined) change.components = data.components;
          if (files.length || data.attachments) {
            const kept = data.attachments ? target.attachments.filter((a) => data.attachments?.some((k) => String(k.id) === a.id)) : target.attachments;
            change.attachments = [...kept, ...this.messages.storeFiles(target.channelId, files, data.attachments)];
          }
          this.messages.edit(target, change);
        }
        handle.callbackType = type;
        handle.original = target;
        break;
      }
      default:
        throw Errors.invalidFormBody(fieldError('type', 'BASE_TYPE_CHOICES', `Value must be one of (4, 5, 6, 7, 9) (got ${String(type)})`));
    }
    handle.responses.push({ kind: 'callback', type, data: body.data, at });
    handle.changed();
    return callbackResult(handle, withResponse, handle.original ? messagePayload(this.state, handle.original) : undefined);
  }

  private responseMessage(handle: InteractionHandle, p: { content?: string; embeds?: unknown[]; attachments?: SimAttachment[]; components?: unknown[]; flags: number }): SimMessage {
    const flags = p.flags;
    return this.state.newMessage({
      channelId: handle.channelId,
      authorId: this.state.botUserId,
      content: p.content ?? '',
      embeds: p.embeds ?? [],
      attachments: p.attachments ?? [],
      components: p.components ?? [],
      flags,
      // 20 = ChatInputCommand; answers to components and modals are plain messages.
      type: handle.kind === 'command' ? 20 : 0,
      interactionId: handle.id,
      ephemeral: (flags & MessageFlags.Ephemeral) !== 0,
    });
  }

  private webhookHandle(appId: string, token: string): InteractionHandle {
    const handle = this.byToken.get(token);
    if (appId !== this.state.applicationId || !handle || handle.kind === 'autocomplete' || !handle.acknowledged) throw Errors.unknownWebhook();
    return handle;
  }

  private webhookMessage(handle: InteractionHandle, messageId: string): SimMessage {
    if (messageId === '@original') {
      if (!handle.original || handle.original.deleted) throw Errors.unknownMessage();
      return handle.original;
    }
    const msg = handle.followUps.find((m) => m.id === messageId) ?? (handle.original?.id === messageId ? handle.original : undefined);
    if (!msg || msg.deleted) throw Errors.unknownMessage();
    return msg;
  }

  /** POST /webhooks/:app/:token: a follow-up (the first one after a defer fills the placeholder). */
  followUp(appId: string, token: string, json: unknown, files: UploadedFile[], wait: boolean): RestResult {
    const handle = this.webhookHandle(appId, token);
    const data = readMessageBody(json, files, { requireSomething: true });
    const attachments = this.messages.storeFiles(handle.channelId, files, data.attachments);
    const original = handle.original;
    let msg: SimMessage;
    if (original && !original.deleted && (original.flags & MessageFlags.Loading) !== 0) {
      msg = this.messages.edit(original, { content: data.content ?? '', embeds: data.embeds ?? [], components: data.components ?? [], attachments, flags: original.flags & ~MessageFlags.Loading });
      handle.responses.push({ kind: 'followup', messageId: msg.id, data: json, at: Date.now() });
    } else {
      const ephemeral = ((data.flags ?? 0) & MessageFlags.Ephemeral) !== 0;
      msg = this.messages.post(this.responseMessage(handle, { ...data, attachments, flags: ephemeral ? MessageFlags.Ephemeral : 0 }));
      handle.followUps.push(msg);
      handle.responses.push({ kind: 'followup', messageId: msg.id, data: json, at: Date.now() });
    }
    handle.changed();
    return wait ? { status: 200, body: messagePayload(this.state, msg) } : { status: 204 };
  }

  getMessage(appId: string, token: string, messageId: string): RestResult {
    const handle = this.webhookHandle(appId, token);
    return { status: 200, body: messagePayload(this.state, this.webhookMessage(handle, messageId)) };
  }

  editMessage(appId: string, token: string, messageId: string, json: unknown, files: UploadedFile[]): RestResult {
    const handle = this.webhookHandle(appId, token);
    const msg = this.webhookMessage(handle, messageId);
    const data = readMessageBody(json, files, { requireSomething: false });
    const kept = data.attachments ? msg.attachments.filter((a) => data.attachments?.some((k) => String(k.id) === a.id)) : msg.attachments;
    const added = this.messages.storeFiles(handle.channelId, files, data.attachments);
    const change: Parameters<MessageService['edit']>[1] = { attachments: [...kept, ...added], flags: msg.flags & ~MessageFlags.Loading };
    if (data.content !== undefined) change.content = data.content;
    if (data.embeds !== undefined) change.embeds = data.embeds;
    if (data.components !== undefined) change.components = data.components;
    const wasLoading = (msg.flags & MessageFlags.Loading) !== 0;
    const newContent = change.content ?? msg.content;
    const newEmbeds = change.embeds ?? msg.embeds;
    if (wasLoading && !newContent && newEmbeds.length === 0 && change.attachments?.length === 0) throw Errors.emptyMessage();
    this.messages.edit(msg, change);
    handle.responses.push({ kind: 'edit', messageId: messageId === '@original' ? msg.id : messageId, data: json, at: Date.now() });
    handle.changed();
    return { status: 200, body: messagePayload(this.state, msg) };
  }

  deleteMessage(appId: string, token: string, messageId: string): RestResult {
    const handle = this.webhookHandle(appId, token);
    const msg = this.webhookMessage(handle, messageId);
    this.messages.remove(msg);
    handle.responses.push({ kind: 'delete', messageId: msg.id, at: Date.now() });
    handle.changed();
    return { status: 204 };
  }
}

const INTERACTION_TYPE: Record<InteractionKind, InteractionType> = {
  command: InteractionType.ApplicationCommand,
  autocomplete: InteractionType.ApplicationCommandAutocomplete,
  component: InteractionType.MessageComponent,
  modal: InteractionType.ModalSubmit,
};

interface RawComponent {
  type: number;
  custom_id?: string;
  style?: number;
  disabled?: boolean;
  required?: boolean;
  max_length?: number;
  min_values?: number;
  max_values?: number;
  options?: Array<{ value: string }>;
  /** A submitted text input's value. */
  value?: string;
  components?: RawComponent[];
  component?: RawComponent;
}

/** Finds an interactive component by custom_id in rows, containers, sections and labels. */
function findComponent(components: unknown[], customId: string): RawComponent | undefined {
  for (const raw of components as RawComponent[]) {
    if (!raw || typeof raw !== 'object') continue;
    if (raw.custom_id === customId && raw.type !== 1) return raw;
    const nested = [...(raw.components ?? []), ...(raw.component ? [raw.component] : [])];
    const hit = findComponent(nested, customId);
    if (hit) return hit;
  }
  return undefined;
}

function callbackResult(handle: InteractionHandle, withResponse: boolean, message: unknown): RestResult {
  if (!withResponse) return { status: 204 };
  return {
    status: 200,
    body: {
      interaction: {
        id: handle.id,
        type: INTERACTION_TYPE[handle.kind],
        activity_instance_id: null,
        response_message_id: handle.original?.id ?? null,
        response_message_loading: handle.original ? (handle.original.flags & MessageFlags.Loading) !== 0 : null,
        response_message_ephemeral: handle.original ? handle.original.ephemeral : null,
      },
      resource: { type: handle.callbackType, ...(message ? { message } : {}) },
    },
  };
}

function validateChoices(raw: unknown): AutocompleteChoice[] {
  if (!Array.isArray(raw)) throw Errors.invalidFormBody(fieldError('data.choices', 'BASE_TYPE_REQUIRED', 'This field is required'));
  if (raw.length > 25) throw Errors.invalidFormBody(fieldError('data.choices', 'BASE_TYPE_MAX_LENGTH', 'Must be 25 or fewer in length.'));
  return raw.map((c: unknown, i: number) => {
    const choice = c as { name?: unknown; value?: unknown };
    if (typeof choice?.name !== 'string' || choice.name.length < 1 || choice.name.length > 100) {
      throw Errors.invalidFormBody(fieldError(`data.choices.${i}.name`, 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.'));
    }
    if (typeof choice.value === 'string') {
      if (choice.value.length > 100) throw Errors.invalidFormBody(fieldError(`data.choices.${i}.value`, 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.'));
    } else if (typeof choice.value !== 'number') {
      throw Errors.invalidFormBody(fieldError(`data.choices.${i}.value`, 'BASE_TYPE_REQUIRED', 'This field is required'));
    }
    return { name: choice.name, value: choice.value };
  });
}
