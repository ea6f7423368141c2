/**
 * Ring set-up: serve the downstream neighbour's call and call the upstream neighbour, each side
 * checking the other's settings (hello/accept), retrying with backoff while peers start, within
 * one deadline. On timeout the error lists the neighbours that never connected and the last
 * error seen (FAILURE-LESSONS.md 7).
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { bbn } from '../generated/bbn.js';
import {
  CollectiveConfigError,
  CollectiveError,
  describeRank,
  type ListenAddress,
  RingTimeoutError,
} from './api.ts';
import { DATA_TOKEN_BYTES, type DataListener } from './data-listener.ts';
import { DownstreamEdge, type PeerRef, UpstreamEdge, upstreamChannelOptions } from './edges.ts';
import { dtypeValue } from './frame-codec.ts';
import { FRAME_HEADER_ALLOWANCE, parseHostPort, type RingConfig } from './options.ts';
import { CollectiveServer, EdgeRejection, type RawServerCall } from './peer-server.ts';
import { TcpDataIn, type TcpDataOut } from './tcp-edges.ts';

const TCP = bbn.v1.DataTransport.DATA_TRANSPORT_TCP;
const ON_CALL = bbn.v1.DataTransport.DATA_TRANSPORT_UNSPECIFIED;

/** Both edges of a connected ring member, and what `close()` must release. */
export interface RingEdges {
  readonly upstream: UpstreamEdge;
  readonly downstream: DownstreamEdge;
  /** Removes the ring from its peer server (later hellos for it are refused). */
  readonly unregister: () => void;
  /** The server the ring started itself, to be closed with it; null for a shared server. */
  readonly ownedServer: CollectiveServer | null;
  /** transport 'tcp': the data connection from the upstream neighbour. */
  readonly dataIn: TcpDataIn | null;
  /** transport 'tcp': the data connection to the downstream neighbour. */
  readonly dataOut: TcpDataOut | null;
}

/** Builds the sending end of a data connection (the ring owns its staging and counters). */
export type DataOutFactory = (socket: net.Socket, peer: PeerRef, maxMessage: number) => TcpDataOut;

function transportValue(cfg: RingConfig): number {
  return cfg.transport === 'tcp' ? TCP : ON_CALL;
}

function transportName(value: number): string {
  return value === TCP ? 'tcp' : value === ON_CALL ? 'grpc' : String(value);
}

function accept(cfg: RingConfig): bbn.v1.RingAccept.$Properties {
  return {
    runId: cfg.runId,
    generation: cfg.generation,
    worldSize: cfg.worldSize,
    rank: cfg.rank,
    chunkElements: cfg.chunkElements,
    wireDtype: dtypeValue(cfg.dtype),
    address: cfg.peers[cfg.rank],
    dataTransport: transportValue(cfg),
  };
}

/** Checks the downstream neighbour's hello (the server already matched run, generation, callee). */
function checkHello(cfg: RingConfig, hello: bbn.v1.RingHello): void {
  const expected = (cfg.rank + 1) % cfg.worldSize;
  if (hello.rank !== expected) {
    throw new EdgeRejection(
      grpc.status.INVALID_ARGUMENT,
      `rank ${cfg.rank}: hello from rank ${hello.rank}, but the downstream neighbour is rank ${expected}`,
    );
  }
  const checks: Array<[string, unknown, unknown]> = [
    ['world_size', hello.worldSize, cfg.worldSize],
    ['chunk_elements', hello.chunkElements, cfg.chunkElements],
    ['wire_dtype', hello.wireDtype, dtypeValue(cfg.dtype)],
    ['data_transport', transportName(hello.dataTransport), cfg.transport],
  ];
  for (const [field, got, want] of checks) {
    if (got !== want) {
      throw new EdgeRejection(
        grpc.status.FAILED_PRECONDITION,
        `rank ${cfg.rank}: hello from rank ${hello.rank} has ${field} ${JSON.stringify(got)}, this ring has ${JSON.stringify(want)}`,
      );
    }
  }
}

/** Checks the upstream neighbour's accept. */
function checkAccept(cfg: RingConfig, got: bbn.v1.RingAccept, up: PeerRef): void {
  const want = accept(cfg);
  const checks: Array<[string, unknown, unknown]> = [
    ['run_id', got.runId, want.runId],
    ['generation', got.generation, want.generation],
    ['world_size', got.worldSize, want.worldSize],
    ['rank', got.rank, up.rank],
    ['chunk_elements', got.chunkElements, want.chunkElements],
    ['wire_dtype', got.wireDtype, want.wireDtype],
    ['data_transport', transportName(got.dataTransport), cfg.transport],
  ];
  if (cfg.transport === 'tcp' && (got.dataPort === 0 || got.dataToken.length !== DATA_TOKEN_BYTES)) {
    throw new CollectiveConfigError(
      `rank ${cfg.rank}: ${describeRank(up.rank, up.address)} accepted without a data port and token`,
    );
  }
  for (const [field, value, expected] of checks) {
    if (value !== expected) {
      throw new CollectiveConfigError(
        `rank ${cfg.rank}: ${describeRank(up.rank, up.address)} accepted with ${field} ${JSON.stringify(value)}, this ring has ${JSON.stringify(expected)}`,
      );
    }
  }
}

/** Connects both edges of rank `cfg.rank`, or fails having released everything it took. */
export async function connectRing(
  cfg: RingConfig,
  where: { server?: CollectiveServer; listen?: ListenAddress },
  makeDataOut: DataOutFactory,
): Promise<RingEdges> {
  const ownedServer = where.server
    ? null
    : await CollectiveServer.listen(where.listen ?? parseHostPort(cfg.peers[cfg.rank]), {
        keepaliveMs: cfg.keepaliveMs,
        token: cfg.token,
      });
  const server = where.server ?? ownedServer!;
  const self: PeerRef = { rank: cfg.rank, address: cfg.peers[cfg.rank] };
  const upRank = (cfg.rank + cfg.worldSize - 1) % cfg.worldSize;
  const up: PeerRef = { rank: upRank, address: cfg.peers[upRank] };
  const downRank = (cfg.rank + 1) % cfg.worldSize;
  const maxMessage = cfg.chunkElements * 4 + FRAME_HEADER_ALLOWANCE;

  let upstream: UpstreamEdge | null = null;
  let downstream: DownstreamEdge | null = null;
  let dataIn: TcpDataIn | null = null;
  let dataOut: TcpDataOut | null = null;
  let upstreamAccept: bbn.v1.RingAccept | null = null;
  let onDownstream: (() => void) | null = null;
  let unregister: () => void = () => {};
  let unexpect: () => void = () => {};
  const setup = new AbortController();
  let lastUpstreamError = 'no answer yet';
  let timer: NodeJS.Timeout | undefined;
  try {
    const data: DataListener | null = cfg.transport === 'tcp' ? await server.dataListener() : null;
    unregister = server.register(cfg.runId, cfg.generation, cfg.rank, {
      acceptDownstream: (call: RawServerCall, hello: bbn.v1.RingHello) => {
        if (downstream || setup.signal.aborted) {
          throw new EdgeRejection(
            grpc.status.ALREADY_EXISTS,
            `rank ${cfg.rank}: downstream edge already connected`,
          );
        }
        checkHello(cfg, hello);
        const peer = { rank: hello.rank, address: hello.address || cfg.peers[hello.rank] };
        const ours = accept(cfg);
        if (data) {
          const token = randomBytes(DATA_TOKEN_BYTES);
          unexpect = data.expect(token, (socket) => {
            dataOut = makeDataOut(socket, peer, maxMessage);
            onDownstream?.();
          });
          ours.dataPort = data.port;
          ours.dataToken = token;
        }
        downstream = new DownstreamEdge(call, peer, ours);
        onDownstream?.();
      },
    });
    const upstreamP = UpstreamEdge.connect({
      self,
      peer: up,
      hello: { ...accept(cfg), upstreamRank: up.rank },
      token: cfg.token,
      channelOptions: upstreamChannelOptions(maxMessage, cfg.keepaliveMs),
      validate: (got) => {
        checkAccept(cfg, got, up);
        upstreamAccept = got;
      },
      signal: setup.signal,
      onRetry: (text) => {
        lastUpstreamError = text;
      },
    }).then(async (edge) => {
      upstream = edge;
      const acc = upstreamAccept!;
      if (cfg.transport !== 'tcp') return;
      const host = parseHostPort(up.address).host;
      try {
        dataIn = await TcpDataIn.connect(host, acc.dataPort, acc.dataToken, up, maxMessage);
      } catch (err) {
        throw new CollectiveError(
          `rank ${cfg.rank}: cannot open the data connection to ${describeRank(up.rank, up.address)} at ${host}:${acc.dataPort}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (setup.signal.aborted) (dataIn as TcpDataIn).destroy();
    });
    const downstreamP = new Promise<void>((resolve) => {
      const check = (): void => {
        if (downstream && (cfg.transport !== 'tcp' || dataOut)) resolve();
      };
      onDownstream = check;
      check();
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const missing: string[] = [];
        const ranks: number[] = [];
        if (!upstream || (cfg.transport === 'tcp' && !dataIn)) {
          ranks.push(up.rank);
          missing.push(
            upstream
              ? `${describeRank(up.rank, up.address)} accepted our call but its data port did not answer`
              : `${describeRank(up.rank, up.address)} never accepted our call (last error: ${lastUpstreamError})`,
          );
        }
        if (!downstream || (cfg.transport === 'tcp' && !dataOut)) {
          ranks.push(downRank);
          missing.push(
            downstream
              ? `${describeRank(downRank, cfg.peers[downRank])} called us but never opened its data connection`
              : `${describeRank(downRank, cfg.peers[downRank])} never called us`,
          );
        }
        const text = `rank ${cfg.rank}: ring set-up timed out after ${cfg.connectTimeoutMs} ms: ${missing.join('; ')}`;
        reject(new RingTimeoutError(text, ranks));
      }, cfg.connectTimeoutMs);
    });
    try {
      await Promise.race([Promise.all([upstreamP, downstreamP]), timeout]);
    } catch (err) {
      setup.abort(err);
      await upstreamP.catch(() => {});
      throw err;
    }
    unexpect();
    return {
      upstream: upstream!,
      downstream: downstream!,
      unregister,
      ownedServer,
      dataIn,
      dataOut,
    };
  } catch (err) {
    unregister();
    unexpect();
    (upstream as UpstreamEdge | null)?.destroy();
    (downstream as DownstreamEdge | null)?.destroy();
    (dataIn as TcpDataIn | null)?.destroy();
    (dataOut as TcpDataOut | null)?.destroy();
    await ownedServer?.close();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
