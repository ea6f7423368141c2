/**
 * A run's Kubernetes objects: the chart rendered with the run's values, parsed into typed
 * objects, and printed back as YAML for `bbn launch --k8s --dry-run`.
 */
import { parseAllDocuments, stringify } from 'yaml';
import type { RunConfig } from '../core/config.ts';
import { HelmError, type K8sObject, type LaunchOptions } from './api.ts';
import { helmTemplate } from './helm.ts';
import { chartValues } from './values.ts';

/** Order of creation: what others refer to (config, secrets, claims, accounts) comes first. */
const KIND_ORDER = [
  'Namespace',
  'NetworkPolicy',
  'ServiceAccount',
  'Secret',
  'ConfigMap',
  'PersistentVolumeClaim',
  'Service',
  'PodDisruptionBudget',
  'Deployment',
  'StatefulSet',
];

/** Parses helm's multi-document output; every document must be an object with kind and name. */
export function parseManifests(yamlText: string, namespace: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(yamlText)) {
    if (doc.errors.length > 0) throw new HelmError(`chart rendered invalid YAML: ${doc.errors[0].message}`);
    const obj = doc.toJSON() as K8sObject | null;
    if (obj === null) continue; // an empty document (a template whose condition was false)
    if (typeof obj.kind !== 'string' || typeof obj.metadata?.name !== 'string')
      throw new HelmError(
        `chart rendered a document without kind or metadata.name: ${JSON.stringify(obj).slice(0, 200)}`,
      );
    // helm template leaves namespace unset; apply needs it on every namespaced object.
    obj.metadata.namespace = namespace;
    objects.push(obj);
  }
  const rank = (k: string) => (KIND_ORDER.includes(k) ? KIND_ORDER.indexOf(k) : KIND_ORDER.length);
  return objects.sort(
    (a, b) => rank(a.kind) - rank(b.kind) || a.metadata.name.localeCompare(b.metadata.name),
  );
}

/** Renders the objects of one run (helm must be installed; see `findHelm`). */
export async function renderRun(
  config: RunConfig,
  options: LaunchOptions,
  helm?: { helm?: string; chartDir?: string },
): Promise<K8sObject[]> {
  const values = chartValues(config, options);
  const text = await helmTemplate(options.run, options.namespace, values, helm);
  return parseManifests(text, options.namespace);
}

/** The objects as one multi-document YAML stream, ready for `kubectl apply -f -`. */
export function toYaml(objects: readonly K8sObject[]): string {
  return objects.map((o) => `---\n${stringify(o, { lineWidth: 0 })}`).join('');
}
