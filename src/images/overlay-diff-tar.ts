import { closeSync, constants as fsc, openSync, readlinkSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { upperXattrs } from './file-xattrs.js';
import { memberHeader } from './tar-member.js';
import { TAR_END, tarFileData } from './tar-writer.js';
import { isWhiteout, walkUpper } from './upper-walk.js';

/** Linux's dev_t split, as glibc's major()/minor(). */
function devSplit(rdev: number): { major: number; minor: number } {
  const big = BigInt(rdev);
  const major = Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn));
  const minor = Number((big & 0xffn) | ((big >> 12n) & ~0xffn));
  return { major, minor };
}

export interface DiffTarOptions {
  /** Paths (absolute, as in the container) left out with everything under them. */
  exclude?: ReadonlySet<string>;
}

/**
 * A layer tar of an overlay upper dir, as Docker's overlay2 driver makes it for commit: members in
 * name order without a `./` prefix, a 0:0 character device written as an empty `.wh.<name>`
 * file and an opaque folder followed by its `.wh..wh..opq` marker (the AUFS whiteout form the
 * image spec uses), hard links as links to their first path, numeric owners.
 */
export async function* overlayDiffTar(upper: string, opts: DiffTarOptions = {}): AsyncGenerator<Buffer> {
  const { opaque, xattrs } = await upperXattrs(upper);
  const links = new Map<string, string>();
  for (const { path, at, st } of walkUpper(upper, opts.exclude)) {
    const base = { mode: st.mode, uid: st.uid, gid: st.gid, mtime: st.mtimeMs / 1000, size: 0, xattrs: xattrs.get('/' + path) };
    if (isWhiteout(st)) {
      yield* memberHeader({ ...base, name: posix.join(posix.dirname(path), `.wh.${posix.basename(path)}`), flag: '0', mode: 0o600, xattrs: undefined });
    } else if (st.isDirectory()) {
      yield* memberHeader({ ...base, name: `${path}/`, flag: '5' });
      if (opaque.has('/' + path)) yield* memberHeader({ ...base, name: `${path}/.wh..wh..opq`, flag: '0', mode: 0o600, xattrs: undefined });
    } else if (st.isSymbolicLink()) {
      yield* memberHeader({ ...base, name: path, flag: '2', linkname: readlinkSync(at) });
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? links.get(key) : undefined;
      if (first) {
        yield* memberHeader({ ...base, name: path, flag: '1', linkname: first });
        continue;
      }
      if (st.nlink > 1) links.set(key, path);
      yield* fileMember(at, path, st, base.xattrs);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const { major, minor } = devSplit(st.rdev);
      yield* memberHeader({ ...base, name: path, flag: st.isCharacterDevice() ? '3' : '4', devmajor: major, devminor: minor });
    } else if (st.isFIFO()) {
      yield* memberHeader({ ...base, name: path, flag: '6' });
    }
    // Sockets are not archived (as tar and Docker do).
  }
  yield TAR_END;
}

/** A regular file's member: exactly the size lstat saw, read through an O_NOFOLLOW descriptor. */
async function* fileMember(at: string, path: string, st: Stats, xattrs: [string, Buffer][] | undefined): AsyncGenerator<Buffer> {
  const fd = openSync(at, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    yield* memberHeader({ name: path, flag: '0', mode: st.mode, uid: st.uid, gid: st.gid, mtime: st.mtimeMs / 1000, size: st.size, xattrs });
    yield* tarFileData(fd, st.size);
  } finally {
    closeSync(fd);
  }
}
