/** Small readers of process and runtime files shared by the helpers' supervisors and `arca doctor`. */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';

/** The PID a pidfile holds; undefined when missing or not a PID. */
export function readPidFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** A process's argv from /proc (empty when it is gone). */
export function cmdlineOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** The last lines of a log, read from its tail (logs grow with a process's life), for an error message. */
export function logTail(path: string, lines = 3): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, 4096);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8').trimEnd().split('\n').slice(-lines).join(' | ');
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}
