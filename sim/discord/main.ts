/**
 * `npm run sim:discord`: a standalone offline Discord for manual runs. Starts the simulator with
 * one guild (a text and a voice channel, two members), prints the URLs and the bot token, and
 * keeps running until Ctrl-C. Point a bot at it with the printed environment variables.
 *
 *   npm run sim:discord -- [--dave off|v1] [--no-message-content] [--token T]
 */
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { PLURALKIT_USER_ID, startDiscordSim, type DiscordSim, type OptionValue, type SimGuildHandle } from './index.js';

const REPL_HELP = `Commands (members by username, channels by name):
  say <member> <text…>                      the member types in #general
  cmd <member> <name> [sub] [key=value …]   run a slash command (#channel for channel options)
  ac <member> <name> <option> <text>        autocomplete
  join <member> [voice channel]             join voice (default: Voice)
  leave <member>                            leave voice
  speak <member> <file.wav>                 the member speaks a WAV file in the bot's voice channel
  proxy <member> <name> <text…>             the member's message is proxied by PluralKit as <name>
  thread <name>                             start a public thread in #general
  messages                                  the last messages in #general
  commands                                  registered commands
  help
`;

/** A tiny line-based driver so a human can act as the members during a manual run. */
function startRepl(sim: DiscordSim, guild: SimGuildHandle, textName: string, voiceName: string): void {
  const rl = createInterface({ input: process.stdin, terminal: false });
  const print = (s: string) => process.stdout.write(`${s}\n`);
  rl.on('line', (line) => {
    const [verb, ...args] = line.trim().split(/\s+/);
    void (async () => {
      switch (verb) {
        case undefined:
        case '':
          return;
        case 'help':
          print(REPL_HELP);
          return;
        case 'say': {
          const [who, ...words] = args;
          const m = guild.member(who ?? '').say(guild.channel(textName).id, words.join(' '));
          print(`said (${m.id})`);
          return;
        }
        case 'cmd': {
          const [who, ...rest] = args;
          const nameParts = rest.filter((a) => !a.includes('='));
          const options: Record<string, OptionValue> = {};
          for (const kv of rest.filter((a) => a.includes('='))) {
            const [k, ...v] = kv.split('=');
            const value = v.join('=');
            options[k as string] = value.startsWith('#') ? guild.channel(value.slice(1)).id : value === 'true' ? true : value === 'false' ? false : value;
          }
          const h = await guild.member(who ?? '').runCommand(guild.channel(textName).id, nameParts.join(' '), options);
          const final = await h.waitForFinal({ timeoutMs: 15_000 });
          print(`${final.ephemeral ? '(ephemeral) ' : ''}${final.content}${final.embeds.length ? ` [${final.embeds.length} embed(s)]` : ''}`);
          for (const f of final.followUps) print(`  follow-up: ${f.content}`);
          return;
        }
        case 'ac': {
          const [who, name, option, ...text] = args;
          const choices = await guild.member(who ?? '').autocomplete(guild.channel(textName).id, name ?? '', option ?? '', text.join(' '));
          print(choices.map((c) => `${c.name} = ${String(c.value)}`).join('\n') || '(no choices)');
          return;
        }
        case 'join':
          guild.member(args[0] ?? '').joinVoice(guild.channel(args[1] ?? voiceName).id);
          print('joined');
          return;
        case 'speak': {
          const bytes = await readFile(args[1] ?? '');
          await guild.member(args[0] ?? '').speak(bytes);
          print('spoke');
          return;
        }
        case 'leave':
          guild.member(args[0] ?? '').leaveVoice();
          print('left');
          return;
        case 'proxy': {
          const [who, as, ...words] = args;
          // The PluralKit bot joins the guild on first use.
          if (!sim.state.guild(guild.id).members.get(PLURALKIT_USER_ID)?.present) guild.addProxyBot();
          const r = await guild.member(who ?? '').sayProxied(guild.channel(textName).id, words.join(' '), { as: as ?? 'Proxy' });
          print(`proxied (${r.originalId} → ${r.proxiedId})`);
          return;
        }
        case 'thread': {
          const t = guild.channel(textName).addThread(args.join(' ') || 'thread');
          print(`thread ${t.name} (${t.id})`);
          return;
        }
        case 'messages':
          for (const m of sim.messages(guild.channel(textName).id).slice(-10)) {
            const author = m.webhook ? `${m.webhook.username} [webhook]` : sim.state.user(m.authorId).username;
            print(`${author}: ${m.content}${m.history.length ? ` (edited ${m.history.length}×)` : ''}`);
          }
          return;
        case 'commands':
          print([...sim.commands(), ...sim.commands(guild.id)].map((c) => `/${c.name}`).join(' ') || '(none registered yet)');
          return;
        default:
          print(`unknown command "${verb}"; type help`);
      }
    })().catch((err: unknown) => print(`error: ${err instanceof Error ? err.message : String(err)}`));
  });
}

const HELP = `Usage: npm run sim:discord -- [options]

  --dave off|v1            DAVE end-to-end encryption of the voice server (default off)
  --no-message-content     the app has no Message Content intent (content is stripped)
  --token TOKEN            bot token to accept (default: a random one, printed)
  --bot-user-id ID         the bot's user id (default 1300000000000000001)
  --help                   this text
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dave: { type: 'string', default: 'off' },
      'no-message-content': { type: 'boolean', default: false },
      token: { type: 'string' },
      'bot-user-id': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values.dave !== 'off' && values.dave !== 'v1') {
    process.stderr.write(`--dave must be off or v1 (got ${values.dave})\n`);
    process.exit(2);
  }
  const sim = await startDiscordSim({
    dave: values.dave,
    messageContent: !values['no-message-content'],
    ...(values.token ? { botToken: values.token } : {}),
    ...(values['bot-user-id'] ? { botUserId: values['bot-user-id'] } : {}),
  });
  const guild = sim.addGuild({ name: 'Offline Guild' });
  const text = guild.addTextChannel('general');
  const voice = guild.addVoiceChannel('Voice');
  const alice = guild.addMember({ username: 'alice', displayName: 'Alice' });
  const admin = guild.addMember({ username: 'admin', displayName: 'Admin', permissions: 'admin' });

  process.stdout.write(
    [
      'Offline Discord simulator running.',
      `  REST:      ${sim.restUrl}`,
      `  Gateway:   ${sim.gatewayUrl}`,
      `  CDN:       ${sim.cdnUrl}`,
      `  Voice:     ${sim.voice.endpoint} (DAVE ${values.dave})`,
      `  Guild:     ${guild.name} (${guild.id})`,
      `  Channels:  #${text.name} (${text.id}), 🔊 ${voice.name} (${voice.id})`,
      `  Members:   ${alice.username} (${alice.id}), ${admin.username} (${admin.id}, admin)`,
      '',
      'Run the bot against it with:',
      `  DISCORD_TOKEN=${sim.token} DISCORD_API_URL=${sim.restUrl} DISCORD_CDN_URL=${sim.cdnUrl} DISCORD_GUILD_ID=${guild.id} NODE_EXTRA_CA_CERTS=${sim.caCertPath} npm start`,
      '',
      'Type "help" for scenario commands; Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  startRepl(sim, guild, text.name, voice.name);

  const stop = async () => {
    await sim.close();
    process.exit(0);
  };
  const onSignal = (): void => {
    stop().catch((err: unknown) => console.error(err));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

void main().catch((err: unknown) => {
  process.stderr.write(`discord simulator failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
