import { lstat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join, posix } from 'node:path';
import type { Daemon } from '../../daemon.js';
import { opaqueDirs } from '../../images/file-xattrs.js';
import { isWhiteout, walkUpper } from '../../images/upper-walk.js';

/** One line of `docker diff`: Kind 0 modified, 1 added, 2 deleted (moby's `archive.ChangeType`). */
export interface Change {
  Path: string;
  Kind: 0 | 1 | 2;
}

/**
 * What Docker keeps in a container's init layer, below its own layer: the mount points of the
 * files and file systems it sets up. runc makes them in arca's upper dir instead; they are not
 * the user's changes, so `diff` and `commit` leave them out.
 */
export const INIT_LAYER_PATHS = new Set([
  '/.dockerenv',
  '/dev',
  '/proc',
  '/sys',
  '/etc/hosts',
  '/etc/hostname',
  '/etc/resolv.conf',
  '/etc/mtab',
]);

/** Folders holding init-layer paths: their times change when runc makes a mount point in them. */
const INIT_PARENTS = new Set(['/', '/etc']);

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch {
    return undefined;
  }
}

/**
 * The changes of an overlay upper dir against its lower dirs, in Docker's order (a walk in
 * name order) and with its rules: a 0:0 character device is a deletion, an opaque folder that
 * hides a lower one too; a name present below is a modification (a folder only if its mode, size
 * or time differ); an addition or deletion in a folder not itself listed lists it as modified.
 */
export async function overlayChanges(upper: string, lowers: string[]): Promise<Change[]> {
  const opaque = await opaqueDirs(upper);
  const changes: Change[] = [];
  const changedDirs = new Set<string>();
  const inLower = async (rel: string): Promise<Stats | undefined> => {
    for (const l of lowers) {
      const st = await lstatOrUndefined(join(l, rel));
      if (st) return st;
    }
    return undefined;
  };
  for (const { path: relPath, st } of walkUpper(upper, INIT_LAYER_PATHS)) {
    const path = '/' + relPath;
    const rel = posix.dirname(path);
    let kind: Change['Kind'] | undefined;
    if (isWhiteout(st)) kind = 2;
    else {
      const below = await inLower(path);
      if (st.isDirectory() && opaque.has(path) && below) kind = 2;
      else if (!below) kind = 1;
      else if (st.isDirectory() && below.isDirectory()) {
        const sameTime = INIT_PARENTS.has(path) || Math.floor(st.mtimeMs / 1000) === Math.floor(below.mtimeMs / 1000);
        if (st.mode !== below.mode || st.uid !== below.uid || st.gid !== below.gid || !sameTime) kind = 0;
      } else kind = 0;
    }
    if (kind === undefined) continue;
    if (st.isDirectory()) changedDirs.add(path);
    if ((kind === 1 || kind === 2) && rel !== '/' && !changedDirs.has(rel)) {
      changes.push({ Path: rel, Kind: 0 });
      changedDirs.add(rel);
    }
    changes.push({ Path: path, Kind: kind });
  }
  return changes;
}

/** GET /containers/{id}/changes. */
export async function containerChanges(d: Daemon, ref: string): Promise<Change[]> {
  const c = d.containers.get(ref);
  const image = d.images.get(c.ImageId);
  return overlayChanges(join(d.containers.dir(c.Id), 'upper'), d.images.lowerDirs(image));
}
