import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Docker's "init layer": a read-only layer between a container's image and its own changes that
 * holds what dockerd puts in every container's rootfs, `/.dockerenv` (which scripts test to know
 * they run in Docker) and `/etc/mtab -> /proc/mounts`. Being below the upper dir, none of it shows
 * in `docker diff` nor goes into `docker commit`, as in Docker. Made on first use, kept with the
 * container's folder.
 */
export function initLayer(containerDir: string): string {
  const dir = initLayerDir(containerDir);
  const mtab = join(dir, 'etc', 'mtab');
  if (exists(mtab)) return dir;
  mkdirSync(join(dir, 'etc'), { recursive: true, mode: 0o755 });
  const env = join(dir, '.dockerenv');
  if (!exists(env)) {
    closeSync(openSync(env, 'w', 0o755));
    chmodSync(env, 0o755);
  }
  symlinkSync('/proc/mounts', mtab);
  return dir;
}

/** Where {@link initLayer} keeps it, without making it (inspect names it as a lower dir). */
export function initLayerDir(containerDir: string): string {
  return join(containerDir, 'init');
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
