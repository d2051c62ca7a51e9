import { Transform } from 'node:stream';

/** Progress of a byte stream: bytes seen so far of `total`. */
export type ByteProgress = (current: number, total: number) => void;

/**
 * A pass-through stream that reports the bytes flowing through it, at most every 100 ms and once
 * at `total`, so progress lines (pull's extracting, push's pushing) stay few on fast transfers.
 */
export function byteMeter(total: number, onProgress?: ByteProgress): Transform {
  let seen = 0;
  let last = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      const now = Date.now();
      if (onProgress && (now - last > 100 || seen === total)) {
        last = now;
        onProgress(seen, total);
      }
      cb(null, chunk);
    },
  });
}
