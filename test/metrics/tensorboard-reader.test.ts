/**
 * Reads our event file with TensorBoard's own `EventAccumulator`, when a Python with the
 * `tensorboard` package is found (BBN_PYTHON, .venv/bin/python, python3). Without one the test
 * says so in a diagnostic line: the format is then covered only by our own reader (tensorboard.test.ts).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TensorBoardWriter } from '../../src/metrics/tensorboard.ts';

function pythonWithTensorboard(): string | undefined {
  const candidates = [process.env.BBN_PYTHON, join(process.cwd(), '.venv/bin/python'), 'python3'];
  for (const py of candidates) {
    if (!py || (py.includes('/') && !existsSync(py))) continue;
    const r = spawnSync(py, ['-c', 'import tensorboard'], { stdio: 'ignore', timeout: 30_000 });
    if (r.status === 0) return py;
  }
  return undefined;
}

const READER = `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1])
acc.Reload()
out = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
print(json.dumps(out))
`;

test('tensorboard writer - TensorBoard EventAccumulator reads our scalars', (t) => {
  const py = pythonWithTensorboard();
  if (!py) {
    t.diagnostic(
      'NOT CHECKED: no python with the tensorboard package (pip install tensorboard, or set BBN_PYTHON); ' +
        'only our own reader verified the event file',
    );
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'bbn-tbpy-'));
  try {
    const w = new TensorBoardWriter(dir, { host: 'test' });
    w.scalars(1, [
      { tag: 'loss/train', value: 2.5 },
      { tag: 'schedule/alpha', value: 1 },
    ]);
    w.scalars(2, [
      { tag: 'loss/train', value: 1.25 },
      { tag: 'schedule/alpha', value: 0.75 },
    ]);
    w.close();
    const text = execFileSync(py, ['-c', READER, join(dir, 'tb')], { encoding: 'utf8', timeout: 60_000 });
    const scalars = JSON.parse(text) as Record<string, [number, number][]>;
    assert.deepEqual(scalars, {
      'loss/train': [
        [1, 2.5],
        [2, 1.25],
      ],
      'schedule/alpha': [
        [1, 1],
        [2, 0.75],
      ],
    });
    t.diagnostic(`checked with TensorBoard's EventAccumulator via ${py}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
