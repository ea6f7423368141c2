/**
 * Offline structural validation of rendered objects against the Kubernetes API types, as
 * `@kubernetes/client-node` generates them from the Kubernetes OpenAPI: every field name must
 * exist on its type (a typo fails), and every value must have the field's JSON type (string,
 * integer, boolean, array, map, object). It does not know which fields are required, nor
 * semantic rules (name formats, selector/label agreement): the chart tests check those they
 * rely on, and the cluster test has the real API server validate everything.
 */
import * as k8s from '@kubernetes/client-node';

interface Attribute {
  name: string;
  baseName: string;
  type: string;
  format: string;
}
type Model = { getAttributeTypeMap(): Attribute[] };

/** The generated model of each kind the chart renders. */
const MODELS: Record<string, string> = {
  'v1/ConfigMap': 'V1ConfigMap',
  'v1/Secret': 'V1Secret',
  'v1/Service': 'V1Service',
  'v1/ServiceAccount': 'V1ServiceAccount',
  'v1/PersistentVolumeClaim': 'V1PersistentVolumeClaim',
  'apps/v1/Deployment': 'V1Deployment',
  'apps/v1/StatefulSet': 'V1StatefulSet',
  'networking.k8s.io/v1/NetworkPolicy': 'V1NetworkPolicy',
  'policy/v1/PodDisruptionBudget': 'V1PodDisruptionBudget',
};

/** Resource quantities are strings in the generated types, but the API also takes JSON numbers. */
const QUANTITY_MAPS = new Set(['limits', 'requests']);

function model(name: string): Model | undefined {
  const m = (k8s as unknown as Record<string, unknown>)[name];
  return typeof m === 'function' && 'getAttributeTypeMap' in m ? (m as unknown as Model) : undefined;
}

function check(
  value: unknown,
  type: string,
  format: string,
  path: string,
  errors: string[],
  field: string,
): void {
  const fail = (what: string): void => {
    errors.push(`${path}: ${what} (got ${JSON.stringify(value)?.slice(0, 80)})`);
  };
  if (value === null || value === undefined) return; // absent
  if (type === 'any' || type === 'object' || type === '{ [key: string]: any; }') return;
  if (type === 'string') {
    if (typeof value !== 'string') fail('must be a string');
    return;
  }
  if (type === 'number') {
    if (typeof value !== 'number') fail('must be a number');
    else if (/int/.test(format) && !Number.isInteger(value)) fail('must be an integer');
    return;
  }
  if (type === 'boolean') {
    if (typeof value !== 'boolean') fail('must be a boolean');
    return;
  }
  if (type === 'Date') {
    if (typeof value !== 'string') fail('must be an RFC 3339 time string');
    return;
  }
  if (type === 'IntOrString') {
    if (typeof value !== 'string' && !Number.isInteger(value)) fail('must be an integer or a string');
    return;
  }
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) {
      fail('must be an array');
      return;
    }
    value.forEach((v, i) => {
      check(v, array[1], '', `${path}[${i}]`, errors, field);
    });
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) {
      fail('must be a map');
      return;
    }
    for (const [k, v] of Object.entries(value)) {
      const t = map[1] === 'string' && QUANTITY_MAPS.has(field) && typeof v === 'number' ? 'number' : map[1];
      check(v, t, '', `${path}.${k}`, errors, k);
    }
    return;
  }
  const m = model(type);
  if (!m) {
    fail(`unknown type ${type} (validator out of date?)`);
    return;
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    fail(`must be an object (${type})`);
    return;
  }
  const attrs = new Map(m.getAttributeTypeMap().map((a) => [a.baseName, a]));
  for (const [k, v] of Object.entries(value)) {
    const a = attrs.get(k);
    if (!a) errors.push(`${path}.${k}: no such field in ${type}`);
    else check(v, a.type, a.format, `${path}.${k}`, errors, k);
  }
}

/** Every structural problem of `obj`, as "Kind/name.path: what"; empty when it conforms. */
export function validateObject(obj: {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string };
  [field: string]: unknown;
}): string[] {
  const name = MODELS[`${obj.apiVersion}/${obj.kind}`];
  const where = `${obj.kind}/${obj.metadata?.name}`;
  if (!name) return [`${where}: no model for ${obj.apiVersion} ${obj.kind}`];
  const errors: string[] = [];
  check(obj, name, '', where, errors, '');
  return errors;
}
