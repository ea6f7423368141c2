/** Structured logs (pino, JSON lines on stderr) so that stdout stays free for tables and progress. */
import { pino } from 'pino';

/** The process logger; `BBN_LOG_LEVEL` sets the level (default `info`). */
export const log = pino(
  { level: process.env.BBN_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination(2),
);
