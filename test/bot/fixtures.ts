/**
 * Test fixtures for the bot core: a guild made of plain objects that records what the bot posts
 * (the Discord side of the boundary in src/bot/ports.ts), and a BotCore wired to the real Voxta
 * client, the real REST client, a real SQLite store and the Voxta simulator.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DiscordGatewayAdapterCreator } from '@discordjs/voice';
import { BotCore } from '../../src/bot/bot-core.js';
import {
  WebhookCallError,
  type GuildPort,
  type GuildVoiceJoiner,
  type IncomingTextMessage,
  type ListedWebhook,
  type MessageButton,
  type OutgoingMessage,
  type PostedMessage,
  type TextChannelPort,
  type VoiceMember,
  type WebhookApi,
  type WebhookRef,
} from '../../src/bot/ports.js';
import type { ButtonContext, CommandContext, CommandReply, Invoker } from '../../src/commands/types.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { VoxtaChatSession } from '../../src/voxta/chat-session.js';
import { VoxtaEndpoint } from '../../src/voxta/endpoint.js';
import { VoxtaRest } from '../../src/voxta/rest.js';
import type { VoxtaCatalogPort } from '../../src/bot/catalog.js';

createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', pretty: false });

export interface Posted {
  id: string;
  content: string;
  edits: number;
  embeds?: OutgoingMessage['embeds'];
  /** Posted through a webhook: its id and the name and avatar it showed. */
  webhook?: { id: string; name: string; avatar: Buffer | null };
  /** The buttons under it now (custom ids). */
  buttons: string[];
  deleted: boolean;
}

let nextId = 1;
export const snowflake = (): string => String(100000000000000000n + BigInt(nextId++));

export class RecordingChannel implements TextChannelPort {
  readonly posted: Posted[] = [];
  typing = 0;
  constructor(
    readonly id: string,
    readonly name: string,
    readonly parentId?: string,
  ) {}
  async send(message: string | OutgoingMessage): Promise<PostedMessage> {
    const m = typeof message === 'string' ? { content: message } : message;
    const rec: Posted = { id: snowflake(), content: m.content ?? '', edits: 0, embeds: m.embeds, buttons: (m.buttons ?? []).map((b) => b.customId), deleted: false };
    if (rec.content.length > 2000) throw new Error(`Discord would refuse ${rec.content.length} characters`);
    this.posted.push(rec);
    return {
      id: rec.id,
      edit: async (content: string) => {
        if (content.length > 2000) throw new Error(`Discord would refuse an edit of ${content.length} characters`);
        if (rec.deleted) throw new Error('Unknown Message');
        rec.content = content;
        rec.edits++;
      },
      setButtons: async (buttons) => {
        if (rec.deleted) throw new Error('Unknown Message');
        rec.buttons = buttons.map((b) => b.customId);
      },
      delete: async () => {
        rec.deleted = true;
      },
    };
  }
  async sendTyping(): Promise<void> {
    this.typing++;
  }
  /** The bot's reactions on messages it only knows by id (held before a restart). */
  readonly marks = new Map<string, Set<string>>();
  markable(messageId: string) {
    const marks = this.marks.get(messageId) ?? new Set<string>();
    this.marks.set(messageId, marks);
    return {
      id: messageId,
      react: async (emoji: string) => void marks.add(emoji),
      unreact: async (emoji: string) => void marks.delete(emoji),
    };
  }
  texts(): string[] {
    return this.posted.map((p) => p.content);
  }
  /** Messages a webhook posted, with the name they showed. */
  byWebhook(): Array<{ name: string; content: string; avatar: Buffer | null; edits: number }> {
    return this.posted.filter((p) => p.webhook).map((p) => ({ name: p.webhook!.name, content: p.content, avatar: p.webhook!.avatar, edits: p.edits }));
  }
}

interface FakeHook {
  id: string;
  token: string;
  channelId: string;
  name: string;
  avatar: Buffer | null;
  own: boolean;
  creatorId: string;
  deleted: boolean;
}

/**
 * Discord's webhooks as the bot sees them through `WebhookApi`: 15 per channel, Manage Webhooks
 * needed to list and create (switchable), tokens for execute/modify, 10015 once deleted.
 */
export class FakeWebhooks implements WebhookApi {
  manageWebhooks = true;
  readonly hooks = new Map<string, FakeHook>();
  readonly calls: string[] = [];
  constructor(private readonly guild: FakeGuild) {}

  problem(channelId: string): string | undefined {
    return this.manageWebhooks ? undefined : `I lack the Manage Webhooks permission in #${this.guild.channelName(channelId) ?? channelId}`;
  }
  private live(channelId: string): FakeHook[] {
    return [...this.hooks.values()].filter((h) => !h.deleted && h.channelId === channelId);
  }
  private byRef(ref: WebhookRef): FakeHook {
    const h = this.hooks.get(ref.id);
    if (!h || h.deleted) throw new WebhookCallError('unknown-webhook', 'Unknown Webhook (10015)');
    if (h.token !== ref.token) throw new WebhookCallError('other', 'Invalid Webhook Token (50027)');
    return h;
  }
  async list(channelId: string): Promise<ListedWebhook[]> {
    this.calls.push(`list ${channelId}`);
    if (!this.manageWebhooks) throw new WebhookCallError('forbidden', 'Missing Permissions (50013)');
    return this.live(channelId).map((h) => ({ id: h.id, name: h.name, own: h.own, creatorId: h.creatorId, ...(h.own ? { token: h.token, applicationId: this.guild.botUserId } : {}) }));
  }
  async create(channelId: string, p: { name: string; avatar?: { bytes: Buffer; contentType: string } }): Promise<WebhookRef & { name: string }> {
    this.calls.push(`create ${p.name}`);
    if (!this.manageWebhooks) throw new WebhookCallError('forbidden', 'Missing Permissions (50013)');
    if (this.guild.channels.get(channelId)?.parentId) throw new WebhookCallError('other', 'Cannot execute action on this channel type (50024)');
    if (this.live(channelId).length >= 15) throw new WebhookCallError('limit', 'Maximum number of webhooks reached (15) (30007)');
    const h: FakeHook = { id: snowflake(), token: `tok-${snowflake()}`, channelId, name: p.name, avatar: p.avatar?.bytes ?? null, own: true, creatorId: this.guild.botUserId, deleted: false };
    this.hooks.set(h.id, h);
    return { id: h.id, token: h.token, name: h.name };
  }
  /** Someone else's webhook in a channel (a proxy bot's). */
  addForeign(channelId: string, creatorId: string, name = 'PluralKit Proxy Webhook'): FakeHook {
    const h: FakeHook = { id: snowflake(), token: `tok-${snowflake()}`, channelId, name, avatar: null, own: false, creatorId, deleted: false };
    this.hooks.set(h.id, h);
    return h;
  }
  async modify(ref: WebhookRef, p: { name: string; avatar: { bytes: Buffer; contentType: string } | null }): Promise<void> {
    const h = this.byRef(ref);
    this.calls.push(`modify ${h.name} -> ${p.name}`);
    h.name = p.name;
    h.avatar = p.avatar?.bytes ?? null;
  }
  async execute(ref: WebhookRef, p: { content: string; threadId?: string; buttons?: MessageButton[] }): Promise<PostedMessage> {
    const h = this.byRef(ref);
    const target = this.guild.channels.get(p.threadId ?? h.channelId);
    if (!target || (p.threadId && target.parentId !== h.channelId)) throw new WebhookCallError('other', 'Unknown Channel (10003)');
    if (p.content.length > 2000) throw new Error(`Discord would refuse ${p.content.length} characters`);
    const rec: Posted = { id: snowflake(), content: p.content, edits: 0, webhook: { id: h.id, name: h.name, avatar: h.avatar }, buttons: (p.buttons ?? []).map((b) => b.customId), deleted: false };
    target.posted.push(rec);
    return {
      id: rec.id,
      edit: async (content: string) => {
        this.byRef(ref);
        if (content.length > 2000) throw new Error(`Discord would refuse an edit of ${content.length} characters`);
        rec.content = content;
        rec.edits++;
      },
      // An application-owned webhook edits and deletes its own messages with its token.
      setButtons: async (buttons: MessageButton[]) => {
        this.byRef(ref);
        rec.buttons = buttons.map((b) => b.customId);
      },
      delete: async () => {
        this.byRef(ref);
        rec.deleted = true;
      },
    };
  }
  /** A moderator deletes it in the server settings. */
  deleteByModerator(id: string): void {
    const h = this.hooks.get(id);
    if (h) h.deleted = true;
  }
  ownIn(channelId: string): FakeHook[] {
    return this.live(channelId).filter((h) => h.own);
  }
}

export class FakeGuild implements GuildPort {
  readonly botUserId = '900000000000000001';
  available = true;
  readonly channels = new Map<string, RecordingChannel>();
  readonly voiceChannels = new Map<string, { name: string; members: VoiceMember[] }>();
  readonly names = new Map<string, string>();
  readonly roles = new Map<string, string[]>();
  /** Channel webhooks, when enabled (`enableWebhooks()`); absent, replies are posted by the bot. */
  webhooks: FakeWebhooks | undefined;
  /** Members asked about by `hasMember` (proxy bots). */
  readonly members = new Set<string>();
  /** Channels Discord marks age-restricted. */
  readonly nsfw = new Set<string>();
  /** The server's roles (id → name). */
  readonly serverRoles = new Map<string, string>();
  /** Member roles as Discord's REST would answer now (defaults to `roles`); fetches are counted. */
  readonly restRoles = new Map<string, string[]>();
  roleFetches = 0;
  readonly roleFetchIds: string[] = [];
  constructor(
    readonly id: string,
    readonly name: string,
  ) {}
  enableWebhooks(): FakeWebhooks {
    this.webhooks ??= new FakeWebhooks(this);
    return this.webhooks;
  }
  async hasMember(userId: string): Promise<boolean> {
    return this.members.has(userId);
  }
  addThread(parent: RecordingChannel, name: string): RecordingChannel {
    const c = new RecordingChannel(snowflake(), name, parent.id);
    this.channels.set(c.id, c);
    return c;
  }
  addText(name: string): RecordingChannel {
    const c = new RecordingChannel(snowflake(), name);
    this.channels.set(c.id, c);
    return c;
  }
  addVoice(name: string): string {
    const id = snowflake();
    this.voiceChannels.set(id, { name, members: [] });
    return id;
  }
  textChannel(channelId: string): TextChannelPort | undefined {
    return this.channels.get(channelId);
  }
  channelName(channelId: string): string | undefined {
    return this.channels.get(channelId)?.name ?? this.voiceChannels.get(channelId)?.name;
  }
  isVoiceChannel(channelId: string): boolean {
    return this.voiceChannels.has(channelId);
  }
  isStageChannel(): boolean {
    return false;
  }
  botSuppressed(): boolean {
    return false;
  }
  async requestToSpeak(): Promise<'speaking' | 'requested' | 'refused'> {
    return 'speaking';
  }
  voiceProblem(channelId: string): string | undefined {
    return this.voiceChannels.has(channelId) ? undefined : 'that voice channel is gone';
  }
  voiceMembers(channelId: string): VoiceMember[] {
    return this.voiceChannels.get(channelId)?.members ?? [];
  }
  displayName(userId: string): string {
    return this.names.get(userId) ?? 'Someone';
  }
  memberRoleIds(userId: string): string[] {
    return this.roles.get(userId) ?? [];
  }
  isAgeRestricted(channelId: string): boolean {
    return this.nsfw.has(channelId);
  }
  guildRoles(): Array<{ id: string; name: string }> {
    return [...this.serverRoles].map(([id, name]) => ({ id, name }));
  }
  async fetchMemberRoleIds(userId: string): Promise<string[] | undefined> {
    this.roleFetches++;
    this.roleFetchIds.push(userId);
    return this.restRoles.get(userId) ?? this.roles.get(userId) ?? [];
  }
  voiceAdapterCreator(): DiscordGatewayAdapterCreator {
    // Only handed through to the voice joiner; the fake joiner in these tests never calls it.
    return () => ({ sendPayload: () => false, destroy: () => undefined });
  }
}

export interface CoreHarness {
  core: BotCore;
  store: Store;
  config: Config;
  guilds: Map<string, FakeGuild>;
  sessions: VoxtaChatSession[];
  dataDir: string;
  close(): Promise<void>;
}

export function makeConfig(voxtaUrl: string, dataDir: string, env: Record<string, string> = {}): Config {
  return loadConfig({ VOXTA_URL: voxtaUrl, DATA_DIR: dataDir, HEALTH_PORT: '0', ...env }, { requireDiscordToken: false });
}

export function makeCore(
  voxtaUrl: string,
  opts: {
    env?: Record<string, string>;
    dataDir?: string;
    guilds?: Map<string, FakeGuild>;
    rest?: VoxtaCatalogPort;
    joinVoice?: GuildVoiceJoiner;
    voiceIdleLeaveMs?: number;
    recordRetryMs?: number;
    busyTimeoutMs?: number;
    proxyHoldMs?: number;
  } = {},
): CoreHarness {
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vd-bot-'));
  const config = makeConfig(voxtaUrl, dataDir, opts.env);
  const store = Store.open(config.dataDir, { busyTimeoutMs: opts.busyTimeoutMs });
  const endpoint = VoxtaEndpoint.fromConfig(config.voxta);
  const guilds = opts.guilds ?? new Map<string, FakeGuild>();
  const sessions: VoxtaChatSession[] = [];
  const core = new BotCore({
    config,
    store,
    rest: opts.rest ?? new VoxtaRest(endpoint),
    createVoxta: (guildId, { voice }) => {
      const s = new VoxtaChatSession({
        endpoint,
        textOnly: !voice,
        logBindings: { guildId },
        reconnect: { initialDelayMs: 50, maxDelayMs: 200, giveUpAfterMs: 1500 },
        timeouts: { chatStartMs: 5000 },
      });
      sessions.push(s);
      return s;
    },
    joinVoice: opts.joinVoice,
    voiceIdleLeaveMs: opts.voiceIdleLeaveMs,
    guild: (id) => guilds.get(id),
    log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', pretty: false }),
    editIntervalMs: 20,
    contextDebounceMs: 20,
    resumeRetryMs: { first: 100, max: 400 },
    recordRetryMs: opts.recordRetryMs,
    proxyHoldMs: opts.proxyHoldMs,
  });
  core.discordReady = true;
  return {
    core,
    store,
    config,
    guilds,
    sessions,
    dataDir,
    async close() {
      await core.shutdown();
      store.close();
    },
  };
}

export interface RecordedInteraction extends CommandContext {
  replies: CommandReply[];
  deferred: { ephemeral: boolean } | undefined;
}

/** A slash-command invocation at the interaction boundary: what the handler sees and answers. */
export function interaction(
  core: BotCore,
  guild: FakeGuild,
  channelId: string,
  commandName: string,
  o: {
    invoker?: Partial<Invoker>;
    strings?: Record<string, string>;
    channels?: Record<string, string>;
    users?: Record<string, { id: string; displayName: string; bot?: boolean }>;
    subcommand?: string;
  } = {},
): RecordedInteraction {
  const invoker: Invoker = { id: '500000000000000001', displayName: 'Alice', canManageGuild: true, roleIds: [], voiceChannelId: undefined, ...o.invoker };
  const rec: RecordedInteraction = {
    core,
    commandName,
    guildId: guild.id,
    guildName: guild.name,
    channelId,
    invoker,
    replies: [],
    deferred: undefined,
    get acknowledged() {
      return this.deferred !== undefined || this.replies.length > 0;
    },
    string: (name) => o.strings?.[name],
    channel: (name) => {
      const id = o.channels?.[name];
      if (!id) return undefined;
      if (guild.isVoiceChannel(id)) return { id, name: guild.channelName(id) ?? '', kind: 'voice' };
      if (guild.channels.has(id)) return { id, name: guild.channelName(id) ?? '', kind: 'text' };
      return { id, name: 'other', kind: 'other' };
    },
    user: (name) => {
      const u = o.users?.[name];
      return u ? { id: u.id, displayName: u.displayName, bot: u.bot ?? false } : undefined;
    },
    subcommand: () => o.subcommand,
    async defer(d) {
      rec.deferred = d;
    },
    async reply(r) {
      rec.replies.push(r);
    },
  };
  return rec;
}

export interface RecordedButtonPress extends ButtonContext {
  /** Private sentences the member was told. */
  replies: string[];
  updateDeferred: boolean;
}

/** A member pressing a button under one of the bot's messages, at the interaction boundary. */
export function buttonPress(core: BotCore, guild: FakeGuild, channelId: string, messageId: string, customId: string, invoker: Partial<Invoker> = {}): RecordedButtonPress {
  const rec: RecordedButtonPress = {
    core,
    guildId: guild.id,
    channelId,
    messageId,
    customId,
    invoker: { id: '500000000000000002', displayName: 'Bob', canManageGuild: false, roleIds: [], voiceChannelId: undefined, ...invoker },
    replies: [],
    updateDeferred: false,
    get acknowledged() {
      return this.updateDeferred || this.replies.length > 0;
    },
    async deferUpdate() {
      rec.updateDeferred = true;
    },
    async reply(content) {
      rec.replies.push(content);
    },
  };
  return rec;
}

/** A human's message in a channel, recording the reactions the bot puts on it. */
export function humanMessage(channelId: string, authorId: string, authorName: string, content: string): IncomingTextMessage & { reactions: Set<string> } {
  const reactions = new Set<string>();
  return {
    id: snowflake(),
    channelId,
    authorId,
    authorName,
    content,
    reactions,
    async react(e) {
      reactions.add(e);
    },
    async unreact(e) {
      reactions.delete(e);
    },
  };
}

export async function waitUntil<T>(fn: () => T | undefined | false | null, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A stand-in for the voice module at the edge of orchestration tests (the real one needs the
 * Discord voice server; the e2e tests use it). It records joins and leaves and can be "kicked".
 */
export class FakeVoice extends EventEmitter {
  state = 'ready';
  left: string | undefined;
  constructor(readonly channelId: string) {
    super();
  }
  async leave(reason = 'leave'): Promise<void> {
    this.left = reason;
    this.state = 'ended';
  }
  stats(): Record<string, number> {
    return { decodeErrors: 2 };
  }
  bargeInModes: string[] = [];
  /** What the joiner was given (isListenable, the voice config…), when recorded. */
  options: Parameters<GuildVoiceJoiner>[0] | undefined;
  setBargeInMode(mode: string): void {
    this.bargeInModes.push(mode);
  }
}

export function fakeVoiceJoiner(): { join: GuildVoiceJoiner; joined: FakeVoice[] } {
  const joined: FakeVoice[] = [];
  return {
    joined,
    join: async (o) => {
      const v = new FakeVoice(o.channelId);
      v.options = o;
      joined.push(v);
      return v as unknown as Awaited<ReturnType<GuildVoiceJoiner>>;
    },
  };
}

/**
 * A voice joiner whose joins wait until the test releases them (a Discord voice join takes 1–20 s:
 * gateway, UDP, DAVE), so "a stop while the join is in flight" happens by construction, not by
 * timing. Like the real `GuildVoice.join`, a join rejects at once with the signal's reason when it
 * is cancelled — unless `ignoreSignal` is set, which models a joiner that resolves late anyway.
 */
export function heldVoiceJoiner(opts: { ignoreSignal?: boolean } = {}): {
  join: GuildVoiceJoiner;
  joined: FakeVoice[];
  /** Joins waiting for release, oldest first. */
  waiting: Array<{ channelId: string; release(): void; fail(err: Error): void }>;
  releaseAll(): void;
} {
  const joined: FakeVoice[] = [];
  const waiting: Array<{ channelId: string; release(): void; fail(err: Error): void }> = [];
  return {
    joined,
    waiting,
    releaseAll: () => {
      for (const w of waiting.splice(0)) w.release();
    },
    join: (o) =>
      new Promise((resolve, reject) => {
        const entry = {
          channelId: o.channelId,
          release: () => {
            const v = new FakeVoice(o.channelId);
            joined.push(v);
            resolve(v as unknown as Awaited<ReturnType<GuildVoiceJoiner>>);
          },
          fail: (err: Error) => reject(err),
        };
        waiting.push(entry);
        if (!opts.ignoreSignal && o.signal) {
          const cancel = (): void => {
            const i = waiting.indexOf(entry);
            if (i >= 0) waiting.splice(i, 1);
            reject(o.signal!.reason instanceof Error ? o.signal!.reason : new Error('cancelled'));
          };
          if (o.signal.aborted) cancel();
          else o.signal.addEventListener('abort', cancel, { once: true });
        }
      }),
  };
}

/** Voice connections a test joiner made that were never left. */
export function liveVoices(joined: FakeVoice[]): FakeVoice[] {
  return joined.filter((v) => v.left === undefined);
}
