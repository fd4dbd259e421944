/**
 * Where a reply is posted, and as whom: through the speaking character's webhook (its name and
 * avatar), or, when webhooks cannot be used (no Manage Webhooks), by the bot itself with the
 * speaker's name in bold when the chat has more than one voice. Narration is set in italics.
 *
 * A {@link ReplyTarget} looks like a channel to the `ReplyRenderer` (send, then edit what was
 * sent), so streaming, the 2000-character split, corrections and the *(interrupted)* mark work
 * the same whoever posts.
 */
import { errorInfo, type Logger } from '../log.js';
import { sniffImageType } from '../image/sniff.js';
import type { FetchedBytes, FetchOptions } from '../voxta/rest.js';
import type { OutgoingMessage, PostedMessage, TextChannelPort, WebhookApi } from './ports.js';
import { DISCORD_MESSAGE_LIMIT } from './split-message.js';
import { WebhooksUnavailableError, type PersonaLease, type WebhookPool } from './webhook-pool.js';

/** Who says a reply. */
export interface Speaker {
  /** The character's (or narrator's) id. */
  key: string;
  name: string;
  /** Relative to the Voxta base URL, as Voxta sends it. */
  thumbnailUrl?: string;
  /** A narrator line (set in italics). */
  narration: boolean;
}

export interface ReplyTarget {
  readonly id: string;
  /** Characters the renderer may put in one message (room left for the name and italics). */
  readonly limit: number;
  /** Posts a part of the reply (with the reply controls' buttons when they give them). */
  send(message: string | OutgoingMessage): Promise<PostedMessage>;
  /** The reply is finished: its character may give its webhook to another one. */
  done(): void;
}

/** Image bytes of avatars, fetched from Voxta with its credentials, cached for a while. */
export class AvatarCache {
  private readonly cache = new Map<string, { at: number; value: Promise<{ bytes: Buffer; contentType: string } | undefined> }>();

  constructor(
    private readonly fetchBytes: (url: string, opts?: FetchOptions) => Promise<FetchedBytes>,
    private readonly log: Logger,
    private readonly ttlMs = 10 * 60_000,
  ) {}

  /** The avatar at `url` (relative to Voxta), or undefined when it is not a usable image. */
  get(url: string): Promise<{ bytes: Buffer; contentType: string } | undefined> {
    const hit = this.cache.get(url);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.value;
    const value = this.fetchBytes(url, { timeoutMs: 5000, maxBytes: MAX_AVATAR_BYTES }).then(
      ({ bytes }) => {
        const type = sniffImageType(bytes);
        if (!type || bytes.byteLength === 0) return undefined;
        return { bytes: Buffer.from(bytes), contentType: type };
      },
      (err: unknown) => {
        this.log.debug({ err: errorInfo(err), url }, 'avatars: fetching an avatar from Voxta failed');
        // A failure is not cached for long: the next reply tries again.
        this.cache.delete(url);
        return undefined;
      },
    );
    this.cache.set(url, { at: Date.now(), value });
    if (this.cache.size > 200) this.cache.delete(this.cache.keys().next().value!);
    return value;
  }
}

/** Discord's avatar upload limit is larger; an avatar this big is surely a mistake. */
const MAX_AVATAR_BYTES = 8 * 1024 * 1024;

export interface ReplyTargetDeps {
  guildId: string;
  pool: WebhookPool | undefined;
  webhooks: WebhookApi | undefined;
  avatars: AvatarCache | undefined;
  log: Logger;
}

/**
 * The target for one reply of `speaker` in `channel`. `named`: the chat has several voices, so a
 * reply the bot has to post itself carries the speaker's name.
 */
export function replyTarget(deps: ReplyTargetDeps, channel: TextChannelPort, speaker: Speaker | undefined, named: boolean): ReplyTarget {
  const italic = (text: string): string => (speaker?.narration && text && !text.includes('*') ? `*${text}*` : text);
  const prefix = speaker && named ? `**${speaker.name.replace(/[*_~`|\\]/g, '')}**: ` : '';
  const plain = {
    id: channel.id,
    limit: DISCORD_MESSAGE_LIMIT - (speaker?.narration ? 2 : 0) - prefix.length,
  };
  const postAsBot = async (message: OutgoingMessage): Promise<PostedMessage> => {
    const decorate = (t: string): string => prefix + italic(t);
    const sent = await channel.send({ ...message, content: decorate(message.content ?? '') });
    return { ...sent, id: sent.id, edit: (c) => sent.edit(decorate(c)) };
  };
  const asMessage = (m: string | OutgoingMessage): OutgoingMessage => (typeof m === 'string' ? { content: m } : m);
  if (!speaker || !deps.pool) return { ...plain, send: (m) => postAsBot(asMessage(m)), done: () => undefined };

  const hookChannelId = channel.parentId ?? channel.id;
  const lease: PersonaLease = deps.pool.lease(deps.webhooks, deps.guildId, { channelId: hookChannelId, ...(channel.parentId ? { threadId: channel.id } : {}) }, {
    key: speaker.key,
    name: speaker.name,
    ...(speaker.thumbnailUrl && deps.avatars ? { avatar: () => deps.avatars!.get(speaker.thumbnailUrl!) } : {}),
  });
  return {
    ...plain,
    send: async (m) => {
      const message = asMessage(m);
      try {
        const sent = await lease.send(italic(message.content ?? ''), message.buttons);
        return { ...sent, id: sent.id, edit: (c) => sent.edit(italic(c)) };
      } catch (err) {
        if (!(err instanceof WebhooksUnavailableError)) {
          deps.log.warn({ err: errorInfo(err), channelId: channel.id, speaker: speaker.name }, 'reply: posting through the webhook failed; posting as the bot');
        }
        return postAsBot(message);
      }
    },
    done: () => lease.release(),
  };
}
