/** The frozen-rank scenario (`frozen-rank.ts`) at W=2; W=3 runs behind `npm run test:slow`. */
import { describeFrozenRank } from './frozen-rank.ts';

describeFrozenRank(2);
