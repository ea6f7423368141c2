/**
 * The coordinator's view of the ranks, built from their heartbeats alone: who is alive and where
 * its ring peer server listens (the rendezvous), and which rank of the running generation went
 * silent (the liveness verdict). Pure: time comes from the injected clock, so every decision is
 * testable without waiting.
 */
import {
  type Clock,
  type CoordinatorTimings,
  DEFAULT_TIMINGS,
  type RankBeat,
  type RankVerdict,
} from './api.ts';

interface Heard {
  readonly beat: RankBeat;
  /** Clock time it arrived. */
  readonly at: number;
}

/** Heartbeats by rank, and the generation being watched. */
export class RankBoard {
  private readonly heard = new Map<number, Heard>();
  private watching: {
    world: number;
    /** The workflow's number for the watched generation; every verdict carries it. */
    generation: number;
    since: number;
    reported: Set<number>;
    /** Ranks another process took over since the watch began: what it was and what it is. */
    replaced: Map<number, { was: RankBeat; now: RankBeat }>;
  } | null = null;
  readonly timings: CoordinatorTimings;

  constructor(
    private readonly clock: Clock,
    timings: Partial<CoordinatorTimings> = {},
  ) {
    this.timings = { ...DEFAULT_TIMINGS, ...timings };
  }

  /** The clock's time now. */
  now(): number {
    return this.clock.now();
  }

  /** Records one heartbeat (the newest per rank wins: a replaced rank's process simply takes over). */
  record(beat: RankBeat): void {
    const was = this.heard.get(beat.rank);
    this.heard.set(beat.rank, { beat, at: this.clock.now() });
    const w = this.watching;
    if (!w || !was || beat.rank >= w.world || w.reported.has(beat.rank)) return;
    // Heard in this watch from one process, now from another: the generation's process is gone.
    if (was.at >= w.since && was.beat.incarnation !== beat.incarnation) {
      if (!w.replaced.has(beat.rank)) w.replaced.set(beat.rank, { was: was.beat, now: beat });
    }
  }

  /**
   * Every rank's ring address when ranks 0..world-1 have all been heard since `since` (clock time),
   * else the ranks not heard from. Asking for beats newer than the rendezvous itself keeps a rank
   * that just died (its last beat still recent) out of the new ring: only living processes answer.
   */
  roster(world: number, since = -Infinity): { readonly peers: string[] } | { readonly missing: number[] } {
    const peers: string[] = [];
    const missing: number[] = [];
    for (let rank = 0; rank < world; rank++) {
      const h = this.heard.get(rank);
      if (h && h.at >= since) peers.push(h.beat.ringAddress);
      else missing.push(rank);
    }
    return missing.length > 0 ? { missing } : { peers };
  }

  /**
   * Starts judging ranks 0..world-1 of generation `generation` (it formed); each is reported at
   * most once per watch.
   */
  watch(world: number, generation: number): void {
    this.watching = { world, generation, since: this.clock.now(), reported: new Set(), replaced: new Map() };
  }

  /** The generation being judged, or null (none formed yet, or a new one is forming). */
  watchedGeneration(): number | null {
    return this.watching?.generation ?? null;
  }

  /** Stops judging (a new generation is forming: its ranks are not yet all there). */
  unwatch(): void {
    this.watching = null;
  }

  /** The watched ranks silent for longer than the heartbeat timeout, not reported before. */
  judge(): RankVerdict[] {
    const w = this.watching;
    if (!w) return [];
    const now = this.clock.now();
    const verdicts: RankVerdict[] = [];
    for (const [rank, { was, now: is }] of w.replaced) {
      w.reported.add(rank);
      verdicts.push({
        rank,
        cause: 'exited',
        generation: w.generation,
        silentForMs: 0,
        detail: `exited: another process (pid ${is.pid} on ${is.host}) now heartbeats as rank ${rank}, which was pid ${was.pid} on ${was.host} (last heard ${was.phase} at epoch ${was.epoch} step ${was.step})`,
      });
    }
    w.replaced.clear();
    for (let rank = 0; rank < w.world; rank++) {
      if (w.reported.has(rank)) continue;
      const h = this.heard.get(rank);
      const silentForMs = now - Math.max(h?.at ?? w.since, w.since);
      if (silentForMs <= this.timings.heartbeatTimeoutMs) continue;
      w.reported.add(rank);
      const last = h?.beat;
      const said = last
        ? `; last heard ${last.phase} at epoch ${last.epoch} step ${last.step} (pid ${last.pid} on ${last.host})`
        : '';
      verdicts.push({
        rank,
        cause: 'silent',
        generation: w.generation,
        silentForMs,
        detail: `silent: no heartbeat for ${(silentForMs / 1000).toFixed(1)} s${said}`,
      });
    }
    return verdicts;
  }

  /** The newest heartbeat of each rank with its age, by rank (for status). */
  snapshot(): { readonly beat: RankBeat; readonly ageMs: number }[] {
    const now = this.clock.now();
    return [...this.heard.values()]
      .map((h) => ({ beat: h.beat, ageMs: now - h.at }))
      .sort((a, b) => a.beat.rank - b.beat.rank);
  }
}
