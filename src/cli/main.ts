/**
 * The `bbn` command. Thin: it parses arguments and calls the layers below. Every expected failure
 * (bad config, bad data) is printed as one clear line and exits with status 2.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { ConfigError } from '../core/config.ts';
import { registerCoordinatorCommand } from './coordinator-command.ts';
import { registerDataCommand } from './data-command.ts';
import { registerEvalCommand } from './eval-command.ts';
import { registerLaunchCommand } from './launch-command.ts';
import { registerReportCommand } from './report-command.ts';
import { registerRunCommands } from './run-commands.ts';
import { registerTrainCommand } from './train-command.ts';
import { registerRunsCommand, registerWatchCommand } from './watch-command.ts';
import { registerWorkerCommand } from './worker-command.ts';

/** The version in package.json (two levels up from src/cli/ and from dist/cli/ alike). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

const program = new Command()
  .name('bbn')
  .description('Train BBN (Bilateral-Branch Network) on long-tailed data, on one machine or a cluster')
  .version(packageVersion(), '-V, --version', 'print the version of bbn')
  .showHelpAfterError();

registerDataCommand(program);
registerTrainCommand(program);
registerEvalCommand(program);
registerReportCommand(program);
registerCoordinatorCommand(program);
registerWatchCommand(program);
registerRunsCommand(program);
registerWorkerCommand(program);
registerLaunchCommand(program);
registerRunCommands(program);

/** Errors whose message is the whole story for a user; anything else is a bug and keeps its stack. */
function isUserError(err: unknown): err is Error {
  return (
    err instanceof Error &&
    (err instanceof ConfigError ||
      (err as { userFacing?: boolean }).userFacing === true ||
      [
        'DataError',
        'CheckpointError',
        'CoreValueError',
        'ModelError',
        'BackendError',
        'InvalidRequestError',
      ].includes(err.name))
  );
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (isUserError(err)) {
    process.stderr.write(`bbn: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
