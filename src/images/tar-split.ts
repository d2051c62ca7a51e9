import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { open, readFile, writeFile, type FileHandle } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { headerName, headerNumber, headerString, paxRecords } from './tar-member.js';

/**
 * Layers are kept unpacked, but `docker save` and `docker push` must hand out the very bytes whose
 * sha256 is the layer's diff id. Like Docker's overlay2 driver (vbatts/tar-split), a layer keeps a
 * small record of everything in its tar except the regular files' contents (headers, PAX/GNU
 * records, padding, the end blocks); the tar is put back together from that record and the files
 * of the unpacked folder.
 */

/** One piece of the original tar: literal bytes, or the contents of a file of the unpacked folder. */
type Segment = { r: string } | { f: string; n: number };

/** The record as stored (gzipped JSON). */
export interface TarSplit {
  version: 1;
  /** Bytes of the whole tar. */
  size: number;
  segments: Segment[];
}

/** What {@link recordTarSplit} found: the record, or why the tar cannot be rebuilt from the folder. */
export type TarSplitResult = { ok: true; split: TarSplit } | { ok: false; reason: string };

const BLOCK = 512;

/** Sequential reader of a file with a large buffer (tar headers are 512-byte reads). */
class BlockReader {
  private buf = Buffer.alloc(0);
  private off = 0;
  /** File position of `buf[0]`. */
  private base = 0;

  constructor(private readonly fh: FileHandle) {}

  async read(n: number): Promise<Buffer> {
    if (this.buf.length - this.off < n) {
      const keep = this.buf.subarray(this.off);
      const want = Math.max(n, 1 << 20);
      const next = Buffer.alloc(keep.length + want);
      keep.copy(next);
      const { bytesRead } = await this.fh.read(next, keep.length, want, this.base + this.buf.length);
      this.base += this.off;
      this.buf = next.subarray(0, keep.length + bytesRead);
      this.off = 0;
    }
    const out = this.buf.subarray(this.off, this.off + Math.min(n, this.buf.length - this.off));
    this.off += out.length;
    return out;
  }

  skip(n: number): void {
    const avail = this.buf.length - this.off;
    if (n <= avail) {
      this.off += n;
      return;
    }
    this.base += this.buf.length + (n - avail);
    this.buf = Buffer.alloc(0);
    this.off = 0;
  }
}

/** The path tar extracts an entry to, relative to the target folder; null if tar would not. */
function extractPath(name: string): string | null {
  const p = posix.normalize(name.replace(/^\/+/, ''));
  if (p === '.' || p === '' ) return '.';
  if (p.split('/').includes('..')) return null;
  return p.replace(/\/+$/, '');
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Reads a layer tar and records how to rebuild it. The result is `ok: false` when the unpacked
 * folder will not hold a file's contents as they are in the tar (a path given twice, whited out in
 * the same layer, below a symlink of the same tar, or dropped by the whiteout conversion): such
 * layers keep their tar instead.
 */
export async function recordTarSplit(tarPath: string): Promise<TarSplitResult> {
  const fh = await open(tarPath, 'r');
  try {
    const r = new BlockReader(fh);
    const segments: Segment[] = [];
    let size = 0;
    let pending: Buffer[] = [];
    const raw = (b: Buffer): void => {
      if (b.length === 0) return;
      pending.push(Buffer.from(b));
      size += b.length;
    };
    const flush = (): void => {
      if (pending.length) segments.push({ r: Buffer.concat(pending).toString('base64') });
      pending = [];
    };
    const seen = new Set<string>();
    const refs: string[] = [];
    const symlinks = new Set<string>();
    const whiteouts = new Set<string>();
    let reason: string | null = null;
    let global = new Map<string, string>();
    let local = new Map<string, string>();
    let longName: string | null = null;

    for (;;) {
      const h = await r.read(BLOCK);
      if (h.length < BLOCK || isZero(h)) {
        // The end blocks and whatever follows them (tar pads to its record size) are kept as they are.
        raw(h);
        for (let rest = await r.read(1 << 20); rest.length; rest = await r.read(1 << 20)) raw(rest);
        break;
      }
      raw(h);
      const type = String.fromCharCode(h[156]!);
      let entrySize = headerNumber(h, 124, 12);
      const padded = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;
      if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
        const data = await r.read(padded(entrySize));
        raw(data);
        const body = data.subarray(0, entrySize);
        if (type === 'x' || type === 'g') {
          let records: Map<string, string>;
          try {
            records = paxRecords(body);
          } catch {
            // tar extracted it somehow; what it made of the names is unknown, so the tar is kept.
            reason ??= 'an invalid PAX record';
            records = new Map();
          }
          if (type === 'x') local = records;
          else global = new Map([...global, ...records]);
        } else if (type === 'L') longName = headerString(body, 0, body.length);
        continue;
      }
      const pax = new Map([...global, ...local]);
      const name = pax.get('path') ?? longName ?? headerName(h);
      if (pax.has('size')) entrySize = Number(pax.get('size'));
      local = new Map();
      longName = null;

      const path = extractPath(name);
      if (path === null) reason ??= `entry ${JSON.stringify(name)} is not extracted`;
      else {
        if (seen.has(path) && path !== '.') {
          // A directory listed twice is harmless; anything else replaces what came before.
          if (type !== '5') reason ??= `${path} is in the tar twice`;
        }
        seen.add(path);
        const base = posix.basename(path);
        if (base.startsWith('.wh.') && base !== '.wh..wh..opq') whiteouts.add(posix.join(posix.dirname(path), base.slice(4)));
        if (type === '2') symlinks.add(path);
      }
      const regular = type === '0' || type === '\0' || type === '7';
      if (regular && entrySize > 0 && path !== null) {
        flush();
        segments.push({ f: path, n: entrySize });
        size += entrySize;
        refs.push(path);
        r.skip(entrySize);
        raw(await r.read(padded(entrySize) - entrySize));
      } else if (entrySize > 0) {
        raw(await r.read(padded(entrySize)));
      }
    }
    flush();
    if (!reason) {
      for (const p of refs) {
        const parts = p.split('/');
        for (let i = 1; i <= parts.length && !reason; i++) {
          const anc = parts.slice(0, i).join('/');
          if (whiteouts.has(anc)) reason = `${p} is whited out in the same layer`;
          else if (i < parts.length && symlinks.has(anc)) reason = `${p} is below the symlink ${anc}`;
          else if (parts[i - 1]!.startsWith('.wh.')) reason = `${p} is whiteout metadata`;
        }
        if (reason) break;
      }
    }
    if (reason) return { ok: false, reason };
    return { ok: true, split: { version: 1, size, segments } };
  } finally {
    await fh.close();
  }
}

export async function writeTarSplit(path: string, split: TarSplit): Promise<void> {
  await writeFile(path, gzipSync(JSON.stringify(split)), { mode: 0o600 });
}

export async function readTarSplit(path: string): Promise<TarSplit> {
  return JSON.parse(gunzipSync(await readFile(path)).toString('utf8')) as TarSplit;
}

/**
 * The original tar, rebuilt from a record and the unpacked folder `root`. Files are opened without
 * following a symlink in their last component (the record refuses paths below the layer's own
 * symlinks), so nothing outside `root` is read. When `diffId` is given, the stream fails at its end
 * if the bytes do not hash to it.
 */
export function assembleTar(split: TarSplit, root: string, diffId?: string): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    const hash = diffId ? createHash('sha256') : null;
    for (const s of split.segments) {
      if ('r' in s) {
        const b = Buffer.from(s.r, 'base64');
        hash?.update(b);
        yield b;
        continue;
      }
      const fh = await open(join(root, s.f), constants.O_RDONLY | constants.O_NOFOLLOW);
      let got = 0;
      try {
        const st = await fh.stat();
        if (!st.isFile() || st.size !== s.n) throw new Error(`layer file ${s.f} changed: expected ${s.n} bytes`);
        for await (const chunk of createReadStream('', { fd: fh, autoClose: false, start: 0, end: s.n - 1 }) as AsyncIterable<Buffer>) {
          got += chunk.length;
          hash?.update(chunk);
          yield chunk;
        }
      } finally {
        await fh.close();
      }
      if (got !== s.n) throw new Error(`layer file ${s.f} is short: ${got} of ${s.n} bytes`);
    }
    if (hash && `sha256:${hash.digest('hex')}` !== diffId) throw new Error(`rebuilt layer does not match ${diffId}`);
  }
  return Readable.from(gen(), { objectMode: false });
}
