/**
 * Where a server for tests (or a local run) comes from, decided in pure code: an address given by
 * environment variable, else a container when an engine answers, else the local binary.
 */
import { type ServerName, ServerUnavailableError } from './api.ts';
import { SERVER_BINARIES } from './binaries.ts';

/** The variable holding the address of an already running server (`host:port`, `nats://host:port`). */
export const SERVER_ADDRESS_ENV: Readonly<Record<ServerName, string>> = {
  temporal: 'TEMPORAL_ADDRESS',
  nats: 'NATS_URL',
};

/** Container images, pinned to the same versions the set-up installs as binaries. */
export const SERVER_IMAGES: Readonly<Record<ServerName, string>> = {
  temporal: 'temporalio/temporal:1.9.1',
  nats: 'nats:2.15.1',
};

/** What the decision looks at; gathered by the caller (environment, engine probe, binary resolution). */
export interface ServerSourceInputs {
  readonly server: ServerName;
  /** The value of {@link SERVER_ADDRESS_ENV} for this server, if any. */
  readonly envAddress?: string;
  /** A container engine answered a ping. */
  readonly engineAnswers: boolean;
  /** The resolved local binary, if any. */
  readonly binaryPath?: string;
}

/** The decision: use an address, start a container, start the binary, or explain what is missing. */
export type ServerSource =
  | { readonly kind: 'env'; readonly server: ServerName; readonly address: string; readonly envVar: string }
  | { readonly kind: 'container'; readonly server: ServerName; readonly image: string }
  | { readonly kind: 'local'; readonly server: ServerName; readonly binaryPath: string }
  | { readonly kind: 'unavailable'; readonly server: ServerName; readonly error: ServerUnavailableError };

/** Decides where `inputs.server` comes from. Pure: no I/O, same inputs give the same answer. */
export function chooseServerSource(inputs: ServerSourceInputs): ServerSource {
  const { server } = inputs;
  const envVar = SERVER_ADDRESS_ENV[server];
  const address = inputs.envAddress?.trim();
  if (address) return { kind: 'env', server, address, envVar };
  if (inputs.engineAnswers) return { kind: 'container', server, image: SERVER_IMAGES[server] };
  if (inputs.binaryPath) return { kind: 'local', server, binaryPath: inputs.binaryPath };
  const spec = SERVER_BINARIES[server];
  return {
    kind: 'unavailable',
    server,
    error: new ServerUnavailableError(
      server,
      `no ${server} server: ${envVar} is unset, no container engine answered (DOCKER_HOST or ` +
        `/var/run/docker.sock), and no ${spec.executable} binary was found ($${spec.envVar}, ` +
        `.venv/bin/${spec.executable}, PATH). Set ${envVar} to a running server, start a Docker engine, ` +
        `or ${spec.installHint}`,
    ),
  };
}
