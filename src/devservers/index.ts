/**
 * Local dev servers for the CLI's embedded default and for tests: the Temporal dev server
 * (SQLite persistence) and nats-server (JetStream) on loopback ports, plus the pure decision of
 * where a server comes from. Binaries are installed by `scripts/setup-servers.sh`.
 */
export {
  DevServerError,
  type LocalServer,
  type LocalServerOptions,
  ServerBinaryNotFoundError,
  ServerExitedError,
  type ServerName,
  ServerNotReadyError,
  ServerUnavailableError,
  ServerVersionError,
  type TemporalDevServerOptions,
} from './api.ts';
export {
  type BinaryOrigin,
  bbnCacheDir,
  findServerBinary,
  PROJECT_ROOT,
  type ResolveBinaryOptions,
  type ResolvedBinary,
  resolveServerBinary,
  SERVER_BINARIES,
  type ServerBinarySpec,
} from './binaries.ts';
export {
  defaultDockerSockets,
  type EngineProbe,
  type EngineProbeOptions,
  probeContainerEngine,
} from './engine.ts';
export { freePort, portIsFree } from './launch.ts';
export { NATS_MIN_VERSION, natsServerArgs, startNatsServer } from './nats.ts';
export { type DevServers, type DevServersOptions, startDevServers } from './pair.ts';
export { compareVersions, type WaitReadyOptions, waitForNats, waitForTemporal } from './ready.ts';
export {
  chooseServerSource,
  SERVER_ADDRESS_ENV,
  SERVER_IMAGES,
  type ServerSource,
  type ServerSourceInputs,
} from './source.ts';
export { startTemporalDevServer, TEMPORAL_DB_FILENAME, temporalDevServerArgs } from './temporal.ts';
