/**
 * Messages end to end: validating a message body the way Discord's API does (lengths, empty
 * messages, embeds, attachments), storing it with its edit history, dispatching
 * MESSAGE_CREATE/UPDATE/DELETE (with `content` stripped for sessions without the MessageContent
 * intent), and waiting for messages in tests.
 */
import { GatewayIntentBits, PermissionFlagsBits } from 'discord-api-types/v10';
import type { Gateway, GatewaySession } from './gateway.js';
import { contentTypeFromName, sniffImage } from './images.js';
import { messagePayload } from './payloads.js';
import { Errors, fieldError, type UploadedFile } from './rest/http.js';
import type { SimAttachment, SimMessage, SimState } from './state.js';

export interface MessageBody {
  content?: string;
  embeds?: unknown[];
  components?: unknown[];
  flags?: number;
  tts?: boolean;
  /** Existing attachments to keep (on edit) and descriptions for new ones, by `id`. */
  attachments?: Array<{ id: string | number; filename?: string; description?: string }>;
  referencedMessageId?: string;
}

/** Discord's documented limits. */
export const LIMITS = {
  content: 2000,
  embeds: 10,
  embedTitle: 256,
  embedDescription: 4096,
  embedFields: 25,
  embedFieldName: 256,
  embedFieldValue: 1024,
  embedFooter: 2048,
  embedAuthor: 256,
  embedTotal: 6000,
  files: 10,
  fileBytes: 10 * 1024 * 1024,
} as const;

/** Reads a create/edit body and validates it. Throws RestError (50035, 50006) like Discord. */
export function readMessageBody(json: unknown, files: UploadedFile[], opts: { requireSomething: boolean }): MessageBody {
  const body = (json ?? {}) as Record<string, unknown>;
  if (typeof body !== 'object' || Array.isArray(body)) throw Errors.invalidFormBody(fieldError('_body', 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType'));
  const out: MessageBody = {};
  if (body.content !== undefined && body.content !== null) {
    if (typeof body.content !== 'string') throw Errors.invalidFormBody(fieldError('content', 'BASE_TYPE_STRING', 'Must be a string.'));
    if ([...body.content].length > LIMITS.content) {
      throw Errors.invalidFormBody(fieldError('content', 'BASE_TYPE_MAX_LENGTH', `Must be ${LIMITS.content} or fewer in length.`));
    }
    out.content = body.content;
  }
  if (body.embeds !== undefined && body.embeds !== null) {
    if (!Array.isArray(body.embeds)) throw Errors.invalidFormBody(fieldError('embeds', 'BASE_TYPE_LIST', 'Must be a list.'));
    if (body.embeds.length > LIMITS.embeds) throw Errors.invalidFormBody(fieldError('embeds', 'BASE_TYPE_MAX_LENGTH', `Must be ${LIMITS.embeds} or fewer in length.`));
    body.embeds.forEach((e, i) => validateEmbed(e, i));
    const total = body.embeds.reduce<number>((n, e) => n + embedTextLength(e as Record<string, unknown>), 0);
    if (total > LIMITS.embedTotal) throw Errors.invalidFormBody(fieldError('embeds', 'MAX_EMBED_SIZE_EXCEEDED', 'Embed size exceeds maximum size of 6000'));
    out.embeds = body.embeds.map((e) => ({ type: 'rich', ...(e as Record<string, unknown>) }));
  }
  if (body.components !== undefined && body.components !== null) {
    if (!Array.isArray(body.components)) throw Errors.invalidFormBody(fieldError('components', 'BASE_TYPE_LIST', 'Must be a list.'));
    if (body.components.length > 5) throw Errors.invalidFormBody(fieldError('components', 'BASE_TYPE_MAX_LENGTH', 'Must be 5 or fewer in length.'));
    out.components = body.components;
  }
  if (typeof body.flags === 'number') out.flags = body.flags;
  if (typeof body.tts === 'boolean') out.tts = body.tts;
  if (Array.isArray(body.attachments)) out.attachments = body.attachments as MessageBody['attachments'];
  const ref = body.message_reference as { message_id?: unknown } | undefined;
  if (ref && typeof ref.message_id === 'string') out.referencedMessageId = ref.message_id;
  if (files.length > LIMITS.files) throw Errors.invalidFormBody(fieldError('files', 'BASE_TYPE_MAX_LENGTH', `Must be ${LIMITS.files} or fewer in length.`));
  for (const f of files) {
    if (f.data.length > LIMITS.fileBytes) throw Errors.invalidFormBody(fieldError('files', 'BASE_TYPE_MAX_LENGTH', 'Request entity too large'));
  }
  if (opts.requireSomething && !out.content && !(out.embeds && out.embeds.length) && files.length === 0) throw Errors.emptyMessage();
  return out;
}

function validateEmbed(e: unknown, i: number): void {
  if (!e || typeof e !== 'object') throw Errors.invalidFormBody(fieldError(`embeds.${i}`, 'DICT_TYPE_CONVERT', 'Only dictionaries may be used in a DictType'));
  const emb = e as Record<string, unknown>;
  const check = (value: unknown, path: string, max: number) => {
    if (typeof value === 'string' && [...value].length > max) {
      throw Errors.invalidFormBody(fieldError(`embeds.${i}.${path}`, 'BASE_TYPE_MAX_LENGTH', `Must be ${max} or fewer in length.`));
    }
  };
  check(emb.title, 'title', LIMITS.embedTitle);
  check(emb.description, 'description', LIMITS.embedDescription);
  check((emb.footer as Record<string, unknown> | undefined)?.text, 'footer.text', LIMITS.embedFooter);
  check((emb.author as Record<string, unknown> | undefined)?.name, 'author.name', LIMITS.embedAuthor);
  if (Array.isArray(emb.fields)) {
    if (emb.fields.length > LIMITS.embedFields) throw Errors.invalidFormBody(fieldError(`embeds.${i}.fields`, 'BASE_TYPE_MAX_LENGTH', `Must be ${LIMITS.embedFields} or fewer in length.`));
    emb.fields.forEach((f: Record<string, unknown>, j: number) => {
      check(f.name, `fields.${j}.name`, LIMITS.embedFieldName);
      check(f.value, `fields.${j}.value`, LIMITS.embedFieldValue);
      if (typeof f.name !== 'string' || f.name === '' || typeof f.value !== 'string' || f.value === '') {
        throw Errors.invalidFormBody(fieldError(`embeds.${i}.fields.${j}`, 'BASE_TYPE_REQUIRED', 'This field is required'));
      }
    });
  }
}

function embedTextLength(e: Record<string, unknown>): number {
  const len = (v: unknown) => (typeof v === 'string' ? [...v].length : 0);
  let n = len(e.title) + len(e.description) + len((e.footer as Record<string, unknown> | undefined)?.text) + len((e.author as Record<string, unknown> | undefined)?.name);
  if (Array.isArray(e.fields)) for (const f of e.fields as Array<Record<string, unknown>>) n += len(f.name) + len(f.value);
  return n;
}

export interface MessageEvents {
  /** Called for every stored create/update so waiters can re-check. */
  onChange(msg: SimMessage): void;
}

export class MessageService {
  constructor(
    private readonly state: SimState,
    private readonly gateway: Gateway,
    private readonly opts: { messageContent: boolean; attachmentUrl: (channelId: string, id: string, filename: string) => string },
  ) {}

  /** Stores uploaded files as attachments (served back at their `url`). */
  storeFiles(channelId: string, files: UploadedFile[], described: MessageBody['attachments'] = []): SimAttachment[] {
    return files.map((f, index) => {
      // @discordjs/rest names parts `files[n]`; the matching `attachments[].id` is n.
      const n = /^files\[(\d+)\]$/.exec(f.field)?.[1] ?? String(index);
      const meta = described?.find((a) => String(a.id) === n);
      return this.storeAttachment(channelId, { filename: meta?.filename ?? f.filename, data: f.data, contentType: f.contentType, description: meta?.description });
    });
  }

  /**
   * One attachment as Discord stores it: a signed CDN URL, the content type (the uploader's, else
   * what the bytes or the file name say) and, for images, the size measured from the bytes.
   */
  storeAttachment(channelId: string, f: { filename: string; data: Buffer; contentType?: string | undefined; description?: string | undefined }): SimAttachment {
    const id = this.state.ids.next();
    const image = sniffImage(f.data);
    const url = this.opts.attachmentUrl(channelId, id, f.filename);
    const att: SimAttachment = {
      id,
      filename: f.filename,
      size: f.data.length,
      contentType: f.contentType ?? image?.contentType ?? contentTypeFromName(f.filename),
      description: f.description,
      url,
      proxyUrl: url,
      width: image?.width,
      height: image?.height,
      data: f.data,
    };
    this.state.attachments.set(id, att);
    return att;
  }

  /** Stores a message and dispatches MESSAGE_CREATE (ephemeral messages are never dispatched). */
  post(msg: SimMessage): SimMessage {
    this.state.addMessage(msg);
    if (!msg.ephemeral) this.gateway.dispatch('MESSAGE_CREATE', messagePayload(this.state, msg), (d, s) => this.forSession(d, s, msg));
    return msg;
  }

  edit(msg: SimMessage, change: Parameters<SimState['editMessage']>[1], opts: Parameters<SimState['editMessage']>[2] = {}): SimMessage {
    this.state.editMessage(msg, change, opts);
    if (!msg.ephemeral) this.gateway.dispatch('MESSAGE_UPDATE', messagePayload(this.state, msg), (d, s) => this.forSession(d, s, msg));
    return msg;
  }

  remove(msg: SimMessage): void {
    this.state.deleteMessage(msg);
    if (!msg.ephemeral && this.botCanView(msg.channelId)) this.gateway.dispatch('MESSAGE_DELETE', { id: msg.id, channel_id: msg.channelId, guild_id: msg.guildId });
  }

  /** Discord only tells the bot about messages in channels (and threads) it can view. */
  private botCanView(channelId: string): boolean {
    const channel = this.state.findChannel(channelId);
    return channel !== undefined && (this.state.channelPermissions(channel.id, this.state.botUserId) & PermissionFlagsBits.ViewChannel) !== 0n;
  }

  /**
   * Without the MessageContent intent (or with it disabled for the app), Discord sends guild
   * messages with empty content, embeds, attachments and components, except the bot's own
   * messages and messages that mention it.
   */
  private forSession(d: unknown, session: GatewaySession, msg: SimMessage): unknown {
    if (!this.botCanView(msg.channelId)) return undefined;
    const allowed = this.opts.messageContent && (session.intents & GatewayIntentBits.MessageContent) !== 0;
    if (allowed || msg.authorId === this.state.botUserId || msg.mentionUserIds.includes(this.state.botUserId)) return d;
    return { ...(d as Record<string, unknown>), content: '', embeds: [], attachments: [], components: [] };
  }

  /**
   * Resolves with the first message in `channelId` (already there or to come, including edits)
   * that satisfies `predicate`.
   */
  waitForMessage(channelId: string, predicate: (m: SimMessage) => boolean = () => true, timeoutMs = 5000): Promise<SimMessage> {
    const existing = this.state.channelMessages(channelId).find(predicate);
    if (existing) return Promise.resolve(existing);
    return new Promise<SimMessage>((resolve, reject) => {
      const check = (m: SimMessage) => {
        if (m.channelId !== channelId || m.deleted || m.ephemeral || !predicate(m)) return;
        cleanup();
        resolve(m);
      };
      const timer = setTimeout(() => {
        cleanup();
        const seen = this.state.channelMessages(channelId).map((m) => JSON.stringify(m.content.slice(0, 80)));
        reject(new Error(`discord-sim: no matching message in channel ${channelId} within ${timeoutMs} ms (messages: ${seen.join(', ') || 'none'})`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.state.off('messageCreated', check);
        this.state.off('messageUpdated', check);
      };
      this.state.on('messageCreated', check);
      this.state.on('messageUpdated', check);
    });
  }
}
