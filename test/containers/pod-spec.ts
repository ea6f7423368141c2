/**
 * A rendered chart pod template as a `podman run` command line, so that the container tests run
 * exactly the chart's processes (args, env, mounts, user, read-only root) and never a copy of them.
 * What podman has no notion of is supplied by the caller: the pod's name and index (the
 * fieldRefs), where each volume comes from, and the network.
 *
 * Kubernetes semantics kept: `$(VAR)` in args and env values expands to an env var defined
 * earlier in the list (`$$(` escapes), an undefined reference stays as written; a `subPath`
 * mount of a ConfigMap key is the one file; runAsUser/runAsGroup, readOnlyRootFilesystem,
 * dropped capabilities and no privilege escalation map onto their podman flags; memory limits too.
 */

/** The parts of a pod template this reads (see test/k8s/chart.ts for the full shape). */
export interface PodTemplateSpec {
  metadata?: { labels?: Record<string, string> };
  spec: {
    securityContext?: { runAsUser?: number; runAsGroup?: number };
    containers: {
      name: string;
      image: string;
      args?: string[];
      env?: {
        name: string;
        value?: string;
        valueFrom?: { fieldRef?: { fieldPath: string } };
      }[];
      resources?: { limits?: Record<string, string | number> };
      securityContext?: {
        readOnlyRootFilesystem?: boolean;
        allowPrivilegeEscalation?: boolean;
        capabilities?: { drop?: string[] };
      };
      volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
    }[];
    volumes?: {
      name: string;
      persistentVolumeClaim?: { claimName: string };
      configMap?: { name: string };
      secret?: { secretName: string };
      emptyDir?: object;
    }[];
  };
}

/** Where each kind of volume comes from on this machine. */
export interface VolumeSources {
  /** A PVC's claim name -> a podman named volume. */
  claim(claimName: string): string;
  /** A ConfigMap key -> a host file (mounted read-only). */
  configMapFile(configMap: string, key: string): string;
}

/** What the pod would be told by the API server and the controllers. */
export interface PodIdentity {
  /** metadata.name */
  name: string;
  /** metadata.labels (the StatefulSet controller's apps.kubernetes.io/pod-index among them). */
  labels: Record<string, string>;
}

/** `$(VAR)` expansion as the kubelet does it. */
export function expandK8sRefs(text: string, env: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    return name !== undefined && env.has(name) ? (env.get(name) as string) : m;
  });
}

/** A fieldRef's value for this pod (metadata.name, metadata.labels['k']). */
function fieldValue(path: string, pod: PodIdentity): string {
  if (path === 'metadata.name') return pod.name;
  const label = /^metadata\.labels\['([^']+)'\]$/.exec(path);
  if (label) {
    const v = pod.labels[label[1]];
    if (v === undefined) throw new Error(`fieldRef ${path}: pod ${pod.name} has no such label`);
    return v;
  }
  throw new Error(`fieldRef ${path} is not supported here`);
}

/** Kubernetes quantity (Mi, Gi, M, G, plain bytes) as podman's --memory value in bytes. */
export function memoryBytes(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) throw new Error(`memory quantity ${q} is not understood`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Math.round(Number(m[1]) * (m[2] ? unit[m[2] as keyof typeof unit] : 1));
}

/** The container's environment, in order, fieldRefs and `$(VAR)` resolved. */
export function resolveEnv(
  env: PodTemplateSpec['spec']['containers'][number]['env'],
  pod: PodIdentity,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of env ?? []) {
    if (e.valueFrom?.fieldRef) out.set(e.name, fieldValue(e.valueFrom.fieldRef.fieldPath, pod));
    else if (e.valueFrom) throw new Error(`env ${e.name}: only fieldRef sources are supported here`);
    else out.set(e.name, expandK8sRefs(e.value ?? '', out));
  }
  return out;
}

/**
 * The arguments of `podman run` (after `run`) for the template's one container: options, image,
 * then the chart's args (the image's ENTRYPOINT is `bbn`, as the chart assumes).
 */
export function podmanRunArgs(
  template: PodTemplateSpec,
  pod: PodIdentity,
  volumes: VolumeSources,
  extra: string[] = [],
): string[] {
  const { spec } = template;
  if (spec.containers.length !== 1)
    throw new Error(`expected one container, found ${spec.containers.length}`);
  const c = spec.containers[0];
  const env = resolveEnv(c.env, pod);
  const out = ['--name', pod.name, '--hostname', pod.name];
  for (const [k, v] of Object.entries(pod.labels)) out.push('--label', `${k}=${v}`);
  const sc = spec.securityContext ?? {};
  if (sc.runAsUser !== undefined) out.push('--user', `${sc.runAsUser}:${sc.runAsGroup ?? sc.runAsUser}`);
  const csc = c.securityContext ?? {};
  if (csc.readOnlyRootFilesystem) out.push('--read-only', '--read-only-tmpfs=false');
  if (csc.allowPrivilegeEscalation === false) out.push('--security-opt', 'no-new-privileges');
  for (const cap of csc.capabilities?.drop ?? []) out.push('--cap-drop', cap);
  const mem = c.resources?.limits?.memory;
  if (mem !== undefined) out.push('--memory', String(memoryBytes(mem)));
  for (const [k, v] of env) out.push('--env', `${k}=${v}`);
  const byName = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  for (const m of c.volumeMounts ?? []) {
    const v = byName.get(m.name);
    if (!v) throw new Error(`volumeMount ${m.name} has no volume`);
    const ro = m.readOnly ? ',ro' : '';
    if (v.persistentVolumeClaim) {
      if (m.subPath) throw new Error(`volumeMount ${m.name}: subPath of a claim is not supported here`);
      out.push(
        '--volume',
        `${volumes.claim(v.persistentVolumeClaim.claimName)}:${m.mountPath}${ro ? ':ro' : ''}`,
      );
    } else if (v.configMap) {
      if (!m.subPath)
        throw new Error(`volumeMount ${m.name}: only subPath mounts of a ConfigMap are supported`);
      out.push('--volume', `${volumes.configMapFile(v.configMap.name, m.subPath)}:${m.mountPath}:ro`);
    } else if (v.emptyDir) {
      // Writable by the pod's user, as fsGroup makes an emptyDir.
      out.push('--tmpfs', `${m.mountPath}:rw,mode=1777`);
    } else throw new Error(`volume ${m.name}: only claims, ConfigMaps and emptyDirs are supported here`);
  }
  out.push(...extra, c.image, ...(c.args ?? []).map((a) => expandK8sRefs(a, env)));
  return out;
}
