/**
 * The `bbnTraining` workflow: owns one training run, walks its epochs, survives the crash of any
 * process, and is what pause / resume / cancel / scale / status talk to. It runs on the
 * coordinator's queue, in the process that also serves the run's coordinator.
 *
 * Per epoch: `planEpoch` (the coordinator: global samplers, α and lr), for W > 1 once per
 * generation `formGeneration` (the coordinator's rendezvous: every rank heartbeating, their ring
 * addresses), one `trainEpoch` per rank on that rank's own queue (all started, all awaited; the
 * first failure, or a rank the coordinator or a supervisor reports lost, cancels the others and
 * restarts the epoch from the last checkpoint as a new generation, within a retry budget kept
 * here), then `evaluateAndCheckpoint` on rank 0. Only plan summaries, checkpoint URIs and metrics
 * pass through history. Membership changes (scale) and pauses take effect only at epoch boundaries.
 *
 * Imports only `@temporalio/workflow`, pure core modules and this layer's own types.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import {
  type CarriedState,
  coordinatorTaskQueue,
  type EpochPlanSummary,
  type EpochSummary,
  FAILURE_TYPES,
  type FailureRecord,
  type RankLost,
  type RunProgress,
  type RunState,
  rankTaskQueue,
  type TrainingActivities,
  type TrainingInput,
  type TrainingResult,
  type TrainResult,
} from './api.ts';
import {
  cancelSignal,
  pauseSignal,
  progressQuery,
  rankLostSignal,
  resumeSignal,
  scaleUpdate,
} from './messages.ts';
import {
  asWorkflowFailure,
  isNonRetryable,
  RankFailure,
  restartBackoffMs,
  rootMessage,
  validate,
} from './workflow-rules.ts';

/** Patch: a change of world size starts a new generation. */
const PATCH_MEMBERSHIP_GENERATION = 'membership-generation';
/** Patch: a loss reported after a restart's backoff, before its generation trained, belongs to that restart. */
const PATCH_LATE_LOSS_AFTER_BACKOFF = 'late-loss-after-backoff';

/** A lost rank as the failure log records it. */
function lossFailure(loss: RankLost): Pick<FailureRecord, 'rank' | 'message' | 'cause'> {
  return { rank: loss.rank, message: `rank ${loss.rank} ${loss.detail}`, cause: loss.cause };
}

/** How many epoch summaries the workflow keeps in state (older ones live in metrics.jsonl). */
const KEPT_SUMMARIES = 20;

/** The training workflow (see the module comment). */
export async function bbnTraining(input: TrainingInput): Promise<TrainingResult> {
  const v = validate(input);
  const started = Date.now(); // workflow time: deterministic
  const carried = input.carried;
  let state: RunState = 'preparing';
  let epoch = carried?.nextEpoch ?? 1;
  let generation = carried?.generation ?? 0;
  let restartsUsed = carried?.restartsUsed ?? 0;
  const failures: FailureRecord[] = [...(carried?.failures ?? [])];
  const epochs: EpochSummary[] = [...(carried?.epochs ?? [])];
  let checkpoint = carried?.checkpoint ?? null;
  let workers = carried?.workers ?? input.workers;
  let pendingWorkers: number | null = null;
  let pauseRequested = carried?.paused ?? false;
  let cancelRequested = false;
  let plan: EpochPlanSummary | null = null;
  /** The scope of the epoch in flight; `cancel` cancels it so ranks stop within seconds. */
  let epochScope: CancellationScope | null = null;
  /** Ranks of the epoch in flight that a supervisor reported lost (and already killed). */
  const lost = new Map<number, RankLost>();
  /** The losses that caused the restart in progress (shown in status until the new generation trains). */
  let restartingAfter: RankLost[] = [];
  /** A rank was lost between epochs: the next epoch forms a new generation. */
  let lostBetweenEpochs = false;
  /** A restart's generation has not trained yet (its backoff, a pause or its planning are under way). */
  let restartUntrained = carried?.restartUntrained ?? false;

  setHandler(pauseSignal, () => {
    pauseRequested = true;
  });
  setHandler(resumeSignal, () => {
    pauseRequested = false;
  });
  setHandler(cancelSignal, () => {
    cancelRequested = true;
    epochScope?.cancel();
  });
  /**
   * A report of the loss that caused a restart, arriving after the survivors' failures (their
   * ring broke when the rank died): the failure of that generation is put down to it, as when the
   * report comes first, and while the restart is under way the status names it.
   */
  const causedRestart = (loss: RankLost, lostFrom: number) => {
    // (restartUntrained is set with state 'restarting' and cleared when the generation trains.)
    if (restartUntrained && !restartingAfter.some((l) => l.rank === loss.rank)) {
      restartingAfter = [...restartingAfter, loss];
    }
    let at = failures.length - 1;
    while (at >= 0 && failures[at].generation !== lostFrom) at--;
    const failure = failures[at];
    if (failure && failure.cause === undefined) failures[at] = { ...failure, ...lossFailure(loss) };
  };
  setHandler(rankLostSignal, (loss) => {
    if (loss.rank >= workers) return;
    // Lost from an older generation: that generation already failed and was replaced by one
    // formed from living processes only, so nothing running needs to stop.
    if (loss.generation !== undefined && loss.generation < generation) {
      causedRestart(loss, loss.generation);
      return;
    }
    if (!epochScope) {
      // Between epochs: no work is lost, but its replacement listens elsewhere (a new ring). A
      // restart whose generation has not trained yet forms a new generation anyway.
      const duringRestart =
        state === 'restarting' || (restartUntrained && patched(PATCH_LATE_LOSS_AFTER_BACKOFF));
      if (!duringRestart) lostBetweenEpochs = true;
      else causedRestart(loss, generation - 1);
      return;
    }
    if (lost.has(loss.rank)) return;
    lost.set(loss.rank, loss);
    epochScope.cancel();
  });
  setHandler(
    scaleUpdate,
    (w) => {
      pendingWorkers = w;
      return w;
    },
    {
      validator: (w) => {
        if (v.maxWorkers === 1 && w !== 1) {
          throw new RangeError(
            `scale: run ${input.runId} trains in one process (bbn train without --workers) and cannot scale; ` +
              `stop it (bbn cancel ${input.runId}) and continue it with bbn train --resume ${input.outDir} --workers ${w}`,
          );
        }
        if (!Number.isInteger(w) || w < 1 || w > v.maxWorkers) {
          throw new RangeError(`scale: workers (${w}) must be an integer in [1, ${v.maxWorkers}]`);
        }
      },
    },
  );
  setHandler(
    progressQuery,
    (): RunProgress => ({
      runId: input.runId,
      state,
      epoch,
      totalEpochs: v.totalEpochs,
      steps: plan?.steps ?? 0,
      alpha: plan?.alpha ?? null,
      lr: plan?.lr ?? null,
      lastMetrics: epochs.at(-1) ?? null,
      checkpoint,
      workers,
      pendingWorkers,
      generation,
      restartsUsed,
      failures,
      pauseRequested,
      lost: [...restartingAfter, ...lost.values()],
    }),
  );

  const short = (taskQueue: string) =>
    proxyActivities<TrainingActivities>({
      taskQueue,
      startToCloseTimeout: v.timeouts.shortActivityMs,
      scheduleToStartTimeout: v.timeouts.scheduleToStartMs,
      heartbeatTimeout: v.timeouts.heartbeatMs,
      retry: {
        maximumAttempts: 3,
        initialInterval: 1_000,
        nonRetryableErrorTypes: Object.values(FAILURE_TYPES),
      },
    });
  const coordinator = () => short(coordinatorTaskQueue(input.runId));
  const rank0 = () => short(rankTaskQueue(input.runId, 0));
  const ref = () => ({ runId: input.runId, outDir: input.outDir, config: input.config, generation });

  /** Ring addresses of the current membership (generation, W); gathered again when either changes. */
  let rendezvous: { generation: number; world: number; peers: string[] } | null = null;
  const ringPeers = async (world: number): Promise<string[] | undefined> => {
    if (world === 1) return undefined;
    if (rendezvous?.generation !== generation || rendezvous.world !== world) {
      const peers = await proxyActivities<TrainingActivities>({
        taskQueue: coordinatorTaskQueue(input.runId),
        startToCloseTimeout: v.timeouts.rendezvousMs + 60_000,
        scheduleToStartTimeout: v.timeouts.scheduleToStartMs,
        heartbeatTimeout: v.timeouts.heartbeatMs,
        retry: { maximumAttempts: 1 },
      }).formGeneration({ ...ref(), world, timeoutMs: v.timeouts.rendezvousMs });
      rendezvous = { generation, world, peers };
    }
    return rendezvous.peers;
  };

  /** Runs every rank's `trainEpoch`; the first failure cancels the others and waits for them to stop. */
  const trainAll = async (p: EpochPlanSummary, world: number): Promise<TrainResult[]> => {
    const scope = new CancellationScope();
    epochScope = scope;
    try {
      return await scope.run(async () => {
        const peers = await ringPeers(world);
        const calls = Array.from({ length: world }, (_, rank) =>
          proxyActivities<TrainingActivities>({
            taskQueue: rankTaskQueue(input.runId, rank),
            startToCloseTimeout: v.timeouts.epochMs,
            scheduleToStartTimeout: v.timeouts.scheduleToStartMs,
            heartbeatTimeout: v.timeouts.heartbeatMs,
            // Old attempts must have stopped before a new generation starts (fencing).
            cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            // One rank alone can retry in place only when it has no peers waiting on it.
            retry: {
              maximumAttempts: world === 1 ? 3 : 1,
              initialInterval: 1_000,
              nonRetryableErrorTypes: Object.values(FAILURE_TYPES),
            },
          })
            .trainEpoch({ ...ref(), epoch: p.epoch, rank, worldSize: world, plan: p, peers })
            .catch((err: unknown) => {
              throw new RankFailure(rank, err);
            }),
        );
        try {
          return await Promise.all(calls);
        } catch (err) {
          if (!scope.consideredCancelled) scope.cancel();
          // A rank reported lost was killed by its supervisor: its activity will never acknowledge
          // the cancellation, so only the survivors are waited for (they stop within seconds).
          await Promise.allSettled(calls.filter((_, rank) => !lost.has(rank)));
          throw err;
        }
      });
    } finally {
      epochScope = null;
    }
  };

  const stop = async (): Promise<TrainingResult> => {
    state = 'stopping';
    const uri = await CancellationScope.nonCancellable(() => rank0().checkpointNow({ ...ref(), epoch }));
    checkpoint = uri ?? checkpoint;
    state = 'cancelled';
    return { runId: input.runId, state: 'cancelled', epochs, checkpoint, generation };
  };

  let epochsThisExecution = 0;
  /** The next epoch's plan, requested while the current epoch evaluates (one round trip less per epoch). */
  let prefetched: {
    epoch: number;
    workers: number;
    generation: number;
    plan: Promise<EpochPlanSummary>;
  } | null = null;
  try {
    if (!carried) {
      const prepared = await rank0().prepareRun({ ...ref(), resume: input.resume ?? false });
      epoch = prepared.startEpoch;
      checkpoint = prepared.checkpoint;
    }
    while (epoch <= v.totalEpochs) {
      if (lostBetweenEpochs) {
        lostBetweenEpochs = false;
        generation++;
      }
      if (pendingWorkers !== null) {
        // A new membership is a new generation: old rings and stale requests are fenced off.
        if (pendingWorkers !== workers && patched(PATCH_MEMBERSHIP_GENERATION)) generation++;
        workers = pendingWorkers;
        pendingWorkers = null;
      }
      if (
        epochsThisExecution > 0 &&
        (workflowInfo().continueAsNewSuggested ||
          (input.epochsPerExecution !== undefined && epochsThisExecution >= input.epochsPerExecution))
      ) {
        const next: CarriedState = {
          nextEpoch: epoch,
          generation,
          restartsUsed,
          failures,
          epochs: epochs.slice(-KEPT_SUMMARIES),
          checkpoint,
          workers,
          paused: pauseRequested,
          restartUntrained,
        };
        if (!cancelRequested) await continueAsNew<typeof bbnTraining>({ ...input, carried: next });
      }
      if (pauseRequested && !cancelRequested) {
        state = 'paused';
        await condition(() => !pauseRequested || cancelRequested);
      }
      if (cancelRequested) return await stop();
      try {
        state = 'planning';
        const ahead = prefetched;
        prefetched = null;
        const fresh = () => coordinator().planEpoch({ ...ref(), epoch, workers });
        plan =
          ahead && ahead.epoch === epoch && ahead.workers === workers && ahead.generation === generation
            ? await ahead.plan.catch(fresh)
            : await fresh();
        state = 'training';
        restartingAfter = [];
        restartUntrained = false;
        const results = await trainAll(plan, workers);
        const digests = new Set(results.map((r) => r.paramsDigest));
        if (digests.size > 1) {
          throw ApplicationFailure.nonRetryable(
            `run ${input.runId}: replicas diverged in epoch ${epoch}: the ranks' weight digests differ (${results.map((r) => `rank ${r.rank} ${r.paramsDigest?.slice(0, 12)}`).join(', ')})`,
            FAILURE_TYPES.diverged,
          );
        }
        state = 'evaluating';
        if (epoch < v.totalEpochs) {
          // The plan depends only on (seed, epoch, counts, W): fetch the next one while rank 0 evaluates.
          const next = coordinator().planEpoch({ ...ref(), epoch: epoch + 1, workers });
          next.catch(() => {}); // a failed prefetch is simply not used: the next epoch plans again
          prefetched = { epoch: epoch + 1, workers, generation, plan: next };
        }
        const summary = await rank0().evaluateAndCheckpoint({
          ...ref(),
          epoch,
          train: results[0],
          plan,
        });
        epochs.push(summary);
        if (epochs.length > KEPT_SUMMARIES) epochs.shift();
        checkpoint = summary.checkpoint;
        epoch++;
        epochsThisExecution++;
      } catch (err) {
        if (cancelRequested && (isCancellation(err) || isCancellation((err as RankFailure).cause))) {
          return await stop();
        }
        const first = lost.values().next().value as RankLost | undefined;
        restartingAfter = [...lost.values()];
        lost.clear();
        if (!first && (isCancellation(err) || isNonRetryable(err))) throw err;
        // The first cause: a supervisor's report names the rank that was lost; the survivors'
        // failures (their ring broke because of it) are its consequences.
        failures.push(
          first
            ? { epoch, generation, ...lossFailure(first) }
            : {
                epoch,
                generation,
                rank: err instanceof RankFailure ? err.rank : null,
                message: err instanceof RankFailure ? err.message : rootMessage(err),
              },
        );
        if (restartsUsed >= v.restart.maxRestarts) {
          throw ApplicationFailure.nonRetryable(
            `run ${input.runId}: restart budget (${v.restart.maxRestarts}) exhausted at epoch ${epoch}; last failure: ${failures.at(-1)?.message}`,
            FAILURE_TYPES.budget,
          );
        }
        restartsUsed++;
        generation++;
        state = 'restarting';
        restartUntrained = true;
        await sleep(restartBackoffMs(v.restart, restartsUsed));
      }
    }
    await rank0().finishRun({ ...ref(), seconds: (Date.now() - started) / 1000 });
    state = 'completed';
    return { runId: input.runId, state: 'completed', epochs, checkpoint, generation };
  } catch (err) {
    if (isCancellation(err)) {
      // Workflow cancellation (handle.cancel()): still leave a final checkpoint, then report cancelled.
      await stop();
    } else {
      state = 'failed';
    }
    throw asWorkflowFailure(err);
  }
}
