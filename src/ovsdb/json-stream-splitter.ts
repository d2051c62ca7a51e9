/**
 * Cuts a byte stream of concatenated JSON values into whole values. ovsdb-server writes JSON-RPC
 * messages back to back with no delimiter, and one socket read may hold half a message or several,
 * so the boundaries come from tracking nesting depth and string/escape state.
 *
 * It scans bytes, not characters: every byte a structural character or quote can be is ASCII, and
 * UTF-8 continuation bytes are all >= 0x80, so a multi-byte character split across two reads is
 * harmless. Each byte is looked at once, so a large reply arriving in many reads costs O(n).
 * Only objects and arrays are framed (JSON-RPC messages are objects); bytes between values
 * (whitespace) are dropped.
 */
export class JsonStreamSplitter {
  private pieces: Buffer[] = [];
  private piecesBytes = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Hard cap on one message, so a peer that never closes a brace cannot grow us without end. */
  constructor(private readonly maxBytes = 256 * 1024 * 1024) {}

  /** Feeds one read; returns the values it completed, as text, in order. */
  push(chunk: Buffer): string[] {
    const out: string[] = [];
    let start = this.depth > 0 ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === 0x5c /* \ */) this.escaped = true;
        else if (b === 0x22 /* " */) this.inString = false;
        continue;
      }
      if (b === 0x7b /* { */ || b === 0x5b /* [ */) {
        if (this.depth++ === 0) start = i;
      } else if (b === 0x7d /* } */ || b === 0x5d /* ] */) {
        if (this.depth === 0) throw new SyntaxError('JSON stream: unbalanced closing bracket');
        if (--this.depth === 0) {
          this.pieces.push(chunk.subarray(start, i + 1));
          out.push(Buffer.concat(this.pieces).toString('utf8'));
          this.pieces = [];
          this.piecesBytes = 0;
          start = -1;
        }
      } else if (b === 0x22) {
        if (this.depth === 0) throw new SyntaxError('JSON stream: string outside an object');
        this.inString = true;
      } else if (this.depth === 0 && b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) {
        throw new SyntaxError(`JSON stream: unexpected byte 0x${b.toString(16)} between messages`);
      }
    }
    if (this.depth > 0) {
      const rest = chunk.subarray(start);
      this.pieces.push(rest);
      this.piecesBytes += rest.length;
      if (this.piecesBytes > this.maxBytes) throw new RangeError(`JSON stream: message over ${this.maxBytes} bytes`);
    }
    return out;
  }
}
