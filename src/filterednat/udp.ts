import { finishChecksum, pseudoHeaderSum, sumWords } from './internet-checksum.js';
import { PROTO_UDP } from './ipv4.js';

export const UDP_HEADER = 8;

/**
 * Writes a UDP header for the `payloadLength` bytes already at `off + 8`, with its checksum
 * (busybox udhcpc checks it when it is non-zero, and a zero would tell WireGuard nothing).
 */
export function writeUdpHeader(out: Buffer, off: number, src: number, srcPort: number, dst: number, dstPort: number, payloadLength: number): void {
  const length = UDP_HEADER + payloadLength;
  out.writeUInt16BE(srcPort, off);
  out.writeUInt16BE(dstPort, off + 2);
  out.writeUInt16BE(length, off + 4);
  out.writeUInt16BE(0, off + 6);
  let sum = finishChecksum(sumWords(out, off, length, pseudoHeaderSum(src, dst, PROTO_UDP, length)));
  // 0 means "no checksum" in UDP over IPv4; a computed 0 is sent as its other form.
  if (sum === 0) sum = 0xffff;
  out.writeUInt16BE(sum, off + 6);
}
