/** Tar member headers with every field (ustar, with a PAX record for what does not fit). */
import { tarPadding } from './tar-writer.js';

const BLOCK = 512;

/** One member of a tar: any type, any owner, names and sizes of any length (PAX when needed). */
export interface TarMember {
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
  /** Extended attributes, as PAX `SCHILY.xattr.<name>` records (GNU tar's and Go's form). */
  xattrs?: [string, Buffer][];
}

function field(h: Buffer, value: number, start: number, len: number): boolean {
  if (value < 0 || value >= 8 ** (len - 1)) return false;
  h.write(value.toString(8).padStart(len - 1, '0') + '\0', start, len, 'ascii');
  return true;
}

/** One `<len> key=value\n` record; the length counts itself, in bytes. */
function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.isBuffer(value) ? value : Buffer.from(value), Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function rawHeader(m: TarMember, pax: Buffer[]): Buffer {
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
export function memberHeader(m: TarMember): Buffer[] {
  const pax: Buffer[] = [];
  const h = rawHeader(m, pax);
  for (const [k, v] of m.xattrs ?? []) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
  if (!pax.length) return [checksum(h)];
  const body = Buffer.concat(pax);
  const x = rawHeader({ name: 'PaxHeaders/' + m.name.slice(-80), flag: 'x', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: m.mtime }, []);
  return [checksum(x), body, tarPadding(body.length), checksum(h)];
}

