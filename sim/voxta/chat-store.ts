/**
 * Saved chats and their history, in memory for the life of the simulator (they survive
 * stopChat, dropped connections and a simulated restart, as Voxta's database does).
 */
import { randomUUID } from 'node:crypto';
import type { Role, StoredMessage } from './messages.js';

export interface ChatMessageRecord {
  messageId: string;
  role: Role;
  senderId: string;
  text: string;
  timestamp: Date;
  index: number;
}

export interface ChatRecord {
  id: string;
  /** The main (first) character; kept for single-character callers. */
  characterId: string;
  /** The cast, in order (the main character first); changes with add/removeChatParticipant. */
  characterIds: string[];
  /** The scenario the chat was started with (chat lists filter on it, protocol §2.4). */
  scenarioId: string | null;
  /** Scenario role name → the character filling it (null: nobody). */
  roles: Record<string, string | null>;
  /** The narrator's character id (a scenario's narrator, else the profile narrator). */
  narratorId: string;
  title: string;
  created: Date;
  lastSession: Date | null;
  messages: ChatMessageRecord[];
}

export class ChatStore {
  private readonly chats = new Map<string, ChatRecord>();

  create(
    characterIds: string | string[],
    title: string,
    opts: { scenarioId?: string | null; roles?: Record<string, string | null>; narratorId: string },
  ): ChatRecord {
    const ids = typeof characterIds === 'string' ? [characterIds] : [...characterIds];
    const main = ids[0];
    if (main === undefined) throw new Error('a chat needs at least one character');
    const chat: ChatRecord = {
      id: randomUUID(),
      characterId: main,
      characterIds: ids,
      scenarioId: opts.scenarioId ?? null,
      roles: { ...(opts.roles ?? {}) },
      narratorId: opts.narratorId,
      title,
      created: new Date(),
      lastSession: null,
      messages: [],
    };
    this.chats.set(chat.id, chat);
    return chat;
  }

  get(id: string): ChatRecord | undefined {
    return this.chats.get(id);
  }

  all(): ChatRecord[] {
    return [...this.chats.values()];
  }

  /** Forgets a chat (deleted in Voxta's app); true when it existed. */
  delete(id: string): boolean {
    return this.chats.delete(id);
  }

  /** Chats a character is part of, most recently used (or created) first. */
  forCharacter(characterId: string): ChatRecord[] {
    const lastUse = (c: ChatRecord): number => (c.lastSession ?? c.created).getTime();
    return this.all()
      .filter((c) => c.characterIds.includes(characterId))
      .sort((a, b) => lastUse(b) - lastUse(a));
  }

  append(chat: ChatRecord, role: Role, senderId: string, text: string): ChatMessageRecord {
    const m: ChatMessageRecord = { messageId: randomUUID(), role, senderId, text, timestamp: new Date(), index: chat.messages.length };
    chat.messages.push(m);
    return m;
  }

  /** Removes messages from the history (reindexing the rest); returns the removed ones, in order. */
  remove(chat: ChatRecord, messageIds: Iterable<string>): ChatMessageRecord[] {
    const ids = new Set(messageIds);
    const removed = chat.messages.filter((m) => ids.has(m.messageId));
    chat.messages = chat.messages.filter((m) => !ids.has(m.messageId));
    chat.messages.forEach((m, i) => (m.index = i));
    return removed;
  }
}

/** A history item as `chatStarted.messages[]` carries it. */
export function toStoredMessage(m: ChatMessageRecord, senderName: string, chatStart: Date): StoredMessage {
  return {
    messageId: m.messageId,
    role: m.role,
    senderId: m.senderId,
    name: senderName,
    text: m.text,
    timestamp: m.timestamp.toISOString(),
    tokens: estimateTokens(m.text),
    index: m.index,
    conversationIndex: 0,
    chatTime: Math.max(0, m.timestamp.getTime() - chatStart.getTime()),
    attachments: [],
  };
}

export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** "just now", "5 minutes ago", "3 days ago": Voxta sends humanised dates in lists. */
export function humanizeAgo(date: Date, now = new Date()): string {
  const s = Math.max(0, Math.round((now.getTime() - date.getTime()) / 1000));
  const unit = (n: number, name: string): string => `${n} ${name}${n === 1 ? '' : 's'} ago`;
  if (s < 60) return 'just now';
  if (s < 3600) return unit(Math.floor(s / 60), 'minute');
  if (s < 86400) return unit(Math.floor(s / 3600), 'hour');
  return unit(Math.floor(s / 86400), 'day');
}
