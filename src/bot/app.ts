/**
 * The bot process: the discord.js client, slash-command registration and routing, the bridge
 * from Discord events to the per-guild sessions, the health server and graceful shutdown.
 *
 * MessageContent is a privileged intent. When the Developer Portal has it off, Discord closes the
 * gateway with 4014; the bot then logs in again without it, keeps working for slash commands and
 * voice, and reports text bridging as unavailable (`/status`, `/readyz`).
 */
import { generateDependencyReport } from '@discordjs/voice';
import { Client, Events, GatewayIntentBits, Partials, type Interaction, type Message, type PartialMessage } from 'discord.js';
import type { Config } from '../config.js';
import { commandDefinitions, runAutocomplete, runButton, runCommand } from '../commands/index.js';
import { createLogger, errorInfo, registerSecret, type Logger } from '../log.js';
import { Store } from '../store/store.js';
import { GuildVoice } from '../voice/guild-voice.js';
import { VoxtaChatSession } from '../voxta/chat-session.js';
import { VoxtaEndpoint } from '../voxta/endpoint.js';
import { VoxtaRest } from '../voxta/rest.js';
import { BotCore } from './bot-core.js';
import {
  autocompleteContext,
  buttonContext,
  commandContext,
  guildPort,
  imagesOf,
  incomingMessage,
  incomingWebhookMessage,
  isForeignWebhookMessage,
  isHumanGuildMessage,
  noteGatewaySession,
} from './discord-adapters.js';
import { startHealthServer, type HealthServer } from './health.js';
import { installProcessGuards } from './process-guards.js';
import type { GuildVoiceJoiner } from './ports.js';

const BASE_INTENTS = [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates, GatewayIntentBits.GuildMessages];
const SHUTDOWN_DEADLINE_MS = 9000;
/** How often the Discord↔Voxta message-id map is pruned, and what it keeps. */
const PRUNE_EVERY_MS = 6 * 3600_000;
const LINK_MAX_AGE_MS = 30 * 24 * 3600_000;
const LINKS_PER_GUILD = 5000;

export interface RunningBot {
  core: BotCore;
  client: Client;
  health: HealthServer | undefined;
  shutdown(reason: string): Promise<void>;
}

export async function runBot(config: Config): Promise<RunningBot> {
  registerSecret(config.discord.token);
  registerSecret(config.voxta.apiKey);
  const log = createLogger({ level: config.logLevel });
  // Counted into /metrics once the core exists; logged (and survived) from the start.
  let countUnhandled: ((kind: string) => void) | undefined;
  installProcessGuards(log, (kind) => countUnhandled?.(kind));
  log.debug({ report: generateDependencyReport() }, 'voice dependency report');

  let store: Store;
  try {
    store = Store.open(config.dataDir);
  } catch (err) {
    // One plain line, no stack: usually a DATA_DIR permission problem.
    log.fatal({ err: errorInfo(err) }, 'cannot open the database; check DATA_DIR and its permissions');
    process.exit(1);
  }
  for (const m of store.appliedMigrations) log.info({ migration: m, file: store.path }, 'database migrated');
  const endpoint = VoxtaEndpoint.fromConfig(config.voxta);
  const rest = new VoxtaRest(endpoint);
  const joinVoice: GuildVoiceJoiner = (opts) => GuildVoice.join(opts);

  let client: Client | undefined;
  const core = new BotCore({
    config,
    store,
    rest,
    joinVoice,
    guild: (guildId) => (client ? guildPort(client, guildId) : undefined),
    log,
    createVoxta: (guildId, { voice }) =>
      new VoxtaChatSession({
        endpoint,
        textOnly: !voice,
        // Voxta may ask for the pictures members post (docs/voxta-vision.md).
        ...(config.voxta.vision ? { vision: { sources: ['Screen' as const] } } : {}),
        log,
        logBindings: { guildId },
      }),
  });

  countUnhandled = (kind) => core.metrics.unhandledErrors.inc({ kind });

  const health = await startHealthServer({
    port: config.health.port,
    host: config.health.host,
    log,
    sources: {
      discordReady: () => core.discordReady,
      voxtaReachable: () => core.voxtaReachable(),
      messageContentAvailable: () => core.messageContentAvailable,
      guilds: () => core.sessionStates(),
      metrics: () => core.metrics.registry.render(),
    },
  }).catch((err: unknown) => {
    log.error({ err: errorInfo(err), port: config.health.port }, 'health endpoint could not start (port in use?); going on without it');
    return undefined;
  });

  let accepting = true;
  const pruneTimer = setInterval(() => {
    try {
      const n = store.pruneMessageLinks(LINK_MAX_AGE_MS, LINKS_PER_GUILD);
      if (n) log.debug({ removed: n }, 'pruned old message links');
    } catch (err) {
      log.warn({ err: errorInfo(err) }, 'pruning message links failed');
    }
  }, PRUNE_EVERY_MS);
  pruneTimer.unref();
  try {
    store.pruneMessageLinks(LINK_MAX_AGE_MS, LINKS_PER_GUILD);
  } catch (err) {
    log.warn({ err: errorInfo(err) }, 'pruning message links failed');
  }

  log.info(
    {
      voxta: endpoint.baseUrl.href,
      dataDir: config.dataDir,
      maxChats: config.voxta.maxChats,
      maxVoiceSessions: config.voxta.maxVoiceSessions,
      commands: config.discord.guildId ? `guild ${config.discord.guildId}` : 'global',
    },
    'starting the bot',
  );
  // Say early when Voxta cannot be reached: otherwise the first sign is a failing /start.
  core.voxtaReachable().then(
    (ok) => {
      if (ok) log.info({ voxta: endpoint.baseUrl.href }, 'Voxta answers');
      else log.warn({ voxta: endpoint.baseUrl.href }, 'Voxta does not answer at the moment; /start will fail until it does (run `npm run doctor` to check the set-up)');
    },
    (err: unknown) => log.warn({ err: errorInfo(err) }, 'checking whether Voxta answers failed'),
  );
  /** Runs a Discord event's work; its failure is logged with the event's context, never unhandled. */
  const handle = (what: string, context: Record<string, unknown>, work: Promise<unknown>): void => {
    work.catch((err: unknown) => log.warn({ ...context, err: errorInfo(err, true) }, `${what} failed`));
  };

  // ---- Discord client -----------------------------------------------------------------------

  const attach = (c: Client): void => {
    c.once(Events.ClientReady, (ready) => {
      core.discordReady = true;
      log.info({ user: ready.user.tag, guilds: ready.guilds.cache.size, messageContent: core.messageContentAvailable }, 'logged in to Discord');
      (async () => {
        await registerCommands(ready, config, log);
        await core.resumeAll();
      })().catch((err: unknown) => log.error({ err: errorInfo(err, true) }, 'resuming stored sessions failed'));
    });
    c.on(Events.ShardDisconnect, (ev) => {
      core.discordReady = false;
      log.warn({ code: ev.code }, 'Discord gateway disconnected');
    });
    c.on(Events.ShardResume, () => (core.discordReady = true));
    c.on(Events.ShardReady, () => {
      noteGatewaySession(c);
      core.discordReady = true;
    });
    c.on(Events.Error, (err) => log.warn({ err: errorInfo(err) }, 'Discord client error'));
    c.on(Events.Warn, (msg) => log.warn({ msg }, 'Discord client warning'));

    c.on(Events.InteractionCreate, (interaction: Interaction) => {
      if (!accepting) return;
      handle('handling an interaction', { guildId: interaction.guildId }, routeInteraction(core, interaction, log));
    });
    c.on(Events.MessageCreate, (message: Message) => {
      if (!accepting || !core.messageContentAvailable) return;
      const botId = c.user?.id ?? '';
      // Webhook messages: the bot's own (its characters) never; a proxy bot's repost (PluralKit…)
      // as said by the proxied name; the proxy gate decides (see proxy-gate.ts).
      if (isForeignWebhookMessage(message, c.user?.id, c.application?.id)) {
        core.webhookMessage(message.guildId, incomingWebhookMessage(message, botId));
        return;
      }
      if (!isHumanGuildMessage(message, c.user?.id)) return;
      handle('bridging a message', { guildId: message.guildId }, core.humanMessage(message.guildId, incomingMessage(message, botId)));
    });
    c.on(Events.MessageUpdate, (old, updated: Message | PartialMessage) => {
      if (!accepting || !core.messageContentAvailable) return;
      // Discord resolved an image link after the message was posted: the picture is offered to Voxta.
      if (!old.partial && isHumanGuildMessage(updated, c.user?.id) && old.embeds.length < updated.embeds.length) {
        const before = new Set(imagesOf(old).map((r) => r.url));
        const added = imagesOf(updated).filter((r) => !before.has(r.url) && !updated.attachments.some((a) => a.url === r.url));
        if (added.length) core.messageImagesResolved(updated.guildId, updated.channelId, updated.author.id, updated.member?.displayName ?? updated.author.displayName, added);
      }
      // Link previews and pins also fire updates: only a changed text is an edit.
      if (!old.partial && old.content === updated.content) return;
      if (isForeignWebhookMessage(updated, c.user?.id, c.application?.id)) {
        // A proxied message edited through its proxy bot (only one that was bridged has a link).
        if (!core.isOwnWebhook(updated.webhookId!)) core.messageEdited(updated.guildId, updated.channelId, updated.id, updated.author.username, updated.content, true);
        return;
      }
      if (!isHumanGuildMessage(updated, c.user?.id)) return;
      core.messageEdited(updated.guildId, updated.channelId, updated.id, updated.member?.displayName ?? updated.author.displayName, updated.content);
    });
    c.on(Events.MessageDelete, (message) => {
      if (!accepting || !message.guildId) return;
      core.messageDeleted(message.guildId, message.channelId, message.id);
    });
    c.on(Events.MessageBulkDelete, (messages, channel) => {
      if (!accepting || !('guildId' in channel) || !channel.guildId) return;
      for (const id of messages.keys()) core.messageDeleted(channel.guildId, channel.id, id);
    });
    c.on(Events.VoiceStateUpdate, (before, after) => {
      if (!accepting) return;
      core.voiceStateChanged(after.guild.id, before.channelId ?? undefined, after.channelId ?? undefined, after.id);
    });
    c.on(Events.GuildDelete, (guild) => {
      // `available === false` is an outage, not a removal: keep everything.
      if (!accepting || guild.available === false) return;
      handle('forgetting a guild the bot was removed from', { guildId: guild.id }, core.guildRemoved(guild.id));
    });
    c.on(Events.ChannelDelete, (channel) => {
      if (!accepting || !('guildId' in channel) || !channel.guildId) return;
      handle('handling a deleted channel', { guildId: channel.guildId, channelId: channel.id }, core.channelDeleted(channel.guildId, channel.id));
    });
    c.on(Events.ChannelUpdate, (_old, channel) => {
      // An age-restricted flag may have changed: an explicit chat there may have to stop.
      if (accepting && 'guildId' in channel && channel.guildId) core.channelUpdated(channel.guildId);
    });
    c.on(Events.ThreadDelete, (thread) => {
      if (accepting) handle('handling a deleted thread', { guildId: thread.guildId, channelId: thread.id }, core.channelDeleted(thread.guildId, thread.id));
    });
  };

  const makeClient = (withMessageContent: boolean): Client => {
    const c = new Client({
      intents: withMessageContent ? [...BASE_INTENTS, GatewayIntentBits.MessageContent] : BASE_INTENTS,
      // Edits and deletions of messages from before a restart still arrive (only ids are needed).
      partials: [Partials.Message],
      rest: { api: config.discord.apiUrl },
    });
    attach(c);
    return c;
  };

  client = makeClient(true);
  try {
    await client.login(config.discord.token);
  } catch (err) {
    if (!isDisallowedIntents(err)) {
      log.fatal({ err: errorInfo(err) }, 'could not log in to Discord (check DISCORD_TOKEN and the network)');
      await health?.close();
      store.close();
      process.exit(1);
    }
    log.warn(
      'Discord refused the Message Content intent (close code 4014). Messages in the bound channel cannot be read, so text bridging is OFF; ' +
        'slash commands and voice still work. To enable it: Discord Developer Portal → your application → Bot → Privileged Gateway Intents → turn on "Message Content Intent", then restart the bot.',
    );
    core.messageContentAvailable = false;
    client = makeClient(false);
    await client.login(config.discord.token);
  }

  // ---- shutdown ---------------------------------------------------------------------------

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    if (stopping) return stopping;
    stopping = (async () => {
      log.info({ reason }, 'shutting down: leaving voice, closing Voxta chats (they resume on the next start)');
      accepting = false;
      clearInterval(pruneTimer);
      await core.shutdown();
      core.discordReady = false;
      await client?.destroy().catch((err: unknown) => log.warn({ err: errorInfo(err) }, 'closing the Discord client failed'));
      await health?.close();
      store.close();
      log.info('shut down cleanly');
    })();
    return stopping;
  };

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    const hard = setTimeout(() => {
      log.error('shutdown took too long; exiting anyway');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    hard.unref();
    void shutdown(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: errorInfo(err, true) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  return { core, client, health, shutdown };
}

function isDisallowedIntents(err: unknown): boolean {
  const text = err instanceof Error ? `${err.message} ${String((err as { code?: unknown }).code ?? '')}` : String(err);
  return /disallowed intents|4014/i.test(text);
}

async function routeInteraction(core: BotCore, interaction: Interaction, log: Logger): Promise<void> {
  try {
    if (!interaction.inGuild()) {
      if (interaction.isRepliable()) await interaction.reply({ content: 'Use my commands in a server, not in direct messages.' });
      return;
    }
    if (interaction.isChatInputCommand()) await runCommand(commandContext(core, interaction));
    else if (interaction.isAutocomplete()) await runAutocomplete(autocompleteContext(core, interaction));
    else if (interaction.isButton()) await runButton(buttonContext(core, interaction));
  } catch (err) {
    log.warn({ err: errorInfo(err), guildId: interaction.guildId }, 'handling an interaction failed');
  }
}

/** Bulk-overwrites the commands (idempotent): to one guild when DISCORD_GUILD_ID is set, else global. */
async function registerCommands(client: Client<true>, config: Config, log: Logger): Promise<void> {
  const defs = commandDefinitions();
  try {
    if (config.discord.guildId) {
      await client.application.commands.set(defs, config.discord.guildId);
      log.info({ guildId: config.discord.guildId, commands: defs.length }, 'slash commands registered to the development guild');
    } else {
      await client.application.commands.set(defs);
      log.info({ commands: defs.length }, 'slash commands registered globally (Discord may take a while to show changes)');
    }
  } catch (err) {
    log.error({ err: errorInfo(err) }, 'registering slash commands failed; existing registrations stay in place');
  }
}

