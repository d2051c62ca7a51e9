/**
 * Integers that JSON must carry exactly although a JS number cannot: Docker's uint64/int64 fields
 * above 2^53 (an event's `timeNano`, a cgroup's "unlimited" 9223372036854771712). Go prints them
 * as plain integers; `JSON.stringify` rounds a number and throws on a bigint. A value wrapped in
 * {@link JsonInteger} is written as its exact digits by {@link stringifyJson}, the one serializer
 * of the endpoints that send such values. No global is patched, and plain `JSON.stringify`
 * writes a JsonInteger as a marked string: such values go out through stringifyJson only.
 */

/** A per-process marker no client string can know in advance (so none can forge a raw number). */
const MARK = `\u0000int${process.pid.toString(36)}${Math.random().toString(36).slice(2)}:`;
/** `JSON.stringify` writes U+0000 as `\u0000`: the marker as it appears in its output. */
const MARK_OUT = JSON.stringify(MARK).slice(1, -1);
const MARKED = new RegExp(`"${MARK_OUT.replace(/\\/g, '\\\\')}(-?\\d+)"`, 'g');

/** How many JsonIntegers asked to be written: lets {@link stringifyJson} skip its scan when none was. */
let written = 0;

/** An exact integer for JSON (Go's int64/uint64), kept as a bigint. */
export class JsonInteger {
  constructor(readonly value: bigint) {}

  /** From a decimal string as the kernel writes it; a number when it is safe, so most stay plain. */
  static parse(digits: string): number | JsonInteger {
    const n = Number(digits);
    return Number.isSafeInteger(n) ? n : new JsonInteger(BigInt(digits));
  }

  /** Called by `JSON.stringify` (natively, no replacer on the hot path): a marked string {@link stringifyJson} unquotes. */
  toJSON(): string {
    written++;
    return MARK + this.value.toString();
  }

  toString(): string {
    return this.value.toString();
  }
}

/** `JSON.stringify`, with every {@link JsonInteger} written as its exact integer. */
export function stringifyJson(value: unknown): string {
  const before = written;
  const text = JSON.stringify(value);
  return written === before ? text : text.replace(MARKED, '$1');
}
