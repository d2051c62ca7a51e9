import { ARP_FRAME, isEthernetIpv4Arp } from './arp.js';
import type { DropReason } from './drop-reasons.js';
import {
  ETH_HEADER,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_QINQ,
  ETHERTYPE_VLAN,
  MAX_FRAME,
  MIN_PADDED_FRAME,
} from './ethernet.js';
import { finishChecksum, pseudoHeaderSum, sumWords } from './internet-checksum.js';
import { IPV4_HEADER, PROTO_ICMP, PROTO_TCP, PROTO_UDP } from './ipv4.js';
import { UDP_HEADER } from './udp.js';

/** What a structurally sound frame is; anything else is the reason it is not. */
export type FrameClass = 'arp' | 'udp' | DropReason;

/**
 * Where the parts of the last parsed frame are: offsets into `buf`, addresses as numbers. One
 * view per engine, overwritten by every frame, so parsing allocates nothing.
 */
export class FrameView {
  buf: Buffer = Buffer.alloc(0);
  /** Offset of the Ethernet header. */
  off = 0;
  len = 0;
  /** Offset of the ARP packet or the IPv4 header. */
  l3 = 0;
  src = 0;
  dst = 0;
  srcPort = 0;
  dstPort = 0;
  /** Offset and length of the UDP payload. */
  payload = 0;
  payloadLength = 0;
}

/**
 * Classifies the Ethernet frame at `buf[off, off+len)` and fills `v`. Total: any bytes give an
 * answer, never an exception. Structure only; who may send what to whom is the engine's call.
 */
export function parseFrame(buf: Buffer, off: number, len: number, v: FrameView): FrameClass {
  v.buf = buf;
  v.off = off;
  v.len = len;
  if (len > MAX_FRAME) return 'oversize';
  if (len < ETH_HEADER) return 'truncated';
  const type = (buf[off + 12]! << 8) | buf[off + 13]!;
  if (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) return 'vlan';
  if (type === ETHERTYPE_IPV6) return 'ipv6';
  // A group address as the source is never a real station.
  if (buf[off + 6]! & 1) return 'bad_frame';
  if (type === ETHERTYPE_ARP) return parseArp(buf, off, len, v);
  if (type === ETHERTYPE_IPV4) return parseIpv4(buf, off, len, v);
  return 'ethertype';
}

/** Bytes past the packet are Ethernet padding only if the frame is no longer than a padded minimum. */
const trailingOk = (packetEnd: number, len: number): boolean => packetEnd === len || len <= MIN_PADDED_FRAME;

function parseArp(buf: Buffer, off: number, len: number, v: FrameView): FrameClass {
  if (len < ARP_FRAME) return 'truncated';
  if (!trailingOk(ARP_FRAME, len)) return 'bad_frame';
  v.l3 = off + ETH_HEADER;
  return isEthernetIpv4Arp(buf, v.l3) ? 'arp' : 'bad_frame';
}

function parseIpv4(buf: Buffer, off: number, len: number, v: FrameView): FrameClass {
  const ip = off + ETH_HEADER;
  const avail = len - ETH_HEADER;
  if (avail < IPV4_HEADER) return 'truncated';
  const vihl = buf[ip]!;
  if (vihl >> 4 !== 4) return 'bad_frame';
  const ihl = (vihl & 15) * 4;
  if (ihl < IPV4_HEADER) return 'bad_frame';
  if (ihl > avail) return 'truncated';
  const total = (buf[ip + 2]! << 8) | buf[ip + 3]!;
  if (total < ihl) return 'bad_frame';
  if (total > avail) return 'truncated';
  if (!trailingOk(ETH_HEADER + total, len)) return 'bad_frame';
  if (finishChecksum(sumWords(buf, ip, ihl)) !== 0) return 'bad_checksum';
  if (ihl > IPV4_HEADER) return 'ip_options';
  const frag = (buf[ip + 6]! << 8) | buf[ip + 7]!;
  if (frag & 0x8000) return 'bad_frame'; // the reserved bit
  if (frag & 0x3fff) return 'fragment'; // MF or an offset
  v.l3 = ip;
  v.src = buf.readUInt32BE(ip + 12);
  v.dst = buf.readUInt32BE(ip + 16);
  const proto = buf[ip + 9]!;
  if (proto === PROTO_UDP) return parseUdp(buf, ip + IPV4_HEADER, total - IPV4_HEADER, v);
  if (proto === PROTO_TCP) return 'tcp';
  if (proto === PROTO_ICMP) return 'icmp';
  return 'ip_proto';
}

function parseUdp(buf: Buffer, l4: number, avail: number, v: FrameView): FrameClass {
  if (avail < UDP_HEADER) return 'truncated';
  const length = (buf[l4 + 4]! << 8) | buf[l4 + 5]!;
  if (length < UDP_HEADER) return 'bad_frame';
  if (length > avail) return 'truncated';
  if (length < avail) return 'bad_frame';
  v.srcPort = (buf[l4]! << 8) | buf[l4 + 1]!;
  v.dstPort = (buf[l4 + 2]! << 8) | buf[l4 + 3]!;
  if (v.srcPort === 0 || v.dstPort === 0) return 'bad_frame';
  const checksum = (buf[l4 + 6]! << 8) | buf[l4 + 7]!;
  if (checksum !== 0 && finishChecksum(sumWords(buf, l4, length, pseudoHeaderSum(v.src, v.dst, PROTO_UDP, length))) !== 0) {
    return 'bad_checksum';
  }
  v.payload = l4 + UDP_HEADER;
  v.payloadLength = length - UDP_HEADER;
  return 'udp';
}
