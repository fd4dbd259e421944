/**
 * Production entry point (`npm start`): load the configuration, then run the bot.
 * A bad configuration prints one line naming the variable and exits 1, never a stack trace.
 */
import 'dotenv/config';
import { ConfigError, loadConfig } from './config.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const { runBot } = await import('./bot/app.js');
  await runBot(config);
}

main().catch((err: unknown) => {
  // Nothing is running yet that could report it: say it and exit.
  console.error(err);
  process.exit(1);
});
