/**
 * `bbn launch/scale/status --k8s` against a real control plane (run: `npm run test:k8s-cluster`;
 * needs `bash scripts/k8s/setup-helm.sh` and `bash scripts/k8s/build-control-plane.sh` once).
 * The API server, controllers and scheduler are the real v1.34 ones; KWOK plays the kubelet of one
 * fake node with 8 GPUs. No container runs in the pods, and NetworkPolicy and
 * PodDisruptionBudget objects are stored and validated, not enforced.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { parseRunConfig } from '../../src/core/config.ts';
import type { K8sObject, LaunchOptions, RunPod } from '../../src/k8s/api.ts';
import { applyObjects, listRunPods, loadKubeConfig, scaleWorkers } from '../../src/k8s/cluster.ts';
import { renderRun } from '../../src/k8s/render.ts';
import { requireHelm } from './chart.ts';
import { type ControlPlane, startControlPlane } from './control-plane.ts';

const NS = 'bbn-test';
const config = parseRunConfig({ name: 'mnist-lt', dataset: { kind: 'mnist' } });
/** 2 workers x 4 GPUs fill the fake node's 8; a third worker cannot be placed. */
const options: LaunchOptions = {
  run: 'r1',
  namespace: NS,
  workers: 2,
  gpusPerWorker: 4,
  image: 'registry.example/bbn:0.1.0-gpu',
  temporalAddress: 'temporal.temporal:7233',
  natsUrl: 'nats://nats.nats:4222',
  persistence: false,
};

let plane: ControlPlane | undefined;
let kc: KubeConfig;
let helm = '';

/** Polls the run's pods until `ok` holds (the API has no cheaper latch for "controllers caught up"). */
async function waitForPods(
  what: string,
  ok: (pods: RunPod[]) => boolean,
  timeoutMs = 60_000,
): Promise<RunPod[]> {
  const deadline = Date.now() + timeoutMs;
  let pods: RunPod[] = [];
  while (Date.now() < deadline) {
    pods = await listRunPods(kc, NS, options.run);
    if (ok(pods)) return pods;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not reached in ${timeoutMs} ms; pods: ${JSON.stringify(pods)}`);
}
const workers = (pods: RunPod[]) => pods.filter((p) => p.component === 'worker');
const running = (pods: RunPod[]) => pods.filter((p) => p.phase === 'Running');

before(async () => {
  helm = requireHelm();
  plane = await startControlPlane();
  kc = loadKubeConfig(plane.kubeconfig);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
});
after(async () => {
  await plane?.stop();
});

describe('k8s cluster - launch, scale, status on a real control plane', () => {
  let objects: K8sObject[] = [];

  it('the API server accepts every object of the default chart (server-side dry run, with claims)', async () => {
    const all = await renderRun(config, { ...options, persistence: true }, { helm });
    const applied = await applyObjects(kc, all, { dryRun: true });
    assert.deepEqual(applied.map((a) => a.kind).sort(), [
      'ConfigMap',
      'Deployment',
      'NetworkPolicy',
      'PersistentVolumeClaim',
      'PersistentVolumeClaim',
      'PodDisruptionBudget',
      'Service',
      'Service',
      'ServiceAccount',
      'StatefulSet',
    ]);
    assert.deepEqual(await listRunPods(kc, NS, options.run), [], 'a dry run creates nothing');
  });

  it('launch creates every object, and a second launch changes nothing', async () => {
    objects = await renderRun(config, options, { helm });
    const first = await applyObjects(kc, objects);
    assert.ok(
      first.every((a) => a.action === 'created'),
      JSON.stringify(first),
    );
    const second = await applyObjects(kc, objects);
    assert.deepEqual(
      second.map((a) => a.action),
      objects.map(() => 'unchanged'),
      JSON.stringify(second),
    );
  });

  it('the coordinator and every worker run on the fake GPU node, ranks from the pod index', async () => {
    const pods = await waitForPods('all Running', (p) => p.length === 3 && running(p).length === 3);
    assert.deepEqual(
      pods.map((p) => [p.component, p.rank, p.node]),
      [
        ['coordinator', null, 'fake-gpu-0'],
        ['worker', 0, 'fake-gpu-0'],
        ['worker', 1, 'fake-gpu-0'],
      ],
    );
    assert.deepEqual(
      workers(pods).map((p) => p.name),
      ['r1-worker-0', 'r1-worker-1'],
    );
  });

  it('scaling past the GPUs leaves the new worker Pending for want of nvidia.com/gpu', async () => {
    assert.equal(await scaleWorkers(kc, NS, options.run, 3), 2);
    const pods = await waitForPods('third worker unschedulable', (p) => {
      const w2 = p.find((x) => x.rank === 2);
      return w2?.phase === 'Pending' && /Insufficient nvidia.com\/gpu/.test(w2.reason ?? '');
    });
    assert.equal(running(workers(pods)).length, 2);
  });

  it('scaling down removes the highest rank', async () => {
    assert.equal(await scaleWorkers(kc, NS, options.run, 2), 3);
    const pods = await waitForPods('back to two workers', (p) => workers(p).length === 2);
    assert.deepEqual(
      workers(pods).map((p) => p.rank),
      [0, 1],
    );
  });

  it('a deleted worker pod is replaced under the same rank', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const old = await core.readNamespacedPod({ name: 'r1-worker-0', namespace: NS });
    await core.deleteNamespacedPod({ name: 'r1-worker-0', namespace: NS, gracePeriodSeconds: 0 });
    await waitForPods(
      'replacement Running',
      (p) => running(workers(p)).length === 2 && p.some((x) => x.name === 'r1-worker-0'),
    );
    const fresh = await core.readNamespacedPod({ name: 'r1-worker-0', namespace: NS });
    assert.notEqual(fresh.metadata?.uid, old.metadata?.uid);
    assert.equal(fresh.metadata?.labels?.['apps.kubernetes.io/pod-index'], '0');
  });

  it('scaling a run that does not exist names it', async () => {
    await assert.rejects(scaleWorkers(kc, NS, 'nope', 1), /run nope has no workers in namespace bbn-test/);
  });
});
