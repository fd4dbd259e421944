/**
 * Admission control in front of Voxta's limits. Voxta refuses a third concurrent chat per user
 * (after a 10 s wait), and its speech pipeline is effectively process-global, so the bot keeps
 * its own count: at most `maxChats` guilds with a chat and `maxVoice` guilds in voice. Slots are
 * taken synchronously, so two `/start`s at the same moment cannot both get the last one.
 */
export type AdmissionKind = 'chat' | 'voice';

export class Admission {
  private readonly chats = new Set<string>();
  private readonly voices = new Set<string>();

  constructor(
    readonly maxChats: number,
    readonly maxVoice: number,
  ) {}

  /** Takes a chat slot for the guild; true when it holds one now (already holding counts). */
  tryAcquireChat(guildId: string): boolean {
    return this.tryAcquire(this.chats, this.maxChats, guildId);
  }

  releaseChat(guildId: string): void {
    this.chats.delete(guildId);
    this.voices.delete(guildId);
  }

  tryAcquireVoice(guildId: string): boolean {
    return this.tryAcquire(this.voices, this.maxVoice, guildId);
  }

  releaseVoice(guildId: string): void {
    this.voices.delete(guildId);
  }

  holdsChat(guildId: string): boolean {
    return this.chats.has(guildId);
  }

  holdsVoice(guildId: string): boolean {
    return this.voices.has(guildId);
  }

  get chatCount(): number {
    return this.chats.size;
  }

  get voiceCount(): number {
    return this.voices.size;
  }

  private tryAcquire(set: Set<string>, max: number, guildId: string): boolean {
    if (set.has(guildId)) return true;
    if (set.size >= max) return false;
    set.add(guildId);
    return true;
  }
}
