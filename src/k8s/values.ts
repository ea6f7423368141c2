/**
 * The Helm values of one run, from its config and launch options (pure). The chart in
 * `deploy/helm/bbn` is the one description of a run's objects; this is the only place that maps
 * the CLI's options onto it.
 */
import { RUN_TOKEN_FILE_NAME } from '../auth/run-token.ts';
import type { RunConfig } from '../core/config.ts';
import { LaunchOptionError, type LaunchOptions } from './api.ts';

/** The same rule as the chart's `bbn.run` helper: a DNS label short enough for pod names. */
const RUN_NAME = /^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$/;
/** RFC 1123 label, as Kubernetes requires of a namespace. */
/** [REGISTRY[:PORT]/]PATH[:TAG][@sha256:DIGEST]; whether a tag or digest is there is checked apart. */
const IMAGE =
  /^[a-z0-9][a-z0-9._-]*(:\d+)?(\/[a-z0-9][a-z0-9._-]*)*(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Throws `LaunchOptionError` naming the first bad option. */
export function validateLaunchOptions(o: LaunchOptions): void {
  if (!RUN_NAME.test(o.run))
    throw new LaunchOptionError(
      'run',
      o.run,
      "must be 1-40 lowercase letters, digits or '-', starting with a letter and not ending with '-'",
    );
  if (!NAMESPACE.test(o.namespace))
    throw new LaunchOptionError('namespace', o.namespace, 'must be a DNS label (RFC 1123)');
  if (!Number.isInteger(o.workers) || o.workers < 1)
    throw new LaunchOptionError('workers', o.workers, 'must be an integer >= 1');
  if (!Number.isInteger(o.gpusPerWorker) || o.gpusPerWorker < 0)
    throw new LaunchOptionError('gpusPerWorker', o.gpusPerWorker, 'must be an integer >= 0');
  if (!/^[^\s:/]+(:\d+)$/.test(o.temporalAddress))
    throw new LaunchOptionError('temporalAddress', o.temporalAddress, 'must look like HOST:PORT');
  if (!/^nats:\/\/[^\s:/]+:\d+$/.test(o.natsUrl))
    throw new LaunchOptionError('natsUrl', o.natsUrl, 'must look like nats://HOST:PORT');
  const grace = o.terminationGracePeriodSeconds;
  if (grace !== undefined && (!Number.isInteger(grace) || grace < 0))
    throw new LaunchOptionError('terminationGracePeriodSeconds', grace, 'must be an integer >= 0');
  // A tag or a digest is required: an implicit `latest` would make two launches of one run differ.
  if (
    o.image &&
    (!IMAGE.test(o.image) || !/(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$/.test(o.image.split('/').pop()!))
  )
    throw new LaunchOptionError('image', o.image, 'must be REPOSITORY:TAG or REPOSITORY[:TAG]@sha256:DIGEST');
  if (o.image && /:latest(@|$)/.test(o.image))
    throw new LaunchOptionError('image', o.image, "must not use the 'latest' tag (pin a version)");
}

/** The chart values of one run. The run config goes in whole, defaults filled, so every pod reads the same one. */
export function chartValues(config: RunConfig, o: LaunchOptions): Record<string, unknown> {
  validateLaunchOptions(o);
  const gpu = o.gpusPerWorker > 0;
  const persistence = o.persistence ?? true;
  const values: Record<string, unknown> = {
    run: { name: o.run, config },
    workers: o.workers,
    gpu,
    gpusPerWorker: gpu ? o.gpusPerWorker : 1,
    temporal: { address: o.temporalAddress, namespace: o.temporalNamespace ?? 'default' },
    nats: { url: o.natsUrl },
    persistence: {
      checkpoints: { enabled: persistence },
      data: { enabled: persistence },
    },
  };
  if (o.image) values.image = { reference: o.image };
  if (o.terminationGracePeriodSeconds !== undefined)
    values.terminationGracePeriodSeconds = o.terminationGracePeriodSeconds;
  if (o.credentialsSecret) values.credentials = { existingSecret: o.credentialsSecret };
  // The one place the token is written out: into the Secret the chart makes (never into a log).
  else if (o.runToken) values.credentials = { stringData: { [RUN_TOKEN_FILE_NAME]: o.runToken.reveal() } };
  return values;
}
