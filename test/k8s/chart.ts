/** Helpers of the chart tests: render the chart with helm, and look objects up by kind. */
import { HelmError, type K8sObject } from '../../src/k8s/api.ts';
import { CHART_DIR, findHelm, runHelm } from '../../src/k8s/helm.ts';
import { parseManifests } from '../../src/k8s/render.ts';

/** The helm binary, or a failure that says how to get one (these tests never skip silently). */
export function requireHelm(): string {
  try {
    return findHelm();
  } catch (err) {
    if (err instanceof HelmError)
      throw new Error(
        `${err.message}\n(the k8s tests need helm: run \`bash scripts/k8s/setup-helm.sh\` first)`,
      );
    throw err;
  }
}

/** `helm template` of the chart with one of its values files (and --set pairs). */
export async function template(
  helm: string,
  valuesFile: string | null,
  set: string[] = [],
  release = 'demo',
): Promise<K8sObject[]> {
  const args = ['template', release, CHART_DIR, '--namespace', 'bbn'];
  if (valuesFile) args.push('--values', `${CHART_DIR}/${valuesFile}`);
  for (const s of set) args.push('--set', s);
  return parseManifests(await runHelm(helm, args), 'bbn');
}

/** The one object of `kind` (and name suffix); fails when there is not exactly one. */
export function one<T = Record<string, unknown>>(
  objects: K8sObject[],
  kind: string,
  suffix = '',
): K8sObject & T {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name.endsWith(suffix));
  if (found.length !== 1) throw new Error(`expected one ${kind} *${suffix}, found ${found.length}`);
  return found[0] as K8sObject & T;
}

/** The pod spec of a workload. */
export interface PodTemplate {
  spec: {
    selector: { matchLabels: Record<string, string> };
    replicas?: number;
    serviceName?: string;
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        terminationGracePeriodSeconds: number;
        securityContext: { runAsNonRoot: boolean; runAsUser: number };
        tolerations?: { key: string }[];
        containers: {
          name: string;
          image: string;
          args: string[];
          ports: { name: string; containerPort: number }[];
          env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
          resources: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
          volumeMounts: { name: string; mountPath: string }[];
        }[];
        volumes: {
          name: string;
          persistentVolumeClaim?: { claimName: string };
          configMap?: { name: string };
          secret?: { secretName: string };
          emptyDir?: object;
        }[];
      };
    };
  };
}
