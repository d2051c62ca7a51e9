import { MAX_FRAME } from './ethernet.js';

/** QEMU's stream netdev framing: a 4-byte big-endian length, then that many bytes of frame. */
export const LENGTH_PREFIX = 4;

export interface FrameHandler {
  /** One whole frame, valid only during the call (it may be a view into a reused buffer). */
  frame(buf: Buffer, off: number, len: number): void;
  /** A frame whose length prefix exceeds MAX_FRAME: its bytes are skipped, never buffered. */
  oversize(len: number): void;
}

/**
 * Cuts a byte stream into frames. Frames that sit wholly inside a chunk are handed over in place;
 * only a frame split across reads is copied, into one buffer kept for the purpose. An oversized
 * frame is skipped byte-exactly, so the stream stays in step after it.
 */
export class FrameStreamDecoder {
  private readonly partial = Buffer.allocUnsafe(LENGTH_PREFIX + MAX_FRAME);
  private have = 0;
  /** The current frame's length once its prefix is complete, else -1. */
  private want = -1;
  private skip = 0;

  constructor(private readonly handler: FrameHandler) {}

  /** Takes the first `end` bytes of `chunk` (all of it by default). */
  push(chunk: Buffer, end = chunk.length): void {
    let i = 0;
    const n = Math.min(end, chunk.length);
    while (i < n) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, n - i);
        this.skip -= k;
        i += k;
        continue;
      }
      if (this.have === 0 && n - i >= LENGTH_PREFIX) {
        const len = chunk.readUInt32BE(i);
        if (len > MAX_FRAME) {
          this.handler.oversize(len);
          this.skip = len;
          i += LENGTH_PREFIX;
          continue;
        }
        if (n - i - LENGTH_PREFIX >= len) {
          this.handler.frame(chunk, i + LENGTH_PREFIX, len);
          i += LENGTH_PREFIX + len;
          continue;
        }
      }
      // Slow path: a prefix or a frame split across chunks.
      if (this.want < 0) {
        const k = Math.min(LENGTH_PREFIX - this.have, n - i);
        chunk.copy(this.partial, this.have, i, i + k);
        this.have += k;
        i += k;
        if (this.have < LENGTH_PREFIX) continue;
        const len = this.partial.readUInt32BE(0);
        if (len > MAX_FRAME) {
          this.handler.oversize(len);
          this.skip = len;
          this.have = 0;
          continue;
        }
        this.want = len;
      }
      const k = Math.min(LENGTH_PREFIX + this.want - this.have, n - i);
      chunk.copy(this.partial, this.have, i, i + k);
      this.have += k;
      i += k;
      if (this.have === LENGTH_PREFIX + this.want) {
        const len = this.want;
        this.have = 0;
        this.want = -1;
        this.handler.frame(this.partial, LENGTH_PREFIX, len);
      }
    }
  }

  /** True for the buffer split frames are reassembled in: a frame there is overwritten by the next. */
  isScratch(buf: Buffer): boolean {
    return buf === this.partial;
  }

  /** Forgets a half-read frame (the stream it came from is gone). */
  reset(): void {
    this.have = 0;
    this.want = -1;
    this.skip = 0;
  }
}
