/**
 * The scenario handles: a guild, a channel and a member as a test sees them, acting like Discord
 * users and admins do (typing, editing, running commands, joining voice and speaking, changing
 * roles and permissions). Every action updates the world and sends the dispatches Discord sends.
 */
import { parseWav } from '../../src/audio/wav.js';
import { sniffImage } from './images.js';
import type { DiscordSim } from './index.js';
import type { AutocompleteChoice, InteractionHandle, OptionValue } from './interactions.js';
import { channelPayload, memberPayload, rolePayload, userPayload } from './payloads.js';
import { ALL_PERMISSIONS, Perm, hasAll } from './permissions.js';
import type { ProxiedMessage, SayProxiedOptions } from './proxy.js';
import { SimError, type SimAttachment, type SimChannel, type SimGuild, type SimMessage } from './state.js';

export interface AddMemberOptions {
  username: string;
  /** The user's global display name (shown everywhere unless a server nickname is set). */
  displayName?: string;
  /** A server nickname in this guild. */
  nick?: string;
  /** Role ids to give (see {@link SimGuildHandle.addRole}). */
  roles?: string[];
  /** 'member' (default): @everyone only; 'admin': an Administrator role; a bigint: a role with
   *  exactly those permission bits. */
  permissions?: bigint | 'admin' | 'member';
  bot?: boolean;
  locale?: string;
}

/** A file a member attaches to a message. */
export interface MemberAttachment {
  filename: string;
  data: Buffer;
  /** Default: what the bytes (images) or the file name say. */
  contentType?: string;
  description?: string;
}

/** A link in the message that Discord resolves into an embed a moment after the message was sent. */
export interface LinkEmbed {
  /** Must appear in the message content (Discord only embeds links it finds there). */
  url: string;
  /** The image Discord's media proxy fetched from that URL. */
  image: Buffer;
  /** Default: what the bytes say. */
  contentType?: string;
  /** 'image' (a direct image link: Discord puts it in `thumbnail`) or 'article' (a page with an og:image: `image`, plus a title). */
  type?: 'image' | 'article';
  title?: string;
  /** Time until the MESSAGE_UPDATE that adds the embed (default 150 ms). */
  delayMs?: number;
}

export interface SayOptions {
  replyTo?: string;
  attachments?: MemberAttachment[];
  linkEmbeds?: LinkEmbed[];
}

export interface SpeakOptions {
  /** For PCM input (ignored for WAV bytes, whose header says it). Default 48000. */
  sampleRate?: number;
  channels?: 1 | 2;
}

export class SimGuildHandle {
  /** @internal */
  constructor(
    private readonly sim: DiscordSim,
    private readonly guild: SimGuild,
  ) {}

  get id(): string {
    return this.guild.id;
  }

  get name(): string {
    return this.guild.name;
  }

  /** The @everyone role (its id is the guild id). */
  get everyoneRoleId(): string {
    return this.guild.id;
  }

  /** The guild owner (has every permission). */
  get owner(): SimMemberHandle {
    return new SimMemberHandle(this.sim, this.guild.id, this.guild.ownerId);
  }

  addTextChannel(name: string, opts: { topic?: string; nsfw?: boolean } = {}): SimChannelHandle {
    return this.addChannel(name, 'text', opts);
  }

  addVoiceChannel(name: string, opts: { nsfw?: boolean } = {}): SimChannelHandle {
    return this.addChannel(name, 'voice', opts);
  }

  /** A stage channel: whoever joins is audience (`suppress: true`) until a stage moderator lets them speak. */
  addStageChannel(name: string, opts: { topic?: string; nsfw?: boolean } = {}): SimChannelHandle {
    return this.addChannel(name, 'stage', opts);
  }

  /** The bot as a member of this guild (e.g. to change its roles). */
  get botMember(): SimMemberHandle {
    return new SimMemberHandle(this.sim, this.guild.id, this.sim.botUserId);
  }

  /**
   * A PluralKit-like proxy bot in this guild (a bot user with Manage Webhooks and Manage Messages):
   * see {@link SimMemberHandle.sayProxied}. Default: PluralKit's real user id and name; pass e.g.
   * `{ userId: '431544605209788416', name: 'Tupperbox' }` for Tupperbox.
   */
  addProxyBot(p: { userId?: string; name?: string } = {}): SimMemberHandle {
    return this.sim.proxyBots.add(this.guild.id, p);
  }

  channel(name: string): SimChannelHandle {
    const c = [...this.guild.channels.values()].find((x) => x.name === name && !x.deleted);
    if (!c) throw new SimError(`no channel named ${name} in ${this.guild.name}`);
    return new SimChannelHandle(this.sim, c);
  }

  addRole(p: { name: string; permissions?: bigint }): { id: string; name: string } {
    const role = this.sim.state.createRole(this.guild.id, { name: p.name, permissions: p.permissions ?? 0n });
    this.sim.dispatch('GUILD_ROLE_CREATE', { guild_id: this.guild.id, role: rolePayload(role) }, this.guild.id);
    return { id: role.id, name: role.name };
  }

  addMember(p: AddMemberOptions): SimMemberHandle {
    const state = this.sim.state;
    const user = state.createUser({ username: p.username, globalName: p.displayName ?? null, bot: p.bot ?? false, locale: p.locale });
    const roleIds = [...(p.roles ?? [])];
    for (const r of roleIds) if (!this.guild.roles.has(r)) throw new SimError(`unknown role ${r} in ${this.guild.name}`);
    const perms = p.permissions ?? 'member';
    if (perms === 'admin') {
      let admin = [...this.guild.roles.values()].find((r) => r.name === 'Admin' && r.permissions === Perm.Administrator);
      admin ??= state.createRole(this.guild.id, { name: 'Admin', permissions: Perm.Administrator });
      roleIds.push(admin.id);
    } else if (typeof perms === 'bigint') {
      roleIds.push(state.createRole(this.guild.id, { name: `${p.username}-permissions`, permissions: perms }).id);
    }
    const member = state.addMember(this.guild.id, user.id, roleIds, p.nick ?? null);
    this.sim.dispatch('GUILD_MEMBER_ADD', { ...memberPayload(state, member), guild_id: this.guild.id }, this.guild.id);
    return new SimMemberHandle(this.sim, this.guild.id, user.id);
  }

  member(username: string): SimMemberHandle {
    const m = [...this.guild.members.values()].find((x) => x.present && this.sim.state.user(x.userId).username === username);
    if (!m) throw new SimError(`no member named ${username} in ${this.guild.name}`);
    return new SimMemberHandle(this.sim, this.guild.id, m.userId);
  }

  /** Changes what @everyone may do (GUILD_ROLE_UPDATE). */
  setEveryonePermissions(permissions: bigint): void {
    this.setRolePermissions(this.guild.id, permissions);
  }

  setRolePermissions(roleId: string, permissions: bigint): void {
    const role = this.guild.roles.get(roleId);
    if (!role) throw new SimError(`unknown role ${roleId}`);
    role.permissions = permissions;
    this.sim.dispatch('GUILD_ROLE_UPDATE', { guild_id: this.guild.id, role: rolePayload(role) }, this.guild.id);
  }

  private addChannel(name: string, kind: 'text' | 'voice' | 'stage', opts: { topic?: string; nsfw?: boolean }): SimChannelHandle {
    const channel = this.sim.state.createChannel(this.guild.id, { name, kind, topic: opts.topic, nsfw: opts.nsfw });
    this.sim.dispatch('CHANNEL_CREATE', channelPayload(channel), this.guild.id);
    return new SimChannelHandle(this.sim, channel);
  }
}

export class SimChannelHandle {
  /** @internal */
  constructor(
    private readonly sim: DiscordSim,
    private readonly channel: SimChannel,
  ) {}

  get id(): string {
    return this.channel.id;
  }

  get name(): string {
    return this.channel.name;
  }

  get kind(): SimChannel['kind'] {
    return this.channel.kind;
  }

  get guildId(): string {
    return this.channel.guildId;
  }

  /** Age-restricted (threads: their parent's setting). */
  get nsfw(): boolean {
    return this.sim.state.isNsfw(this.channel);
  }

  /** For a thread: the channel it is in. */
  get parentId(): string | null {
    return this.channel.parentId;
  }

  /** Marks the channel age-restricted or not (CHANNEL_UPDATE). Threads inherit their parent's. */
  setNsfw(nsfw: boolean): void {
    if (this.channel.kind === 'thread') throw new SimError('threads have no nsfw setting of their own: set it on the parent channel');
    this.channel.nsfw = nsfw;
    this.sim.dispatch('CHANNEL_UPDATE', channelPayload(this.channel), this.channel.guildId);
  }

  /**
   * Starts a thread in this text channel (THREAD_CREATE to the bot if it can see it: every public
   * thread of a channel it can view; a private one only if it is a member or has Manage Threads).
   * `by` starts it (default: the guild owner); `members` are added to a private thread.
   */
  addThread(name: string, opts: { type?: 'public' | 'private'; by?: SimMemberHandle | string; members?: Array<SimMemberHandle | string> } = {}): SimChannelHandle {
    const ownerId = typeof opts.by === 'string' ? opts.by : (opts.by?.id ?? this.sim.state.guild(this.channel.guildId).ownerId);
    if (!hasAll(this.sim.state.channelPermissions(this.channel.id, ownerId), Perm.ViewChannel | (opts.type === 'private' ? Perm.CreatePrivateThreads : Perm.CreatePublicThreads))) {
      throw new SimError(`user ${ownerId} may not start a ${opts.type ?? 'public'} thread in #${this.channel.name}`);
    }
    const thread = this.sim.state.createThread(this.channel.id, { name, ownerId, private: opts.type === 'private' });
    for (const m of opts.members ?? []) thread.thread?.memberIds.add(typeof m === 'string' ? m : m.id);
    this.sim.dispatchThread('THREAD_CREATE', thread, { newly_created: true });
    return new SimChannelHandle(this.sim, thread);
  }

  /** Adds a member to this thread (a private thread becomes visible to them; the bot gets THREAD_CREATE, as on Discord). */
  addThreadMember(userId: string): void {
    const t = this.channel.thread;
    if (!t) throw new SimError(`#${this.channel.name} is not a thread`);
    if (t.memberIds.has(userId)) return;
    const botSawIt = this.sim.botCanView(this.channel.id);
    t.memberIds.add(userId);
    if (userId === this.sim.botUserId || !botSawIt) this.sim.dispatchThread('THREAD_CREATE', this.channel, {});
  }

  /** Sets a permission overwrite for a role or member (CHANNEL_UPDATE). */
  setPermissionOverwrite(targetId: string, p: { allow?: bigint; deny?: bigint }): void {
    const guild = this.sim.state.guild(this.channel.guildId);
    const type: 0 | 1 = guild.roles.has(targetId) ? 0 : 1;
    this.channel.overwrites = this.channel.overwrites.filter((o) => o.id !== targetId);
    this.channel.overwrites.push({ id: targetId, type, allow: p.allow ?? 0n, deny: p.deny ?? 0n });
    this.sim.dispatch('CHANNEL_UPDATE', channelPayload(this.channel), this.channel.guildId);
  }

  /** Deletes the channel (CHANNEL_DELETE) or thread (THREAD_DELETE). */
  delete(): void {
    this.sim.deleteChannel(this.channel.id);
  }
}

/** A simulated human (or other bot) in a guild, doing what a Discord user does. */
export class SimMemberHandle {
  /** @internal */
  constructor(
    private readonly sim: DiscordSim,
    readonly guildId: string,
    readonly id: string,
  ) {}

  get username(): string {
    return this.sim.state.user(this.id).username;
  }

  get displayName(): string {
    const u = this.sim.state.user(this.id);
    return this.sim.state.guild(this.guildId).members.get(this.id)?.nick ?? u.globalName ?? u.username;
  }

  /** Guild-level permissions (roles, owner, Administrator). */
  get permissions(): bigint {
    return this.sim.state.guildPermissions(this.guildId, this.id);
  }

  get isAdministrator(): boolean {
    return this.permissions === ALL_PERMISSIONS;
  }

  get voiceChannelId(): string | null {
    return this.sim.state.guild(this.guildId).voiceStates.get(this.id)?.channelId ?? null;
  }

  /**
   * Types a message (MESSAGE_CREATE). Refused like the Discord client when the member may not send
   * there. `attachments` are uploaded with it (Attach Files needed); `linkEmbeds` are resolved by
   * "Discord" after their delay into a MESSAGE_UPDATE that adds the embed (Embed Links needed).
   */
  say(channelId: string, content: string, opts: SayOptions = {}): SimMessage {
    const channel = this.textChannel(channelId);
    const state = this.sim.state;
    const perms = state.channelPermissions(channel.id, this.id);
    if (!hasAll(perms, Perm.ViewChannel | state.sendPermission(channel))) {
      throw new SimError(`${this.username} cannot send messages in #${channel.name}`);
    }
    const files = opts.attachments ?? [];
    if (files.length && !hasAll(perms, Perm.AttachFiles)) throw new SimError(`${this.username} cannot attach files in #${channel.name}`);
    if (files.length > 10) throw new SimError('a message can have at most 10 attachments');
    if ((content.length === 0 && files.length === 0) || [...content].length > 2000) throw new SimError('a message must have 1 to 2000 characters (or an attachment)');
    for (const e of opts.linkEmbeds ?? []) {
      if (!content.includes(e.url)) throw new SimError(`link embed ${e.url} is not in the message content`);
      if (!sniffImage(e.image) && !e.contentType) throw new SimError(`link embed image for ${e.url} is no PNG/JPEG/GIF/WebP: give contentType`);
    }
    const attachments: SimAttachment[] = files.map((f) => this.sim.messageService.storeAttachment(channel.id, f));
    const msg = state.newMessage({ channelId: channel.id, authorId: this.id, content, attachments, referencedMessageId: opts.replyTo ?? null });
    this.sim.messageService.post(msg);
    // Discord does not unfurl links for someone without Embed Links.
    if (opts.linkEmbeds?.length && hasAll(perms, Perm.EmbedLinks)) {
      for (const e of opts.linkEmbeds) this.sim.resolveLinkEmbed(msg, e);
    }
    return msg;
  }

  /**
   * Says `text` through the guild's proxy bot, as PluralKit does: the member's message is created,
   * after `delayMs` (default 300) the proxy bot reposts it through its webhook in the channel as
   * `as` (with `avatar`), then after `deleteDelayMs` (default 1000, PluralKit's) deletes the
   * original. `order: 'deleteFirst'` deletes before reposting. Resolves once both happened.
   */
  sayProxied(channelId: string, text: string, opts: SayProxiedOptions): Promise<ProxiedMessage> {
    return this.sim.proxyBots.proxy(this, channelId, text, opts);
  }

  /** Raises (or lowers) the member's hand on the stage they are in (VOICE_STATE_UPDATE). */
  requestToSpeak(raise = true): void {
    const v = this.sim.state.guild(this.guildId).voiceStates.get(this.id);
    if (!v) throw new SimError(`${this.username} is not in voice`);
    if (raise && !hasAll(this.sim.state.channelPermissions(v.channelId, this.id), Perm.RequestToSpeak)) throw new SimError(`${this.username} may not request to speak`);
    this.sim.voiceStates.updateStageState(this.guildId, this.id, { requestToSpeakAt: raise ? new Date() : null });
  }

  /** Edits one of the member's own messages (MESSAGE_UPDATE). */
  edit(messageId: string, content: string): SimMessage {
    const msg = this.ownMessage(messageId);
    return this.sim.messageService.edit(msg, { content });
  }

  /** Deletes one of the member's own messages (MESSAGE_DELETE). */
  delete(messageId: string): void {
    this.sim.messageService.remove(this.ownMessage(messageId));
  }

  /** Shows "… is typing" (TYPING_START). */
  startTyping(channelId: string): void {
    this.sim.recordTyping(this.textChannel(channelId).id, this.id);
  }

  /**
   * Runs a slash command (INTERACTION_CREATE). `name` may include a subcommand ("voice join").
   * Rejects with CommandRejectedError when the Discord client would not offer or accept it.
   */
  runCommand(channelId: string, name: string, options: Record<string, OptionValue> = {}): Promise<InteractionHandle> {
    return this.sim.interactions.runCommand(this.id, channelId, name, options);
  }

  /** Types `value` into the autocomplete option `focused`; resolves with the bot's choices. */
  autocomplete(channelId: string, command: string, focused: string, value: string, others: Record<string, OptionValue> = {}): Promise<AutocompleteChoice[]> {
    return this.sim.interactions.autocomplete(this.id, channelId, command, focused, value, others);
  }

  /** Clicks a button on a message (INTERACTION_CREATE, message component). */
  clickButton(messageId: string, customId: string): Promise<InteractionHandle> {
    return this.sim.interactions.useComponent(this.id, messageId, customId);
  }

  /** Picks `values` in a select menu on a message. */
  selectOptions(messageId: string, customId: string, values: string[]): Promise<InteractionHandle> {
    return this.sim.interactions.useComponent(this.id, messageId, customId, values);
  }

  /** Fills in and submits the modal the bot showed in answer to `source` (values by field custom_id). */
  submitModal(source: InteractionHandle, values: Record<string, string>): Promise<InteractionHandle> {
    return this.sim.interactions.submitModal(this.id, source, values);
  }

  joinVoice(channelId: string, opts: { selfMute?: boolean; selfDeaf?: boolean } = {}): void {
    this.sim.voiceStates.memberJoin(this.guildId, this.id, channelId, opts);
  }

  leaveVoice(): void {
    this.sim.voiceStates.memberLeave(this.guildId, this.id);
  }

  /**
   * Speaks in the bot's voice channel: PCM samples (with `sampleRate`/`channels`, default 48 kHz
   * mono) or the bytes of a WAV file. Resolves when the last RTP packet was sent (real time).
   */
  async speak(audio: Int16Array | Uint8Array, opts: SpeakOptions = {}): Promise<void> {
    if (!this.sim.voiceStates.membersWithBot(this.guildId).includes(this.id)) {
      throw new SimError(`${this.username} is not in the bot's voice channel (member: ${this.voiceChannelId ?? 'not in voice'}, bot: ${this.sim.botVoiceState(this.guildId)?.channelId ?? 'not in voice'})`);
    }
    let pcm: Int16Array;
    let sampleRate: number;
    let channels: 1 | 2;
    if (audio instanceof Int16Array) {
      pcm = audio;
      sampleRate = opts.sampleRate ?? 48_000;
      channels = opts.channels ?? 1;
    } else {
      const wav = parseWav(audio);
      sampleRate = wav.sampleRate;
      if (wav.channels <= 2) {
        pcm = wav.samples;
        channels = wav.channels as 1 | 2;
      } else {
        pcm = downmix(wav.samples, wav.channels);
        channels = 1;
      }
    }
    await this.sim.voice.speak(this.guildId, this.id, pcm, { sampleRate, channels });
  }

  /** Gives the member a role (GUILD_MEMBER_UPDATE: only to a bot with the Guild Members intent, unless the member is the bot). */
  addRole(roleId: string): void {
    const member = this.sim.state.member(this.guildId, this.id);
    if (!this.sim.state.guild(this.guildId).roles.has(roleId)) throw new SimError(`unknown role ${roleId}`);
    if (!member.roleIds.includes(roleId)) member.roleIds.push(roleId);
    this.sim.dispatch('GUILD_MEMBER_UPDATE', { ...memberPayload(this.sim.state, member), guild_id: this.guildId }, this.guildId);
  }

  /** Takes a role away (GUILD_MEMBER_UPDATE, same intent rule as {@link addRole}). */
  removeRole(roleId: string): void {
    const member = this.sim.state.member(this.guildId, this.id);
    member.roleIds = member.roleIds.filter((r) => r !== roleId);
    this.sim.dispatch('GUILD_MEMBER_UPDATE', { ...memberPayload(this.sim.state, member), guild_id: this.guildId }, this.guildId);
  }

  /** Leaves the guild (voice first, then GUILD_MEMBER_REMOVE). */
  leaveGuild(): void {
    this.leaveVoice();
    const member = this.sim.state.member(this.guildId, this.id);
    member.present = false;
    this.sim.dispatch('GUILD_MEMBER_REMOVE', { guild_id: this.guildId, user: userPayload(this.sim.state.user(this.id)) }, this.guildId);
  }

  private textChannel(channelId: string): SimChannel {
    const channel = this.sim.state.channel(channelId);
    if (channel.guildId !== this.guildId) throw new SimError(`channel ${channelId} is not in guild ${this.guildId}`);
    return channel;
  }

  private ownMessage(messageId: string): SimMessage {
    const msg = this.sim.state.messages.get(messageId);
    if (!msg || msg.deleted) throw new SimError(`unknown message ${messageId}`);
    if (msg.authorId !== this.id) throw new SimError(`message ${messageId} was not written by ${this.username}`);
    return msg;
  }
}

function downmix(samples: Int16Array, channels: number): Int16Array {
  const frames = Math.floor(samples.length / channels);
  const out = new Int16Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += samples[i * channels + c] ?? 0;
    out[i] = Math.round(sum / channels);
  }
  return out;
}

