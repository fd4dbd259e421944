/**
 * The health endpoint for containers and monitoring (`HEALTH_PORT`, 0 = off):
 * - `GET /healthz`: the process is alive (200).
 * - `GET /readyz`: 200 when the Discord gateway is ready and Voxta answers, else 503; the JSON
 *   body says which part is missing and each guild's session state.
 * - `GET /metrics`: Prometheus text format.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorInfo, type Logger } from '../log.js';

export interface HealthSources {
  discordReady(): boolean;
  voxtaReachable(): Promise<boolean>;
  messageContentAvailable(): boolean;
  guilds(): Array<{ guildId: string; state: string; voxta: string; voice: boolean }>;
  metrics(): string;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(opts: { port: number; host: string; log: Logger; sources: HealthSources }): Promise<HealthServer | undefined> {
  if (opts.port === 0) return undefined;
  const { sources, log } = opts;
  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      log.warn({ err: errorInfo(err) }, 'health: request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    });
  });
  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        const discord = sources.discordReady();
        const voxta = await sources.voxtaReachable();
        const ready = discord && voxta;
        const body = {
          ready,
          discord: discord ? 'ready' : 'not ready',
          voxta: voxta ? 'reachable' : 'unreachable',
          messageContent: sources.messageContentAvailable(),
          guilds: sources.guilds(),
        };
        res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
        return;
      }
      case '/metrics':
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(sources.metrics());
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /readyz or /metrics\n');
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.warn({ err: errorInfo(err) }, 'health: server error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ host: opts.host, port }, 'health endpoint listening (/healthz, /readyz, /metrics)');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
