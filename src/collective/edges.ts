/**
 * The two ends of a rank's ring edges, as thin wrappers over grpc-js calls with raw frames:
 *
 * - `UpstreamEdge`: the call this rank makes to its upstream neighbour. Data arrives on its
 *   response stream (the direction grpc-js's large client window covers); the request stream
 *   carries only the hello and, if any, an abort.
 * - `DownstreamEdge`: the call the downstream neighbour made to this rank's server. This rank
 *   writes its data frames on the response stream and receives control on the request stream.
 *
 * Each edge reports exactly one end: `graceful` when the peer closed its side in order, or an
 * error when the stream or connection broke. Events that happen before the ring attaches its
 * listener are kept and replayed, and incoming data stays paused until then.
 */

import * as grpc from '@grpc/grpc-js';
import type { RunToken } from '../auth/run-token.ts';
import type { bbn } from '../generated/bbn.js';
import { describeRank, PeerRejectedError } from './api.ts';
import { decodeResponse, encodeRequest, encodeResponse } from './frame-codec.ts';
import { keepaliveOptions } from './keepalive.ts';
import { RAW_RING_METHOD, type RawClientCall, type RawServerCall } from './peer-server.ts';

/** A neighbour: its rank and peer address. */
export interface PeerRef {
  readonly rank: number;
  readonly address: string;
}

/** What a ring does with an edge's events. */
export interface EdgeListener {
  /** One raw message from the peer. */
  message(buf: Buffer): void;
  /**
   * The edge ended: `graceful` when the peer closed in order, else `detail` says how it broke;
   * `oversize` when grpc-js refused a message above the size limit (a protocol violation).
   */
  ended(graceful: boolean, detail: string, oversize: boolean): void;
  /** The downstream peer read enough for more writes (downstream edges only). */
  drain?(): void;
  /** Every byte handed to a zero-copy downstream edge has left the caller's arrays. */
  flushed?(): void;
}

/** Common plumbing: buffers events until a listener is attached, and reports one end. */
export abstract class Edge {
  private listener: EdgeListener | null = null;
  /** Events seen before `attach`, replayed in order. */
  private early: Array<{ buf?: Buffer; end?: { graceful: boolean; detail: string; oversize: boolean } }> = [];
  /** Set once the end has been reported (or the edge was closed locally). */
  protected finished = false;
  /** Resolves when the edge ended (either way) or was destroyed. */
  readonly whenEnded: Promise<void>;
  private markEnded!: () => void;

  constructor(readonly peer: PeerRef) {
    this.whenEnded = new Promise<void>((resolve) => {
      this.markEnded = resolve;
    });
  }

  /** Starts delivering events to `listener`; replays earlier ones. */
  attach(listener: EdgeListener): void {
    this.listener = listener;
    const early = this.early;
    this.early = [];
    for (const e of early) {
      if (e.buf) listener.message(e.buf);
      else if (e.end) listener.ended(e.end.graceful, e.end.detail, e.end.oversize);
    }
    // A replayed message may have made the listener hold the edge; it resumes it itself.
    if (!this.pausedByListener) this.doResume();
  }

  protected deliver(buf: Buffer): void {
    if (this.listener) this.listener.message(buf);
    else {
      this.early.push({ buf });
      this.doPause();
    }
  }

  protected end(graceful: boolean, detail: string, oversize = false): void {
    if (this.finished) return;
    this.finished = true;
    this.markEnded();
    if (this.listener) this.listener.ended(graceful, detail, oversize);
    else this.early.push({ end: { graceful, detail, oversize } });
  }

  protected markEndedNow(): void {
    this.markEnded();
  }

  protected notifyDrain(): void {
    this.listener?.drain?.();
  }

  protected notifyFlushed(): void {
    this.listener?.flushed?.();
  }

  /** Whether a listener is attached (events are delivered, not kept). */
  protected get attached(): boolean {
    return this.listener !== null;
  }

  /** Whether events seen before `attach` are kept, waiting for it. */
  protected get holdsEarly(): boolean {
    return this.early.length > 0;
  }

  private pausedByListener = false;

  /** Stops reading from the peer (flow control then stops the peer's writes). */
  pause(): void {
    this.pausedByListener = true;
    this.doPause();
  }

  /** Resumes reading. */
  resume(): void {
    this.pausedByListener = false;
    this.doResume();
  }

  protected abstract doPause(): void;
  protected abstract doResume(): void;
}

/** Channel options for the call to the upstream neighbour. */
export function upstreamChannelOptions(maxFrameBytes: number, keepaliveMs: number): grpc.ChannelOptions {
  return {
    // The large receive window is what makes server-to-client data fast (PERF-FACTS.md).
    'grpc-node.flow_control_window': 16 * 1024 * 1024,
    'grpc.max_receive_message_length': maxFrameBytes,
    'grpc.max_send_message_length': 64 * 1024,
    ...keepaliveOptions(keepaliveMs),
    // Rings of different generations must not share a (possibly broken) connection.
    'grpc.use_local_subchannel_pool': 1,
    'grpc.enable_retries': 0,
    'grpc.initial_reconnect_backoff_ms': 50,
    'grpc.max_reconnect_backoff_ms': 500,
  };
}

/** Options of `UpstreamEdge.connect`. */
export interface UpstreamConnectOptions {
  readonly self: PeerRef;
  readonly peer: PeerRef;
  readonly hello: bbn.v1.RingHello.$Properties;
  readonly channelOptions: grpc.ChannelOptions;
  /** Checks the peer's accept; throws to refuse it. */
  readonly validate: (accept: bbn.v1.RingAccept) => void;
  /** Stops retrying when aborted (the ring's set-up timed out or failed elsewhere). */
  readonly signal: AbortSignal;
  /** Told the reason of each attempt that will be retried. */
  readonly onRetry: (reason: string) => void;
  /** The run's token, sent as call metadata (the peer server refuses a call without it). */
  readonly token?: RunToken;
}

/** This rank's call to its upstream neighbour. */
export class UpstreamEdge extends Edge {
  private constructor(
    private readonly client: grpc.Client,
    private readonly call: RawClientCall,
    peer: PeerRef,
  ) {
    super(peer);
    call.on('data', (buf: Buffer) => this.deliver(buf));
    call.on('error', (err: grpc.ServiceError) => {
      const detail = `stream failed: ${grpc.status[err.code] ?? err.code} ${err.details || err.message}`;
      this.end(false, detail, err.code === grpc.status.RESOURCE_EXHAUSTED);
    });
    // 'end' comes after every buffered message was read; an error status comes first as 'error'.
    call.on('end', () => this.end(true, 'closed its ring edge'));
    call.pause();
  }

  /**
   * Calls the upstream neighbour until it accepts, retrying with backoff while it is not up
   * (UNAVAILABLE) until `signal` aborts. Fails fast on any other refusal.
   */
  static async connect(opts: UpstreamConnectOptions): Promise<UpstreamEdge> {
    const client = new grpc.Client(opts.peer.address, grpc.credentials.createInsecure(), opts.channelOptions);
    let delay = 25;
    try {
      for (;;) {
        if (opts.signal.aborted) throw opts.signal.reason;
        const outcome = await attempt(client, opts);
        if (outcome.call) return new UpstreamEdge(client, outcome.call, opts.peer);
        if (outcome.fatal) throw outcome.fatal;
        opts.onRetry(outcome.retry ?? 'unknown');
        await sleep(delay, opts.signal);
        delay = Math.min(delay * 2, 500);
      }
    } catch (err) {
      client.close();
      throw err;
    }
  }

  protected override doPause(): void {
    this.call.pause();
  }

  protected override doResume(): void {
    this.call.resume();
  }

  /** Sends an abort upstream (best effort). */
  sendAbort(abort: bbn.v1.RingAbort.$Properties): void {
    if (this.finished || !this.call.writable) return;
    this.call.write(encodeRequest({ abort }));
  }

  /** Half-closes our side in order; the peer sees a graceful end. */
  endGracefully(): void {
    if (this.call.writable) this.call.end();
  }

  /** Cancels the call and closes the channel. */
  destroy(): void {
    this.finished = true;
    this.markEndedNow();
    this.call.cancel();
    this.client.close();
  }
}

/** One call attempt: the accepted call, a reason to retry, or a fatal error. */
function attempt(
  client: grpc.Client,
  opts: UpstreamConnectOptions,
): Promise<{ call?: RawClientCall; retry?: string; fatal?: unknown }> {
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(
      RAW_RING_METHOD.path,
      RAW_RING_METHOD.requestSerialize,
      RAW_RING_METHOD.responseDeserialize,
      opts.token?.metadata() ?? new grpc.Metadata(),
    ) as RawClientCall;
    const peerName = describeRank(opts.peer.rank, opts.peer.address);
    const cleanup = (): void => {
      call.removeListener('data', onData);
      call.removeListener('error', onError);
      opts.signal.removeEventListener('abort', onAbort);
    };
    const fail = (result: { retry?: string; fatal?: unknown }): void => {
      cleanup();
      call.on('error', () => {});
      call.cancel();
      resolve(result);
    };
    const onAbort = (): void => fail({ fatal: opts.signal.reason });
    const onError = (err: grpc.ServiceError): void => {
      const text = `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`;
      if (err.code === grpc.status.UNAVAILABLE) fail({ retry: text });
      else {
        fail({
          fatal: new PeerRejectedError(
            `rank ${opts.self.rank}: ${peerName} refused the ring call (${text})`,
            opts.peer.rank,
            err.code,
          ),
        });
      }
    };
    const onData = (buf: Buffer): void => {
      call.pause();
      try {
        const msg = decodeResponse(buf);
        if (msg.kind !== 'accept') throw new Error(`first response is a ${msg.kind}, expected an accept`);
        opts.validate(msg.accept);
      } catch (err) {
        fail({ fatal: err });
        return;
      }
      cleanup();
      resolve({ call });
    };
    call.on('data', onData);
    call.on('error', onError);
    opts.signal.addEventListener('abort', onAbort);
    call.write(encodeRequest({ hello: opts.hello }));
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** The call our downstream neighbour made to us, after we accepted its hello. */
export class DownstreamEdge extends Edge {
  /** Set when the peer half-closed its request stream. */
  private halfClosed = false;

  constructor(
    private readonly call: RawServerCall,
    peer: PeerRef,
    accept: bbn.v1.RingAccept.$Properties,
  ) {
    super(peer);
    call.write(encodeResponse({ accept }));
    call.on('data', (buf: Buffer) => this.deliver(buf));
    call.on('end', () => {
      this.halfClosed = true;
      this.end(true, 'closed its ring edge');
    });
    call.on('cancelled', () => this.end(false, 'cancelled the stream (connection lost)'));
    call.on('close', () => {
      if (!this.halfClosed) this.end(false, 'stream closed (connection lost)');
    });
    call.on('error', (err: Error) => this.end(false, `stream failed: ${err.message}`));
    call.on('drain', () => this.notifyDrain());
    call.pause();
  }

  protected override doPause(): void {
    this.call.pause();
  }

  protected override doResume(): void {
    this.call.resume();
  }

  /**
   * Writes one raw frame; false means wait for `drain` before writing more. `written` runs once
   * grpc-js has copied the frame (or failed to), after which the buffer may be reused.
   */
  write(frame: Buffer, written?: () => void): boolean {
    return this.call.write(frame, written);
  }

  /** Whether frames can still be written. */
  get writable(): boolean {
    return !this.finished && this.call.writable;
  }

  /** Sends an abort downstream (best effort; it queues behind frames already written). */
  sendAbort(abort: bbn.v1.RingAbort.$Properties): void {
    if (!this.writable) return;
    this.call.write(encodeResponse({ abort }));
  }

  /** Ends the response stream in order (status OK after every queued frame). */
  endGracefully(): void {
    if (this.call.writable) this.call.end();
  }

  /** Drops the call at once. */
  destroy(): void {
    this.finished = true;
    this.markEndedNow();
    this.call.destroy();
  }
}

/**
 * Ends `edges` in order (so neighbours see a close, not a crash), waits up to `graceMs` for their
 * ends, then destroys them.
 */
export async function closeInOrder(
  edges: ReadonlyArray<{ endGracefully(): void; destroy(): void; readonly whenEnded: Promise<void> } | null>,
  graceMs: number,
): Promise<void> {
  const open = edges.filter((e) => e !== null);
  for (const e of open) e.endGracefully();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(open.map((e) => e.whenEnded)),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    }),
  ]);
  clearTimeout(timer);
  for (const e of open) e.destroy();
}
