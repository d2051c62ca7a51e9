import { ETH_HEADER, ETHERTYPE_ARP, ETHERTYPE_IPV4, writeEthernetHeader } from './ethernet.js';

/** ARP for IPv4 over Ethernet (RFC 826): the only shape this wire ever needs. */
export const ARP_LENGTH = 28;
export const ARP_FRAME = ETH_HEADER + ARP_LENGTH;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

/** Byte offsets inside the ARP packet. */
const SHA = 8;
const SPA = 14;
const THA = 18;
const TPA = 24;

/** True when the 28 bytes at `off` are Ethernet/IPv4 ARP with the standard lengths. */
export function isEthernetIpv4Arp(buf: Buffer, off: number): boolean {
  return buf.readUInt16BE(off) === 1 && buf.readUInt16BE(off + 2) === ETHERTYPE_IPV4 && buf[off + 4] === 6 && buf[off + 5] === 4;
}

export const arpOperation = (buf: Buffer, off: number): number => buf.readUInt16BE(off + 6);
export const arpSenderIp = (buf: Buffer, off: number): number => buf.readUInt32BE(off + SPA);
export const arpTargetIp = (buf: Buffer, off: number): number => buf.readUInt32BE(off + TPA);
export const ARP_SENDER_MAC = SHA;

/**
 * Writes the 42-byte Ethernet + ARP reply to the request at `req` (its ARP packet's offset):
 * "`ip` is at `mac`", sent straight back to the asker's hardware address.
 */
export function writeArpReply(out: Buffer, off: number, mac: Buffer, ip: number, req: Buffer, reqArp: number): void {
  writeEthernetHeader(out, off, req, reqArp + SHA, mac, ETHERTYPE_ARP);
  const a = off + ETH_HEADER;
  out.writeUInt16BE(1, a);
  out.writeUInt16BE(ETHERTYPE_IPV4, a + 2);
  out[a + 4] = 6;
  out[a + 5] = 4;
  out.writeUInt16BE(ARP_REPLY, a + 6);
  out.set(mac.subarray(0, 6), a + SHA);
  out.writeUInt32BE(ip, a + SPA);
  out.set(req.subarray(reqArp + SHA, reqArp + SHA + 6), a + THA);
  out.set(req.subarray(reqArp + SPA, reqArp + SPA + 4), a + TPA);
}
