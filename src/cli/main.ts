/**
 * The `bbn` command's entry (bin/bbn.mjs imports it): runs the CLI (cli.ts) and exits with its
 * status when that is not 0. Every expected failure (bad config, bad data, a run directory that
 * cannot be used) is printed as one clear line and exits with status 2.
 */
import { runCli } from './cli.ts';

const status = await runCli(process.argv);
if (status !== 0) process.exit(status);
