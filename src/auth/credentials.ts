/**
 * The run's credentials files: what the Helm chart's credentials Secret mounts at
 * `BBN_CREDENTIALS_DIR` (`/etc/bbn/credentials`), read when present and turned into the connection
 * options of Temporal (TLS, mTLS, API key) and NATS (TLS, mTLS, a .creds file, a token, or a user
 * and password). Before this module the Secret was mounted and never read.
 *
 * File names (all optional; a file absent means "not used"):
 *
 * | file | used as |
 * |---|---|
 * | `temporal-ca.crt` | CA of the Temporal frontend's certificate (turns TLS on) |
 * | `temporal-client.crt`, `temporal-client.key` | client certificate and key (mTLS; both or neither) |
 * | `temporal-server-name` | TLS server name to check (SNI), when the address's host is not it |
 * | `temporal-api-key` | API key (Temporal Cloud; turns TLS on) |
 * | `nats-ca.crt` | CA of the NATS server's certificate (turns TLS on) |
 * | `nats-client.crt`, `nats-client.key` | NATS client certificate and key (both or neither) |
 * | `nats.creds` | NATS user credentials (JWT + seed) |
 * | `nats-token` | NATS token |
 * | `nats-user`, `nats-password` | NATS user and password (both or neither) |
 * | `run-token` | the run token of the ring and the coordinator (run-token.ts) |
 *
 * Only paths and file names ever appear in messages; contents are never printed.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Environment variable with the credentials directory (set by the chart when a Secret is mounted). */
export const CREDENTIALS_DIR_ENV = 'BBN_CREDENTIALS_DIR';

/** A credentials file that is unreadable, empty, or half of a pair. */
export class CredentialsError extends Error {
  override name = 'CredentialsError';
  readonly userFacing = true;
}

/** What the credentials directory holds (contents; text files trimmed). */
export interface CredentialsFiles {
  readonly dir: string;
  readonly temporalCa?: Buffer;
  readonly temporalClient?: { readonly crt: Buffer; readonly key: Buffer };
  readonly temporalServerName?: string;
  readonly temporalApiKey?: string;
  readonly natsCa?: string;
  readonly natsClient?: { readonly cert: string; readonly key: string };
  readonly natsCreds?: Uint8Array;
  readonly natsToken?: string;
  readonly natsUser?: { readonly user: string; readonly pass: string };
}

function readOptional(dir: string, name: string): Buffer | undefined {
  const path = join(dir, name);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new CredentialsError(`cannot read credentials file ${path}: ${code ?? (err as Error).message}`);
  }
  if (bytes.toString('utf8').trim() === '') throw new CredentialsError(`credentials file ${path} is empty`);
  return bytes;
}

const text = (b: Buffer | undefined) => b?.toString('utf8').trim();

function pair<T>(
  dir: string,
  a: [string, Buffer | undefined],
  b: [string, Buffer | undefined],
  make: (x: Buffer, y: Buffer) => T,
) {
  if (a[1] && b[1]) return make(a[1], b[1]);
  if (!a[1] && !b[1]) return undefined;
  const [have, missing] = a[1] ? [a[0], b[0]] : [b[0], a[0]];
  throw new CredentialsError(
    `credentials directory ${dir} has ${have} but not ${missing}; give both or neither`,
  );
}

/**
 * Reads the credentials directory (`dir`, default `$BBN_CREDENTIALS_DIR`); undefined when none is
 * configured. A directory that is configured but missing is an error (the Secret did not mount).
 */
export function readCredentials(
  dir: string | undefined = process.env[CREDENTIALS_DIR_ENV],
): CredentialsFiles | undefined {
  if (!dir) return undefined;
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CredentialsError(
      `credentials directory ${dir} (${CREDENTIALS_DIR_ENV}) ${code === 'ENOENT' ? 'does not exist' : `cannot be read: ${code}`}`,
    );
  }
  if (!isDir)
    throw new CredentialsError(`credentials directory ${dir} (${CREDENTIALS_DIR_ENV}) is not a directory`);
  const f = (name: string) => readOptional(dir, name);
  const natsCa = f('nats-ca.crt');
  return {
    dir,
    temporalCa: f('temporal-ca.crt'),
    temporalClient: pair(
      dir,
      ['temporal-client.crt', f('temporal-client.crt')],
      ['temporal-client.key', f('temporal-client.key')],
      (crt, key) => ({ crt, key }),
    ),
    temporalServerName: text(f('temporal-server-name')),
    temporalApiKey: text(f('temporal-api-key')),
    natsCa: natsCa?.toString('utf8'),
    natsClient: pair(
      dir,
      ['nats-client.crt', f('nats-client.crt')],
      ['nats-client.key', f('nats-client.key')],
      (c, k) => ({
        cert: c.toString('utf8'),
        key: k.toString('utf8'),
      }),
    ),
    natsCreds: f('nats.creds'),
    natsToken: text(f('nats-token')),
    natsUser: pair(dir, ['nats-user', f('nats-user')], ['nats-password', f('nats-password')], (u, p) => ({
      user: u.toString('utf8').trim(),
      pass: p.toString('utf8').trim(),
    })),
  };
}

/** TLS settings of a Temporal connection (the SDK's `TLSConfig`, for the client and the worker). */
export interface TemporalTls {
  readonly serverRootCACertificate?: Buffer;
  readonly clientCertPair?: { readonly crt: Buffer; readonly key: Buffer };
  readonly serverNameOverride?: string;
}

/** What to spread into `Connection.connect` / `NativeConnection.connect`: TLS and the API key, when given. */
export interface TemporalConnectionCredentials {
  readonly tls?: TemporalTls;
  readonly apiKey?: string;
}

/** The Temporal connection options of `creds` (default: read from `$BBN_CREDENTIALS_DIR`); `{}` when none. */
export function temporalConnectionOptions(
  creds: CredentialsFiles | undefined = readCredentials(),
): TemporalConnectionCredentials {
  if (!creds) return {};
  const tls: TemporalTls = {
    ...(creds.temporalCa ? { serverRootCACertificate: creds.temporalCa } : {}),
    ...(creds.temporalClient ? { clientCertPair: creds.temporalClient } : {}),
    ...(creds.temporalServerName ? { serverNameOverride: creds.temporalServerName } : {}),
  };
  const useTls = Object.keys(tls).length > 0 || creds.temporalApiKey !== undefined;
  return {
    ...(useTls ? { tls } : {}),
    ...(creds.temporalApiKey ? { apiKey: creds.temporalApiKey } : {}),
  };
}
