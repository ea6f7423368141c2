/**
 * Pure state of a live run view, folded from {@link TrainingEvent}s: one row per ranked source with its
 * step rate, loss, α, lr, allreduce share and the time it was last heard from. No I/O, no clock:
 * the caller passes event times and "now", so tests fold tables of events.
 */
import type { TrainingEvent } from './api.ts';

/** What the view knows of one publishing source. */
export interface WorkerView {
  readonly role: string;
  readonly rank: number | null;
  epoch: number | null;
  step: number | null;
  stepsPerSecond: number | null;
  samplesPerSecond: number | null;
  loss: number | null;
  alpha: number | null;
  lr: number | null;
  allreduceShare: number | null;
  /** Publisher timestamp (ms) of its latest event. */
  lastSeen: number;
  failed: string | null;
  left: boolean;
}

/** The whole view of one run. */
export interface WatchState {
  readonly runId: string;
  /** Keyed by `role/rank`. */
  readonly workers: Map<string, WorkerView>;
  epoch: number | null;
  epochSteps: number | null;
  alpha: number | null;
  lr: number | null;
  lastTop1: number | null;
  lastCheckpoint: string | null;
  /** Set by `run-end`: the view's loop exits once it is. */
  ended: { state: string; reason: string | null } | null;
  events: number;
}

/** An empty view of `runId`. */
export function emptyWatchState(runId: string): WatchState {
  return {
    runId,
    workers: new Map(),
    epoch: null,
    epochSteps: null,
    alpha: null,
    lr: null,
    lastTop1: null,
    lastCheckpoint: null,
    ended: null,
    events: 0,
  };
}

function workerOf(state: WatchState, e: TrainingEvent): WorkerView {
  const key = `${e.source.role}/${e.source.rank ?? '-'}`;
  let w = state.workers.get(key);
  if (!w) {
    w = {
      role: e.source.role,
      rank: e.source.rank,
      epoch: null,
      step: null,
      stepsPerSecond: null,
      samplesPerSecond: null,
      loss: null,
      alpha: null,
      lr: null,
      allreduceShare: null,
      lastSeen: e.timestamp,
      failed: null,
      left: false,
    };
    state.workers.set(key, w);
  }
  w.lastSeen = Math.max(w.lastSeen, e.timestamp);
  return w;
}

/** Folds one event into the state (mutates and returns it). Events of other runs are ignored. */
export function applyEvent(state: WatchState, e: TrainingEvent): WatchState {
  if (e.runId !== state.runId) return state;
  state.events++;
  // Any event of a ranked party proves it alive; unranked ones (coordinator, workflow) get no row.
  if (e.source.rank !== null) workerOf(state, e);
  switch (e.kind) {
    case 'step': {
      const w = workerOf(state, e);
      Object.assign(w, e.metadata);
      return state;
    }
    case 'heartbeat': {
      const w = workerOf(state, e);
      w.epoch = e.metadata.epoch;
      w.step = e.metadata.step;
      return state;
    }
    case 'worker-join':
      workerOf(state, e).left = false;
      return state;
    case 'worker-leave':
      workerOf(state, e).left = true;
      return state;
    case 'worker-failed':
      workerOf(state, e).failed = e.metadata.reason;
      return state;
    case 'alpha':
      state.epoch = e.metadata.epoch;
      state.alpha = e.metadata.alpha;
      state.lr = e.metadata.lr;
      return state;
    case 'epoch-start':
      state.epoch = e.metadata.epoch;
      state.epochSteps = e.metadata.steps;
      return state;
    case 'epoch-end':
      state.lastTop1 = e.metadata.top1;
      return state;
    case 'checkpoint':
      state.lastCheckpoint = e.metadata.uri;
      return state;
    case 'run-end':
      state.ended = { state: e.metadata.state, reason: e.metadata.reason };
      return state;
  }
}
