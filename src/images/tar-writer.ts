/** Pieces of a ustar archive, for writing tars as a stream of buffers. */

const BLOCK = 512;

function octal(buf: Buffer, value: number, start: number, len: number): void {
  if (value >= 8 ** (len - 1)) {
    // GNU base-256 for sizes past what the octal field holds (8 GiB for sizes).
    buf[start] = 0x80;
    let v = value;
    for (let i = start + len - 1; i > start; i--) {
      buf[i] = v % 256;
      v = Math.floor(v / 256);
    }
    return;
  }
  buf.write(value.toString(8).padStart(len - 1, '0') + '\0', start, len, 'ascii');
}

/** One entry of a tar to write. */
export interface TarEntry {
  /** Path inside the archive; at most 100 bytes (all arca writes are short). */
  name: string;
  type: 'file' | 'dir';
  size?: number;
  mode?: number;
  /** Seconds since the epoch. */
  mtime?: number;
}

/** The 512-byte ustar header of an entry. */
export function tarHeader(e: TarEntry): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(e.name) > 100) throw new Error(`tar entry name too long: ${e.name}`);
  h.write(e.name, 0, 100, 'utf8');
  octal(h, e.mode ?? (e.type === 'dir' ? 0o755 : 0o644), 100, 8);
  octal(h, 0, 108, 8);
  octal(h, 0, 116, 8);
  octal(h, e.type === 'dir' ? 0 : (e.size ?? 0), 124, 12);
  octal(h, Math.max(0, Math.floor(e.mtime ?? 0)), 136, 12);
  h.write('        ', 148, 8, 'ascii');
  h.write(e.type === 'dir' ? '5' : '0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

/** Zeros that round a file's data up to whole blocks. */
export function tarPadding(size: number): Buffer {
  const rem = size % BLOCK;
  return Buffer.alloc(rem === 0 ? 0 : BLOCK - rem);
}

/** The two zero blocks that end an archive. */
export const TAR_END: Buffer = Buffer.alloc(2 * BLOCK);
