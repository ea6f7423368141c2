/**
 * The one way this project connects to a Temporal server: with the credentials Secret's TLS and
 * API key when the server is a given one (the embedded dev server needs none), a bounded wait, and
 * one clear line naming the address (and the TLS files in use) when it does not answer. Both SDK
 * connections go through here: the client's (`Connection`, gRPC from JavaScript) and the worker's
 * (`NativeConnection`, the Rust core).
 */
import type { Connection } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { readCredentials, temporalConnectionOptions } from '../auth/credentials.ts';

/** A Temporal server that does not answer (or refuses the TLS handshake): one line for the user, exit 2. */
export class TemporalUnreachableError extends Error {
  override name = 'TemporalUnreachableError';
  readonly userFacing = true;
}

/** Options of {@link connectTemporal}. */
export interface ConnectOptions {
  /** The embedded dev server: plain, no credentials. */
  readonly local?: boolean;
  /** How long to wait for the server (default 10 s). */
  readonly timeoutMs?: number;
  /** Appended to the message when the server does not answer (what the user can do). */
  readonly hint?: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** The credentials the connection uses, as the message names them (file names, never contents). */
function tlsNote(local: boolean | undefined): string {
  if (local) return '';
  const creds = readCredentials();
  const files = [
    creds?.temporalCa && 'temporal-ca.crt',
    creds?.temporalClient && 'temporal-client.crt/.key',
    creds?.temporalServerName && 'temporal-server-name',
    creds?.temporalApiKey && 'temporal-api-key',
  ].filter(Boolean);
  return creds && files.length > 0 ? `, with TLS from ${creds.dir} (${files.join(', ')})` : '';
}

function unreachable(address: string, o: ConnectOptions, err: unknown): TemporalUnreachableError {
  const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  return new TemporalUnreachableError(
    `no Temporal server answers at ${address}${tlsNote(o.local)} (${reason})${o.hint ? `; ${o.hint}` : ''}`,
  );
}

/** A client connection to `address`; a server that does not answer is a {@link TemporalUnreachableError}. */
export async function connectTemporal(address: string, o: ConnectOptions = {}): Promise<Connection> {
  const { Connection } = await import('@temporalio/client');
  return Connection.connect({
    address,
    connectTimeout: o.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(o.local ? {} : temporalConnectionOptions()),
  }).catch((err: unknown) => {
    throw unreachable(address, o, err);
  });
}

/** A worker connection to `address` (the same credentials and message as {@link connectTemporal}). */
export async function connectTemporalWorker(
  address: string,
  o: ConnectOptions = {},
): Promise<NativeConnection> {
  const { NativeConnection } = await import('@temporalio/worker');
  return NativeConnection.connect({ address, ...(o.local ? {} : temporalConnectionOptions()) }).catch(
    (err: unknown) => {
      throw unreachable(address, o, err);
    },
  );
}
