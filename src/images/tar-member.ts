/**
 * The one tar header codec: member headers with every field written (ustar, with a PAX record for
 * what does not fit), and the fields read back by the streaming reader and the tar-split record.
 */
import { InvalidParameter } from '../errors.js';
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

/** A NUL-terminated text field. */
export function headerString(b: Buffer, start: number, len: number): string {
  const field = b.subarray(start, start + len);
  const nul = field.indexOf(0);
  return (nul < 0 ? field : field.subarray(0, nul)).toString('utf8');
}

/** A numeric field: octal text, or GNU base-256 when the high bit is set (big sizes and ids). */
export function headerNumber(b: Buffer, start: number, len: number): number {
  if (b[start]! & 0x80) {
    let v = b[start]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[start + i]!;
    return v;
  }
  const s = headerString(b, start, len).trim();
  return s === '' ? 0 : parseInt(s, 8);
}

/** The name field, with ustar's prefix joined on; the old GNU format uses those bytes for other things. */
export function headerName(h: Buffer): string {
  const name = headerString(h, 0, 100);
  if (h.subarray(257, 263).toString('latin1') !== 'ustar\0') return name;
  const prefix = headerString(h, 345, 155);
  return prefix ? `${prefix}/${name}` : name;
}

/** Whether the checksum field matches the header (counted with that field as spaces). */
export function headerChecksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum === headerNumber(h, 148, 8);
}

/** The `<len> key=value\n` records of a PAX extended header. */
export function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(data.subarray(off, sp).toString('ascii'));
    if (!Number.isFinite(len) || len <= 0) throw new InvalidParameter('archive/tar: invalid PAX record');
    const rec = data.subarray(sp + 1, off + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    off += len;
  }
  return out;
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

