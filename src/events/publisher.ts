/**
 * A best-effort event publisher for the training path. `publish()` only appends to a fixed-size
 * ring queue (O(1), never awaits, never throws); a timer drains the queue into NATS while the
 * connection is up. When NATS is down or slow the queue fills and the OLDEST events are dropped
 * and counted, so a watcher sees the freshest state once NATS is back. nats.js reconnects forever.
 */

import { connect, Events, type KV, type NatsConnection } from 'nats';
import {
  encodeTrainingEvent,
  RUNS_BUCKET,
  type RunStatus,
  runStatusSchema,
  subjectOf,
  type TrainingEvent,
} from './api.ts';
import { natsConnectionOptions } from './credentials.ts';

/** Publisher options; every field but `servers` has a working default. */
export interface PublisherOptions {
  /** NATS URL(s), e.g. `nats://127.0.0.1:4222`. */
  servers: string | string[];
  /** Client name shown by the server. */
  name?: string;
  /** Queue capacity in events (default 1024). */
  queueSize?: number;
  /** Drain period (ms, default 50). */
  flushIntervalMs?: number;
  /** Minimum gap between two `step` events of one source (ms, default 500). */
  stepIntervalMs?: number;
  /** Pause between reconnect attempts (ms, default 250). */
  reconnectTimeWaitMs?: number;
  /** Clock for step throttling (ms); default `Date.now`. */
  now?: () => number;
}

/** Counters a caller may log or export. */
export interface PublisherStats {
  readonly connected: boolean;
  readonly queued: number;
  readonly published: number;
  /** Events dropped because the queue was full or a send failed. */
  readonly dropped: number;
  /** `step` events skipped by the per-source throttle. */
  readonly throttled: number;
  readonly statusWrites: number;
  readonly statusFailures: number;
  readonly lastError: string | null;
}

/** The surface the trainer, worker and coordinator use; a no-op implementation exists for runs without NATS. */
export interface EventSink {
  /** Queues an event; returns false when it was throttled. Never throws, never blocks. */
  publish(event: TrainingEvent): boolean;
  /** Records the run's latest status for the `bbn-runs` bucket (coalesced: latest wins). Never throws. */
  setStatus(status: RunStatus): void;
  stats(): PublisherStats;
  close(): Promise<void>;
}

/** A sink that drops everything: runs without `--nats`. */
export class NullEventSink implements EventSink {
  publish(): boolean {
    return true;
  }
  setStatus(): void {}
  stats(): PublisherStats {
    return {
      connected: false,
      queued: 0,
      published: 0,
      dropped: 0,
      throttled: 0,
      statusWrites: 0,
      statusFailures: 0,
      lastError: null,
    };
  }
  async close(): Promise<void> {}
}

/** NATS-backed {@link EventSink}. Construct with {@link EventPublisher.start}. */
/** How long a closing publisher waits for the NATS connection to close after the flush. */
const CLOSE_GRACE_MS = 500;

export class EventPublisher implements EventSink {
  /** Ring buffer of pending events; `head` is the oldest, `size` how many are live. */
  private readonly ring: (TrainingEvent | undefined)[];
  private head = 0;
  private size = 0;
  /** Latest status per run not yet written to KV. */
  private readonly pendingStatus = new Map<string, RunStatus>();
  /** Last accepted `step` time per `runId/role/rank`. */
  private readonly lastStep = new Map<string, number>();
  private nc: NatsConnection | undefined;
  private kv: KV | undefined;
  /** True between a connect/reconnect and the next disconnect: only then is publishing attempted. */
  private connected = false;
  /** One KV write at a time, so a slow server never piles up promises. */
  private statusInFlight = false;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  private readonly connecting: Promise<void>;
  private counters = { published: 0, dropped: 0, throttled: 0, statusWrites: 0, statusFailures: 0 };
  private lastError: string | null = null;
  private readonly now: () => number;
  private readonly stepIntervalMs: number;

  private constructor(private readonly opts: PublisherOptions) {
    const queueSize = opts.queueSize ?? 1024;
    if (!Number.isInteger(queueSize) || queueSize < 1) {
      throw new RangeError(`PublisherOptions.queueSize (${queueSize}) must be an integer >= 1`);
    }
    this.ring = new Array(queueSize);
    this.now = opts.now ?? Date.now;
    this.stepIntervalMs = opts.stepIntervalMs ?? 500;
    this.timer = setInterval(() => this.tick(), opts.flushIntervalMs ?? 50);
    this.timer.unref(); // a publisher never keeps a finished process alive
    this.connecting = this.connectInBackground();
  }

  /** Starts connecting in the background and returns at once; events queue until connected. */
  static start(opts: PublisherOptions): EventPublisher {
    return new EventPublisher(opts);
  }

  /** Resolves once the first connection is up, or once the publisher is closed before that. */
  async ready(): Promise<void> {
    await this.connecting;
  }

  /**
   * First connection: our own retry loop (unref'd timers), so `close()` can stop it and a run
   * that never reaches NATS still exits. After that, nats.js reconnects forever.
   */
  private async connectInBackground(): Promise<void> {
    const wait = this.opts.reconnectTimeWaitMs ?? 250;
    while (!this.closed) {
      try {
        const nc = await connect({
          servers: this.opts.servers,
          name: this.opts.name ?? 'bbn-publisher',
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: wait,
          ...natsConnectionOptions(),
        });
        if (this.closed) {
          await nc.close();
          return;
        }
        this.nc = nc;
        this.connected = true;
        void this.followStatus(nc);
        return;
      } catch (err) {
        this.lastError = (err as Error).message;
        await new Promise((r) => setTimeout(r, wait).unref());
      }
    }
  }

  private async followStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === Events.Disconnect) this.connected = false;
      else if (s.type === Events.Reconnect) this.connected = true;
    }
  }

  publish(event: TrainingEvent): boolean {
    try {
      if (event.kind === 'step') {
        const key = `${event.runId}/${event.source.role}/${event.source.rank}`;
        const t = this.now();
        const last = this.lastStep.get(key);
        if (last !== undefined && t - last < this.stepIntervalMs) {
          this.counters.throttled++;
          return false;
        }
        this.lastStep.set(key, t);
      }
      const cap = this.ring.length;
      if (this.size === cap) {
        // Full: overwrite the oldest, keeping the freshest view of the run.
        this.head = (this.head + 1) % cap;
        this.size--;
        this.counters.dropped++;
      }
      this.ring[(this.head + this.size) % cap] = event;
      this.size++;
      return true;
    } catch {
      this.counters.dropped++;
      return true;
    }
  }

  setStatus(status: RunStatus): void {
    try {
      this.pendingStatus.set(status.runId, status);
    } catch {
      this.counters.statusFailures++;
    }
  }

  /** Drains the queue into NATS now if connected; the timer calls this. Never throws. */
  tick(): void {
    const nc = this.nc;
    if (!nc || !this.connected || nc.isClosed()) return;
    const cap = this.ring.length;
    while (this.size > 0) {
      const event = this.ring[this.head]!;
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % cap;
      this.size--;
      try {
        nc.publish(subjectOf(event), encodeTrainingEvent(event));
        this.counters.published++;
      } catch (err) {
        this.counters.dropped++;
        this.lastError = (err as Error).message;
        break;
      }
    }
    if (this.pendingStatus.size > 0 && !this.statusInFlight) void this.writeStatuses(nc);
  }

  private async writeStatuses(nc: NatsConnection): Promise<void> {
    this.statusInFlight = true;
    try {
      this.kv ??= await nc.jetstream().views.kv(RUNS_BUCKET, { history: 1 });
      for (const [runId, status] of [...this.pendingStatus]) {
        const checked = runStatusSchema.parse(status);
        await this.kv.put(runId, JSON.stringify(checked));
        // Only forget it if no newer status arrived while the put was in flight.
        if (this.pendingStatus.get(runId) === status) this.pendingStatus.delete(runId);
        this.counters.statusWrites++;
      }
    } catch (err) {
      this.counters.statusFailures++;
      this.lastError = (err as Error).message;
    } finally {
      this.statusInFlight = false;
    }
  }

  stats(): PublisherStats {
    return { connected: this.connected, queued: this.size, lastError: this.lastError, ...this.counters };
  }

  /**
   * Flushes what it can within `timeoutMs` (default 2000) and closes the connection, giving that
   * close at most {@link CLOSE_GRACE_MS} more. Events still queued when NATS is unreachable are
   * dropped (best effort).
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.tick();
    const nc = this.nc;
    if (!nc) return;
    let timeout: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timeout = setTimeout(resolve, timeoutMs);
    });
    try {
      if (this.connected) {
        const waitStatus = (async () => {
          while (this.statusInFlight) await new Promise((r) => setTimeout(r, 10));
          if (this.pendingStatus.size > 0) await this.writeStatuses(nc);
        })();
        await Promise.race([waitStatus.then(() => nc.flush()), deadline]);
      }
    } catch {
      // best effort
    } finally {
      clearTimeout(timeout);
      // Bounded too: a dead NATS must not hold a finished process.
      let drop: NodeJS.Timeout | undefined;
      await Promise.race([
        nc.close().catch(() => undefined),
        new Promise<void>((resolve) => {
          drop = setTimeout(resolve, CLOSE_GRACE_MS);
          drop.unref();
        }),
      ]);
      clearTimeout(drop);
    }
  }
}
