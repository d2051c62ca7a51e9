/**
 * The pieces of a tar stream around its members' headers (which tar-member.ts writes): a regular
 * file's data, the padding after it and the end of the archive.
 */
import { createReadStream } from 'node:fs';

const BLOCK = 512;

/** Zeros that round a file's data up to whole blocks. */
export function tarPadding(size: number): Buffer {
  const rem = size % BLOCK;
  return Buffer.alloc(rem === 0 ? 0 : BLOCK - rem);
}

/** The two zero blocks that end an archive. */
export const TAR_END: Buffer = Buffer.alloc(2 * BLOCK);

/**
 * A regular file's data and padding: exactly the `size` its header gave, read from `fd` in large
 * chunks; a file that shrank meanwhile is padded with zeros and one that grew is cut, so the
 * archive stays whole. `fd` stays open.
 */
export async function* tarFileData(fd: number, size: number): AsyncGenerator<Buffer> {
  let n = 0;
  if (size > 0) {
    for await (const chunk of createReadStream('', { fd, autoClose: false, start: 0, end: size - 1, highWaterMark: 1 << 20 })) {
      n += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
  }
  for (let left = size - n; left > 0; left -= 1 << 20) yield Buffer.alloc(Math.min(left, 1 << 20));
  yield tarPadding(size);
}
