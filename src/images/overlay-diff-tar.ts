import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { opaqueDirs } from './opaque-dirs.js';
import { TAR_END, tarPadding } from './tar-writer.js';

const BLOCK = 512;

/** One member header, as written by {@link memberHeader}. */
interface Member {
  name: string;
  /** ustar type flag: 0 file, 1 hard link, 2 symlink, 3 char, 4 block, 5 dir, 6 fifo. */
  flag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

function field(h: Buffer, value: number, start: number, len: number): boolean {
  if (value < 0 || value >= 8 ** (len - 1)) return false;
  h.write(value.toString(8).padStart(len - 1, '0') + '\0', start, len, 'ascii');
  return true;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

function rawHeader(m: Member, pax: string[]): Buffer {
  const h = Buffer.alloc(BLOCK);
  const name = Buffer.from(m.name);
  if (name.length <= 100) name.copy(h, 0);
  else {
    pax.push(paxRecord('path', m.name));
    name.subarray(0, 100).copy(h, 0);
  }
  field(h, m.mode & 0o7777, 100, 8);
  if (!field(h, m.uid, 108, 8)) pax.push(paxRecord('uid', String(m.uid)));
  if (!field(h, m.gid, 116, 8)) pax.push(paxRecord('gid', String(m.gid)));
  if (!field(h, m.size, 124, 12)) {
    pax.push(paxRecord('size', String(m.size)));
    field(h, 0, 124, 12);
  }
  field(h, Math.max(0, Math.floor(m.mtime)), 136, 12);
  h.write(m.flag, 156, 1, 'ascii');
  if (m.linkname) {
    const link = Buffer.from(m.linkname);
    if (link.length <= 100) link.copy(h, 157);
    else {
      pax.push(paxRecord('linkpath', m.linkname));
      link.subarray(0, 100).copy(h, 157);
    }
  }
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'ascii');
  field(h, m.devmajor ?? 0, 329, 8);
  field(h, m.devminor ?? 0, 337, 8);
  return h;
}

function checksum(h: Buffer): Buffer {
  h.write('        ', 148, 8, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

/** The header blocks of a member: a PAX extended header first when a field does not fit ustar. */
export function memberHeader(m: Member): Buffer[] {
  const pax: string[] = [];
  const h = rawHeader(m, pax);
  if (!pax.length) return [checksum(h)];
  const body = Buffer.from(pax.join(''));
  const x = rawHeader({ name: 'PaxHeaders/' + m.name.slice(-80), flag: 'x', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: m.mtime }, []);
  return [checksum(x), body, tarPadding(body.length), checksum(h)];
}

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
