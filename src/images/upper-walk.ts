import { closeSync, constants as fsc, lstatSync, openSync, readdirSync, type Stats } from 'node:fs';

/** One entry of an overlay upper dir, as {@link walkUpper} meets it. */
export interface UpperEntry {
  /** Relative to the upper dir, without a leading `/`. */
  path: string;
  /** The entry reached through its folder's descriptor (`/proc/self/fd/N/name`), until the next entry. */
  at: string;
  st: Stats;
}

/** overlayfs's whiteout: a 0:0 character device. */
export function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/**
 * The entries of an overlay upper dir, each folder in name order and before what it holds (a
 * whiteout is never entered), for `docker diff` and the layer of `docker commit`. Everything is
 * reached through descriptors of the folders above it, opened O_NOFOLLOW: a running container
 * that swaps a file or folder for a symlink mid-walk gets the link seen as a link, never the host
 * file it names. An entry removed meanwhile is skipped. `exclude`: paths (absolute, as in the
 * container) left out with everything under them.
 */
export function* walkUpper(upper: string, exclude?: ReadonlySet<string>): Generator<UpperEntry> {
  const at = (dirFd: number, name?: string): string => (name === undefined ? `/proc/self/fd/${dirFd}` : `/proc/self/fd/${dirFd}/${name}`);
  function* walk(dirFd: number, rel: string): Generator<UpperEntry> {
    for (const name of readdirSync(at(dirFd)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (exclude?.has('/' + path)) continue;
      let st: Stats;
      try {
        st = lstatSync(at(dirFd, name));
      } catch {
        continue; // removed meanwhile
      }
      yield { path, at: at(dirFd, name), st };
      if (!st.isDirectory()) continue;
      const fd = openSync(at(dirFd, name), fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
      try {
        yield* walk(fd, path);
      } finally {
        closeSync(fd);
      }
    }
  }
  const rootFd = openSync(upper, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    yield* walk(rootFd, '');
  } finally {
    closeSync(rootFd);
  }
}
