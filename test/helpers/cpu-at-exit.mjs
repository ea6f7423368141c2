// Preloaded with `node --import` into a process whose start-up is measured: on exit it writes its
// own CPU time ({ user, system } in microseconds, since the process started) to $BBN_CPU_REPORT.
import { writeFileSync } from 'node:fs';

const file = process.env.BBN_CPU_REPORT;
if (file) process.on('exit', () => writeFileSync(file, JSON.stringify(process.cpuUsage())));
