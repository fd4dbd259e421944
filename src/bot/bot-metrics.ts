/**
 * The bot's Prometheus metrics. Gauges are computed from live state when scraped, so they cannot
 * drift; counters and the latency histogram are fed by the sessions.
 */
import { MetricsRegistry, type Counter, type Histogram } from './metrics.js';

export interface MetricsSources {
  sessionStates(): Record<string, number>;
  voiceGuilds(): number;
  /** Undecodable Opus packets, all guilds, since start. */
  decodeErrors(): number;
  playback(): { owed: number; sent: number };
  discordReady(): boolean;
}

export interface BotMetrics {
  registry: MetricsRegistry;
  turns: Counter;
  turnLatency: Histogram;
  reconnects: Counter;
  sessionsStarted: Counter;
  commands: Counter;
  /** Wires the live-state gauges (done once the sources exist). */
  bind(sources: MetricsSources): void;
}

export function createBotMetrics(): BotMetrics {
  const registry = new MetricsRegistry();
  let src: MetricsSources | undefined;
  const states = ['idle', 'starting', 'active', 'reconnecting', 'stopping'];
  registry.gauge('voxta_discord_sessions', 'Guild sessions by state.', () => {
    const counts = src?.sessionStates() ?? {};
    return states.map((s) => ({ labels: { state: s }, value: counts[s] ?? 0 }));
  });
  registry.gauge('voxta_discord_voice_guilds', 'Guilds with the bot in a voice channel.', () => [{ value: src?.voiceGuilds() ?? 0 }]);
  registry.gauge('voxta_discord_discord_ready', '1 when the Discord gateway is ready.', () => [{ value: src?.discordReady() ? 1 : 0 }]);
  const turns = registry.counter('voxta_discord_turns_total', 'User turns sent to Voxta, by source (text, say, voice).');
  const turnLatency = registry.histogram(
    'voxta_discord_turn_latency_seconds',
    'Time from a user turn to the first reply chunk.',
    [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13],
  );
  const reconnects = registry.counter('voxta_discord_voxta_reconnects_total', 'Times a guild lost its Voxta connection.');
  const sessionsStarted = registry.counter('voxta_discord_sessions_started_total', 'Chats started or resumed, by kind.');
  const commands = registry.counter('voxta_discord_commands_total', 'Slash commands handled, by command and outcome.');
  registry.computedCounter('voxta_discord_voice_decode_errors_total', 'Opus packets from members that failed to decode.', () => src?.decodeErrors() ?? 0);
  registry.gauge('voxta_discord_playback_completes_owed', 'Replies that ended and still owe Voxta a speechPlaybackComplete.', () => [
    { value: src?.playback().owed ?? 0 },
  ]);
  registry.computedCounter('voxta_discord_playback_completes_sent_total', 'speechPlaybackComplete messages sent to Voxta.', () => src?.playback().sent ?? 0);
  return {
    registry,
    turns,
    turnLatency,
    reconnects,
    sessionsStarted,
    commands,
    bind(s) {
      src = s;
    },
  };
}
