/**
 * The replica check every `distributed.checksumEverySteps` steps: all ranks must hold the same
 * weights after every step (they apply the same reduced gradient), and a difference (a bug,
 * nondeterministic hardware, a corrupted restore) must stop the run before it trains on, not an
 * epoch later at the workflow's per-epoch digest comparison.
 *
 * It rides the step's allreduce, so it costs no extra round trip: the wire ends with W slots per
 * fragment, and on a checking step rank r writes 24-bit fragments of the SHA-256 of its weights
 * into its own slots (zeros everywhere else). Each slot then has one non-zero contributor, so the
 * reduced slots hold every rank's fragments exactly (integers below 2^24 are exact in float32),
 * and every rank sees the same verdict at the same step.
 */
import { paramsDigest } from './process/digests.ts';

/** 24-bit fragments of the digest compared per rank (48 bits). */
const FRAGMENTS = 2;

/** The ranks' weights differ at a replica check: never retried (the same state diverges again). */
export class ReplicasDivergedError extends Error {
  override name = 'ReplicasDivergedError';
  readonly userFacing = true;
  constructor(
    message: string,
    readonly epoch: number,
    readonly step: number,
    readonly ranks: readonly number[],
  ) {
    super(message);
  }
}

/** Slots the check adds to the wire of a world of `worldSize` (none for one rank). */
export function replicaSlots(worldSize: number): number {
  return worldSize > 1 ? worldSize * FRAGMENTS : 0;
}

/** Fills `slots` for this step: this rank's fragments of its weights' digest when `checking`, zeros otherwise. */
export function writeReplicaDigest(
  slots: Float32Array,
  rank: number,
  params: Float32Array,
  checking: boolean,
): void {
  slots.fill(0);
  if (!checking) return;
  const d = paramsDigest(params);
  for (let f = 0; f < FRAGMENTS; f++) {
    slots[rank * FRAGMENTS + f] = (d[3 * f] << 16) | (d[3 * f + 1] << 8) | d[3 * f + 2];
  }
}

/** The ranks whose fragments, in the reduced `slots`, differ from rank 0's (empty: replicas agree). */
export function divergedRanks(slots: Float32Array): number[] {
  const out: number[] = [];
  for (let r = 1; r * FRAGMENTS < slots.length; r++) {
    for (let f = 0; f < FRAGMENTS; f++) {
      if (slots[r * FRAGMENTS + f] !== slots[f]) {
        out.push(r);
        break;
      }
    }
  }
  return out;
}
