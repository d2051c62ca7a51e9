import { closeSync, constants as fsc, openSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { NotFound, SystemError, errorMessage } from '../../errors.js';
import { logger } from '../../log.js';
import { MNT_DETACH, native } from '../../sys/native.js';
import { run } from '../../sys/runner.js';
import type { ContainerManager } from '../container-manager.js';
import { isMounted, mountOverlay, umount } from '../container-manager.js';
import type { ContainerRecord } from '../container-record.js';
import { fdPath, fdPathForChild, release, RootedFs } from './rooted-path.js';

const log = logger('arca:containers:archive');

const MS_BIND = 4096;
const MS_REC = 16384;

/** How a container's files are reached for one operation. */
export interface ContainerRoot {
  c: ContainerRecord;
  fs: RootedFs;
  /** The merged overlay folder on the host (mounted for the duration of the operation). */
  rootfs: string;
  /** Is the container running (its own mount namespace is what `fs` shows)? */
  live: boolean;
}

export interface RootOptions {
  /**
   * Include the container's volumes and binds, as `docker cp` does; `docker export` and `commit`
   * see the container's own layer only.
   */
  mounts: boolean;
}

/**
 * Gives archive operations a container's filesystem as a {@link RootedFs}, for running and
 * stopped containers alike, under the container's lock (as Docker holds it for an archive
 * read): a running container is seen through `/proc/<pid>/root`, its own mount namespace with its
 * volumes, binds and tmpfs; a stopped one gets its overlay mounted for the operation, with its
 * volumes and binds bound into it (resolved inside the rootfs), all detached at the end.
 */
export class ContainerRootAccess {
  constructor(private readonly containers: ContainerManager) {}

  async with<T>(ref: string, opts: RootOptions, fn: (root: ContainerRoot) => Promise<T>): Promise<T> {
    return this.containers.exclusive(ref, async (c) => {
      const rootfs = join(this.containers.dir(c.Id), 'rootfs');
      const running = (c.State.Status === 'running' || c.State.Status === 'paused') && c.State.Pid > 0;
      if (running && opts.mounts) {
        const fs = new RootedFs(`/proc/${c.State.Pid}/root`);
        try {
          return await fn({ c, fs, rootfs, live: true });
        } finally {
          fs.close();
        }
      }
      let mountedHere = false;
      if (!isMounted(rootfs)) {
        await mountOverlay(this.containers.overlayOptions(c), rootfs);
        mountedHere = true;
      }
      const fs = new RootedFs(rootfs);
      try {
        if (mountedHere && opts.mounts) await this.bindMounts(c, fs);
        return await fn({ c, fs, rootfs, live: running });
      } finally {
        fs.close();
        if (mountedHere) {
          // A lazy detach takes the binds made above along with the overlay.
          const n = native();
          if (n) await n.umount(rootfs, MNT_DETACH).catch((e: unknown) => log.warn('rootfs unmount failed', { error: errorMessage(e) }));
          else await umount(rootfs).catch((e: unknown) => log.warn('rootfs unmount failed', { error: errorMessage(e) }));
        }
      }
    });
  }

  /** Binds volumes and bind sources at their destinations, shallowest first, as Docker's `mountVolumes`. */
  private async bindMounts(c: ContainerRecord, fs: RootedFs): Promise<void> {
    const mounts = c.Mounts.filter((m) => (m.Type === 'bind' || m.Type === 'volume') && m.Source).sort(
      (a, b) => posix.normalize(a.Destination).split('/').length - posix.normalize(b.Destination).split('/').length,
    );
    for (const m of mounts) {
      let isDir: boolean;
      try {
        isDir = statSync(m.Source).isDirectory();
      } catch {
        continue; // a bind source removed since create: start would fail; cp sees the rootfs
      }
      const parent = fs.resolve(posix.dirname(m.Destination), { followLast: true, create: true });
      let target: ReturnType<RootedFs['resolve']> | undefined;
      try {
        const name = posix.basename(m.Destination);
        if (isDir) target = fs.resolve(m.Destination, { followLast: true, create: true });
        else {
          target = fs.tryResolve(m.Destination, { followLast: true });
          if (!target) {
            closeSync(openSync(fdPath(parent.fd, name), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644));
            target = fs.resolve(m.Destination, { followLast: false });
          }
        }
        const n = native();
        // The target is named through the descriptor the walk holds: nothing can swap it meanwhile.
        if (n) await n.mount(m.Source, fdPath(target.fd), null, MS_BIND | MS_REC, null);
        else await run(['mount', '--rbind', m.Source, fdPathForChild(target.fd)]);
      } catch (e) {
        if (e instanceof NotFound) continue;
        throw new SystemError(`mounting ${m.Destination} for the copy: ${errorMessage(e)}`, { cause: e });
      } finally {
        release(target);
        release(parent);
      }
    }
  }
}
