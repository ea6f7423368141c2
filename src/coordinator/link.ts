/**
 * A rank's side of the coordinator: its main thread (which never computes) sends a heartbeat
 * every second, from process start to exit, with what the rank is doing and where its ring peer
 * server listens. A coordinator that does not answer is retried on the next beat; the outage and
 * the recovery are each said once, not every second.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import type { RunToken } from '../auth/run-token.ts';
import { CoordinatorServiceClient } from '../generated/bbn-grpc.ts';
import { DEFAULT_TIMINGS, type RankBeat } from './api.ts';

/** Options of {@link startHeartbeats}. */
export interface HeartbeatLinkOptions {
  /** The coordinator, host:port. */
  readonly address: string;
  readonly runId: string;
  readonly rank: number;
  /** What the rank is doing now (read at every beat). */
  readonly beat: () => Omit<RankBeat, 'rank' | 'host' | 'pid' | 'incarnation'>;
  /** Lines for people (outage, recovery). */
  readonly say?: (line: string) => void;
  /** Default 1 s. */
  readonly intervalMs?: number;
  /** The run's token, sent with every heartbeat (the coordinator checks it when it has one). */
  readonly token?: RunToken;
}

const STATE = { starting: 1, idle: 3, training: 4, evaluating: 6, stopping: 8 } as const;

/** Starts beating at once; `close()` stops and closes the channel. */
export function startHeartbeats(o: HeartbeatLinkOptions): { close(): void } {
  const client = new CoordinatorServiceClient(o.address, grpc.credentials.createInsecure());
  const interval = o.intervalMs ?? DEFAULT_TIMINGS.heartbeatIntervalMs;
  const host = hostname();
  const incarnation = randomBytes(8).toString('hex');
  const metadata = o.token?.metadata() ?? new grpc.Metadata();
  let down: string | null = null;
  let inFlight = false;
  const send = () => {
    if (inFlight) return; // never pile up beats behind a slow coordinator
    inFlight = true;
    const b = o.beat();
    client.heartbeat(
      {
        runId: o.runId,
        rank: o.rank,
        state: STATE[b.phase],
        epoch: b.epoch,
        step: b.step,
        ringAddress: b.ringAddress,
        host,
        pid: process.pid,
        incarnation,
        progressAgeMs: b.progressAgeMs,
      },
      metadata,
      { deadline: Date.now() + interval },
      (err) => {
        inFlight = false;
        if (err && down === null) {
          down = err.details || err.message;
          o.say?.(
            `rank ${o.rank}: coordinator ${o.address} not answering (${down}); retrying every ${interval / 1000} s`,
          );
        } else if (!err && down !== null) {
          down = null;
          o.say?.(`rank ${o.rank}: coordinator ${o.address} answering again`);
        }
      },
    );
  };
  send();
  const timer = setInterval(send, interval);
  return {
    close: () => {
      clearInterval(timer);
      client.close();
    },
  };
}
