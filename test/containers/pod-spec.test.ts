import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expandK8sRefs, memoryBytes, type PodTemplateSpec, podmanRunArgs, resolveEnv } from './pod-spec.ts';

describe('pod template -> podman run (the container tests run the chart’s own pods)', () => {
  it('expands $(VAR) as the kubelet does: defined earlier, $$ escapes, unknown left alone', () => {
    const env = new Map([['A', 'x']]);
    assert.equal(expandK8sRefs('$(A)-$(B)-$$(A)', env), 'x-$(B)-$(A)');
  });

  it('resolves fieldRefs and references to earlier variables only', () => {
    const env = resolveEnv(
      [
        { name: 'LATE', value: '$(POD)' },
        { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        {
          name: 'RANK',
          valueFrom: { fieldRef: { fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']" } },
        },
        { name: 'HOST', value: '$(POD).svc' },
      ],
      { name: 'r-worker-1', labels: { 'apps.kubernetes.io/pod-index': '1' } },
    );
    assert.deepEqual(
      [...env],
      [
        ['LATE', '$(POD)'],
        ['POD', 'r-worker-1'],
        ['RANK', '1'],
        ['HOST', 'r-worker-1.svc'],
      ],
    );
    assert.throws(
      () =>
        resolveEnv([{ name: 'X', valueFrom: { fieldRef: { fieldPath: "metadata.labels['nope']" } } }], {
          name: 'p',
          labels: {},
        }),
      /pod p has no such label/,
    );
  });

  it('reads memory quantities', () => {
    assert.equal(memoryBytes('1Gi'), 2 ** 30);
    assert.equal(memoryBytes('512Mi'), 512 * 2 ** 20);
    assert.equal(memoryBytes('2G'), 2e9);
    assert.throws(() => memoryBytes('lots'), /not understood/);
  });

  it('maps args, env, mounts and the security context onto podman flags', () => {
    const tpl: PodTemplateSpec = {
      spec: {
        securityContext: { runAsUser: 10001, runAsGroup: 10001 },
        containers: [
          {
            name: 'worker',
            image: 'img:1',
            args: ['worker', '--rank', '$(RANK)'],
            env: [
              {
                name: 'RANK',
                valueFrom: { fieldRef: { fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']" } },
              },
            ],
            resources: { limits: { memory: '1Gi' } },
            securityContext: {
              readOnlyRootFilesystem: true,
              allowPrivilegeEscalation: false,
              capabilities: { drop: ['ALL'] },
            },
            volumeMounts: [
              { name: 'config', mountPath: '/etc/bbn/run.yaml', subPath: 'run.yaml', readOnly: true },
              { name: 'ckpt', mountPath: '/ckpt' },
              { name: 'tmp', mountPath: '/tmp' },
            ],
          },
        ],
        volumes: [
          { name: 'config', configMap: { name: 'r-config' } },
          { name: 'ckpt', persistentVolumeClaim: { claimName: 'r-ckpt' } },
          { name: 'tmp', emptyDir: {} },
        ],
      },
    };
    const args = podmanRunArgs(
      tpl,
      { name: 'r-worker-0', labels: { 'apps.kubernetes.io/pod-index': '0' } },
      { claim: (c) => `vol-${c}`, configMapFile: (cm, key) => `/files/${cm}/${key}` },
      ['--network', 'n'],
    );
    assert.deepEqual(args, [
      '--name',
      'r-worker-0',
      '--hostname',
      'r-worker-0',
      '--label',
      'apps.kubernetes.io/pod-index=0',
      '--user',
      '10001:10001',
      '--read-only',
      '--read-only-tmpfs=false',
      '--security-opt',
      'no-new-privileges',
      '--cap-drop',
      'ALL',
      '--memory',
      String(2 ** 30),
      '--env',
      'RANK=0',
      '--volume',
      '/files/r-config/run.yaml:/etc/bbn/run.yaml:ro',
      '--volume',
      'vol-r-ckpt:/ckpt',
      '--tmpfs',
      '/tmp:rw,mode=1777',
      '--network',
      'n',
      'img:1',
      'worker',
      '--rank',
      '0',
    ]);
  });

  it('refuses what it cannot map rather than dropping it', () => {
    const tpl: PodTemplateSpec = {
      spec: {
        containers: [{ name: 'c', image: 'i:1', volumeMounts: [{ name: 's', mountPath: '/s' }] }],
        volumes: [{ name: 's', secret: { secretName: 'x' } }],
      },
    };
    const vols = { claim: (c: string) => c, configMapFile: () => '' };
    assert.throws(
      () => podmanRunArgs(tpl, { name: 'p', labels: {} }, vols),
      /only claims, ConfigMaps and emptyDirs/,
    );
  });
});
