/**
 * The peer server: serves `bbn.v1.CollectiveService/Ring` and hands each incoming ring edge to
 * the ring it belongs to, chosen by (run id, generation, callee rank) from the caller's hello.
 *
 * One server outlives many rings (a worker keeps it across generations), and it must survive
 * anything a client sends: every call has an error listener, undecodable or unexpected first
 * messages are refused with a gRPC status, and nothing a call does can throw out of a handler.
 */
import * as grpc from '@grpc/grpc-js';
import { type RunToken, RunTokenVerifier } from '../auth/run-token.ts';
import type { bbn } from '../generated/bbn.js';
import { CollectiveServiceDefinition } from '../generated/bbn-grpc.ts';
import { CollectiveConfigError, CollectiveError, type ListenAddress } from './api.ts';
import { DataListener } from './data-listener.ts';
import { decodeRequest } from './frame-codec.ts';
import { checkKeepalive, DEFAULT_KEEPALIVE_MS, keepaliveOptions } from './keepalive.ts';

/** A server-side Ring call with raw Buffer messages (the ring frames its own bytes). */
export type RawServerCall = grpc.ServerDuplexStream<Buffer, Buffer>;

/** A client-side Ring call with raw Buffer messages. */
export type RawClientCall = grpc.ClientDuplexStream<Buffer, Buffer>;

const identity = (b: Buffer): Buffer => b;

/** The Ring method as generated from the .proto, with identity (de)serialisers for raw frames. */
export const RAW_RING_METHOD = {
  ...CollectiveServiceDefinition.ring,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
} satisfies grpc.MethodDefinition<Buffer, Buffer>;

/** Refusal of an incoming edge, turned into the gRPC status the caller sees. */
export class EdgeRejection extends CollectiveError {
  override name = 'EdgeRejection';
  /** gRPC status code to answer with. */
  readonly code: grpc.status;
  constructor(code: grpc.status, message: string) {
    super(message);
    this.code = code;
  }
}

/** What a registered ring does with an incoming edge whose hello names it. */
export interface EdgeAcceptor {
  /**
   * Checks the hello against the ring and takes over the call (synchronously attaching its
   * listeners), or throws EdgeRejection to refuse it.
   */
  acceptDownstream(call: RawServerCall, hello: bbn.v1.RingHello): void;
}

/** Options of `CollectiveServer.listen`. */
export interface CollectiveServerOptions {
  /**
   * HTTP/2 keepalive ping interval and timeout of every ring edge served here (see keepalive.ts);
   * rings on this server use the same value for their own calls. Default 60 000 ms.
   */
  readonly keepaliveMs?: number;
  /**
   * TCP port of the data listener that rings with `transport: 'tcp'` use, bound on the server's
   * host (`listen`: the bind address; `attach`: the advertised host, which must then be local)
   * when the first such ring registers; default 0 (any free port, sent to peers in the accept).
   */
  readonly dataPort?: number;
  /** The run's token: every incoming edge must carry it (UNAUTHENTICATED otherwise, naming the caller). */
  readonly token?: RunToken;
}

/** Time a caller has to send its hello before the call is refused. */
const HELLO_TIMEOUT_MS = 10_000;
/** Ring requests are small control messages; anything bigger is refused by grpc-js. */
const MAX_REQUEST_BYTES = 64 * 1024;

function formatHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Serves ring edges for any number of rings (runs, generations, ranks). */
export class CollectiveServer {
  /** Registered rings: run id → "generation/rank" → acceptor. */
  private readonly rings = new Map<string, Map<string, { generation: number; acceptor: EdgeAcceptor }>>();
  /** Calls not yet closed, force-closed on `close()`. */
  private readonly calls = new Set<RawServerCall>();
  private closed = false;
  private data: Promise<DataListener> | undefined;
  private readonly dataPort: number;

  private constructor(
    private readonly server: grpc.Server,
    /** Host part of the advertised address. */
    readonly host: string,
    /** Bound port. */
    readonly port: number,
    /** Whether `close()` stops the gRPC server (true when `listen` created it). */
    private readonly owned: boolean,
    /** Keepalive of the edges served here; rings on this server use it for their calls too. */
    readonly keepaliveMs: number,
    /** Checks each incoming edge's run token before its first message is read. */
    private readonly auth: RunTokenVerifier,
    dataPort = 0,
  ) {
    this.dataPort = dataPort;
  }

  /** Starts a gRPC server on `address` (port 0 picks a free port) serving only ring edges. */
  static async listen(
    address: ListenAddress,
    options: CollectiveServerOptions = {},
  ): Promise<CollectiveServer> {
    const keepaliveMs = checkKeepalive(
      'CollectiveServerOptions.keepaliveMs',
      options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
    );
    const server = new grpc.Server({
      ...keepaliveOptions(keepaliveMs),
      'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(
        formatHostPort(address.host, address.port),
        grpc.ServerCredentials.createInsecure(),
        (err, bound) => (err ? reject(err) : resolve(bound)),
      );
    }).catch((err: unknown) => {
      server.forceShutdown();
      throw new CollectiveConfigError(
        `CollectiveServer.listen: cannot bind ${formatHostPort(address.host, address.port)}: ${(err as Error).message}`,
        { cause: err },
      );
    });
    const auth = new RunTokenVerifier(
      options.token,
      `ring peer server ${formatHostPort(address.host, port)}`,
    );
    const self = new CollectiveServer(server, address.host, port, true, keepaliveMs, auth, options.dataPort);
    server.addService({ ring: RAW_RING_METHOD }, { ring: (call: RawServerCall) => self.handle(call) });
    return self;
  }

  /**
   * Adds the ring service to an existing gRPC server (e.g. the worker's), advertised as
   * host:port. The caller owns that server: `close()` then only refuses new edges. The caller
   * built it with some keepalive; `options.keepaliveMs` declares it (build the server with
   * `keepaliveOptions(ms)` from keepalive.ts) so that rings on it ping alike.
   */
  static attach(
    server: grpc.Server,
    advertised: ListenAddress,
    options: CollectiveServerOptions = {},
  ): CollectiveServer {
    const keepaliveMs = checkKeepalive(
      'CollectiveServerOptions.keepaliveMs',
      options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
    );
    const auth = new RunTokenVerifier(
      options.token,
      `ring peer server ${formatHostPort(advertised.host, advertised.port)}`,
    );
    const self = new CollectiveServer(
      server,
      advertised.host,
      advertised.port,
      false,
      keepaliveMs,
      auth,
      options.dataPort,
    );
    server.addService({ ring: RAW_RING_METHOD }, { ring: (call: RawServerCall) => self.handle(call) });
    return self;
  }

  /** "host:port" of this server as peers should dial it. */
  get address(): string {
    return formatHostPort(this.host, this.port);
  }

  /** Registers a ring's acceptor; returns the function that unregisters it. */
  register(runId: string, generation: number, rank: number, acceptor: EdgeAcceptor): () => void {
    if (this.closed) throw new CollectiveError(`CollectiveServer ${this.address} is closed`);
    let byKey = this.rings.get(runId);
    if (!byKey) {
      byKey = new Map();
      this.rings.set(runId, byKey);
    }
    const key = `${generation}/${rank}`;
    if (byKey.has(key)) {
      throw new CollectiveConfigError(
        `CollectiveServer ${this.address}: a ring for run "${runId}" generation ${generation} rank ${rank} is already registered`,
      );
    }
    const entry = { generation, acceptor };
    byKey.set(key, entry);
    return () => {
      if (byKey.get(key) === entry) byKey.delete(key);
      if (byKey.size === 0 && this.rings.get(runId) === byKey) this.rings.delete(runId);
    };
  }

  /** The data listener for raw-TCP rings, started on first use on this server's host. */
  dataListener(): Promise<DataListener> {
    if (this.closed) return Promise.reject(new CollectiveError(`CollectiveServer ${this.address} is closed`));
    this.data ??= DataListener.listen(this.host, this.dataPort);
    return this.data;
  }

  /** Stops serving: refuses new edges, cancels open ones, and stops the server if owned. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rings.clear();
    const data = this.data;
    this.data = undefined;
    await (await data?.catch(() => undefined))?.close();
    for (const call of this.calls) call.destroy();
    this.calls.clear();
    if (!this.owned) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 1_000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  /** Routes one incoming Ring call by its hello. Never throws. */
  private handle(call: RawServerCall): void {
    this.calls.add(call);
    // A broken client must never become an unhandled 'error' event.
    call.on('error', () => {});
    // Authenticated before anything the caller sent is read (every stream, not only the first).
    const refusal = this.auth.check(call.metadata, call.getPeer());
    if (refusal) {
      this.calls.delete(call);
      refuse(call, refusal.code, refusal.details);
      return;
    }
    const forget = (): void => {
      clearTimeout(helloTimer);
      this.calls.delete(call);
    };
    call.once('close', forget);
    call.once('cancelled', forget);
    const helloTimer = setTimeout(() => {
      refuse(call, grpc.status.INVALID_ARGUMENT, `no hello within ${HELLO_TIMEOUT_MS} ms`);
    }, HELLO_TIMEOUT_MS);
    call.once('data', (buf: Buffer) => {
      clearTimeout(helloTimer);
      try {
        this.route(call, buf);
      } catch (err) {
        const rej =
          err instanceof EdgeRejection
            ? err
            : new EdgeRejection(grpc.status.INTERNAL, `ring edge failed: ${(err as Error).message}`);
        refuse(call, rej.code, rej.message);
      }
    });
  }

  private route(call: RawServerCall, buf: Buffer): void {
    if (this.closed) throw new EdgeRejection(grpc.status.UNAVAILABLE, `server ${this.address} is closing`);
    let hello: bbn.v1.RingHello | null | undefined;
    try {
      hello = decodeRequest(buf).hello;
    } catch (err) {
      throw new EdgeRejection(
        grpc.status.INVALID_ARGUMENT,
        `undecodable first message: ${(err as Error).message}`,
      );
    }
    if (!hello) throw new EdgeRejection(grpc.status.INVALID_ARGUMENT, 'first message must be a hello');
    const byKey = this.rings.get(hello.runId);
    const entry = byKey?.get(`${hello.generation}/${hello.upstreamRank}`);
    if (entry) {
      entry.acceptor.acceptDownstream(call, hello);
      return;
    }
    const newest = Math.max(-1, ...[...(byKey?.values() ?? [])].map((e) => e.generation));
    if (newest > hello.generation) {
      throw new EdgeRejection(
        grpc.status.FAILED_PRECONDITION,
        `run "${hello.runId}": generation ${hello.generation} is stale (this server serves generation ${newest})`,
      );
    }
    throw new EdgeRejection(
      grpc.status.UNAVAILABLE,
      `no ring for run "${hello.runId}" generation ${hello.generation} rank ${hello.upstreamRank} on ${this.address} yet`,
    );
  }
}

/** Ends a call with a non-OK status (grpc-js turns an emitted error into the call's status). */
export function refuse(call: RawServerCall, code: grpc.status, details: string): void {
  call.emit('error', { code, details, name: 'EdgeRejection', message: details });
}
