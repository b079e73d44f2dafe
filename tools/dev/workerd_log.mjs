/*
 * workerd_log.mjs — what `wharf dev` shows of workerd's stderr. workerd
 * reports a Worker's uncaught exceptions (a queue() that threw, whose batch
 * Wharf then retries; a fetch() that failed) only under --verbose, and then
 * as internal log lines. This turns each into "Uncaught …: <the JavaScript
 * error>" followed by its JavaScript stack, drops workerd's other info
 * lines and native "stack: " address lists, and passes the rest (console
 * output, warnings, errors) through as it is.
 */
import readline from 'node:readline';

const UNCAUGHT = /^workerd\/io\/worker\.c\+\+:\d+: info: uncaught exception; source = ([^;]+); stack = (.*)$/;
const INFO = /^workerd\/\S+: info: /;
const NATIVE_STACK = /^stack: \S*workerd@/;

export function workerdLogFilter(input, output) {
  readline.createInterface({ input, crlfDelay: Infinity }).on('line', (line) => {
    const uncaught = UNCAUGHT.exec(line);
    if (uncaught) output.write(`${uncaught[1]}: ${uncaught[2]}\n`);
    else if (!INFO.test(line) && !NATIVE_STACK.test(line)) output.write(`${line}\n`);
  });
}
