/** Parsing of flag values shared by several commands (one clear ConfigError naming the flag). */
import { ConfigError } from '../core/config.ts';

/** A `--*-port` flag's value: an integer in 0..65535 (0: any free port), or undefined when absent. */
export function portFlag(flag: string, value: string | undefined): number | undefined {
  const port = value === undefined ? undefined : Number(value);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65_535)) {
    throw new ConfigError(`${flag} (${value}) must be an integer in 0..65535`);
  }
  return port;
}
