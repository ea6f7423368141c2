/**
 * `bbn launch --k8s` starts a run on a Kubernetes cluster (the Helm chart's objects, applied
 * through the API with server-side apply; `--dry-run` prints them instead). `bbn scale RUN W --k8s`
 * changes its worker count, `bbn status RUN --k8s` lists its pods.
 *
 * Without `--k8s` they talk to the Temporal workflow that owns the run (`--temporal ADDR`, or
 * `BBN_TEMPORAL_ADDRESS`, or a local dev server on localhost:7233).
 */

import { join } from 'node:path';
import type { Command } from 'commander';
import { K8sError, type LaunchOptions } from '../k8s/api.ts';

/** The Kubernetes client and the chart renderer, imported on use (the client alone takes a second to load). */
const cluster = () => import('../k8s/cluster.ts');
const render = () => import('../k8s/render.ts');

import { loadRunConfig } from './config-file.ts';
import { LOCAL_TEMPORAL_ADDRESS, temporalLaunch, temporalScale } from './run-commands.ts';
import { showStatus } from './run-status.ts';

/** Where Temporal and NATS are, unless given: their official charts' services in their own namespaces. */
export const DEFAULT_TEMPORAL_ADDRESS = 'temporal-frontend.temporal.svc.cluster.local:7233';
export const DEFAULT_NATS_URL = 'nats://nats.nats.svc.cluster.local:4222';

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new K8sError(`${name} must be an integer, got "${v}"`);
  return n;
};

/** The Temporal frontend to use: the flag, the environment, then the cluster's or the local default. */
function temporalAddress(flag: string | undefined, k8s: boolean | undefined): string {
  return (
    flag ?? process.env.BBN_TEMPORAL_ADDRESS ?? (k8s ? DEFAULT_TEMPORAL_ADDRESS : LOCAL_TEMPORAL_ADDRESS)
  );
}

interface TemporalFlags {
  k8s?: boolean;
  temporal?: string;
  temporalNamespace: string;
}

interface LaunchFlags {
  k8s?: boolean;
  config: string;
  run?: string;
  namespace: string;
  workers?: number;
  gpusPerWorker: number;
  image?: string;
  temporal?: string;
  temporalNamespace: string;
  out?: string;
  resume?: boolean;
  localWorker?: boolean;
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
      'Temporal frontend (default: $BBN_TEMPORAL_ADDRESS, else the cluster or local default)',
    )
    .option('--temporal-namespace <ns>', 'Temporal namespace', 'default')
    .option('--nats <url>', 'NATS server', process.env.BBN_NATS_URL ?? DEFAULT_NATS_URL)
    .option('--grace <seconds>', 'termination grace period, to finish a checkpoint', int('--grace'))
    .option('--no-persistence', 'emptyDir instead of PersistentVolumeClaims (demos and tests only)')
    .option('--credentials-secret <name>', 'existing Secret mounted at /etc/bbn/credentials')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG or ~/.kube/config)')
    .option('--dry-run', 'print the objects as YAML and change nothing')
    .option('--out <dir>', 'without --k8s: the run directory (default runs/RUN)')
    .option('--resume', 'without --k8s: continue the run from its last good checkpoint')
    .option(
      '--local-worker',
      'without --k8s: also serve the run in this process (one worker, in-process trainer)',
    )
    .action(async (overrides: string[], f: LaunchFlags) => {
      const cfg = loadRunConfig(f.config, overrides);
      const temporal = temporalAddress(f.temporal, f.k8s);
      if (!f.k8s) {
        const runId = f.run ?? cfg.name;
        await temporalLaunch(
          {
            temporal,
            temporalNamespace: f.temporalNamespace,
            config: cfg,
            runId,
            outDir: f.out ?? join('runs', runId),
            workers: f.workers ?? cfg.distributed.workers,
            resume: f.resume,
            localWorker: f.localWorker ? { backend: cfg.compute.backend } : undefined,
          },
          out,
        );
        return;
      }
      const options: LaunchOptions = {
        run: f.run ?? cfg.name,
        namespace: f.namespace,
        workers: f.workers ?? cfg.distributed.workers,
        gpusPerWorker: f.gpusPerWorker,
        image: f.image,
        temporalAddress: temporal,
        temporalNamespace: f.temporalNamespace,
        natsUrl: f.nats,
        terminationGracePeriodSeconds: f.grace,
        persistence: f.persistence,
        credentialsSecret: f.credentialsSecret,
      };
      const [{ renderRun, toYaml }, { applyObjects, existingRunToken, loadKubeConfig }] = await Promise.all([
        render(),
        cluster(),
      ]);
      const kc = f.dryRun ? undefined : loadKubeConfig(f.kubeconfig);
      if (!f.credentialsSecret) {
        // Every run's rings and coordinator calls are authenticated: the chart's Secret gets a token
        // of its own (kept when the run was launched before: its pods hold that one).
        const { RunToken } = await import('../auth/run-token.ts');
        const kept = kc && (await existingRunToken(kc, options.namespace, options.run));
        options.runToken = kept
          ? RunToken.parse(kept, `Secret ${options.run}-credentials`)
          : RunToken.generate();
      }
      const objects = await renderRun(cfg, options);
      if (f.dryRun) {
        out.write(toYaml(objects));
        return;
      }
      const applied = await applyObjects(kc ?? loadKubeConfig(f.kubeconfig), objects);
      for (const a of applied) out.write(`${a.kind}/${a.name} ${a.action}\n`);
      out.write(
        `run ${options.run}: ${options.workers} worker(s) in namespace ${options.namespace}; ` +
          `watch with: bbn status ${options.run} --k8s -n ${options.namespace}\n`,
      );
    });

  program
    .command('scale')
    .description('change the number of workers of a run (at the next epoch boundary; --k8s: the pods)')
    .argument('<run>', 'run id')
    .argument('<workers>', 'new worker count', int('workers'))
    .option('--k8s', "patch the run's worker StatefulSet")
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG or ~/.kube/config)')
    .option('--temporal <host:port>', 'Temporal frontend (with --k8s: the workflow is told too)')
    .option('--temporal-namespace <ns>', 'Temporal namespace', 'default')
    .action(
      async (run: string, workers: number, f: TemporalFlags & { namespace: string; kubeconfig?: string }) => {
        if (!f.k8s) {
          const target = {
            temporal: temporalAddress(f.temporal, false),
            temporalNamespace: f.temporalNamespace,
          };
          return temporalScale(run, workers, target, out);
        }
        const { loadKubeConfig, scaleWorkers } = await cluster();
        const before = await scaleWorkers(loadKubeConfig(f.kubeconfig), f.namespace, run, workers);
        out.write(`run ${run}: worker pods ${before} -> ${workers}\n`);
        // The workflow decides when the new world trains (the next epoch boundary); the chart's
        // pods only serve it. Without a reachable Temporal, say how to finish the change.
        const target = {
          temporal: temporalAddress(f.temporal, true),
          temporalNamespace: f.temporalNamespace,
        };
        await temporalScale(run, workers, target, out).catch((err: Error) =>
          out.write(
            `run ${run}: could not reach the workflow at ${target.temporal} (${err.message}); ` +
              `run bbn scale ${run} ${workers} --temporal ADDR where Temporal is reachable\n`,
          ),
        );
      },
    );

  program
    .command('status')
    .description(
      'show a run: workflow state, epoch, α, lr and ranks; a run directory is read from its files (--k8s: its pods)',
    )
    .argument('<run>', 'run id, or a run directory (runs/NAME)')
    .option('--k8s', "list the run's pods")
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG or ~/.kube/config)')
    .option('--json', 'print JSON')
    .option('--temporal <host:port>', 'without --k8s: Temporal frontend')
    .option('--temporal-namespace <ns>', 'Temporal namespace', 'default')
    .action(
      async (run: string, f: TemporalFlags & { namespace: string; kubeconfig?: string; json?: boolean }) => {
        if (!f.k8s) {
          const target = {
            temporal: temporalAddress(f.temporal, false),
            temporalNamespace: f.temporalNamespace,
          };
          await showStatus(run, { ...target, json: f.json }, out);
          return;
        }
        const { formatPods, listRunPods, loadKubeConfig } = await cluster();
        const rows = await listRunPods(loadKubeConfig(f.kubeconfig), f.namespace, run);
        if (f.json) out.write(`${JSON.stringify(rows, null, 2)}\n`);
        else if (rows.length === 0) out.write(`run ${run}: no pods in namespace ${f.namespace}\n`);
        else out.write(`${formatPods(rows)}\n`);
      },
    );
}
