import { closeSync, constants as fsc, existsSync, openSync, renameSync, rmSync, statSync, watch, writeSync, type FSWatcher } from 'node:fs';
import { errorMessage } from '../errors.js';
import { logger } from '../log.js';
import type { LogLimits } from './log-config.js';

const log = logger('arca:logs');

/** conmon's control message that makes it reopen (recreate) its log file. */
const REOPEN_LOGS = '2 0 0\n';

/** A log's rotated files, oldest first: `<path>.N` … `<path>.1`, then `<path>` itself if present. */
export function logFiles(path: string): string[] {
  const rotated: string[] = [];
  for (let i = 1; existsSync(`${path}.${i}`); i++) rotated.unshift(`${path}.${i}`);
  return existsSync(path) ? [...rotated, path] : rotated;
}

interface Watched {
  watcher?: FSWatcher;
  timer: NodeJS.Timeout;
}

/**
 * json-file's `max-size`/`max-file` for the logs conmon writes. conmon only appends; when a log
 * passes its size this shifts `<path>.1…` up, renames the live file to `<path>.1` (conmon keeps
 * writing into it, so nothing is lost) and tells conmon through its ctl fifo to open a fresh one.
 * `max-file=1` keeps no rotated file, as Docker's truncation does. The check runs on inotify with
 * a slow poll behind it, so a log can pass its size by what the process writes meanwhile.
 */
export class LogRotator {
  private readonly watched = new Map<string, Watched>();

  /** Starts watching a container's log; a second call for the same id replaces the first. */
  watch(id: string, path: string, ctlPath: string, limits: LogLimits): void {
    this.unwatch(id);
    const check = (): void => {
      try {
        if (statSync(path).size >= limits.maxSize) this.rotate(path, ctlPath, limits.maxFile);
      } catch {
        /* no log yet, or between rename and reopen */
      }
    };
    let watcher: FSWatcher | undefined;
    try {
      // The folder, not the file: the file is replaced at each rotation.
      watcher = watch(path.slice(0, path.lastIndexOf('/')), () => check());
      watcher.on('error', () => {});
    } catch {
      /* the poll covers it */
    }
    const timer = setInterval(check, 1000);
    timer.unref();
    this.watched.set(id, { watcher, timer });
    check();
  }

  unwatch(id: string): void {
    const w = this.watched.get(id);
    if (!w) return;
    w.watcher?.close();
    clearInterval(w.timer);
    this.watched.delete(id);
  }

  close(): void {
    for (const id of [...this.watched.keys()]) this.unwatch(id);
  }

  private rotate(path: string, ctlPath: string, maxFile: number): void {
    // `max-file` counts the live file: keep `<path>.1` … `<path>.<max-file - 1>`.
    const first = maxFile > 1 ? `${path}.1` : `${path}.dropped`;
    try {
      if (maxFile > 1) {
        rmSync(`${path}.${maxFile - 1}`, { force: true });
        for (let i = maxFile - 2; i >= 1; i--) if (existsSync(`${path}.${i}`)) renameSync(`${path}.${i}`, `${path}.${i + 1}`);
      }
      renameSync(path, first);
      const fd = openSync(ctlPath, fsc.O_WRONLY | fsc.O_NONBLOCK);
      try {
        writeSync(fd, REOPEN_LOGS);
      } finally {
        closeSync(fd);
      }
      if (maxFile === 1) rmSync(first, { force: true });
    } catch (e) {
      log.warn('log rotation failed', { path, error: errorMessage(e) });
    }
  }
}
