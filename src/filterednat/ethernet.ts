/** Ethernet II as QEMU's stream netdev carries it: no preamble, no FCS, no virtio-net header. */

export const ETH_HEADER = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;

/**
 * The largest frame accepted: 1514 (a 1500-byte MTU plus the header) and 8 bytes of margin, which
 * is what a frame with one or two VLAN tags needs. Such a frame is then counted as `vlan`, the
 * real reason, rather than `oversize`. Nothing legitimate on this untagged 1500-MTU wire is
 * larger; a guest that raised its MTU is told so by the `oversize` counter.
 */
export const MAX_FRAME = 1522;

/**
 * Frames shorter than this are padded by the sender (802.3's 64 bytes less the FCS). Bytes past
 * the IP packet are accepted only up to here, so padding is the only thing that may trail.
 */
export const MIN_PADDED_FRAME = 60;

export const BROADCAST_MAC: Readonly<Buffer> = Buffer.alloc(6, 0xff);

export function isBroadcastMac(buf: Uint8Array, off: number): boolean {
  return (buf[off]! & buf[off + 1]! & buf[off + 2]! & buf[off + 3]! & buf[off + 4]! & buf[off + 5]!) === 0xff;
}

export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 6; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** `02:00:...`: locally administered and unicast. */
export function parseMac(text: string): Buffer | undefined {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text)) return undefined;
  return Buffer.from(text.replace(/:/g, ''), 'hex');
}

export function formatMac(buf: Uint8Array, off = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(buf[off + i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

export function writeEthernetHeader(out: Buffer, off: number, dst: Uint8Array, dstOff: number, src: Uint8Array, ethertype: number): void {
  out.set(dst.subarray(dstOff, dstOff + 6), off);
  out.set(src.subarray(0, 6), off + 6);
  out.writeUInt16BE(ethertype, off + 12);
}
