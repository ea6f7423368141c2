/**
 * Seeded fuzzing of every decoder that reads bytes or text from outside: checkpoint files, ring
 * frames (responses and requests), CIFAR records, iNat annotation JSON and YAML run configs.
 * Each starts from valid inputs, mutates them with a seeded generator (flip, overwrite, insert,
 * delete, truncate, random bytes) and asserts that the decoder either accepts the input or throws
 * its own typed error: never another kind of crash, never a hang. Bounded by time (`BBN_FUZZ_MS`
 * per decoder, default 400 ms) so CI stays fast; the iteration counts are printed.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { loadRunConfig } from '../../src/cli/config-file.ts';
import {
  type ChunkHeader,
  decodeRequest,
  decodeResponse,
  encodeChunkFrame,
  encodeRequest,
  encodeResponse,
  FrameDecodeError,
} from '../../src/collective/frame-codec.ts';
import { ConfigError } from '../../src/core/config.ts';
import { Rng } from '../../src/core/rng.ts';
import { DataError } from '../../src/data/api.ts';
import { decodeCifarRecords } from '../../src/data/cifar.ts';
import { readInatAnnotations } from '../../src/data/inat.ts';
import { CheckpointError, checkpointFileName, decodeCheckpoint } from '../../src/worker/checkpoint.ts';
import { runPaths } from '../../src/worker/run-dir.ts';
import { cifarRecords, inatJson } from '../data/fixtures.ts';
import { tempDir, trainFixture } from '../helpers/run-fixture.ts';
import { tinyRun } from '../helpers/tiny.ts';

const BUDGET_MS = Number(process.env.BBN_FUZZ_MS ?? 400);

/** One seeded mutation of `seed`. */
function mutate(rng: Rng, seed: Uint8Array): Buffer {
  let b = Buffer.from(seed);
  const edits = 1 + rng.int(4);
  for (let e = 0; e < edits; e++) {
    const at = b.length === 0 ? 0 : rng.int(b.length);
    const kind = rng.int(6);
    if (kind === 0 && b.length > 0) b[at] ^= 1 << rng.int(8);
    else if (kind === 1 && b.length > 0) b[at] = [0, 0xff, 0x7f, 0x80, 0x22, 0x7b][rng.int(6)];
    else if (kind === 2) {
      const extra = Buffer.from(Array.from({ length: 1 + rng.int(16) }, () => rng.int(256)));
      b = Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
    } else if (kind === 3) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(16))]);
    else if (kind === 4) b = b.subarray(0, at);
    else if (kind === 5 && rng.int(8) === 0) {
      b = Buffer.from(Array.from({ length: rng.int(64) }, () => rng.int(256)));
    }
  }
  return b;
}

/** Fuzzes `decode` from `seeds` until the time budget is spent; returns the counts. */
async function fuzz(
  name: string,
  seeds: readonly Uint8Array[],
  decode: (bytes: Buffer) => unknown,
  typed: (err: unknown) => boolean,
): Promise<{ iterations: number; accepted: number }> {
  const rng = Rng.fromSeed(`fuzz-${name}`);
  const deadline = performance.now() + BUDGET_MS;
  let iterations = 0;
  let accepted = 0;
  while (performance.now() < deadline) {
    const input = mutate(rng, seeds[rng.int(seeds.length)]);
    try {
      await decode(input);
      accepted++;
    } catch (err) {
      if (!typed(err)) {
        assert.fail(
          `${name}: input ${iterations} threw ${(err as Error)?.name}: ${(err as Error)?.message} ` +
            `(input, base64: ${input.toString('base64').slice(0, 200)})`,
        );
      }
    }
    iterations++;
  }
  process.stdout.write(
    `# fuzz ${name}: ${iterations} inputs, ${accepted} accepted, ${iterations - accepted} typed errors\n`,
  );
  return { iterations, accepted };
}

let checkpointBytes: Buffer;
const dir = tempDir('bbn-fuzz-');

before(async () => {
  const run = await trainFixture({ train: { epochs: 1 } });
  checkpointBytes = readFileSync(join(runPaths(run.dir).checkpoints, checkpointFileName(1)));
});

const header: ChunkHeader = {
  runId: 'r',
  generation: 2,
  senderRank: 1,
  sequence: 7,
  epoch: 1,
  step: 3,
  phase: 1,
  phaseStep: 0,
  segment: 0,
  chunkIndex: 0,
  offset: 0,
  length: 4,
  totalLength: 4,
  dtype: 0,
} as ChunkHeader;

describe('decoder fuzzing (seeded, time-bounded)', () => {
  it('checkpoint files: CheckpointError or a checkpoint', async () => {
    const r = await fuzz(
      'checkpoint',
      [checkpointBytes],
      (b) => decodeCheckpoint(b, 'fuzz.bbnckpt'),
      (e) => e instanceof CheckpointError,
    );
    assert.ok(r.iterations > 0);
  });

  it('ring frames: FrameDecodeError or exactly one decoded kind', async () => {
    const { frame, payloadAt } = encodeChunkFrame(header, 16);
    frame.fill(9, payloadAt);
    const responses = [
      frame.subarray(5), // the RingResponse without the gRPC length prefix
      encodeResponse({ abort: { runId: 'r', generation: 3, originRank: 1 } }),
      encodeResponse({ accept: {} }),
    ];
    const r1 = await fuzz('ring response', responses, decodeResponse, (e) => e instanceof FrameDecodeError);
    const requests = [
      encodeRequest({ hello: { runId: 'r' } }),
      encodeRequest({ abort: { runId: 'r', originRank: 0 } }),
    ];
    const r2 = await fuzz('ring request', requests, decodeRequest, (e) => e instanceof FrameDecodeError);
    assert.ok(r1.iterations > 0 && r2.iterations > 0);
  });

  it('CIFAR records: DataError or records', async () => {
    const r10 = await fuzz(
      'cifar-10',
      [cifarRecords([1, 2, 3])],
      (b) => decodeCifarRecords('cifar10', ['f.bin'], [b]),
      (e) => e instanceof DataError,
    );
    const r100 = await fuzz(
      'cifar-100',
      [
        cifarRecords([
          [3, 40],
          [19, 99],
        ]),
      ],
      (b) => decodeCifarRecords('cifar100', ['f.bin'], [b]),
      (e) => e instanceof DataError,
    );
    assert.ok(r10.iterations > 0 && r100.iterations > 0);
  });

  it('iNat annotation JSON: DataError or annotations', async () => {
    const file = join(dir, 'inat.json');
    const seed = Buffer.from(
      inatJson(
        [
          { fpath: 'a/b.jpg', category_id: 0 },
          { fpath: 'c.jpg', category_id: 1 },
        ],
        2,
      ),
    );
    const r = await fuzz(
      'inat json',
      [seed],
      async (b) => {
        writeFileSync(file, b);
        return readInatAnnotations(file, dir, true);
      },
      (e) => e instanceof DataError,
    );
    assert.ok(r.iterations > 0);
  });

  it('YAML run configs: ConfigError or a config', async () => {
    const file = join(dir, 'run.yaml');
    const r = await fuzz(
      'config yaml',
      [Buffer.from(stringify(tinyRun()))],
      (b) => {
        writeFileSync(file, b);
        return loadRunConfig(file, []);
      },
      (e) => e instanceof ConfigError,
    );
    assert.ok(r.iterations > 0);
  });
});
