/**
 * The pieces of a tar stream around its members (whose headers tar-member.ts writes): the
 * padding after a member's data and the end of the archive.
 */

const BLOCK = 512;

/** Zeros that round a file's data up to whole blocks. */
export function tarPadding(size: number): Buffer {
  const rem = size % BLOCK;
  return Buffer.alloc(rem === 0 ? 0 : BLOCK - rem);
}

/** The two zero blocks that end an archive. */
export const TAR_END: Buffer = Buffer.alloc(2 * BLOCK);
