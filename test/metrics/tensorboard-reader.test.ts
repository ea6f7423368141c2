/**
 * Reads our event file with TensorBoard's own `EventAccumulator`, when a Python with the
 * `tensorboard` package is found (BBN_PYTHON, .venv/bin/python, python3). Without one the test
 * says so in a diagnostic line: the format is then covered only by our own reader (tensorboard.test.ts).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { TensorBoardWriter } from '../../src/metrics/tensorboard.ts';
import { readMetrics } from '../../src/worker/run-dir.ts';
import { trainFixture } from '../helpers/run-fixture.ts';

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
    const text = execFileSync(py, ['-c', READER, dir], { encoding: 'utf8', timeout: 60_000 });
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

const RUN_READER = `
import json, sys
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util
m = EventMultiplexer()
m.AddRunsFromDirectory(sys.argv[1])
m.Reload()
out = {}
for run in m.Runs():
    acc = m.GetAccumulator(run)
    tags = acc.Tags()
    tensors = {}
    for t in tags["tensors"]:
        meta = acc.SummaryMetadata(t)
        entry = {"plugin": meta.plugin_data.plugin_name}
        if entry["plugin"] == "text":
            entry["text"] = tensor_util.make_ndarray(acc.Tensors(t)[-1].tensor_proto).item().decode()
        if entry["plugin"] == "hparams":
            d = plugin_data_pb2.HParamsPluginData.FromString(meta.plugin_data.content)
            entry["hparams"] = {k: getattr(v, v.WhichOneof("kind")) for k, v in d.session_start_info.hparams.items()}
        tensors[t] = entry
    images = {t: [[e.step, e.width, e.height, e.encoded_image_string[:8].hex()] for e in acc.Images(t)] for t in tags["images"]}
    out[run] = {"scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]}, "tensors": tensors, "images": images}
print(json.dumps(out))
`;

test("tensorboard - a trained run, as TensorBoard's multiplexer reads its directory: per-step scalars, per-class accuracy, config text, hparams, named by its directory", async (t) => {
  const py = pythonWithTensorboard();
  if (!py) {
    t.diagnostic(
      'NOT CHECKED: no python with the tensorboard package (pip install tensorboard, or set BBN_PYTHON)',
    );
    return;
  }
  const { dir } = await trainFixture();
  const root = dirname(dir);
  try {
    const text = execFileSync(py, ['-c', RUN_READER, root], { encoding: 'utf8', timeout: 120_000 });
    const runs = JSON.parse(text) as Record<
      string,
      {
        scalars: Record<string, [number, number][]>;
        tensors: Record<string, { plugin: string; text?: string; hparams?: Record<string, unknown> }>;
        images: Record<string, [number, number, number, string][]>;
      }
    >;
    assert.deepEqual(Object.keys(runs), [basename(dir)], 'one run, named by its directory (no /tb)');
    const { scalars, tensors, images } = runs[basename(dir)];
    const rows = readMetrics(dir);
    const steps = 5; // the tiny run: 5 steps an epoch
    assert.deepEqual(
      scalars['step/loss'].map(([s]) => s),
      Array.from({ length: rows.length * steps }, (_, i) => i + 1),
      'one loss point per step, at the global step',
    );
    for (const tag of ['step/accuracy', 'step/alpha', 'step/samples_per_second'])
      assert.equal(scalars[tag].length, rows.length * steps, tag);
    assert.deepEqual(
      scalars['step/lr'].map(([s, v]) => [Math.ceil(s / steps), v]),
      rows.flatMap((r) => Array.from({ length: steps }, () => [r.epoch, Math.fround(r.lr)])),
      'each step carries its epoch’s lr',
    );
    for (let c = 0; c < rows[0].perClass.length; c++) {
      assert.deepEqual(
        scalars[`accuracy_per_class/class_${String(c).padStart(3, '0')}`],
        rows.map((r) => [r.epoch, Math.fround(r.perClass[c])]),
      );
    }
    assert.deepEqual(
      images.confusion_matrix,
      [[rows.length, 128, 128, '89504e470d0a1a0a']],
      'the confusion matrix as a PNG image at the last epoch (4 classes of 32 px)',
    );
    assert.equal(tensors.config.plugin, 'text');
    assert.match(tensors.config.text ?? '', /^```yaml\nname: safety-tiny\n[\s\S]*method: bbn\n/);
    const h = tensors['_hparams_/session_start_info'];
    assert.equal(h.plugin, 'hparams');
    assert.deepEqual(
      { name: h.hparams?.name, method: h.hparams?.method, epochs: h.hparams?.['train.epochs'] },
      { name: 'safety-tiny', method: 'bbn', epochs: 2 },
    );
    t.diagnostic(`checked with TensorBoard's EventMultiplexer via ${py}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
