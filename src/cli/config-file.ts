/** Reads a YAML run config from disk, applies `KEY=VALUE` overrides and validates it. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { applyOverrides, ConfigError, parseRunConfig, type RunConfig } from '../core/config.ts';

/**
 * Loads `path`, applies overrides, validates; every failure is a `ConfigError` naming where the bad
 * value came from: the file, or the `KEY=VALUE` override that set it.
 */
export function loadRunConfig(path: string, overrides: readonly string[] = []): RunConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid YAML: ${(err as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`config file ${path} must hold a YAML mapping at the top level`);
  }
  try {
    return parseRunConfig(applyOverrides(raw, overrides), path);
  } catch (err) {
    if (!(err instanceof ConfigError) || overrides.length === 0) throw err;
    throw blameOverrides(err, raw, path, overrides);
  }
}

/** The field an issue line is about (`train.lr: expected …` → `train.lr`). */
const issueField = (issue: string) => issue.slice(0, Math.max(0, issue.indexOf(': ')));

/** The override that set `field` or a section around it or a field inside it, if any. */
function overrideOf(field: string, overrides: readonly string[]): string | undefined {
  return [...overrides].reverse().find((o) => {
    const key = o.slice(0, o.indexOf('='));
    return field === key || field.startsWith(`${key}.`) || key.startsWith(`${field}.`);
  });
}

/**
 * The error of a config that is invalid with its overrides, each issue blamed on the override that
 * set the field; issues the file has without any override stay the file's.
 */
function blameOverrides(
  err: ConfigError,
  raw: object,
  path: string,
  overrides: readonly string[],
): ConfigError {
  let fileIssues: readonly string[] = [];
  try {
    parseRunConfig(raw, path);
  } catch (e) {
    if (e instanceof ConfigError) fileIssues = e.issues;
  }
  const blamed = err.issues.map((issue) => {
    const override = fileIssues.includes(issue) ? undefined : overrideOf(issueField(issue), overrides);
    return { issue, override };
  });
  if (blamed.every((b) => b.override === undefined)) return err;
  const lines = blamed.map((b) =>
    b.override ? `override ${b.override}: ${b.issue}` : `${path}: ${b.issue}`,
  );
  const head = lines.length === 1 ? '' : 'invalid config:\n  ';
  return new ConfigError(`${head}${lines.join('\n  ')}`, err.issues);
}
