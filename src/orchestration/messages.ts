/**
 * Signals, updates and queries of the `bbnTraining` workflow. Clients import these definitions
 * (`@temporalio/workflow`'s `define*` are plain name holders and safe outside the sandbox).
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { RunProgress } from './api.ts';

/** Pause at the next epoch boundary (the epoch in flight finishes and is checkpointed). */
export const pauseSignal = defineSignal('pause');
/** Leave the paused state (or cancel a pause not yet reached). */
export const resumeSignal = defineSignal('resume');
/** Clean stop: the epoch in flight is cancelled, and rank 0 writes a final checkpoint. */
export const cancelSignal = defineSignal('cancel');
/** Request world size W' (validated: integer in [1, maxWorkers]); applied at the next epoch boundary. Returns W'. */
export const scaleUpdate = defineUpdate<number, [number]>('scale');
/** The run's progress (see {@link RunProgress}). */
export const progressQuery = defineQuery<RunProgress>('progress');
