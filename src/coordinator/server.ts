/**
 * The coordinator's gRPC server for one run: the executor around the pure membership machine
 * (`decide`/`tick`), the plan book and the checksum board. It validates every request, turns
 * every failure into a gRPC status in one place (`toStatus`), survives anything a client sends,
 * and clears every timer and call on `close()`.
 *
 * Generation 0 in GetEpochPlan/StreamShard means "not a member" (e.g. the workflow asking for a
 * plan); any other generation must be the run's current one (fencing).
 */
import * as grpc from '@grpc/grpc-js';
import type { bbn } from '../generated/bbn.js';
import { CoordinatorServiceDefinition, type CoordinatorServiceHandlers } from '../generated/bbn-grpc.ts';
import {
  type Clock,
  type CoordinatorRun,
  DEFAULT_TIMINGS,
  InvalidRequestError,
  type MembershipTimings,
  PreconditionError,
  RunStoppedError,
  toStatus,
  UnknownRunError,
} from './api.ts';
import { ChecksumBoard } from './checksums.ts';
import {
  type Decision,
  decide,
  initialMembership,
  type MembershipAction,
  type MembershipEvent,
  type MembershipState,
  type MembershipStatus,
  membershipStatus,
} from './membership.ts';
import { type EpochSummary, PlanBook } from './plans.ts';
import { joinResponse, planMessage, writeShards } from './wire.ts';

/** Options of a CoordinatorServer. */
export interface CoordinatorServerOptions {
  /** Time source of every membership decision (tests pass a fake one and call `tick()`). */
  readonly clock: Clock;
  /** Heartbeat and rendezvous timings; defaults in DEFAULT_TIMINGS. */
  readonly timings?: Partial<MembershipTimings>;
  /** Period of the membership timer, ms; 0 disables it. Default: a quarter of the heartbeat timeout. */
  readonly tickIntervalMs?: number;
  /** Observer of membership actions (deaths, formed generations), e.g. for logs. */
  readonly onAction?: (action: MembershipAction) => void;
  /**
   * Observer of the α/lr broadcast: called once per epoch, when its plan is first served (e.g. to
   * mirror it on NATS). Errors it throws are swallowed: telemetry never fails a call.
   */
  readonly onEpochPlan?: (plan: EpochSummary, generation: number) => void;
}

/** Where to bind. */
export interface BindAddress {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
}

type Call<Req, Res> = grpc.ServerUnaryCall<Req, Res>;
type Callback<Res> = grpc.sendUnaryData<Res>;
type JoinReq = bbn.v1.JoinRequest;
type JoinRes = bbn.v1.IJoinResponse;

/** Requests are small control messages; anything bigger is refused by grpc-js. */
const MAX_REQUEST_BYTES = 64 * 1024;
/** Grace for in-flight calls on close before they are cancelled. */
const CLOSE_GRACE_MS = 1_000;

function formatHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

const HEARTBEAT_ACTION = { continue: 1, abort_step: 2, rejoin: 3, stop: 4 } as const;
const WORKER_STATE_FAILED = 9;
const CHECKSUM_STATUS = { pending: 1, match: 2, mismatch: 3 } as const;

/** Serves one run's coordinator API. */
export class CoordinatorServer {
  private server: grpc.Server | null = null;
  /** Membership; replaced (never mutated) by every decision. */
  private membership: MembershipState;
  private readonly plans: PlanBook;
  private readonly checksums = new ChecksumBoard();
  private readonly timings: MembershipTimings;
  /** Join calls held open until their generation forms: worker id → answer. */
  private readonly pendingJoins = new Map<string, { req: JoinReq; answer: Callback<JoinRes> }>();
  /** Open WatchEpochs streams and the first epoch each wants. */
  private readonly watchers = new Map<grpc.ServerWritableStream<unknown, unknown>, number>();
  /** Published plans by epoch (the α/lr broadcast); derived, so losing it on restart is harmless. */
  private readonly published = new Map<number, bbn.v1.IEpochPlan>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly run: CoordinatorRun,
    private readonly options: CoordinatorServerOptions,
  ) {
    if (run.runId === '') throw new InvalidRequestError('CoordinatorRun.runId is empty');
    this.timings = { ...DEFAULT_TIMINGS, ...options.timings };
    this.membership = initialMembership(run.cfg.distributed.workers, this.timings);
    this.plans = new PlanBook(run);
  }

  /** Binds and starts serving; resolves with the "host:port" clients should dial. */
  async start(address: BindAddress): Promise<string> {
    if (this.server || this.closed)
      throw new PreconditionError('CoordinatorServer.start: already started or closed');
    const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES });
    server.addService(CoordinatorServiceDefinition, this.handlers());
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(
        formatHostPort(address.host, address.port),
        grpc.ServerCredentials.createInsecure(),
        (err, bound) => (err ? reject(err) : resolve(bound)),
      );
    }).catch((err: unknown) => {
      server.forceShutdown();
      throw new InvalidRequestError(
        `CoordinatorServer.start: cannot bind ${formatHostPort(address.host, address.port)}: ${(err as Error).message}`,
      );
    });
    this.server = server;
    const every =
      this.options.tickIntervalMs ?? Math.max(10, Math.floor(this.timings.heartbeatTimeoutMs / 4));
    if (every > 0) {
      this.timer = setInterval(() => this.tick(), every);
      this.timer.unref();
    }
    return formatHostPort(address.host, port);
  }

  /** Runs the membership timer's work now (death detection, rendezvous deadline). */
  tick(): void {
    if (!this.closed) this.apply(decide(this.membership, { kind: 'tick' }, this.options.clock.now()));
  }

  /** Every rank's state and the first failure of the current generation. */
  status(): MembershipStatus {
    return membershipStatus(this.membership, this.options.clock.now());
  }

  /** Stops the run: held Joins fail with ABORTED, heartbeats answer STOP, watchers end ABORTED. */
  stop(reason: string): void {
    this.apply(decide(this.membership, { kind: 'stop', reason }, this.options.clock.now()));
    this.endWatchers(new RunStoppedError(`run "${this.run.runId}" stopped: ${reason}`));
  }

  /** Stops serving and clears every timer; in-flight calls get CLOSE_GRACE_MS, then are cancelled. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.stop('coordinator closing');
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, CLOSE_GRACE_MS);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  // ---- executor ---------------------------------------------------------------------------

  private decideNow(event: MembershipEvent): Decision {
    const d = decide(this.membership, event, this.options.clock.now());
    this.membership = d.state;
    return d;
  }

  /** Applies actions that concern held calls; returns the actions for the current call. */
  private apply(d: Decision): readonly MembershipAction[] {
    this.membership = d.state;
    for (const a of d.actions) {
      this.options.onAction?.(a);
      if (a.kind === 'formed') {
        for (const m of a.members) {
          const held = this.pendingJoins.get(m.workerId);
          if (!held) continue;
          this.pendingJoins.delete(m.workerId);
          held.answer(null, joinResponse(this.run, this.timings, a.generation, m.rank, a.members));
        }
      } else if (a.kind === 'rendezvousFailed') {
        for (const id of a.workerIds) {
          const held = this.pendingJoins.get(id);
          if (!held) continue;
          this.pendingJoins.delete(id);
          held.answer(toStatus(a.error));
        }
      }
    }
    return d.actions;
  }

  private checkRun(what: string, runId: string | null | undefined): void {
    if (this.closed) throw new RunStoppedError('coordinator is closing');
    if (!runId) throw new InvalidRequestError(`${what}.run_id is empty`);
    if (runId !== this.run.runId) {
      throw new UnknownRunError(
        `${what}.run_id ("${runId}") is not served here (this coordinator serves "${this.run.runId}")`,
      );
    }
  }

  /** Generation 0 reads as an outsider; any other must be the current generation. */
  private checkGeneration(what: string, generation: number, allowOutsider: boolean): void {
    const current = this.membership.generation;
    if (generation === 0 && allowOutsider) return;
    if (generation !== current || current === 0) {
      throw new PreconditionError(
        `${what}.generation (${generation}) is not the run's current generation (${current}); Join again`,
      );
    }
  }

  private checkRank(what: string, rank: number): void {
    const W = this.membership.worldSize;
    if (rank >= W) throw new InvalidRequestError(`${what}.rank (${rank}) must be < world_size (${W})`);
  }

  /** Publishes `plan` to the watchers (and the plan observer) the first time its epoch is served. */
  private publish(plan: bbn.v1.IEpochPlan, summary: EpochSummary): void {
    const epoch = plan.epoch as number;
    if (this.published.has(epoch)) return;
    this.published.set(epoch, plan);
    for (const [call, from] of this.watchers) if (epoch >= from) call.write({ plan });
    try {
      this.options.onEpochPlan?.(summary, this.membership.generation);
    } catch {
      // An observer's failure must not fail the plan call.
    }
  }

  private endWatchers(err: RunStoppedError): void {
    for (const call of this.watchers.keys()) call.emit('error', toStatus(err));
    this.watchers.clear();
  }

  // ---- handlers ---------------------------------------------------------------------------

  private handlers(): CoordinatorServiceHandlers {
    /** Runs a unary handler body; anything it throws becomes the call's status. */
    const unary =
      <Req, Res>(body: (req: Req, answer: Callback<Res>, call: Call<Req, Res>) => void) =>
      (call: Call<Req, Res>, answer: Callback<Res>) => {
        call.on('error', () => {});
        try {
          body(call.request, answer, call);
        } catch (err) {
          answer(toStatus(err));
        }
      };
    return {
      join: unary((req, answer, call) => this.onJoin(req, answer as Callback<JoinRes>, call)),
      heartbeat: unary((req, answer) => this.onHeartbeat(req, answer)),
      leave: unary((req, answer) => {
        this.checkRun('LeaveRequest', req.runId);
        const actions = this.apply(
          this.decideNow({
            kind: 'leave',
            generation: req.generation,
            rank: req.rank,
            workerId: req.workerId,
            reason: req.reason,
            exitCode: req.exitCode,
          }),
        );
        const rejected = actions.find((a) => a.kind === 'reject');
        if (rejected) answer(toStatus(rejected.error));
        else answer(null, {});
      }),
      getEpochPlan: unary((req, answer) => {
        this.checkRun('GetEpochPlanRequest', req.runId);
        this.checkGeneration('GetEpochPlanRequest', req.generation, true);
        this.plans.checkEpoch('GetEpochPlanRequest.epoch', req.epoch);
        const summary = this.plans.summary(req.epoch, this.membership.worldSize);
        const plan = planMessage(this.run.runId, this.membership.generation, summary);
        this.publish(plan, summary);
        answer(null, { plan });
      }),
      reportChecksum: unary((req, answer) => {
        this.checkRun('ReportChecksumRequest', req.runId);
        this.checkGeneration('ReportChecksumRequest', req.generation, false);
        this.checkRank('ReportChecksumRequest', req.rank);
        this.plans.checkEpoch('ReportChecksumRequest.epoch', req.epoch);
        const r = this.checksums.report({
          generation: req.generation,
          epoch: req.epoch,
          step: req.step,
          rank: req.rank,
          worldSize: this.membership.worldSize,
          checksum: req.checksum,
          algorithm: req.algorithm,
        });
        answer(null, {
          status: CHECKSUM_STATUS[r.verdict],
          mismatchedRanks: [...r.mismatchedRanks],
          reference: r.reference,
          message: r.message,
        });
      }),
      streamShard: (call) => {
        call.on('error', () => {});
        this.onStreamShard(call).catch((err: unknown) => {
          if (!call.cancelled && !call.destroyed) call.emit('error', toStatus(err));
        });
      },
      watchEpochs: (call) => {
        call.on('error', () => {});
        try {
          this.checkRun('WatchEpochsRequest', call.request.runId);
          const from = Math.max(1, call.request.fromEpoch);
          const latest = [...this.published.keys()].filter((e) => e >= from).sort((a, b) => b - a)[0];
          if (latest !== undefined) call.write({ plan: this.published.get(latest) });
          this.watchers.set(call as grpc.ServerWritableStream<unknown, unknown>, from);
          call.on('cancelled', () =>
            this.watchers.delete(call as grpc.ServerWritableStream<unknown, unknown>),
          );
        } catch (err) {
          call.emit('error', toStatus(err));
        }
      },
    };
  }

  private onJoin(req: JoinReq, reply: Callback<JoinRes>, call: Call<JoinReq, JoinRes>): void {
    this.checkRun('JoinRequest', req.runId);
    // A held Join may be answered by a `formed` action of this very decision: answer at most once.
    let answered = false;
    const answer: Callback<JoinRes> = (err, value) => {
      if (answered) return;
      answered = true;
      reply(err, value);
    };
    if (!req.workerId) throw new InvalidRequestError('JoinRequest.worker_id is empty');
    if (!req.address)
      throw new InvalidRequestError(`JoinRequest.address of worker "${req.workerId}" is empty`);
    const workerId = req.workerId;
    // Held before deciding: a Join that completes the rendezvous is answered by the `formed` action.
    const earlier = this.pendingJoins.get(workerId);
    this.pendingJoins.set(workerId, { req, answer });
    const actions = this.apply(
      this.decideNow({
        kind: 'join',
        join: {
          workerId,
          rank: req.rank ?? null,
          worldSize: req.worldSize,
          modelSignature: req.modelSignature,
          configDigest: req.configDigest,
          address: req.address,
          host: req.host,
        },
      }),
    );
    const rejected = actions.find((a) => a.kind === 'reject');
    const waiting = actions.some((a) => a.kind === 'wait');
    if (rejected || !waiting) {
      // Refused, or answered at once (idempotent re-join): restore any earlier held call.
      if (this.pendingJoins.get(workerId)?.answer === answer) {
        if (earlier) this.pendingJoins.set(workerId, earlier);
        else this.pendingJoins.delete(workerId);
      }
      if (rejected) answer(toStatus(rejected.error));
      else {
        const formed = actions.find((a) => a.kind === 'formed');
        const me = formed?.members.find((m) => m.workerId === workerId);
        if (formed && me)
          answer(null, joinResponse(this.run, this.timings, formed.generation, me.rank, formed.members));
      }
      return;
    }
    // The new call supersedes an earlier held one of the same worker.
    if (earlier && earlier.answer !== answer) {
      earlier.answer(
        toStatus(new RunStoppedError(`Join of worker "${workerId}" superseded by a newer Join`)),
      );
    }
    call.on('cancelled', () => {
      if (this.pendingJoins.get(workerId)?.answer !== answer) return;
      this.pendingJoins.delete(workerId);
      this.apply(this.decideNow({ kind: 'joinCancelled', workerId }));
    });
  }

  private onHeartbeat(req: bbn.v1.HeartbeatRequest, answer: Callback<bbn.v1.IHeartbeatResponse>): void {
    this.checkRun('HeartbeatRequest', req.runId);
    const actions = this.apply(
      this.decideNow({
        kind: 'heartbeat',
        generation: req.generation,
        rank: req.rank,
        workerId: req.workerId,
        state: req.state,
        epoch: req.epoch,
        step: req.step,
        failed: req.state === WORKER_STATE_FAILED,
        message: req.message,
      }),
    );
    for (const a of actions) {
      if (a.kind === 'reject') {
        answer(toStatus(a.error));
        return;
      }
      if (a.kind === 'heartbeatReply') {
        answer(null, {
          generation: a.generation,
          action: HEARTBEAT_ACTION[a.verdict],
          deadRanks: [...a.deadRanks],
          message: a.message,
        });
        return;
      }
    }
  }

  private async onStreamShard(
    call: grpc.ServerWritableStream<bbn.v1.StreamShardRequest, bbn.v1.IStreamShardResponse>,
  ): Promise<void> {
    const req = call.request;
    this.checkRun('StreamShardRequest', req.runId);
    this.checkGeneration('StreamShardRequest', req.generation, true);
    this.checkRank('StreamShardRequest', req.rank);
    this.plans.checkEpoch('StreamShardRequest.epoch', req.epoch);
    const rows = this.plans.shards(req.epoch, req.rank, this.membership.worldSize, req.fromStep);
    await writeShards(call, rows, () => this.closed);
  }
}
