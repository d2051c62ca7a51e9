/**
 * rtnetlink messages, built and read in TypeScript; the native addon only moves the bytes.
 * Only what arca's link operations need: links (bridge, veth with its peer born in another
 * namespace), addresses, routes. Layouts are the kernel's (linux/netlink.h, linux/rtnetlink.h,
 * linux/if_link.h, linux/if_addr.h), in host byte order (little-endian on every target we run).
 */
import { SystemError } from '../errors.js';

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

export const IFF_UP = 0x1;

export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_MASTER = 10;
export const IFLA_LINKINFO = 18;
export const IFLA_NET_NS_FD = 28;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const VETH_INFO_PEER = 1;
export const IFLA_BR_MCAST_SNOOPING = 23;
export const IFLA_BR_NF_CALL_IPTABLES = 36;
export const IFLA_BR_NF_CALL_IP6TABLES = 37;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
export const IFA_F_PERMANENT = 0x80;

export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RTN_UNICAST = 1;

const NLMSG_HDRLEN = 16;

const align4 = (n: number): number => (n + 3) & ~3;

/** A netlink attribute: a type and its payload (nested attributes are encoded payloads). */
export interface Attr {
  type: number;
  data: Buffer;
}

export const attr = {
  u8: (type: number, v: number): Attr => ({ type, data: Buffer.from([v & 0xff]) }),
  u32: (type: number, v: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return { type, data: b };
  },
  str: (type: number, s: string): Attr => ({ type, data: Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]) }),
  bytes: (type: number, b: Buffer): Attr => ({ type, data: b }),
  nested: (type: number, children: Attr[], header?: Buffer): Attr => ({
    type,
    data: Buffer.concat([header ?? Buffer.alloc(0), encodeAttrs(children)]),
  }),
};

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const len = 4 + a.data.length;
    const b = Buffer.alloc(align4(len));
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE(a.type, 2);
    a.data.copy(b, 4);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

/** Attributes from `buf` (a message payload after its fixed header). Later duplicates win. */
export function decodeAttrs(buf: Buffer, offset = 0, end = buf.length): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = offset;
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & 0x3fff; // drop NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (len < 4 || off + len > end) break;
    out.set(type, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

export function ifinfomsg(opts: { family?: number; index?: number; flags?: number; change?: number } = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(opts.family ?? AF_UNSPEC, 0);
  b.writeInt32LE(opts.index ?? 0, 4);
  b.writeUInt32LE((opts.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((opts.change ?? 0) >>> 0, 12);
  return b;
}

export function ifaddrmsg(family: number, prefixLen: number, flags: number, index: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefixLen, 1);
  b.writeUInt8(flags & 0xff, 2);
  b.writeUInt8(RT_SCOPE_UNIVERSE, 3);
  b.writeUInt32LE(index, 4);
  return b;
}

/** `rtm_flags` bit: the gateway is on the link even though no route says so. */
export const RTNH_F_ONLINK = 4;

export function rtmsg(family: number, dstLen: number, flags = 0): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(family, 0);
  b.writeUInt8(dstLen, 1);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  b.writeUInt8(RTPROT_BOOT, 5);
  b.writeUInt8(RT_SCOPE_UNIVERSE, 6);
  b.writeUInt8(RTN_UNICAST, 7);
  b.writeUInt32LE(flags, 8);
  return b;
}

/** One request: header + fixed part + attributes. */
export function message(type: number, flags: number, seq: number, fixed: Buffer, attrs: readonly Attr[] = []): Buffer {
  const body = Buffer.concat([fixed, encodeAttrs(attrs)]);
  const h = Buffer.alloc(NLMSG_HDRLEN);
  h.writeUInt32LE(NLMSG_HDRLEN + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags | NLM_F_REQUEST, 6);
  h.writeUInt32LE(seq >>> 0, 8);
  return Buffer.concat([h, body]);
}

export interface Reply {
  type: number;
  flags: number;
  seq: number;
  /** The payload after the netlink header. */
  payload: Buffer;
}

/** Splits a stream of datagrams into messages. */
export function splitReplies(buf: Buffer): Reply[] {
  const out: Reply[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({ type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), payload: buf.subarray(off + NLMSG_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

const NLMSGERR_ATTR_MSG = 1;

/** An NLMSG_ERROR payload: 0 for an ACK, else a negative errno, with the kernel's extended text. */
export function parseError(payload: Buffer): { errno: number; text?: string } {
  const errno = payload.readInt32LE(0);
  if (errno === 0) return { errno };
  // The echoed request header follows; with NETLINK_EXT_ACK (and no CAP_ACK) the whole request is
  // echoed, then the TLVs. Its length is in the echoed header.
  let text: string | undefined;
  if (payload.length >= 4 + NLMSG_HDRLEN) {
    const echoedLen = payload.readUInt32LE(4);
    const tlvStart = 4 + align4(echoedLen);
    if (tlvStart < payload.length) {
      const msg = decodeAttrs(payload, tlvStart).get(NLMSGERR_ATTR_MSG);
      if (msg) text = msg.toString('utf8').replace(/\0+$/, '');
    }
  }
  return { errno, text };
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  3: 'ESRCH',
  16: 'EBUSY',
  17: 'EEXIST',
  19: 'ENODEV',
  22: 'EINVAL',
  34: 'ERANGE',
  95: 'EOPNOTSUPP',
  99: 'EADDRNOTAVAIL',
  101: 'ENETUNREACH',
};

/** A request the kernel refused. `code` is the errno name (`EEXIST`, `ENODEV`, …). */
export class NetlinkError extends SystemError {
  readonly code: string;
  constructor(
    readonly what: string,
    readonly errno: number,
    readonly kernelText?: string,
  ) {
    const code = ERRNO_NAMES[errno] ?? `errno ${errno}`;
    super(`${what}: ${code}${kernelText ? ` (${kernelText})` : ''}`);
    this.code = code;
  }
}

/** A link from an RTM_NEWLINK reply. */
export interface LinkMsg {
  index: number;
  flags: number;
  name: string;
  kind?: string;
  master?: number;
  mtu?: number;
}

export function parseLink(payload: Buffer): LinkMsg {
  const index = payload.readInt32LE(4);
  const flags = payload.readUInt32LE(8);
  const attrs = decodeAttrs(payload, 16);
  const cstr = (b: Buffer | undefined): string | undefined => (b ? b.toString('utf8').replace(/\0.*$/s, '') : undefined);
  const info = attrs.get(IFLA_LINKINFO);
  const kind = info ? cstr(decodeAttrs(info).get(IFLA_INFO_KIND)) : undefined;
  const master = attrs.get(IFLA_MASTER);
  const mtu = attrs.get(IFLA_MTU);
  return {
    index,
    flags,
    name: cstr(attrs.get(IFLA_IFNAME)) ?? '',
    kind,
    master: master ? master.readUInt32LE(0) : undefined,
    mtu: mtu ? mtu.readUInt32LE(0) : undefined,
  };
}

/** `aa:bb:cc:dd:ee:ff` as 6 bytes. */
export function macBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new SystemError(`bad MAC address: ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** An IPv4 or IPv6 address in network byte order, with its family. */
export function ipBytes(ip: string): { family: number; bytes: Buffer } {
  if (!ip.includes(':')) {
    const parts = ip.split('.').map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new SystemError(`bad IPv4 address: ${ip}`);
    return { family: AF_INET, bytes: Buffer.from(parts) };
  }
  let head = ip;
  let tail = '';
  const dbl = ip.indexOf('::');
  if (dbl >= 0) {
    head = ip.slice(0, dbl);
    tail = ip.slice(dbl + 2);
  }
  const words = (s: string): number[] => {
    if (!s) return [];
    const out: number[] = [];
    for (const part of s.split(':')) {
      if (part.includes('.')) {
        const v4 = ipBytes(part).bytes;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(part)) throw new SystemError(`bad IPv6 address: ${ip}`);
        out.push(parseInt(part, 16));
      }
    }
    return out;
  };
  const h = words(head);
  const t = words(tail);
  const fill = 8 - h.length - t.length;
  if (fill < 0 || (dbl < 0 && fill !== 0)) throw new SystemError(`bad IPv6 address: ${ip}`);
  const all = [...h, ...new Array<number>(fill).fill(0), ...t];
  const b = Buffer.alloc(16);
  all.forEach((w, i) => b.writeUInt16BE(w, i * 2));
  return { family: AF_INET6, bytes: b };
}
