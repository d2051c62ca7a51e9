import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { opaqueDirs } from './opaque-dirs.js';
import { memberHeader } from './tar-member.js';
import { TAR_END, tarPadding } from './tar-writer.js';

/** Linux's dev_t split, as glibc's major()/minor(). */
function devSplit(rdev: number): { major: number; minor: number } {
  const big = BigInt(rdev);
  const major = Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn));
  const minor = Number((big & 0xffn) | ((big >> 12n) & ~0xffn));
  return { major, minor };
}

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
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
  const opaque = await opaqueDirs(upper);
  const links = new Map<string, string>();
  async function* walk(rel: string): AsyncGenerator<Buffer> {
    const names = (await readdir(join(upper, rel))).sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      if (opts.exclude?.has('/' + path)) continue;
      const abs = join(upper, path);
      const st = await lstat(abs);
      const base = { mode: st.mode, uid: st.uid, gid: st.gid, mtime: st.mtimeMs / 1000, size: 0 };
      if (isWhiteout(st)) {
        yield* memberHeader({ ...base, name: rel ? `${rel}/.wh.${name}` : `.wh.${name}`, flag: '0', mode: 0o600 });
      } else if (st.isDirectory()) {
        yield* memberHeader({ ...base, name: `${path}/`, flag: '5' });
        if (opaque.has('/' + path)) yield* memberHeader({ ...base, name: `${path}/.wh..wh..opq`, flag: '0', mode: 0o600 });
        yield* walk(path);
      } else if (st.isSymbolicLink()) {
        yield* memberHeader({ ...base, name: path, flag: '2', linkname: await readlink(abs) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? links.get(key) : undefined;
        if (first) {
          yield* memberHeader({ ...base, name: path, flag: '1', linkname: first });
          continue;
        }
        if (st.nlink > 1) links.set(key, path);
        yield* memberHeader({ ...base, name: path, flag: '0', size: st.size });
        let n = 0;
        for await (const chunk of createReadStream(abs, { highWaterMark: 1 << 20 })) {
          const b = chunk as Buffer;
          n += b.length;
          if (n > st.size) throw new Error(`${path} grew while it was archived`);
          yield b;
        }
        if (n < st.size) throw new Error(`${path} shrank while it was archived`);
        yield tarPadding(st.size);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const { major, minor } = devSplit(st.rdev);
        yield* memberHeader({ ...base, name: path, flag: st.isCharacterDevice() ? '3' : '4', devmajor: major, devminor: minor });
      } else if (st.isFIFO()) {
        yield* memberHeader({ ...base, name: path, flag: '6' });
      }
      // Sockets are not archived (as tar and Docker do).
    }
  }
  yield* walk('');
  yield TAR_END;
}
