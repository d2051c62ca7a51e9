/**
 * The Internet checksum (RFC 1071), summed without folding until the end: 16-bit words of a
 * 1522-byte frame sum to well under 2^53, so a plain number never loses bits.
 */
export function sumWords(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (len & 1) sum += buf[off + len - 1]! << 8;
  return sum;
}

/** Folds a running sum to 16 bits and complements it: the value to write into a header. */
export function finishChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** The IPv4 pseudo-header's contribution to a UDP/TCP checksum. */
export function pseudoHeaderSum(src: number, dst: number, proto: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + length;
}
