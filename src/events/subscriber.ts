/**
 * The reading side: subscribe to one run's events (validated on receive) and read the `bbn-runs`
 * key-value bucket, so `bbn watch` and `bbn runs` need nothing but NATS.
 */
import type { NatsConnection, Subscription } from 'nats';
import {
  EventValidationError,
  JetStreamUnavailableError,
  parseRunStatus,
  parseTrainingEvent,
  RUNS_BUCKET,
  type RunStatus,
  runWildcard,
  type TrainingEvent,
} from './api.ts';

/** Handlers for {@link subscribeRun}. */
export interface RunHandlers {
  onEvent(event: TrainingEvent, subject: string): void;
  /** A message that failed validation; default: ignored (counted by the caller if it wants). */
  onInvalid?(error: EventValidationError, subject: string): void;
}

/** Subscribes to every event of `runId`; unsubscribe through the returned subscription. */
export function subscribeRun(nc: NatsConnection, runId: string, handlers: RunHandlers): Subscription {
  return nc.subscribe(runWildcard(runId), {
    callback: (err, msg) => {
      if (err) return;
      try {
        handlers.onEvent(parseTrainingEvent(msg.data), msg.subject);
      } catch (e) {
        if (e instanceof EventValidationError) handlers.onInvalid?.(e, msg.subject);
        else throw e;
      }
    },
  });
}

/**
 * Every run status in the `bbn-runs` bucket, newest update first. An empty list when the bucket
 * does not exist yet; entries that fail validation are skipped and reported through `onInvalid`.
 */
export async function listRunStatuses(
  nc: NatsConnection,
  onInvalid?: (key: string, error: EventValidationError) => void,
): Promise<RunStatus[]> {
  const names: string[] = [];
  try {
    const jsm = await nc.jetstreamManager();
    for await (const s of jsm.streams.names()) names.push(s);
  } catch (err) {
    // 503 "no responders": nothing answers the JetStream API on this server.
    if ((err as { code?: string }).code === '503')
      throw new JetStreamUnavailableError(nc.getServer(), { cause: err });
    throw err;
  }
  if (!names.includes(`KV_${RUNS_BUCKET}`)) return [];
  const kv = await nc.jetstream().views.kv(RUNS_BUCKET);
  const out: RunStatus[] = [];
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  for (const key of keys) {
    const entry = await kv.get(key);
    if (entry?.operation !== 'PUT') continue;
    try {
      out.push(parseRunStatus(entry.value));
    } catch (e) {
      if (e instanceof EventValidationError) onInvalid?.(key, e);
      else throw e;
    }
  }
  return out.sort((a, b) => b.updatedAt - a.updatedAt);
}
