/** Ctrl-C in a real terminal (`terminal.ts`), the in-process trainer; `--workers 2` is `terminal-workers.slow.ts`. */
import { describeCtrlC } from './terminal.ts';

describeCtrlC('bbn train: stops with a checkpoint within seconds, exit 130; --resume finishes it', 'w1', []);
