/** The DHCP (RFC 2131/2132) a one-guest server needs: read a client's message, write a reply. */

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;

export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;
export const DHCPREQUEST = 3;
export const DHCPDECLINE = 4;
export const DHCPACK = 5;
export const DHCPNAK = 6;
export const DHCPRELEASE = 7;
export const DHCPINFORM = 8;

/** The fixed BOOTP part plus the magic cookie. */
const FIXED = 240;
const COOKIE = 0x63825363;
/** Replies are padded to BOOTP's classic 300 bytes: old clients drop anything shorter. */
export const BOOTP_MIN = 300;
/** The flags bit that asks for a broadcast reply (a client that cannot take unicast before it is configured). */
export const FLAG_BROADCAST = 0x8000;

const OPT_PAD = 0;
const OPT_END = 255;
const OPT_MASK = 1;
const OPT_ROUTER = 3;
const OPT_DNS = 6;
const OPT_REQUESTED_IP = 50;
const OPT_LEASE = 51;
const OPT_TYPE = 53;
const OPT_SERVER_ID = 54;

/** A client message as offsets and numbers; reused for every message. */
export class DhcpView {
  /** Offset of the BOOTP message. */
  off = 0;
  type = 0;
  xid = 0;
  flags = 0;
  ciaddr = 0;
  /** Option 50, 0 when absent. */
  requestedIp = 0;
  /** Option 54, 0 when absent. */
  serverId = 0;
}

/**
 * Reads the BOOTREQUEST at `buf[off, off+len)` into `v`. False for anything that is not a
 * well-formed Ethernet-hardware DHCP message without relays: options must stay inside the message
 * and end with an END option, and option 53 must name a client message type.
 */
export function parseDhcp(buf: Buffer, off: number, len: number, v: DhcpView): boolean {
  if (len < FIXED + 1) return false;
  if (buf[off] !== 1 || buf[off + 1] !== 1 || buf[off + 2] !== 6) return false;
  if (buf.readUInt32BE(off + 236) !== COOKIE) return false;
  // A relay agent (giaddr) has no business on a VM's only wire.
  if (buf.readUInt32BE(off + 24) !== 0) return false;
  v.off = off;
  v.xid = buf.readUInt32BE(off + 4);
  v.flags = buf.readUInt16BE(off + 10);
  v.ciaddr = buf.readUInt32BE(off + 12);
  v.type = 0;
  v.requestedIp = 0;
  v.serverId = 0;
  const end = off + len;
  let i = off + FIXED;
  for (;;) {
    if (i >= end) return false;
    const code = buf[i]!;
    if (code === OPT_END) break;
    if (code === OPT_PAD) {
      i++;
      continue;
    }
    if (i + 1 >= end) return false;
    const l = buf[i + 1]!;
    const data = i + 2;
    if (data + l > end) return false;
    if (code === OPT_TYPE) {
      if (l !== 1 || v.type !== 0) return false;
      v.type = buf[data]!;
    } else if (code === OPT_REQUESTED_IP) {
      if (l !== 4) return false;
      v.requestedIp = buf.readUInt32BE(data);
    } else if (code === OPT_SERVER_ID) {
      if (l !== 4) return false;
      v.serverId = buf.readUInt32BE(data);
    }
    i = data + l;
  }
  const t = v.type;
  return t === DHCPDISCOVER || t === DHCPREQUEST || t === DHCPDECLINE || t === DHCPRELEASE || t === DHCPINFORM;
}

/** What the server hands out; all addresses as numbers. */
export interface DhcpLease {
  serverIp: number;
  yiaddr: number;
  mask: number;
  router: number;
  dns: number;
  leaseSeconds: number;
}

/**
 * Writes the BOOTREPLY of `type` (OFFER, ACK or NAK) to the request `req` in `reqBuf` at `out[off]`
 * and returns its length. A NAK carries no address and no configuration, as RFC 2131 table 3 says.
 */
export function writeDhcpReply(out: Buffer, off: number, reqBuf: Buffer, req: DhcpView, type: number, lease: DhcpLease): number {
  out.fill(0, off, off + BOOTP_MIN);
  out[off] = 2;
  out[off + 1] = 1;
  out[off + 2] = 6;
  out.writeUInt32BE(req.xid, off + 4);
  out.writeUInt16BE(req.flags & FLAG_BROADCAST, off + 10);
  if (type === DHCPACK) out.writeUInt32BE(req.ciaddr, off + 12);
  if (type !== DHCPNAK) out.writeUInt32BE(lease.yiaddr, off + 16);
  out.set(reqBuf.subarray(req.off + 28, req.off + 44), off + 28);
  out.writeUInt32BE(COOKIE, off + 236);
  let o = off + FIXED;
  out[o++] = OPT_TYPE;
  out[o++] = 1;
  out[o++] = type;
  o = option32(out, o, OPT_SERVER_ID, lease.serverIp);
  if (type !== DHCPNAK) {
    o = option32(out, o, OPT_LEASE, lease.leaseSeconds);
    o = option32(out, o, OPT_MASK, lease.mask);
    o = option32(out, o, OPT_ROUTER, lease.router);
    o = option32(out, o, OPT_DNS, lease.dns);
  }
  out[o++] = OPT_END;
  return Math.max(BOOTP_MIN, o - off);
}

function option32(out: Buffer, o: number, code: number, value: number): number {
  out[o] = code;
  out[o + 1] = 4;
  out.writeUInt32BE(value >>> 0, o + 2);
  return o + 6;
}
