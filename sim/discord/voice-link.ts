/**
 * What the gateway side needs from the voice server (`sim/discord/voice`), as a structural
 * interface: the real `VoiceServer` satisfies it, and a test can pass a small recording stand-in
 * when it only checks gateway signalling.
 */
export interface VoiceBackend {
  /** "host:port" for VOICE_SERVER_UPDATE.endpoint. */
  readonly endpoint: string;
  /** PEM file of the voice server's CA (NODE_EXTRA_CA_CERTS for a child-process bot). */
  readonly caCertPath: string;
  readonly caCertPem: string;
  openSession(p: { guildId: string; channelId: string; botUserId: string; sessionId: string }): { token: string };
  closeSession(guildId: string): void;
  memberJoined(guildId: string, userId: string): void;
  memberLeft(guildId: string, userId: string): void;
  /**
   * Stage channels: whether a participant of the bot's channel (the bot or a member) is
   * suppressed (audience). What a suppressed speaker sends is heard by no one.
   */
  setSuppressed(guildId: string, userId: string, suppressed: boolean): void;
  speak(guildId: string, userId: string, pcm: Int16Array, opts: { sampleRate: number; channels: 1 | 2 }): Promise<void>;
  stop(): Promise<void>;
}

/** Every call a {@link RecordingVoiceBackend} received, in order. */
export type VoiceCall =
  | { call: 'openSession'; guildId: string; channelId: string; botUserId: string; sessionId: string; token: string }
  | { call: 'closeSession'; guildId: string }
  | { call: 'memberJoined'; guildId: string; userId: string }
  | { call: 'memberLeft'; guildId: string; userId: string }
  | { call: 'setSuppressed'; guildId: string; userId: string; suppressed: boolean }
  | { call: 'speak'; guildId: string; userId: string; samples: number; sampleRate: number; channels: 1 | 2 };

/**
 * A voice backend that only records what it was asked (no voice gateway, no UDP). For tests of
 * the REST/gateway side that stop at VOICE_SERVER_UPDATE; nothing can actually connect to it.
 */
export class RecordingVoiceBackend implements VoiceBackend {
  readonly calls: VoiceCall[] = [];
  readonly endpoint: string;
  readonly caCertPath = '';
  readonly caCertPem = '';
  private tokens = 0;

  constructor(endpoint = '127.0.0.1:9') {
    this.endpoint = endpoint;
  }

  openSession(p: { guildId: string; channelId: string; botUserId: string; sessionId: string }): { token: string } {
    const token = `voice-token-${++this.tokens}`;
    this.calls.push({ call: 'openSession', ...p, token });
    return { token };
  }

  closeSession(guildId: string): void {
    this.calls.push({ call: 'closeSession', guildId });
  }

  memberJoined(guildId: string, userId: string): void {
    this.calls.push({ call: 'memberJoined', guildId, userId });
  }

  memberLeft(guildId: string, userId: string): void {
    this.calls.push({ call: 'memberLeft', guildId, userId });
  }

  setSuppressed(guildId: string, userId: string, suppressed: boolean): void {
    this.calls.push({ call: 'setSuppressed', guildId, userId, suppressed });
  }

  async speak(guildId: string, userId: string, pcm: Int16Array, opts: { sampleRate: number; channels: 1 | 2 }): Promise<void> {
    this.calls.push({ call: 'speak', guildId, userId, samples: pcm.length, sampleRate: opts.sampleRate, channels: opts.channels });
  }

  async stop(): Promise<void> {}
}
