/**
 * Replica-consistency checks: every K steps each rank reports a digest of its weights, and the
 * board compares them once every rank of the generation reported (FAILURE-LESSONS 10). Pure.
 */
import { InvalidRequestError, PreconditionError } from './api.ts';

/** Outcome of a comparison. */
export type ChecksumVerdict = 'pending' | 'match' | 'mismatch';

/** One rank's report. */
export interface ChecksumReport {
  readonly generation: number;
  readonly epoch: number;
  readonly step: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly checksum: Uint8Array;
  readonly algorithm: string;
}

/** The comparison so far for the report's step. */
export interface ChecksumResult {
  readonly verdict: ChecksumVerdict;
  /** Ranks whose checksum differs from rank 0's. */
  readonly mismatchedRanks: readonly number[];
  /** Rank 0's checksum, when reported. */
  readonly reference: Uint8Array;
  readonly message: string;
}

/** Steps whose reports are kept; older ones are dropped (only recent steps are ever re-reported). */
const KEEP_STEPS = 64;

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Collects checksums by (generation, epoch, step). */
export class ChecksumBoard {
  /** "generation/epoch/step" → rank → report; insertion order is age order (for eviction). */
  private readonly steps = new Map<string, Map<number, ChecksumReport>>();

  /** Records `r` (a re-report replaces the rank's earlier one) and returns the comparison. */
  report(r: ChecksumReport): ChecksumResult {
    if (r.checksum.length === 0) throw new InvalidRequestError('ReportChecksumRequest.checksum is empty');
    if (r.algorithm === '') throw new InvalidRequestError('ReportChecksumRequest.algorithm is empty');
    const key = `${r.generation}/${r.epoch}/${r.step}`;
    let byRank = this.steps.get(key);
    if (!byRank) {
      byRank = new Map();
      this.steps.set(key, byRank);
      if (this.steps.size > KEEP_STEPS) this.steps.delete(this.steps.keys().next().value as string);
    }
    for (const other of byRank.values()) {
      if (other.rank !== r.rank && other.algorithm !== r.algorithm) {
        throw new PreconditionError(
          `ReportChecksumRequest.algorithm ("${r.algorithm}") of rank ${r.rank} differs from rank ${other.rank}'s ("${other.algorithm}")`,
        );
      }
    }
    byRank.set(r.rank, r);
    const ref = byRank.get(0);
    const reference = ref ? ref.checksum : new Uint8Array(0);
    if (byRank.size < r.worldSize || !ref) {
      return {
        verdict: 'pending',
        mismatchedRanks: [],
        reference,
        message: `${byRank.size} of ${r.worldSize} ranks reported epoch ${r.epoch} step ${r.step}`,
      };
    }
    const refHex = hex(ref.checksum);
    const bad = [...byRank.values()]
      .filter((x) => hex(x.checksum) !== refHex)
      .sort((a, b) => a.rank - b.rank);
    if (bad.length === 0) {
      return { verdict: 'match', mismatchedRanks: [], reference, message: `all ${r.worldSize} ranks match` };
    }
    return {
      verdict: 'mismatch',
      mismatchedRanks: bad.map((x) => x.rank),
      reference,
      message:
        `replicas diverged at epoch ${r.epoch} step ${r.step}: rank 0 has ${refHex}; ` +
        bad.map((x) => `rank ${x.rank} has ${hex(x.checksum)}`).join(', '),
    };
  }
}
