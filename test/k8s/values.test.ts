import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { RunToken } from '../../src/auth/run-token.ts';
import { parseRunConfig } from '../../src/core/config.ts';
import { LaunchOptionError, type LaunchOptions } from '../../src/k8s/api.ts';
import { describePods, formatPods } from '../../src/k8s/cluster.ts';
import { parseManifests, toYaml } from '../../src/k8s/render.ts';
import { chartValues } from '../../src/k8s/values.ts';
import { validateObject } from './schema.ts';

const config = parseRunConfig({ name: 'mnist-lt', dataset: { kind: 'mnist' } });
const base: LaunchOptions = {
  run: 'mnist-lt',
  namespace: 'bbn',
  workers: 3,
  gpusPerWorker: 0,
  temporalAddress: 'temporal.temporal:7233',
  natsUrl: 'nats://nats.nats:4222',
};

describe('k8s values - chart values from launch options', () => {
  it('maps workers, GPUs, addresses and the whole run config', () => {
    const v = chartValues(config, { ...base, gpusPerWorker: 2, terminationGracePeriodSeconds: 300 });
    assert.equal(v.workers, 3);
    assert.equal(v.gpu, true);
    assert.equal(v.gpusPerWorker, 2);
    assert.equal(v.terminationGracePeriodSeconds, 300);
    assert.deepEqual(v.temporal, { address: 'temporal.temporal:7233', namespace: 'default' });
    assert.deepEqual(v.nats, { url: 'nats://nats.nats:4222' });
    assert.deepEqual((v.run as { config: unknown }).config, config);
  });

  it('runs CPU workers when gpusPerWorker is 0, and can drop the claims for demos', () => {
    const v = chartValues(config, { ...base, persistence: false });
    assert.equal(v.gpu, false);
    assert.deepEqual(v.persistence, { checkpoints: { enabled: false }, data: { enabled: false } });
    assert.equal(v.image, undefined, 'no image given: the chart default');
  });

  it("puts the run's token in the Secret the chart makes, unless a Secret is named; never in printable options", () => {
    const token = RunToken.generate();
    const v = chartValues(config, { ...base, runToken: token });
    assert.deepEqual(v.credentials, { stringData: { 'run-token': token.reveal() } });
    assert.deepEqual(
      chartValues(config, { ...base, runToken: token, credentialsSecret: 'mine' }).credentials,
      {
        existingSecret: 'mine',
      },
    );
    assert.equal(chartValues(config, base).credentials, undefined);
    assert.ok(!JSON.stringify({ ...base, runToken: token }).includes(token.reveal()));
  });

  it('passes a pinned image through whole', () => {
    const ref = `registry.example:5000/ml/bbn:0.1.0-gpu@sha256:${'a'.repeat(64)}`;
    assert.deepEqual(chartValues(config, { ...base, image: ref }).image, { reference: ref });
  });

  const bad: [string, Partial<LaunchOptions>, RegExp][] = [
    ['run with capitals', { run: 'Mnist' }, /run \("Mnist"\)/],
    ['run too long for pod names', { run: `r${'x'.repeat(40)}` }, /at most|1-40/],
    ['run ending in a dash', { run: 'run-' }, /run \("run-"\)/],
    ['zero workers', { workers: 0 }, /workers \(0\) must be an integer >= 1/],
    ['fractional GPUs', { gpusPerWorker: 0.5 }, /gpusPerWorker \(0.5\)/],
    ['temporal without port', { temporalAddress: 'temporal' }, /temporalAddress/],
    ['nats without scheme', { natsUrl: 'nats.nats:4222' }, /natsUrl/],
    ['image without tag', { image: 'ghcr.io/x/bbn' }, /image .* must be REPOSITORY:TAG/],
    ['image on latest', { image: 'ghcr.io/x/bbn:latest' }, /latest/],
    ['negative grace', { terminationGracePeriodSeconds: -1 }, /terminationGracePeriodSeconds/],
    ['bad namespace', { namespace: 'My_NS' }, /namespace/],
  ];
  for (const [name, change, message] of bad) {
    it(`rejects ${name}, naming the option and value`, () => {
      assert.throws(
        () => chartValues(config, { ...base, ...change }),
        (err: unknown) => err instanceof LaunchOptionError && message.test(err.message),
      );
    });
  }
});

describe('k8s render - manifests', () => {
  it('parses helm output, sets the namespace and orders config before workloads', () => {
    const text = [
      '---\n# Source: a\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: r-worker\n',
      '---\n# Source: empty\n',
      '---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: r-config\ndata:\n  run.yaml: "x: 1"\n',
    ].join('');
    const objects = parseManifests(text, 'ns1');
    assert.deepEqual(
      objects.map((o) => [o.kind, o.metadata.namespace]),
      [
        ['ConfigMap', 'ns1'],
        ['StatefulSet', 'ns1'],
      ],
    );
    assert.deepEqual(parseManifests(toYaml(objects), 'ns1'), objects, 'YAML round trip');
  });

  it('rejects a document without a kind', () => {
    assert.throws(() => parseManifests('apiVersion: v1\nmetadata:\n  name: x\n', 'ns'), /without kind/);
  });
});

describe('k8s status - pod rows', () => {
  const pod = (name: string, component: string, extra: Partial<V1Pod> = {}, index?: string): V1Pod => ({
    metadata: {
      name,
      labels: {
        'app.kubernetes.io/component': component,
        ...(index === undefined ? {} : { 'apps.kubernetes.io/pod-index': index }),
      },
    },
    ...extra,
  });
  it('orders coordinator then ranks, sums restarts and shows why a pod is pending', () => {
    const rows = describePods([
      pod(
        'r-worker-1',
        'worker',
        {
          status: {
            phase: 'Pending',
            conditions: [
              {
                type: 'PodScheduled',
                status: 'False',
                message: '0/1 nodes are available: 1 Insufficient nvidia.com/gpu.',
              },
            ],
          },
        },
        '1',
      ),
      pod(
        'r-worker-0',
        'worker',
        {
          spec: { nodeName: 'gpu-0', containers: [] },
          status: {
            phase: 'Running',
            containerStatuses: [{ name: 'w', image: 'i', imageID: '', ready: true, restartCount: 2 }],
          },
        },
        '0',
      ),
      pod('r-coordinator-abc', 'coordinator', { status: { phase: 'Running' } }),
    ]);
    assert.deepEqual(
      rows.map((r) => [r.name, r.rank, r.phase, r.node, r.restarts]),
      [
        ['r-coordinator-abc', null, 'Running', null, 0],
        ['r-worker-0', 0, 'Running', 'gpu-0', 2],
        ['r-worker-1', 1, 'Pending', null, 0],
      ],
    );
    assert.match(rows[2].reason ?? '', /Insufficient nvidia.com\/gpu/);
    const table = formatPods(rows).split('\n');
    assert.match(table[0], /^POD\s+RANK\s+PHASE\s+NODE\s+RESTARTS\s+REASON$/);
    assert.match(table[2], /^r-worker-0\s+0\s+Running\s+gpu-0\s+2$/);
  });
});

describe('k8s schema - offline validation of rendered objects', () => {
  it('names a misspelt field and a value of the wrong type, and accepts numeric quantities', () => {
    const errors = validateObject({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'w' },
      spec: {
        replicas: '2',
        selector: { matchLabels: { a: 'b' } },
        serviceName: 'w',
        template: {
          spec: {
            terminationGracePeriodSecond: 120,
            containers: [{ name: 'c', image: 'i:1', resources: { limits: { 'nvidia.com/gpu': 1 } } }],
          },
        },
      },
    });
    assert.deepEqual(errors, [
      'StatefulSet/w.spec.replicas: must be a number (got "2")',
      'StatefulSet/w.spec.template.spec.terminationGracePeriodSecond: no such field in V1PodSpec',
    ]);
  });

  it('refuses a kind it has no model for', () => {
    assert.deepEqual(validateObject({ apiVersion: 'x/v1', kind: 'Thing', metadata: { name: 'n' } }), [
      'Thing/n: no model for x/v1 Thing',
    ]);
  });
});
