/**
 * Finding helm and the chart, and running `helm template`. The chart is the one description of a
 * run's objects, so `bbn launch --k8s` renders it rather than keeping a second copy in code.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bbnCacheDir } from '../devservers/binaries.ts';
import { HelmError } from './api.ts';

/** The chart shipped with this project. */
export const CHART_DIR = fileURLToPath(new URL('../../deploy/helm/bbn', import.meta.url));

/** Where scripts/k8s/setup-helm.sh puts helm: `${BBN_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/bbn}/bin`. */
export function cacheBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(bbnCacheDir(env), 'bin');
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The helm binary: `$BBN_HELM`, then the project's cache, then `helm` on PATH. Throws `HelmError`
 * saying how to install it when none is found.
 */
export function findHelm(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BBN_HELM) {
    if (isExecutable(env.BBN_HELM)) return env.BBN_HELM;
    throw new HelmError(`BBN_HELM (${env.BBN_HELM}) is not an executable file`);
  }
  const candidates = [
    join(cacheBinDir(env), 'helm'),
    ...(env.PATH ?? '').split(delimiter).map((d) => join(d, 'helm')),
  ];
  const found = candidates.find((c) => c !== 'helm' && isExecutable(c));
  if (found) return found;
  throw new HelmError(
    `helm not found (looked in ${candidates[0]} and on PATH): run \`bash scripts/k8s/setup-helm.sh\` to build it into the cache`,
  );
}

/** Runs helm with `args`; resolves with stdout, or throws `HelmError` carrying helm's stderr. */
export function runHelm(helm: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(helm, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const what = stderr.trim() || err.message;
        reject(new HelmError(`helm ${args[0]} failed: ${what}`, { cause: err }));
      } else resolve(stdout);
    });
  });
}

/**
 * `helm template` of the chart with `values` (written to a private temp file, removed after).
 * Returns the rendered multi-document YAML.
 */
export async function helmTemplate(
  release: string,
  namespace: string,
  values: Record<string, unknown>,
  opts: { helm?: string; chartDir?: string } = {},
): Promise<string> {
  const helm = opts.helm ?? findHelm();
  const dir = mkdtempSync(join(tmpdir(), 'bbn-helm-'));
  try {
    const file = join(dir, 'values.json');
    // JSON is YAML, and it cannot be misread (no implicit types): the values arrive as written.
    writeFileSync(file, JSON.stringify(values), { mode: 0o600 });
    return await runHelm(helm, [
      'template',
      release,
      opts.chartDir ?? CHART_DIR,
      '--namespace',
      namespace,
      '--values',
      file,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
