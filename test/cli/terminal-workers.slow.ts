/** Ctrl-C in a real terminal (`terminal.ts`) with `--workers 2` rank processes: out of `npm test` for CI time (~40 s). */
import { describeCtrlC } from './terminal.ts';

describeCtrlC('bbn train --workers 2: the same, rank processes included', 'w2', ['--workers', '2']);
