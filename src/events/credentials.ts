/**
 * NATS connection options from the run's credentials files (src/auth/credentials.ts): TLS with
 * the server's CA and an optional client certificate, and one way to authenticate (a `.creds`
 * file, a token, or a user and password). Every NATS connection of the project (the publisher,
 * `bbn watch`, `bbn runs`) spreads these into `connect()`; the commands connect through
 * {@link connectNats}, which names the server (and the TLS files) in one line when it does not answer.
 */
import { type ConnectionOptions, connect, credsAuthenticator, type NatsConnection } from 'nats';
import { CredentialsError, type CredentialsFiles, readCredentials } from '../auth/credentials.ts';

/** The NATS options of `creds` (default: read from `$BBN_CREDENTIALS_DIR`); `{}` when none. */
export function natsConnectionOptions(
  creds: CredentialsFiles | undefined = readCredentials(),
): Pick<ConnectionOptions, 'tls' | 'authenticator' | 'token' | 'user' | 'pass'> {
  if (!creds) return {};
  const ways = [
    creds.natsCreds && 'nats.creds',
    creds.natsToken && 'nats-token',
    creds.natsUser && 'nats-user/nats-password',
  ].filter((w): w is string => typeof w === 'string');
  if (ways.length > 1) {
    throw new CredentialsError(
      `credentials directory ${creds.dir} has ${ways.join(' and ')}: give one way to authenticate to NATS`,
    );
  }
  const tls =
    creds.natsCa || creds.natsClient
      ? {
          ...(creds.natsCa ? { ca: creds.natsCa } : {}),
          ...(creds.natsClient ? { cert: creds.natsClient.cert, key: creds.natsClient.key } : {}),
        }
      : undefined;
  return {
    ...(tls ? { tls } : {}),
    ...(creds.natsCreds ? { authenticator: credsAuthenticator(creds.natsCreds) } : {}),
    ...(creds.natsToken ? { token: creds.natsToken } : {}),
    ...(creds.natsUser ? { user: creds.natsUser.user, pass: creds.natsUser.pass } : {}),
  };
}

/** A NATS server a command cannot reach (or that refuses its TLS or credentials): one line, exit 2. */
export class NatsUnreachableError extends Error {
  override name = 'NatsUnreachableError';
  readonly userFacing = true;
}

/** How long a command waits for the NATS server. */
const COMMAND_CONNECT_TIMEOUT_MS = 5_000;

/** A command's connection to `servers`, with the credentials files' options; one clear line when it fails. */
export async function connectNats(
  servers: string,
  options: Omit<ConnectionOptions, 'servers'> = {},
): Promise<NatsConnection> {
  const creds = readCredentials();
  try {
    return await connect({
      servers,
      timeout: COMMAND_CONNECT_TIMEOUT_MS,
      ...options,
      ...natsConnectionOptions(creds),
    });
  } catch (err) {
    if (err instanceof CredentialsError) throw err;
    const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    const tls = creds?.natsCa || creds?.natsClient ? `, with TLS from ${creds.dir}` : '';
    throw new NatsUnreachableError(`no NATS server answers at ${servers}${tls} (${reason})`);
  }
}
