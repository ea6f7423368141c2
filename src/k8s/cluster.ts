/**
 * Talking to a cluster through `@kubernetes/client-node`: apply a run's objects (server-side
 * apply, so a second launch of the same run changes nothing), scale its workers, list its pods.
 */
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  type V1Pod,
} from '@kubernetes/client-node';
import { RUN_TOKEN_FILE_NAME } from '../auth/run-token.ts';
import { ClusterError, type K8sObject, LaunchOptionError, type RunPod } from './api.ts';

/** The field manager of every write, so `kubectl get --show-managed-fields` says who set what. */
export const FIELD_MANAGER = 'bbn';
/**
 * The manager of `bbn scale`'s replica changes. A later `bbn launch` of the same run forces its own
 * worker count back (it declares the whole run), so re-launch with `--workers` to keep a scaled size.
 */
export const SCALE_FIELD_MANAGER = 'bbn-scale';

/** A kubeconfig from `path`, else `$KUBECONFIG` / `~/.kube/config` / in-cluster, like kubectl. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (err) {
    throw new ClusterError(`cannot load kubeconfig ${path ?? '(default)'}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!kc.getCurrentCluster())
    throw new ClusterError(
      `kubeconfig ${path ?? '(default)'} has no current cluster (kubectl config use-context …)`,
    );
  return kc;
}

/** Turns a client error into a `ClusterError` naming what was being done and the server's reason. */
function clusterError(what: string, err: unknown): ClusterError {
  if (err instanceof ApiException) {
    const body = err.body as { message?: string } | string | undefined;
    const msg = typeof body === 'string' ? body : (body?.message ?? err.message);
    return new ClusterError(`${what}: HTTP ${err.code}: ${msg}`, { cause: err });
  }
  return new ClusterError(`${what}: ${(err as Error).message ?? String(err)}`, { cause: err });
}

const isNotFound = (err: unknown) => err instanceof ApiException && err.code === 404;

/** What one apply did to one object. */
export interface AppliedObject {
  kind: string;
  name: string;
  /** `unchanged`: the server kept the same resourceVersion (an idempotent re-launch). */
  action: 'created' | 'configured' | 'unchanged';
}

/**
 * Server-side applies every object (in the given order), forcing ownership of the fields it sets.
 * Idempotent: applying the same objects again leaves every resourceVersion as it was.
 */
export async function applyObjects(
  kc: KubeConfig,
  objects: readonly K8sObject[],
  opts: { dryRun?: boolean } = {},
): Promise<AppliedObject[]> {
  const client = KubernetesObjectApi.makeApiClient(kc);
  const done: AppliedObject[] = [];
  for (const obj of objects) {
    const what = `apply ${obj.kind} ${obj.metadata.namespace}/${obj.metadata.name}`;
    const spec = obj as unknown as KubernetesObject;
    let before: string | undefined;
    try {
      before = (await client.read(spec as KubernetesObject & { metadata: { name: string } })).metadata
        ?.resourceVersion;
    } catch (err) {
      if (!isNotFound(err)) throw clusterError(what, err);
    }
    // A claim is created once and then left alone: its spec is all but immutable, and on v1.34 a
    // re-apply of an identical claim still bumps its resourceVersion (measured), which would make
    // every re-launch look like a change.
    if (obj.kind === 'PersistentVolumeClaim' && before !== undefined) {
      done.push({ kind: obj.kind, name: obj.metadata.name, action: 'unchanged' });
      continue;
    }
    let after: string | undefined;
    try {
      const res = await client.patch(
        spec,
        undefined,
        opts.dryRun ? 'All' : undefined,
        FIELD_MANAGER,
        true,
        PatchStrategy.ServerSideApply,
      );
      after = res.metadata?.resourceVersion;
    } catch (err) {
      throw clusterError(what, err);
    }
    const action = before === undefined ? 'created' : before === after ? 'unchanged' : 'configured';
    done.push({ kind: obj.kind, name: obj.metadata.name, action });
  }
  return done;
}

/**
 * The run token in the credentials Secret the chart made for `run` (`<run>-credentials`, key
 * `run-token`), or undefined when there is none yet: a second launch of a running run must keep
 * its token (its pods hold it), and keeps the launch idempotent.
 */
export async function existingRunToken(
  kc: KubeConfig,
  namespace: string,
  run: string,
): Promise<string | undefined> {
  const name = `${run}-credentials`;
  try {
    const secret = await kc.makeApiClient(CoreV1Api).readNamespacedSecret({ name, namespace });
    const data = secret.data?.[RUN_TOKEN_FILE_NAME];
    return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw clusterError(`read Secret ${namespace}/${name}`, err);
  }
}

/** Sets the run's worker count (the StatefulSet's replicas); resolves with the previous count. */
export async function scaleWorkers(
  kc: KubeConfig,
  namespace: string,
  run: string,
  workers: number,
): Promise<number> {
  if (!Number.isInteger(workers) || workers < 0)
    throw new LaunchOptionError('workers', workers, 'must be an integer >= 0');
  const client = KubernetesObjectApi.makeApiClient(kc);
  const ref = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: `${run}-worker`, namespace } };
  const what = `scale StatefulSet ${namespace}/${run}-worker`;
  try {
    const current = (await client.read(ref)) as KubernetesObject & { spec?: { replicas?: number } };
    await client.patch(
      { ...ref, spec: { replicas: workers } } as KubernetesObject,
      undefined,
      undefined,
      SCALE_FIELD_MANAGER,
      undefined,
      PatchStrategy.MergePatch,
    );
    return current.spec?.replicas ?? 1;
  } catch (err) {
    if (isNotFound(err))
      throw new ClusterError(`${what}: run ${run} has no workers in namespace ${namespace}`);
    throw clusterError(what, err);
  }
}

/** Why a pod is not (yet) running: the scheduler's message, or a container's waiting reason. */
function podReason(pod: V1Pod): string | null {
  const unscheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled) return unscheduled.message ?? unscheduled.reason ?? 'Unschedulable';
  const waiting = pod.status?.containerStatuses?.find((s) => s.state?.waiting)?.state?.waiting;
  return waiting ? (waiting.reason ?? 'Waiting') : null;
}

/** One row per pod of the run, coordinator first, then workers by rank. */
export function describePods(pods: readonly V1Pod[]): RunPod[] {
  const rows = pods.map((p): RunPod => {
    const labels = p.metadata?.labels ?? {};
    const index = labels['apps.kubernetes.io/pod-index'];
    return {
      name: p.metadata?.name ?? '?',
      component: labels['app.kubernetes.io/component'] ?? '?',
      rank: index === undefined ? null : Number(index),
      phase: p.metadata?.deletionTimestamp ? 'Terminating' : (p.status?.phase ?? 'Unknown'),
      node: p.spec?.nodeName ?? null,
      restarts: (p.status?.containerStatuses ?? []).reduce((n, s) => n + s.restartCount, 0),
      reason: podReason(p),
    };
  });
  return rows.sort(
    (a, b) =>
      (a.rank ?? -1) - (b.rank ?? -1) ||
      a.component.localeCompare(b.component) ||
      a.name.localeCompare(b.name),
  );
}

/** The run's pods (selected by the `bbn.dev/run` label). */
export async function listRunPods(kc: KubeConfig, namespace: string, run: string): Promise<RunPod[]> {
  try {
    const list = await kc
      .makeApiClient(CoreV1Api)
      .listNamespacedPod({ namespace, labelSelector: `bbn.dev/run=${run}` });
    return describePods(list.items);
  } catch (err) {
    throw clusterError(`list pods of run ${run} in ${namespace}`, err);
  }
}

/** `bbn status --k8s` as a table. */
export function formatPods(rows: readonly RunPod[]): string {
  const header = ['POD', 'RANK', 'PHASE', 'NODE', 'RESTARTS', 'REASON'];
  const cells = rows.map((r) => [
    r.name,
    r.rank === null ? '-' : String(r.rank),
    r.phase,
    r.node ?? '-',
    String(r.restarts),
    r.reason ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  return [header, ...cells]
    .map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
