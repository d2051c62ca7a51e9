/**
 * Frames as guests send them, built byte by byte with a checksum of the tests' own, so the
 * engine's writers are not what the tests check the engine's readers against.
 */

import assert from 'node:assert/strict';
import { dhcpIn, droppedTotal, type EngineStats } from '../../src/filterednat/engine-stats.js';

export const GUEST_MAC = Buffer.from('525400123456', 'hex');
export const GW = '10.77.0.1';
export const GUEST = '10.77.0.2';

export const ip4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));

export function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function eth(dst: Buffer, src: Buffer, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  dst.copy(h, 0);
  src.copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

export interface Ipv4Opts {
  src: string;
  dst: string;
  proto: number;
  payload: Buffer;
  flagsFrag?: number;
  options?: Buffer;
  ttl?: number;
  tos?: number;
  totalLengthDelta?: number;
  breakChecksum?: boolean;
}

export function ipv4(o: Ipv4Opts): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + opts.length);
  h[0] = 0x40 | ((20 + opts.length) / 4);
  h[1] = o.tos ?? 0;
  h.writeUInt16BE(h.length + o.payload.length + (o.totalLengthDelta ?? 0), 2);
  h.writeUInt16BE(0x1234, 4);
  h.writeUInt16BE(o.flagsFrag ?? 0x4000, 6);
  h[8] = o.ttl ?? 64;
  h[9] = o.proto;
  ip4(o.src).copy(h, 12);
  ip4(o.dst).copy(h, 16);
  opts.copy(h, 20);
  h.writeUInt16BE(checksum(h) ^ (o.breakChecksum ? 0x0101 : 0), 10);
  return Buffer.concat([h, o.payload]);
}

export function udp(src: string, srcPort: number, dst: string, dstPort: number, payload: Buffer, opts: { zeroChecksum?: boolean; breakChecksum?: boolean; lengthDelta?: number } = {}): Buffer {
  const u = Buffer.alloc(8 + payload.length);
  u.writeUInt16BE(srcPort, 0);
  u.writeUInt16BE(dstPort, 2);
  u.writeUInt16BE(u.length + (opts.lengthDelta ?? 0), 4);
  payload.copy(u, 8);
  if (!opts.zeroChecksum) {
    const pseudo = Buffer.concat([ip4(src), ip4(dst), Buffer.from([0, 17]), Buffer.from([u.length >> 8, u.length & 255])]);
    let c = checksum(Buffer.concat([pseudo, u]));
    if (c === 0) c = 0xffff;
    u.writeUInt16BE(c ^ (opts.breakChecksum ? 0x0101 : 0), 6);
  }
  return u;
}

export const gatewayMac = (): Buffer => Buffer.from('02000a4d0001', 'hex');
export const BCAST_MAC = Buffer.alloc(6, 0xff);

/** An Ethernet/IPv4/UDP frame from the guest to `dst:dstPort` (unicast to the gateway's MAC). */
export function guestUdp(dst: string, dstPort: number, payload: Buffer, srcPort = 40000, src = GUEST): Buffer {
  return eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src, dst, proto: 17, payload: udp(src, srcPort, dst, dstPort, payload) }));
}

export function arpRequest(target: string, sender = GUEST, op = 1, dstMac = BCAST_MAC): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(op, 6);
  GUEST_MAC.copy(a, 8);
  ip4(sender).copy(a, 14);
  ip4(target).copy(a, 24);
  return eth(dstMac, GUEST_MAC, 0x0806, a);
}

function option(code: number, data: Uint8Array | number[] | string): Buffer {
  const d = typeof data === 'string' ? Buffer.from(data) : Buffer.from([...data]);
  return Buffer.concat([Buffer.from([code, d.length]), d]);
}

/** A BOOTREQUEST with `options` (END appended), padded to `padTo` bytes. */
export function bootp(xid: number, options: Buffer[], o: { ciaddr?: string; flags?: number; secs?: number; padTo?: number } = {}): Buffer {
  const fixed = Buffer.alloc(240);
  fixed[0] = 1;
  fixed[1] = 1;
  fixed[2] = 6;
  fixed.writeUInt32BE(xid, 4);
  fixed.writeUInt16BE(o.secs ?? 0, 8);
  fixed.writeUInt16BE(o.flags ?? 0, 10);
  if (o.ciaddr) ip4(o.ciaddr).copy(fixed, 12);
  GUEST_MAC.copy(fixed, 28);
  fixed.writeUInt32BE(0x63825363, 236);
  let msg: Buffer = Buffer.concat([fixed, ...options, Buffer.from([255])]);
  if (o.padTo && msg.length < o.padTo) msg = Buffer.concat([msg, Buffer.alloc(o.padTo - msg.length)]);
  return msg;
}

function dhcpFrame(msg: Buffer, src = '0.0.0.0', dst = '255.255.255.255', dstMac: Buffer = BCAST_MAC, ipOpts: { ttl?: number; tos?: number } = {}): Buffer {
  return eth(dstMac, GUEST_MAC, 0x0800, ipv4({ src, dst, proto: 17, payload: udp(src, 68, dst, 67, msg), ...ipOpts }));
}

const clientId = option(61, [1, ...GUEST_MAC]);

/** busybox udhcpc 1.35: 53, 61, 57=576, 60, 55=[1,3,6,12,15,28,42]; a 300-byte BOOTP, 342-byte frame. */
export function udhcpcDiscover(xid: number): Buffer {
  return dhcpFrame(bootp(xid, [option(53, [1]), clientId, option(57, [2, 64]), option(60, 'udhcp 1.35.0'), option(55, [1, 3, 6, 12, 15, 28, 42])], { padTo: 300 }));
}

export function udhcpcRequest(xid: number, requested = GUEST, server = GW): Buffer {
  return dhcpFrame(
    bootp(xid, [option(53, [3]), clientId, option(50, ip4(requested)), option(54, ip4(server)), option(57, [2, 64]), option(60, 'udhcp 1.35.0'), option(55, [1, 3, 6, 12, 15, 28, 42])], { padTo: 300 }),
  );
}

const DHCLIENT_PRL = [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42];
/** 30 characters: with it, dhclient's REQUEST is the 345-byte frame the reference saw. */
const DHCLIENT_HOST = 'debian-bookworm-guest-vm-00001';

/** ISC dhclient 4.4.3: hostname (12) and its 13-entry list (55), secs set, TOS low-delay, TTL 128. */
export function dhclientDiscover(xid: number): Buffer {
  return dhcpFrame(bootp(xid, [option(53, [1]), option(12, DHCLIENT_HOST), option(55, DHCLIENT_PRL)], { secs: 3, padTo: 300 }), undefined, undefined, undefined, { ttl: 128, tos: 0x10 });
}

export function dhclientRequest(xid: number, requested = GUEST, server: string | undefined = GW): Buffer {
  const opts = [option(53, [3]), ...(server ? [option(54, ip4(server))] : []), option(50, ip4(requested)), option(12, DHCLIENT_HOST), option(55, DHCLIENT_PRL)];
  return dhcpFrame(bootp(xid, opts, { secs: 3, padTo: 300 }), undefined, undefined, undefined, { ttl: 128, tos: 0x10 });
}

/** dhclient's RELEASE at shutdown: unicast from the leased address to the server. */
export function dhclientRelease(xid: number): Buffer {
  return dhcpFrame(bootp(xid, [option(53, [7]), option(54, ip4(GW))], { ciaddr: GUEST }), GUEST, GW, gatewayMac());
}

export function framed(frame: Buffer): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(frame.length, 0);
  return Buffer.concat([p, frame]);
}

/** Strips the length prefix of one engine output, checking it. */
export function unframe(b: Buffer): Buffer {
  if (b.readUInt32BE(0) !== b.length - 4) throw new Error(`length prefix ${b.readUInt32BE(0)} for ${b.length - 4} bytes`);
  return b.subarray(4);
}

/** Walks DHCP options of a BOOTP message into code → data. */
export function dhcpOptions(msg: Buffer): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  let i = 240;
  while (i < msg.length && msg[i] !== 255) {
    if (msg[i] === 0) {
      i++;
      continue;
    }
    m.set(msg[i]!, msg.subarray(i + 2, i + 2 + msg[i + 1]!));
    i += 2 + msg[i + 1]!;
  }
  return m;
}

/** The engine's counters account for every frame in: forwarded, answered or dropped. */
export function assertAddsUp(s: EngineStats): void {
  assert.equal(s.forwarded + s.arpReplies + dhcpIn(s.dhcp) + droppedTotal(s), s.framesIn, JSON.stringify(s));
}

/** Checks a frame to the guest: headers, both checksums, and returns the UDP payload. */
export function checkUdpToGuest(f: Buffer, o: { dstMac: Buffer; src: string; dst: string; srcPort: number; dstPort: number }): Buffer {
  assert.equal(f.subarray(0, 6).toString('hex'), o.dstMac.toString('hex'));
  assert.equal(f.subarray(6, 12).toString('hex'), gatewayMac().toString('hex'));
  assert.equal(f.readUInt16BE(12), 0x0800);
  const ip = f.subarray(14, 34);
  assert.equal(ip[0], 0x45);
  assert.equal(checksum(ip), 0, 'IPv4 header checksum');
  assert.equal(ip.readUInt16BE(2), f.length - 14);
  assert.equal(ip[9], 17);
  assert.deepEqual([...ip.subarray(12, 16)], [...ip4(o.src)]);
  assert.deepEqual([...ip.subarray(16, 20)], [...ip4(o.dst)]);
  const u = f.subarray(34);
  assert.equal(u.readUInt16BE(0), o.srcPort);
  assert.equal(u.readUInt16BE(2), o.dstPort);
  assert.equal(u.readUInt16BE(4), u.length);
  const pseudo = Buffer.concat([ip4(o.src), ip4(o.dst), Buffer.from([0, 17, u.length >> 8, u.length & 255])]);
  assert.equal(checksum(Buffer.concat([pseudo, u])), 0, 'UDP checksum');
  return u.subarray(8);
}
