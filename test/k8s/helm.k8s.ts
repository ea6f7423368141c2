/**
 * The Helm chart, rendered by the real helm (run: `npm run test:k8s`; needs
 * `bash scripts/k8s/setup-helm.sh` once). Every rendered object is checked against the
 * Kubernetes API types offline (see schema.ts for what that covers); the cluster test has a real
 * API server accept them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Command } from 'commander';
import { RUN_TOKEN_FILE_NAME, runTokenFromEnv } from '../../src/auth/run-token.ts';
import { registerLaunchCommand } from '../../src/cli/launch-command.ts';
import { parseRunConfig } from '../../src/core/config.ts';
import type { K8sObject } from '../../src/k8s/api.ts';
import { CHART_DIR, runHelm } from '../../src/k8s/helm.ts';
import { parseManifests, renderRun } from '../../src/k8s/render.ts';
import { one, type PodTemplate, requireHelm, template } from './chart.ts';
import { validateObject } from './schema.ts';

let helm = '';
before(() => {
  helm = requireHelm();
});

const VALUES = [null, 'values-cpu.yaml', 'values-gpu.yaml'] as const;
const KINDS = [
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
];

for (const values of VALUES) {
  describe(`chart with ${values ?? 'default values'}`, () => {
    let objects: K8sObject[] = [];
    before(async () => {
      objects = await template(helm, values);
    });

    it('passes helm lint --strict', async () => {
      const args = ['lint', CHART_DIR, '--strict', '--namespace', 'bbn'];
      if (values) args.push('--values', `${CHART_DIR}/${values}`);
      assert.match(await runHelm(helm, args), /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });

    it('renders every object of a run, each conforming to its Kubernetes API type', () => {
      assert.deepEqual(objects.map((o) => o.kind).sort(), KINDS);
      for (const o of objects) assert.deepEqual(validateObject(o), [], `${o.kind}/${o.metadata.name}`);
    });

    it('selectors match pod labels, and pods mount only objects the chart makes', () => {
      const names = new Set(objects.map((o) => `${o.kind}/${o.metadata.name}`));
      for (const kind of ['Deployment', 'StatefulSet']) {
        const w = one<PodTemplate>(objects, kind);
        const labels = w.spec.template.metadata.labels;
        for (const [k, v] of Object.entries(w.spec.selector.matchLabels))
          assert.equal(labels[k], v, `${kind} ${k}`);
        for (const v of w.spec.template.spec.volumes) {
          if (v.persistentVolumeClaim)
            assert.ok(names.has(`PersistentVolumeClaim/${v.persistentVolumeClaim.claimName}`));
          if (v.configMap) assert.ok(names.has(`ConfigMap/${v.configMap.name}`));
        }
        const mounts = w.spec.template.spec.containers[0].volumeMounts.map((m) => m.name);
        for (const m of mounts)
          assert.ok(
            w.spec.template.spec.volumes.some((v) => v.name === m),
            `${kind} mounts ${m}`,
          );
        assert.equal(w.spec.template.spec.securityContext.runAsNonRoot, true);
        assert.ok(w.spec.template.spec.securityContext.runAsUser > 0);
        assert.equal(w.spec.template.spec.terminationGracePeriodSeconds, 120);
      }
      const sts = one<PodTemplate>(objects, 'StatefulSet');
      const headless = one<{ spec: { clusterIP: string; selector: Record<string, string> } }>(
        objects,
        'Service',
        '-worker',
      );
      assert.equal(sts.spec.serviceName, headless.metadata.name);
      assert.equal(headless.spec.clusterIP, 'None');
      for (const [k, v] of Object.entries(headless.spec.selector))
        assert.equal(sts.spec.template.metadata.labels[k], v);
    });

    it('gives each worker its rank from the pod index label; workers serve their Temporal queues, the coordinator pod hosts the workflow', () => {
      const c = one<PodTemplate>(objects, 'StatefulSet').spec.template.spec.containers[0];
      const rank = c.env.find((e) => e.name === 'BBN_RANK');
      assert.equal(rank?.valueFrom?.fieldRef?.fieldPath, "metadata.labels['apps.kubernetes.io/pod-index']");
      assert.deepEqual(c.args.slice(0, 5), [
        'worker',
        '--rank',
        '$(BBN_RANK)',
        '--temporal',
        '$(BBN_TEMPORAL_ADDRESS)',
      ]);
      const peer = c.args.indexOf('--peer-port');
      assert.equal(Number(c.args[peer + 1]), c.ports.find((p) => p.name === 'peer')?.containerPort);
      const coord = one<PodTemplate>(objects, 'Deployment').spec.template.spec.containers[0];
      assert.equal(coord.args[0], 'train');
      assert.ok(coord.args.includes('--external-workers'));
      for (const e of [
        'BBN_TEMPORAL_ADDRESS',
        'BBN_NATS_URL',
        'BBN_COORDINATOR_ADDRESS',
        'BBN_CHECKPOINT_DIR',
      ])
        assert.ok(c.env.some((x) => x.name === e) && coord.env.some((x) => x.name === e), e);
    });

    it('the workers heartbeat to the coordinator Service; any orchestration but temporal is refused', async () => {
      const c = one<PodTemplate>(objects, 'StatefulSet').spec.template.spec.containers[0];
      assert.equal(c.args[c.args.indexOf('--coordinator') + 1], '$(BBN_COORDINATOR_ADDRESS)');
      const coord = one<PodTemplate>(objects, 'Deployment').spec.template.spec.containers[0];
      assert.equal(
        Number(coord.args[coord.args.indexOf('--coordinator-port') + 1]),
        coord.ports.find((p) => p.name === 'coordinator')?.containerPort,
      );
      assert.equal(coord.args[coord.args.indexOf('--coordinator-host') + 1], '0.0.0.0');
      await assert.rejects(
        template(helm, values, ['orchestration=coordinator']),
        /orchestration "coordinator": only temporal is supported/,
      );
    });

    it('asks for GPUs only on GPU values, and picks the matching image', () => {
      const gpu = values === 'values-gpu.yaml';
      const spec = one<PodTemplate>(objects, 'StatefulSet').spec.template.spec;
      const limits = spec.containers[0].resources.limits ?? {};
      assert.equal(limits['nvidia.com/gpu'], gpu ? 1 : undefined);
      assert.match(spec.containers[0].image, gpu ? /:0\.1\.0-gpu$/ : /:0\.1\.0-cpu$/);
      assert.equal(spec.tolerations?.some((t) => t.key === 'nvidia.com/gpu') ?? false, gpu);
    });

    it('lets only the run reach its pods, and the pods reach only the run, DNS, Temporal and NATS', () => {
      const np = one<{
        spec: {
          podSelector: { matchLabels: Record<string, string> };
          ingress: { from: { podSelector: { matchLabels: Record<string, string> } }[] }[];
          egress: { ports?: { port: number }[] }[];
        };
      }>(objects, 'NetworkPolicy');
      assert.deepEqual(np.spec.podSelector.matchLabels, { 'bbn.dev/run': 'demo' });
      assert.deepEqual(np.spec.ingress, [
        { from: [{ podSelector: { matchLabels: { 'bbn.dev/run': 'demo' } } }] },
      ]);
      const ports = np.spec.egress.flatMap((e) => (e.ports ?? []).map((p) => p.port)).sort((a, b) => a - b);
      assert.deepEqual(ports, [53, 53, 4222, 7233]);
    });
  });
}

describe('chart options', () => {
  it('creates a credentials Secret only when given data, and mounts it read-only', async () => {
    const objects = await template(helm, null, ['credentials.stringData.token=s3cret']);
    const secret = one<{ stringData: Record<string, string> }>(objects, 'Secret');
    assert.deepEqual(secret.stringData, { token: 's3cret' });
    const spec = one<PodTemplate>(objects, 'StatefulSet').spec.template.spec;
    assert.equal(spec.volumes.find((v) => v.name === 'credentials')?.secret?.secretName, 'demo-credentials');
    for (const o of objects) assert.deepEqual(validateObject(o), []);
  });

  it('uses emptyDir and makes no claims when persistence is off', async () => {
    const objects = await template(helm, null, [
      'persistence.checkpoints.enabled=false',
      'persistence.data.enabled=false',
    ]);
    assert.equal(objects.filter((o) => o.kind === 'PersistentVolumeClaim').length, 0);
    const vols = one<PodTemplate>(objects, 'StatefulSet').spec.template.spec.volumes;
    assert.ok(vols.find((v) => v.name === 'checkpoints')?.emptyDir);
  });

  it('refuses a run name that would break pod names, naming it', async () => {
    await assert.rejects(template(helm, null, ['run.name=Bad_Name']), /run.name "Bad_Name" must be/);
    await assert.rejects(template(helm, null, [`run.name=r${'x'.repeat(40)}`]), /must be 1-40 lowercase/);
  });
});

describe('bbn launch --k8s', () => {
  const config = parseRunConfig({ name: 'mnist-lt', dataset: { kind: 'mnist' } });

  it('renders the same objects as the chart from the run config and options', async () => {
    const objects = await renderRun(config, {
      run: 'r1',
      namespace: 'team-a',
      workers: 5,
      gpusPerWorker: 2,
      temporalAddress: 'temporal.example:7233',
      natsUrl: 'nats://nats.example:4222',
      image: 'registry.example/bbn:1.2.3-gpu',
    });
    for (const o of objects) {
      assert.equal(o.metadata.namespace, 'team-a');
      assert.deepEqual(validateObject(o), []);
    }
    const sts = one<PodTemplate>(objects, 'StatefulSet');
    assert.equal(sts.spec.replicas, 5);
    const c = sts.spec.template.spec.containers[0];
    assert.equal(c.resources.limits?.['nvidia.com/gpu'], 2);
    assert.equal(c.image, 'registry.example/bbn:1.2.3-gpu');
    assert.equal(c.env.find((e) => e.name === 'BBN_TEMPORAL_ADDRESS')?.value, 'temporal.example:7233');
    const cm = one<{ data: Record<string, string> }>(objects, 'ConfigMap');
    assert.match(cm.data['run.yaml'], /kind: mnist/);
    assert.match(cm.data['run.yaml'], /batchSize: 128/, 'the config goes in with its defaults filled');
  });

  it('--dry-run prints YAML of every object and touches no cluster', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bbn-launch-'));
    const file = join(dir, 'run.yaml');
    writeFileSync(file, 'name: tiny\ndataset:\n  kind: mnist\ndistributed:\n  workers: 3\n');
    let out = '';
    try {
      const program = new Command().exitOverride();
      registerLaunchCommand(program, { write: (t: string) => (out += t) });
      await program.parseAsync(
        ['launch', '--k8s', '--dry-run', '--config', file, '--kubeconfig', '/nonexistent', 'train.epochs=7'],
        { from: 'user' },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const objects = parseManifests(out, 'default');
    // The chart's objects plus the run's credentials Secret (its token: see the next test).
    assert.deepEqual(objects.map((o) => o.kind).sort(), [...KINDS, 'Secret'].sort());
    assert.equal(one<PodTemplate>(objects, 'StatefulSet').spec.replicas, 3);
    assert.equal(one(objects, 'StatefulSet').metadata.name, 'tiny-worker');
    assert.match(one<{ data: Record<string, string> }>(objects, 'ConfigMap').data['run.yaml'], /epochs: 7/);
  });

  /** `bbn launch --k8s --dry-run` of a tiny run with `flags`: the objects it prints. */
  async function dryRun(flags: string[] = []): Promise<K8sObject[]> {
    const dir = mkdtempSync(join(tmpdir(), 'bbn-launch-'));
    const file = join(dir, 'run.yaml');
    writeFileSync(file, 'name: tiny\ndataset:\n  kind: mnist\ndistributed:\n  workers: 2\n');
    let out = '';
    try {
      const program = new Command().exitOverride();
      registerLaunchCommand(program, { write: (t: string) => (out += t) });
      await program.parseAsync(['launch', '--k8s', '--dry-run', '--config', file, ...flags], {
        from: 'user',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return parseManifests(out, 'default');
  }

  it('a launch makes a per-run token in the credentials Secret, which every pod mounts and reads', async () => {
    const objects = await dryRun();
    const secret = one<{ stringData: Record<string, string> }>(objects, 'Secret');
    assert.equal(secret.metadata.name, 'tiny-credentials');
    assert.deepEqual(Object.keys(secret.stringData), [RUN_TOKEN_FILE_NAME]);
    // What a pod does with the mounted file: the token it presents on every call.
    const mounted = mkdtempSync(join(tmpdir(), 'bbn-creds-'));
    try {
      writeFileSync(join(mounted, RUN_TOKEN_FILE_NAME), secret.stringData[RUN_TOKEN_FILE_NAME]);
      const token = runTokenFromEnv({ BBN_CREDENTIALS_DIR: mounted });
      assert.ok(token?.matches(secret.stringData[RUN_TOKEN_FILE_NAME]));
      assert.equal(secret.stringData[RUN_TOKEN_FILE_NAME].length, 43, '256 random bits, base64url');
    } finally {
      rmSync(mounted, { recursive: true, force: true });
    }
    for (const kind of ['Deployment', 'StatefulSet']) {
      const spec = one<PodTemplate>(objects, kind).spec.template.spec;
      assert.equal(
        spec.volumes.find((v) => v.name === 'credentials')?.secret?.secretName,
        'tiny-credentials',
        kind,
      );
      const env = spec.containers[0].env;
      assert.equal(env.find((e) => e.name === 'BBN_CREDENTIALS_DIR')?.value, '/etc/bbn/credentials', kind);
      assert.ok(
        spec.containers[0].volumeMounts.some((m) => m.name === 'credentials'),
        kind,
      );
    }
    const again = one<{ stringData: Record<string, string> }>(await dryRun(), 'Secret');
    assert.notEqual(
      again.stringData[RUN_TOKEN_FILE_NAME],
      secret.stringData[RUN_TOKEN_FILE_NAME],
      'one token per run',
    );
  });

  it('with --credentials-secret the named Secret is mounted and none is made', async () => {
    const objects = await dryRun(['--credentials-secret', 'mine']);
    assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0);
    const spec = one<PodTemplate>(objects, 'StatefulSet').spec.template.spec;
    assert.equal(spec.volumes.find((v) => v.name === 'credentials')?.secret?.secretName, 'mine');
  });
});
