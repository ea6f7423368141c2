/**
 * A Temporal rank in its own process whose step 2 of epoch 1 blocks its event loop for BLOCK_MS,
 * as a long synchronous tfjs step does (for the keepalive test).
 *
 * argv: address runId rank blockMs keepaliveMs
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { serveRank } from '../../src/orchestration/rank-worker.ts';

Runtime.install({ logger: new DefaultLogger('WARN') });
const [address, runId, rank, blockMs, keepaliveMs] = process.argv.slice(2);
const stop = new AbortController();
process.on('SIGTERM', () => stop.abort());
let blocked = Number(blockMs) <= 0;
await serveRank({
  address,
  runId,
  rank: Number(rank),
  ring: { keepaliveMs: Number(keepaliveMs) },
  signal: stop.signal,
  onReady: () => process.stdout.write('ready\n'),
  onStep: (r) => {
    if (blocked || r.epoch !== 1 || r.step !== 2) return;
    blocked = true;
    const until = Date.now() + Number(blockMs);
    while (Date.now() < until) {} // a synchronous step, as tfjs compute is
  },
});
