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
  /** Members' utterances Voxta never got, all guilds, since start. */
  unheardUtterances(): number;
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
  /** Unhandled rejections and uncaught exceptions caught by the process guards. */
  unhandledErrors: Counter;
  /** Writes of a guild's stored record that failed (each is retried). */
  storeWriteFailures: Counter;
  /** Members' turns not forwarded, by source (text, voice, button) and reason (role, blocked, rate, queue). */
  refusedTurns: Counter;
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
  const unhandledErrors = registry.counter('voxta_discord_unhandled_errors_total', 'Unhandled promise rejections and uncaught exceptions (bugs), logged and survived, by kind.');
  const storeWriteFailures = registry.counter('voxta_discord_store_write_failures_total', 'Writes of a guild session record to the database that failed (retried until they succeed).');
  const refusedTurns = registry.counter(
    'voxta_discord_turns_refused_total',
    'Members’ turns not forwarded to the character, by source (text, voice, button) and reason (role, blocked, rate, queue).',
  );
  // Gauges in name (the documented families), growing totals in value: they never go down when a
  // session or voice connection ends.
  registry.gauge('voxta_discord_voice_decode_errors', 'Opus packets from members that failed to decode, since start.', () => [
    { value: src?.decodeErrors() ?? 0 },
  ]);
  registry.gauge('voxta_discord_voice_utterances_unheard', "Members' utterances that could not be delivered to Voxta (held past their bound, or the session gone), since start.", () => [
    { value: src?.unheardUtterances() ?? 0 },
  ]);
  registry.gauge('voxta_discord_playback_completes', 'speechPlaybackComplete messages owed now (ended replies not yet acknowledged) and sent since start.', () => {
    const p = src?.playback() ?? { owed: 0, sent: 0 };
    return [
      { labels: { kind: 'owed' }, value: p.owed },
      { labels: { kind: 'sent' }, value: p.sent },
    ];
  });
  return {
    registry,
    turns,
    turnLatency,
    reconnects,
    sessionsStarted,
    commands,
    unhandledErrors,
    storeWriteFailures,
    refusedTurns,
    bind(s) {
      src = s;
    },
  };
}
