/**
 * The `bbn` command as a function: `runCli(argv)` parses, runs one command and resolves with the
 * exit status (0 done, 1 a failed run and 2 a user error, each printed as one `bbn: …` message,
 * commander's usage errors 2 as well). Each call builds a fresh program, so tests run the real CLI in-process, many times,
 * without paying a process start per case. main.ts is the thin entry that exits with the status.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../core/config.ts';
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

/** A fresh `bbn` program (commander keeps parsed options on the instance). */
export function buildProgram(): Command {
  const program = new Command()
    .name('bbn')
    .description('Train BBN (Bilateral-Branch Network) on long-tailed data, on one machine or a cluster')
    .version(packageVersion(), '-V, --version', 'print the version of bbn')
    .showHelpAfterError()
    .exitOverride(); // inherited by the commands registered below
  registerDataCommand(program);
  registerTrainCommand(program);
  registerEvalCommand(program);
  registerReportCommand(program);
  registerWatchCommand(program);
  registerRunsCommand(program);
  registerWorkerCommand(program);
  registerLaunchCommand(program);
  registerRunCommands(program);
  return program;
}

/** Errors whose message is the whole story for a user; anything else is a bug and keeps its stack. */
export function isUserError(err: unknown): err is Error {
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
        'RunDirError',
      ].includes(err.name))
  );
}

/** Runs `bbn` with `argv` (process.argv style: node, script, args…); resolves with the exit status. */
export async function runCli(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander printed its message (and the help) already; help and version are not errors.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (isUserError(err)) {
      process.stderr.write(`bbn: ${err.message}\n`);
      // A user error is 2; an error may say otherwise (a failed run is 1).
      const code = (err as { exitCode?: unknown }).exitCode;
      return typeof code === 'number' ? code : 2;
    }
    throw err;
  }
}
