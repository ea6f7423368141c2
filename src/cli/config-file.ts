/** Reads a YAML run config from disk, applies `KEY=VALUE` overrides and validates it. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { applyOverrides, ConfigError, parseRunConfig, type RunConfig } from '../core/config.ts';

/** Loads `path`, applies overrides, validates; every failure is a `ConfigError` naming the file. */
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
  return parseRunConfig(applyOverrides(raw, overrides), path);
}
