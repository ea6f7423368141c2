/**
 * The Helm chart's temporal-mode processes in their real image, on one podman network
 * (`npm run test:containers-chart`; needs `bash scripts/setup-containers.sh`, `npm run images`
 * and `bash scripts/k8s/setup-helm.sh` once).
 *
 * The pods are the chart's own: the run is rendered with `renderRun` (what `bbn launch --k8s`
 * applies), and each pod template becomes a `podman run` through pod-spec.ts, so the coordinator
 * and worker containers get exactly the chart's args, env, mounts, user and read-only root.
 * Temporal and NATS run from the images the test helper uses. The checkpoint and data claims are
 * named volumes shared by all pods.
 *
 * Two runs of one small config: uninterrupted; then with worker rank 1 SIGKILLed (`podman kill`)
 * once rank 0 has reported epoch 1, and the coordinator SIGKILLed once rank 0 has reported epoch 2,
 * each replaced as its controller would (same pod name for the StatefulSet's rank, a new one for
 * the Deployment's). The second run's final weights must equal the first's, bit for bit.
 */
import assert from 'node:assert/strict';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { parseRunConfig } from '../../src/core/config.ts';
import { SERVER_IMAGES, waitForNats, waitForTemporal } from '../../src/devservers/index.ts';
import type { K8sObject } from '../../src/k8s/api.ts';
import { renderRun } from '../../src/k8s/render.ts';
import { finalParams } from '../distributed/fixtures.ts';
import { waitUntil } from '../helpers/servers.ts';
import { tinyRun } from '../helpers/tiny.ts';
import { one, requireHelm } from '../k8s/chart.ts';
import { type PodTemplateSpec, podmanRunArgs } from './pod-spec.ts';
import { type Followed, podman, removeTestObjects, runFollowed, TEST_LABEL, volumePath } from './podman.ts';

const IMAGE = process.env.BBN_IMAGE ?? 'localhost/bbn:0.1.0-cpu';
const RUN = 'e2e';
const NS = 'bbn';
/** The coordinator's Service name, as the chart gives it to the workers (BBN_COORDINATOR_ADDRESS). */
const COORDINATOR_SERVICE = `${RUN}-coordinator.${NS}.svc.cluster.local`;
const EPOCHS = 4;
/** The shared tiny problem, with epochs long enough (23 steps) that a kill lands inside one. */
const CONFIG = parseRunConfig(
  tinyRun({ name: 'e2e', dataset: { perClass: 192 }, train: { epochs: EPOCHS } }),
);

/** podman's Docker API resolves one-part names under docker.io/library (as the set-up tags them). */
const qualified = (image: string) =>
  image.includes('/') ? `docker.io/${image}` : `docker.io/library/${image}`;

let objects: K8sObject[] = [];
let workDir = '';

/** The pod template of the chart's Deployment or StatefulSet. */
function template(kind: 'Deployment' | 'StatefulSet', suffix: string): PodTemplateSpec {
  return (one(objects, kind, suffix) as unknown as { spec: { template: PodTemplateSpec } }).spec.template;
}

/** One run's network, volumes and containers; `net` picks the subnet 10.89.NET.0/24. */
class Cluster {
  readonly network: string;
  readonly hosts = new Map<string, string>();
  readonly containers = new Map<string, Followed>();
  private podSeq = 0;

  constructor(
    readonly scenario: string,
    readonly net: number,
  ) {
    this.network = `bbn-e2e-${scenario}`;
    const ip = (n: number) => `10.89.${net}.${n}`;
    this.hosts.set('temporal', ip(10));
    this.hosts.set('nats', ip(11));
    // The coordinator's Service: each replacement pod takes the same address (the old one is
    // removed first), as the Service follows the Deployment's pod.
    this.hosts.set(COORDINATOR_SERVICE, ip(20));
    for (let r = 0; r < 2; r++)
      this.hosts.set(`${RUN}-worker-${r}.${RUN}-worker.${NS}.svc.cluster.local`, ip(30 + r));
  }

  claim = (claimName: string) => `${this.network}-${claimName}`;

  private addHosts(): string[] {
    return [...this.hosts].flatMap(([h, ip]) => ['--add-host', `${h}:${ip}`]);
  }

  async up(): Promise<void> {
    await podman([
      'network',
      'create',
      '--label',
      TEST_LABEL,
      '--subnet',
      `10.89.${this.net}.0/24`,
      this.network,
    ]);
    for (const claim of [`${RUN}-checkpoints`, `${RUN}-data`]) {
      await podman(['volume', 'create', '--label', TEST_LABEL, this.claim(claim)]);
      // What the pods' fsGroup does to a fresh claim: writable by the run's user.
      chownSync(await volumePath(this.claim(claim)), 10001, 10001);
    }
    const temporal = this.hosts.get('temporal') as string;
    const nats = this.hosts.get('nats') as string;
    await runFollowed([
      '--name',
      `${this.network}-temporal`,
      '--network',
      this.network,
      '--ip',
      temporal,
      qualified(SERVER_IMAGES.temporal),
    ]);
    await runFollowed([
      '--name',
      `${this.network}-nats`,
      '--network',
      this.network,
      '--ip',
      nats,
      qualified(SERVER_IMAGES.nats),
    ]);
    await waitForTemporal(`${temporal}:7233`, { timeoutMs: 60_000 });
    await waitForNats(`nats://${nats}:4222`, { timeoutMs: 30_000 });
  }

  /** Rank `rank`'s pod, as the StatefulSet makes it (same name every time). */
  async worker(rank: number): Promise<Followed> {
    const name = `${RUN}-worker-${rank}`;
    const f = await runFollowed(
      podmanRunArgs(
        template('StatefulSet', '-worker'),
        { name, labels: { 'apps.kubernetes.io/pod-index': String(rank) } },
        this.volumes(),
        [
          '--network',
          this.network,
          '--ip',
          this.hosts.get(`${name}.${RUN}-worker.${NS}.svc.cluster.local`) as string,
          ...this.addHosts(),
        ],
      ),
    );
    this.containers.set(name, f);
    return f;
  }

  /** The coordinator's pod, as the Deployment makes it (a new name for each replacement). */
  async coordinator(): Promise<Followed> {
    const name = `${RUN}-coordinator-${this.scenario}-${this.podSeq++}`;
    const f = await runFollowed(
      podmanRunArgs(template('Deployment', '-coordinator'), { name, labels: {} }, this.volumes(), [
        '--network',
        this.network,
        '--ip',
        this.hosts.get(COORDINATOR_SERVICE) as string,
        ...this.addHosts(),
      ]),
    );
    this.containers.set(name, f);
    return f;
  }

  private volumes() {
    const cm = one(objects, 'ConfigMap', '-config') as unknown as { data: Record<string, string> };
    return {
      claim: this.claim,
      configMapFile: (_name: string, key: string) => {
        const file = join(workDir, key);
        writeFileSync(file, cm.data[key], { mode: 0o644 });
        return file;
      },
    };
  }

  /** SIGKILL, then remove (the controller deletes the dead pod before making its replacement). */
  async kill(f: Followed): Promise<number> {
    await podman(['kill', '--signal', 'KILL', f.name]);
    const code = await f.exited;
    await podman(['rm', '-f', f.name]);
    this.containers.delete(f.name);
    return code;
  }

  /** SIGTERM every bbn pod (the release going away) and the exit codes by pod. */
  async stopPods(): Promise<Record<string, number>> {
    const pods = [...this.containers.values()];
    await Promise.all(pods.map((p) => podman(['stop', '-t', '30', p.name])));
    const codes: Record<string, number> = {};
    for (const p of pods) codes[p.name] = await p.exited;
    return codes;
  }

  async finalParams(): Promise<Float32Array> {
    return finalParams(await volumePath(this.claim(`${RUN}-checkpoints`)));
  }
}

const seconds = (t0: number) => ((performance.now() - t0) / 1000).toFixed(1);
const ended = (f: Followed) => f.lines.some((l) => l.startsWith('run ended; serving nothing more'));
const reported = (f: Followed, epoch: number) =>
  f.lines.some((l) => l.startsWith(`epoch ${epoch}/${EPOCHS}`));

before(async () => {
  await podman(['image', 'exists', IMAGE]).catch(() => {
    throw new Error(`no image ${IMAGE}: run \`npm run images\` first`);
  });
  await removeTestObjects();
  objects = await renderRun(
    CONFIG,
    {
      run: RUN,
      namespace: NS,
      workers: 2,
      gpusPerWorker: 0,
      image: IMAGE,
      temporalAddress: 'temporal:7233',
      natsUrl: 'nats://nats:4222',
      persistence: true,
    },
    { helm: requireHelm() },
  );
  workDir = mkdtempSync(join(tmpdir(), 'bbn-e2e-'));
});

after(async () => {
  await removeTestObjects();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe('the chart’s temporal mode in its image: coordinator + 2 rank workers on podman', () => {
  let clean: Float32Array | undefined;

  it('the chart renders the temporal-mode commands this test runs', () => {
    const coord = template('Deployment', '-coordinator').spec.containers[0];
    const worker = template('StatefulSet', '-worker').spec.containers[0];
    assert.equal(coord.image, IMAGE);
    assert.deepEqual(coord.args?.slice(0, 1), ['train']);
    assert.ok(coord.args?.includes('--external-workers'));
    assert.deepEqual(worker.args?.slice(0, 3), ['worker', '--rank', '$(BBN_RANK)']);
    assert.ok(worker.args?.includes('--temporal'));
    const coordinatorAddress = worker.env?.find((e) => e.name === 'BBN_COORDINATOR_ADDRESS')?.value;
    assert.equal(coordinatorAddress, `${COORDINATOR_SERVICE}:7070`);
  });

  it('an uninterrupted run trains to completion', { timeout: 600_000 }, async (t: TestContext) => {
    const c = new Cluster('clean', 91);
    const t0 = performance.now();
    await c.up();
    t.diagnostic(`clean: Temporal and NATS containers ready in ${seconds(t0)} s`);
    const t1 = performance.now();
    const ranks = [await c.worker(0), await c.worker(1)];
    const coord = await c.coordinator();
    await waitUntil('the clean run ends', () => ended(coord), 480_000).catch((err) => {
      throw new Error(
        `${err.message}\ncoordinator:\n${coord.lines.join('\n')}\nrank 0:\n${ranks[0].lines.join('\n')}\nrank 1:\n${ranks[1].lines.join('\n')}`,
      );
    });
    t.diagnostic(`clean: pods started to run ended in ${seconds(t1)} s`);
    assert.ok(
      coord.lines.some((l) => l.includes(`run ${RUN}: started`)),
      coord.lines.join('\n'),
    );
    // Rank 0's own log is a separate stream: its last line may arrive after the coordinator's.
    await waitUntil('rank 0 reports the last epoch', () => reported(ranks[0], EPOCHS), 30_000);
    for (let e = 1; e <= EPOCHS; e++) assert.ok(reported(ranks[0], e), `rank 0 reported epoch ${e}`);
    // The image's own addon moved the chunks between the containers.
    for (const [r, f] of ranks.entries()) {
      assert.ok(
        f.lines.some((l) => l.includes('formed, chunks on the native data plane')),
        `rank ${r}:\n${f.lines.join('\n')}`,
      );
    }
    clean = await c.finalParams();
    const codes = await c.stopPods();
    assert.deepEqual(
      Object.values(codes),
      [0, 0, 0],
      `pods leave cleanly on SIGTERM: ${JSON.stringify(codes)}`,
    );
    await removeTestObjects();
  });

  it('a worker and the coordinator SIGKILLed mid-run and replaced: the same final weights', {
    timeout: 900_000,
  }, async (t: TestContext) => {
    assert.ok(clean, 'the uninterrupted run must have finished first');
    const c = new Cluster('faults', 92);
    await c.up();
    const t1 = performance.now();
    const ranks = [await c.worker(0), await c.worker(1)];
    let coord = await c.coordinator();
    const dump = () =>
      `coordinator:\n${coord.lines.join('\n')}\nrank 0:\n${ranks[0].lines.join('\n')}\nrank 1:\n${ranks[1].lines.join('\n')}`;
    const wait = (what: string, cond: () => boolean, ms: number) =>
      waitUntil(what, cond, ms).catch((err) => {
        throw new Error(`${err.message}\n${dump()}`);
      });

    await wait('rank 0 reports epoch 1', () => reported(ranks[0], 1), 480_000);
    assert.equal(await c.kill(ranks[1]), 137, 'podman kill is a SIGKILL');
    const tKill = performance.now();
    t.diagnostic(`faults: rank 1 killed ${seconds(t1)} s after the pods started (epoch 2 under way)`);
    ranks[1] = await c.worker(1);

    await wait('rank 0 reports epoch 2 after the rank was replaced', () => reported(ranks[0], 2), 480_000);
    t.diagnostic(`faults: epoch 2 done ${seconds(tKill)} s after rank 1 was killed`);
    assert.equal(await c.kill(coord), 137);
    coord = await c.coordinator();
    const tCoord = performance.now();

    await wait('the run ends', () => ended(coord), 480_000);
    t.diagnostic(
      `faults: run ended ${seconds(tCoord)} s after the coordinator was replaced; ${seconds(t1)} s in all`,
    );
    assert.ok(
      coord.lines.some((l) => l.includes(`run ${RUN}: re-attached to the running workflow`)),
      dump(),
    );
    await wait('rank 0 reports the last epoch', () => reported(ranks[0], EPOCHS), 30_000);
    // The kill was felt inside an epoch: rank 0's trainEpoch attempt failed (mid-epoch it fails
    // with PeerLostError, the ring peer gone).
    const failed = ranks[0].lines.filter((l) => l.includes('Activity failed') && l.includes('"trainEpoch"'));
    assert.ok(failed.length > 0, dump());
    t.diagnostic(
      `faults: rank 0's failed trainEpoch: ${failed.map((l) => /"name":"(\w+)"/.exec(l)?.[1]).join(', ')}`,
    );
    const faulted = await c.finalParams();
    assert.equal(faulted.length, clean.length);
    assert.deepEqual(faulted, clean, 'bit-identical to the uninterrupted run');
    const codes = await c.stopPods();
    assert.deepEqual(
      Object.values(codes),
      [0, 0, 0],
      `pods leave cleanly on SIGTERM: ${JSON.stringify(codes)}`,
    );
  });
});
