/**
 * A worker's typed client of the coordinator (proto/bbn/v1/coordinator.proto): promises for the
 * unary calls, an async iterator over a shard stream, and every gRPC failure converted to the
 * coordinator's typed errors (`fromStatus`) so messages name the field and the value.
 */
import * as grpc from '@grpc/grpc-js';
import { type CoordinatorError, fromStatus } from '../../coordinator/api.ts';
import type { bbn } from '../../generated/bbn.js';
import { CoordinatorServiceClient } from '../../generated/bbn-grpc.ts';

/** Heartbeat actions as numbers on the wire (proto HeartbeatAction). */
export const HeartbeatAction = { continue: 1, abortStep: 2, rejoin: 3, stop: 4 } as const;
/** Worker states as numbers on the wire (proto WorkerState). */
export const WorkerState = {
  starting: 1,
  joining: 2,
  idle: 3,
  computing: 4,
  allreduce: 5,
  evaluating: 6,
  checkpointing: 7,
  stopping: 8,
  failed: 9,
} as const;
/** Checksum outcomes on the wire (proto ChecksumStatus). */
export const ChecksumStatus = { pending: 1, match: 2, mismatch: 3 } as const;

/** One streamed step of this rank's shard. */
export interface ShardStep {
  readonly epoch: number;
  readonly step: number;
  readonly uniform: Int32Array;
  readonly reversed: Int32Array;
  readonly planDigest: string;
}

type Unary<Req, Res> = (
  req: Req,
  options: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: Res) => void,
) => unknown;

/** The coordinator, as one worker calls it. */
export class CoordinatorClient {
  private readonly client: CoordinatorServiceClient;

  constructor(readonly address: string) {
    this.client = new CoordinatorServiceClient(address, grpc.credentials.createInsecure());
  }

  private call<Req, Res>(method: Unary<Req, Res>, req: Req, timeoutMs: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(this.client, req, { deadline: Date.now() + timeoutMs }, (err, res) =>
        err ? reject(fromStatus(err)) : resolve(res as Res),
      );
    });
  }

  /** Joins the next generation; resolves when the rendezvous completes (bounded by `timeoutMs`). */
  join(req: bbn.v1.IJoinRequest, timeoutMs: number): Promise<bbn.v1.JoinResponse> {
    return this.call(this.client.join as Unary<bbn.v1.IJoinRequest, bbn.v1.JoinResponse>, req, timeoutMs);
  }

  /** One heartbeat. */
  heartbeat(req: bbn.v1.IHeartbeatRequest, timeoutMs: number): Promise<bbn.v1.HeartbeatResponse> {
    return this.call(
      this.client.heartbeat as Unary<bbn.v1.IHeartbeatRequest, bbn.v1.HeartbeatResponse>,
      req,
      timeoutMs,
    );
  }

  /** Announces this rank's exit. */
  leave(req: bbn.v1.ILeaveRequest, timeoutMs: number): Promise<void> {
    return this.call(
      this.client.leave as Unary<bbn.v1.ILeaveRequest, bbn.v1.LeaveResponse>,
      req,
      timeoutMs,
    ).then(() => undefined);
  }

  /** The plan (α, lr, steps) of one epoch. */
  async epochPlan(req: bbn.v1.IGetEpochPlanRequest, timeoutMs: number): Promise<bbn.v1.EpochPlan> {
    const res = await this.call(
      this.client.getEpochPlan as Unary<bbn.v1.IGetEpochPlanRequest, bbn.v1.GetEpochPlanResponse>,
      req,
      timeoutMs,
    );
    return res.plan as bbn.v1.EpochPlan;
  }

  /** Reports this rank's weight checksum after a step. */
  reportChecksum(
    req: bbn.v1.IReportChecksumRequest,
    timeoutMs: number,
  ): Promise<bbn.v1.ReportChecksumResponse> {
    return this.call(
      this.client.reportChecksum as Unary<bbn.v1.IReportChecksumRequest, bbn.v1.ReportChecksumResponse>,
      req,
      timeoutMs,
    );
  }

  /** Opens this rank's shard stream of an epoch; `close()` cancels it if not read to its end. */
  streamShard(req: bbn.v1.IStreamShardRequest): ShardStream {
    return new ShardStream(this.client.streamShard(req));
  }

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }
}

/** Reads a shard stream step by step. */
export class ShardStream {
  private readonly iterator: AsyncIterator<bbn.v1.StreamShardResponse>;
  private ended = false;

  constructor(private readonly call: grpc.ClientReadableStream<bbn.v1.StreamShardResponse>) {
    call.on('error', () => {});
    this.iterator = call[Symbol.asyncIterator]();
  }

  /** The next step's rows; throws a typed coordinator error if the stream failed or ended early. */
  async next(expectStep: number): Promise<ShardStep> {
    let r: IteratorResult<bbn.v1.StreamShardResponse>;
    try {
      r = await this.iterator.next();
    } catch (err) {
      this.ended = true;
      throw fromStatus(err as grpc.ServiceError) as CoordinatorError;
    }
    if (r.done) {
      this.ended = true;
      throw new Error(`shard stream ended before step ${expectStep}`);
    }
    const m = r.value;
    if (m.step !== expectStep) {
      throw new Error(`shard stream sent step ${m.step} where step ${expectStep} was expected`);
    }
    return {
      epoch: m.epoch,
      step: m.step,
      uniform: Int32Array.from(m.uniformIndex),
      reversed: Int32Array.from(m.reversedIndex),
      planDigest: m.planDigest,
    };
  }

  /** Cancels the call unless it ended. */
  close(): void {
    if (!this.ended) this.call.cancel();
    this.ended = true;
  }
}
