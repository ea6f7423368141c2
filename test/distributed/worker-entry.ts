/**
 * `bbn worker` for tests: the real command registration, without depending on the CLI's main
 * module (`bbn train`'s default rank command is `node bin/bbn.mjs worker`).
 */
import { Command } from 'commander';
import { registerWorkerCommand } from '../../src/cli/worker-command.ts';

const program = new Command().name('bbn');
registerWorkerCommand(program);
await program.parseAsync(process.argv);
