/**
 * One ring rank in its own process, driven by ring-cluster.ts over IPC (see `ToChild` and
 * `FromChild` there). Optionally misbehaves on one outgoing frame (fault injection).
 */
import {
  type CollectiveError,
  CollectiveServer,
  RingAbortedError,
  RingAllreduce,
  RingTimeoutError,
} from '../../src/collective/index.ts';
import {
  decodeResponse,
  encodeChunkFrame,
  type FaultInjector,
  kFaultInjector,
} from '../../src/collective/internal.ts';
import { Rng } from '../../src/core/rng.ts';
import type { FaultSpec, FromChild, SerializedError, ToChild } from './ring-cluster.ts';
import { rankData } from './ring-data.ts';

const send = (m: FromChild): void => {
  process.send?.(m);
};

function serialize(err: unknown): SerializedError {
  const e = err as CollectiveError & { peerRank?: number; originRank?: number };
  return {
    name: e?.name ?? 'Error',
    message: String(e?.message ?? err),
    kind: e?.kind,
    peerRank: e?.peerRank,
    originRank: err instanceof RingAbortedError ? err.originRank : undefined,
    waitingOn: err instanceof RingTimeoutError ? [...err.waitingOn] : undefined,
  };
}

/**
 * Blocks this thread synchronously for `ms`, as a long synchronous compute step does: nothing on
 * the event loop runs (no timer, no socket read, no ping answer). Atomics.wait blocks without
 * spinning, so the other ranks keep the shared cores.
 */
function blockMainThread(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Builds the injector for one fault: it fires once, on frame `frameIndex` of allreduce `sequence`. */
function injector(spec: FaultSpec): FaultInjector {
  return {
    beforeSend(site, frame) {
      if (site.sequence !== spec.sequence || site.frameIndex < spec.frameIndex) return frame;
      if (spec.kind === 'unknown-field') {
        if (site.frameIndex === spec.frameIndex) send({ type: 'fault', kind: spec.kind, at: Date.now() });
        // RingResponse field 99 (varint 1): receivers must skip it and take the chunk as it is.
        return Buffer.concat([frame, Buffer.from([0x98, 0x06, 0x01])]);
      }
      if (spec.kind === 'stall') {
        if (site.frameIndex === spec.frameIndex) send({ type: 'fault', kind: spec.kind, at: Date.now() });
        return 'stall';
      }
      if (site.frameIndex !== spec.frameIndex) return frame;
      send({ type: 'fault', kind: spec.kind, at: Date.now() });
      if (spec.kind === 'block') {
        blockMainThread(spec.blockMs ?? 0);
        return frame;
      }
      if (spec.kind === 'garbage') {
        const rng = Rng.fromSeed('garbage').split(site.frameIndex);
        return Buffer.from(Uint8Array.from({ length: frame.length }, () => rng.int(256)));
      }
      const msg = decodeResponse(frame);
      if (msg.kind !== 'chunk') return frame;
      const { payload, ...header } = msg.chunk;
      const short = spec.kind === 'short-chunk';
      const bytes = short ? payload.length - 4 : payload.length;
      const rewritten = encodeChunkFrame({ ...header, step: short ? header.step : header.step + 1 }, bytes);
      rewritten.frame.set(payload.subarray(0, bytes), rewritten.payloadAt);
      return rewritten.frame;
    },
  };
}

const server = await CollectiveServer.listen(
  { host: '127.0.0.1', port: 0 },
  { keepaliveMs: process.argv[2] ? Number(process.argv[2]) : undefined },
);
let ring: RingAllreduce | null = null;

process.on('message', async (m: ToChild) => {
  if (m.type === 'create') {
    try {
      await ring?.close();
      ring = await RingAllreduce.create({
        ...m.opts,
        server,
        ...(m.fault ? { [kFaultInjector]: injector(m.fault) } : {}),
      });
      send({ type: 'created', generation: m.opts.generation });
    } catch (err) {
      send({ type: 'create-failed', generation: m.opts.generation, error: serialize(err) });
    }
  } else if (m.type === 'allreduce') {
    const data = rankData(m.seed, ring!.rank, m.n);
    try {
      await ring!.allreduce(data, m.tag);
      send({ type: 'allreduce-done', id: m.id, data: m.returnData ? data : undefined, at: Date.now() });
    } catch (err) {
      send({ type: 'allreduce-failed', id: m.id, error: serialize(err), at: Date.now() });
    }
  } else if (m.type === 'block') {
    blockMainThread(m.ms);
  } else if (m.type === 'exit') {
    await ring?.close();
    await server.close();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));

send({ type: 'listening', address: server.address });
