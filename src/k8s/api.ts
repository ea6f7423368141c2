/**
 * Contracts of the Kubernetes launcher: what a run's launch asks for, the objects it renders, and
 * the errors it raises. Rendering lives in `values.ts` and `render.ts`, talking to a cluster in
 * `cluster.ts`.
 */
import type { RunToken } from '../auth/run-token.ts';

/** What `bbn launch --k8s` needs beyond the run config; every field but the addresses has a default. */
export interface LaunchOptions {
  /** The run id: a DNS label of at most 40 characters (it prefixes every object's name). */
  run: string;
  namespace: string;
  /** Worker ranks (the StatefulSet's replicas). */
  workers: number;
  /** GPUs per worker; 0 runs CPU workers on the -cpu image. */
  gpusPerWorker: number;
  /** Full image reference; empty: the chart's default (<repository>:<appVersion>-cpu|gpu). */
  image?: string;
  temporalAddress: string;
  temporalNamespace?: string;
  natsUrl: string;
  /** Seconds a pod gets after SIGTERM to finish its checkpoint. */
  terminationGracePeriodSeconds?: number;
  /** Use PersistentVolumeClaims for checkpoints and data (false: emptyDir, for tests and demos). */
  persistence?: boolean;
  /** Name of an existing Secret with the run's credentials, mounted at /etc/bbn/credentials. */
  credentialsSecret?: string;
  /**
   * Without `credentialsSecret`: the run's token, put as `run-token` in the credentials Secret the
   * chart makes (`<run>-credentials`), so every ring edge and coordinator call of the run is
   * authenticated. `bbn launch --k8s` generates one per run (or keeps the one a running run has).
   */
  runToken?: RunToken;
}

/** One rendered Kubernetes object, as the chart produces it (plain JSON). */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** One pod of a run as `bbn status --k8s` shows it. */
export interface RunPod {
  name: string;
  /** `coordinator` or `worker`. */
  component: string;
  /** The worker's rank (pod index); null for the coordinator. */
  rank: number | null;
  phase: string;
  node: string | null;
  restarts: number;
  /** Why a pod is not running yet, e.g. the scheduler's "Insufficient nvidia.com/gpu". */
  reason: string | null;
}

/** Base of this module's errors; `userFacing` lets the CLI print the message as one line. */
export class K8sError extends Error {
  readonly userFacing = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'K8sError';
  }
}

/** A launch option with a bad value; names the option and the value. */
export class LaunchOptionError extends K8sError {
  constructor(
    readonly option: string,
    readonly value: unknown,
    why: string,
  ) {
    super(`launch option ${option} (${JSON.stringify(value)}) ${why}`);
    this.name = 'LaunchOptionError';
  }
}

/** helm is missing or failed; the message says how to install it or what helm printed. */
export class HelmError extends K8sError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HelmError';
  }
}

/** The API server refused a request; names the object and the server's message. */
export class ClusterError extends K8sError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClusterError';
  }
}
