/**
 * The interaction boundary for slash commands. `src/bot/app.ts` adapts discord.js interactions
 * to these small interfaces; handlers never touch discord.js objects, so they read as plain
 * steps and can be driven by tests without faking discord.js internals.
 */
import type { APIEmbed, RESTPostAPIChatInputApplicationCommandsJSONBody } from 'discord.js';
import type { BotCore } from '../bot/bot-core.js';
import type { Choice } from '../bot/catalog.js';

export interface Invoker {
  id: string;
  displayName: string;
  /** Manage Server or Administrator in this guild. */
  canManageGuild: boolean;
  roleIds: string[];
  /** The voice channel the invoker is in now, if any. */
  voiceChannelId: string | undefined;
}

export interface ChannelOption {
  id: string;
  name: string;
  kind: 'text' | 'voice' | 'other';
}

export interface UserOption {
  id: string;
  displayName: string;
  bot: boolean;
}

export interface CommandReply {
  content?: string;
  embeds?: APIEmbed[];
  files?: Array<{ name: string; data: Buffer }>;
  /** Only the invoker sees it. Failures are always ephemeral. */
  ephemeral?: boolean;
}

export interface CommandContext {
  readonly core: BotCore;
  readonly commandName: string;
  readonly guildId: string;
  readonly guildName: string;
  readonly channelId: string;
  readonly invoker: Invoker;
  string(name: string): string | undefined;
  channel(name: string): ChannelOption | undefined;
  /** A user option (`/config block member:`). Optional: older test doubles lack it. */
  user?(name: string): UserOption | undefined;
  subcommand(): string | undefined;
  /** True once the interaction has been deferred or answered. */
  readonly acknowledged: boolean;
  /** Acknowledges now (Discord's 3 s limit); the answer follows with {@link reply}. */
  defer(opts: { ephemeral: boolean }): Promise<void>;
  /** Answers (or completes a deferred answer). */
  reply(reply: CommandReply): Promise<void>;
}

export interface AutocompleteContext {
  readonly core: BotCore;
  readonly commandName: string;
  readonly guildId: string;
  readonly focused: { name: string; value: string };
  /** Where it is typed (the channel of the interaction), when known. */
  readonly channelId?: string;
  /** Another option's value as typed so far (strings, and channel ids), when known. */
  option?(name: string): string | undefined;
  /** The subcommand being typed (`/cast add` → 'add'), if any. */
  subcommand?(): string | undefined;
  respond(choices: Choice[]): Promise<void>;
}

/** A button pressed under one of the bot's messages. */
export interface ButtonContext {
  readonly core: BotCore;
  readonly guildId: string;
  readonly channelId: string;
  /** The message the button is under. */
  readonly messageId: string;
  readonly customId: string;
  readonly invoker: Invoker;
  readonly acknowledged: boolean;
  /** Acknowledges without an answer of its own: what the button does shows in the channel. */
  deferUpdate(): Promise<void>;
  /** One private sentence to the member who pressed it. */
  reply(content: string): Promise<void>;
}

export interface Command {
  data: RESTPostAPIChatInputApplicationCommandsJSONBody;
  /** Changes the guild's session: Manage Server or an admin role required. */
  controlsSession: boolean;
  execute(ctx: CommandContext): Promise<void>;
  autocomplete?(ctx: AutocompleteContext): Promise<void>;
}

/** What a button press under one of the bot's messages runs (routed by its custom id). */
export interface ButtonHandler {
  /** For logs and metrics. */
  name: string;
  matches(customId: string): boolean;
  execute(ctx: ButtonContext): Promise<void>;
}
