/** The frozen-rank scenario (`frozen-rank.ts`) at W=3: out of `npm test` for CI time (~80 s). */
import { describeFrozenRank } from './frozen-rank.ts';

describeFrozenRank(3);
