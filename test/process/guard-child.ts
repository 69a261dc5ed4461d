/** A process with the agent's last-resort handlers (src/process-guard.ts), told what to fail. */
import { guardProcess } from '../../src/process-guard.ts';
import { createLogger, pino } from '../../src/log.ts';

const log = createLogger({}, pino.destination({ dest: 2, sync: true }));
guardProcess(log);
void Promise.reject(new Error('nobody waits for this'));
setTimeout(() => {
  process.stdout.write('alive after the rejection\n');
  setTimeout(() => {
    throw new Error('thrown in a timer callback');
  }, 10);
}, 50);
setTimeout(() => process.stdout.write('never printed\n'), 5000);
