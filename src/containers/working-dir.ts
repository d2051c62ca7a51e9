import { InvalidParameter, SystemError } from '../errors.js';
import { MissingPath, release, RootedFs } from './archive/rooted-path.js';

/**
 * Makes a container's working directory before its process starts, as moby's
 * `SetupWorkingDirectory` does: missing folders are created (0755), symlinks on the way are
 * resolved inside the rootfs (an image's `/data -> /etc` link must not reach the host's /etc),
 * and a path that is a file is Docker's "Cannot mkdir: <dir> is not a directory".
 */
export function ensureWorkingDir(rootfs: string, dir: string): void {
  const fs = new RootedFs(rootfs);
  try {
    const r = fs.resolve(dir, { followLast: true, create: true });
    const isDir = r.stat.isDirectory();
    release(r);
    if (!isDir) throw notADirectory(dir);
  } catch (e) {
    // A file in the middle of the path fails the walk with ENOTDIR: the same answer.
    if (e instanceof InvalidParameter && /not a directory$/.test(e.message)) throw notADirectory(dir);
    if (e instanceof MissingPath) throw new SystemError(`Cannot mkdir: ${dir}: ${e.message}`, { cause: e });
    throw e;
  } finally {
    fs.close();
  }
}

function notADirectory(dir: string): SystemError {
  return new SystemError(`Cannot mkdir: ${dir} is not a directory`);
}
