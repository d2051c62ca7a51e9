import { finishChecksum, sumWords } from './internet-checksum.js';

export const IPV4_HEADER = 20;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

/** Writes a 20-byte IPv4 header (no options, DF set: nothing this engine sends is ever fragmented). */
export function writeIpv4Header(out: Buffer, off: number, totalLength: number, id: number, proto: number, src: number, dst: number): void {
  out[off] = 0x45;
  out[off + 1] = 0;
  out.writeUInt16BE(totalLength, off + 2);
  out.writeUInt16BE(id & 0xffff, off + 4);
  out.writeUInt16BE(0x4000, off + 6);
  out[off + 8] = 64;
  out[off + 9] = proto;
  out.writeUInt16BE(0, off + 10);
  out.writeUInt32BE(src >>> 0, off + 12);
  out.writeUInt32BE(dst >>> 0, off + 16);
  out.writeUInt16BE(finishChecksum(sumWords(out, off, IPV4_HEADER)), off + 10);
}
