/**
 * Signals, updates and queries of the `bbnTraining` workflow. Clients import these definitions
 * (`@temporalio/workflow`'s `define*` are plain name holders and safe outside the sandbox).
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { RankLost, RunProgress } from './api.ts';

/** Pause at the next epoch boundary (the epoch in flight finishes and is checkpointed). */
export const pauseSignal = defineSignal('pause');
/** Leave the paused state (or cancel a pause not yet reached). */
export const resumeSignal = defineSignal('resume');
/** Clean stop: the epoch in flight is cancelled, and rank 0 writes a final checkpoint. */
export const cancelSignal = defineSignal('cancel');
/**
 * A supervisor lost a rank (its process exited, or it was frozen and has been killed) and is
 * replacing it: the epoch in flight is abandoned at once and restarted from the last checkpoint
 * as a new generation, without waiting for that rank's heartbeat timeout.
 */
export const rankLostSignal = defineSignal<[RankLost]>('rankLost');
/** Request world size W' (validated: integer in [1, maxWorkers]); applied at the next epoch boundary. Returns W'. */
export const scaleUpdate = defineUpdate<number, [number]>('scale');
/** The run's progress (see {@link RunProgress}). */
export const progressQuery = defineQuery<RunProgress>('progress');
