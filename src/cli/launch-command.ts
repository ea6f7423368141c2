/**
 * `bbn launch --k8s` starts a run on a Kubernetes cluster (the Helm chart's objects, applied
 * through the API with server-side apply; `--dry-run` prints them instead). `bbn scale RUN W --k8s`
 * changes its worker count, `bbn status RUN --k8s` lists its pods.
 *
 * Without `--k8s` these commands belong to the Temporal workflow (not built yet) and say so.
 */
import type { Command } from 'commander';
import { K8sError, type LaunchOptions } from '../k8s/api.ts';
import { applyObjects, formatPods, listRunPods, loadKubeConfig, scaleWorkers } from '../k8s/cluster.ts';
import { renderRun, toYaml } from '../k8s/render.ts';
import { loadRunConfig } from './config-file.ts';

/** Where Temporal and NATS are, unless given: their official charts' services in their own namespaces. */
export const DEFAULT_TEMPORAL_ADDRESS = 'temporal-frontend.temporal.svc.cluster.local:7233';
export const DEFAULT_NATS_URL = 'nats://nats.nats.svc.cluster.local:4222';

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new K8sError(`${name} must be an integer, got "${v}"`);
  return n;
};

function requireK8s(command: string, k8s: boolean | undefined): void {
  if (!k8s)
    throw new K8sError(
      `bbn ${command} without --k8s needs the Temporal workflow, which is not built yet; use --k8s to act on the cluster's objects`,
    );
}

interface LaunchFlags {
  k8s?: boolean;
  config: string;
  run?: string;
  namespace: string;
  workers?: number;
  gpusPerWorker: number;
  image?: string;
  temporal: string;
  temporalNamespace: string;
  nats: string;
  grace?: number;
  persistence: boolean;
  credentialsSecret?: string;
  kubeconfig?: string;
  dryRun?: boolean;
}

/** Where the commands print (tests pass their own). */
export interface CommandOutput {
  write(text: string): unknown;
}

/** Registers `launch`, `scale` and `status` on the `bbn` program. */
export function registerLaunchCommand(program: Command, out: CommandOutput = process.stdout): void {
  program
    .command('launch')
    .description('start a run on a Kubernetes cluster: a coordinator and a StatefulSet of workers')
    .argument('[overrides...]', 'config overrides KEY=VALUE (e.g. train.epochs=10)')
    .requiredOption('--config <file>', 'run config (YAML)')
    .option('--k8s', 'launch on Kubernetes (the current kubeconfig context)')
    .option('--run <name>', 'run id, a DNS label of at most 40 characters (default: the config name)')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--workers <n>', 'worker ranks (default: distributed.workers of the config)', int('--workers'))
    .option('--gpus-per-worker <n>', 'GPUs per worker; 0 runs CPU workers', int('--gpus-per-worker'), 0)
    .option('--image <ref>', 'image REPOSITORY:TAG (default: the chart default for CPU or GPU)')
    .option(
      '--temporal <host:port>',
      'Temporal frontend',
      process.env.BBN_TEMPORAL_ADDRESS ?? DEFAULT_TEMPORAL_ADDRESS,
    )
    .option('--temporal-namespace <ns>', 'Temporal namespace', 'default')
    .option('--nats <url>', 'NATS server', process.env.BBN_NATS_URL ?? DEFAULT_NATS_URL)
    .option('--grace <seconds>', 'termination grace period, to finish a checkpoint', int('--grace'))
    .option('--no-persistence', 'emptyDir instead of PersistentVolumeClaims (demos and tests only)')
    .option('--credentials-secret <name>', 'existing Secret mounted at /etc/bbn/credentials')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG or ~/.kube/config)')
    .option('--dry-run', 'print the objects as YAML and change nothing')
    .action(async (overrides: string[], f: LaunchFlags) => {
      requireK8s('launch', f.k8s);
      const cfg = loadRunConfig(f.config, overrides);
      const options: LaunchOptions = {
        run: f.run ?? cfg.name,
        namespace: f.namespace,
        workers: f.workers ?? cfg.distributed.workers,
        gpusPerWorker: f.gpusPerWorker,
        image: f.image,
        temporalAddress: f.temporal,
        temporalNamespace: f.temporalNamespace,
        natsUrl: f.nats,
        terminationGracePeriodSeconds: f.grace,
        persistence: f.persistence,
        credentialsSecret: f.credentialsSecret,
      };
      const objects = await renderRun(cfg, options);
      if (f.dryRun) {
        out.write(toYaml(objects));
        return;
      }
      const applied = await applyObjects(loadKubeConfig(f.kubeconfig), objects);
      for (const a of applied) out.write(`${a.kind}/${a.name} ${a.action}\n`);
      out.write(
        `run ${options.run}: ${options.workers} worker(s) in namespace ${options.namespace}; ` +
          `watch with: bbn status ${options.run} --k8s -n ${options.namespace}\n`,
      );
    });

  program
    .command('scale')
    .description('change the number of workers of a run')
    .argument('<run>', 'run id')
    .argument('<workers>', 'new worker count', int('workers'))
    .option('--k8s', "patch the run's worker StatefulSet")
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG or ~/.kube/config)')
    .action(
      async (run: string, workers: number, f: { k8s?: boolean; namespace: string; kubeconfig?: string }) => {
        requireK8s('scale', f.k8s);
        const before = await scaleWorkers(loadKubeConfig(f.kubeconfig), f.namespace, run, workers);
        out.write(`run ${run}: workers ${before} -> ${workers}\n`);
      },
    );

  program
    .command('status')
    .description("show a run's pods: phase, node, restarts")
    .argument('<run>', 'run id')
    .option('--k8s', "list the run's pods")
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG or ~/.kube/config)')
    .option('--json', 'print JSON')
    .action(
      async (run: string, f: { k8s?: boolean; namespace: string; kubeconfig?: string; json?: boolean }) => {
        requireK8s('status', f.k8s);
        const rows = await listRunPods(loadKubeConfig(f.kubeconfig), f.namespace, run);
        if (f.json) out.write(`${JSON.stringify(rows, null, 2)}\n`);
        else if (rows.length === 0) out.write(`run ${run}: no pods in namespace ${f.namespace}\n`);
        else out.write(`${formatPods(rows)}\n`);
      },
    );
}
