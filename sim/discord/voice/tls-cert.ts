/**
 * A throwaway certificate authority and a server certificate for the voice gateway.
 *
 * @discordjs/voice always dials `wss://<endpoint>` with default TLS options, so the bot's process
 * must trust our CA (NODE_EXTRA_CA_CERTS, or tls.setDefaultCACertificates in-process). A separate
 * CA (rather than one self-signed leaf) keeps the trust anchor distinct from the serving key and
 * behaves like a real chain. The leaf carries an IP SAN for the host: the endpoint is an IP, and
 * "localhost" may resolve to ::1 first.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCertificate {
  dir: string;
  caCertPath: string;
  caCertPem: string;
  certPem: string;
  keyPem: string;
  /** Deletes the temp directory. */
  cleanup(): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 20_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Generates a P-256 CA and a leaf for `host` (an IP address or a DNS name), valid for 2 days. */
export async function generateTestCertificate(host = '127.0.0.1'): Promise<TestCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'voxta-discord-voice-tls-'));
  try {
    const san = isIP(host) ? `IP:${host}` : `DNS:${host}`;
    await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
    await openssl(
      ['req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '2', '-subj', '/CN=voxta-discord test voice CA', '-out', 'ca.pem',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      dir,
    );
    await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key'], dir);
    await openssl(['req', '-new', '-key', 'server.key', '-subj', `/CN=${host}`, '-out', 'server.csr'], dir);
    await writeFile(
      join(dir, 'server.ext'),
      `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
    );
    await openssl(
      ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-sha256',
        '-extfile', 'server.ext', '-out', 'server.pem'],
      dir,
    );
    const [caCertPem, certPem, keyPem] = await Promise.all(
      ['ca.pem', 'server.pem', 'server.key'].map((f) => readFile(join(dir, f), 'utf8')),
    ) as [string, string, string];
    // The CA key is no longer needed: nobody can mint more certificates under this CA.
    await rm(join(dir, 'ca.key'), { force: true });
    return {
      dir,
      caCertPath: join(dir, 'ca.pem'),
      caCertPem,
      certPem,
      keyPem,
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
