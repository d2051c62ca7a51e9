/**
 * What the wireguard end-to-end tests share: whether wireguard-go is here, the names of an
 * endpoint's objects (from the driver's own wg-names), its wireguard-go process, what a daemon
 * leaves behind, and a small pcap reader for the encryption proof.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  endpointNames,
  hiddenNetnsRe,
  HOST_VETH_RE,
  networkNames,
  runtimePaths,
  UNDERLAY_POOL,
  uapiSocketPath,
  WG_IF_RE,
} from '../../src/network/drivers/wireguard/wg-names.js';
import { daemonTag, type TestDaemon } from './harness.js';
import { endpointOf, hostLinkNames } from './networks-support.js';

/** For `describe(name, { skip })`: false when wireguard-go runs here, else why not. */
export const skipWithoutWireguardGo: false | string =
  spawnSync('which', ['wireguard-go'], { encoding: 'utf8' }).status === 0
    ? false
    : 'wireguard-go is not installed (Debian package wireguard-go; scripts/setup.sh installs it)';

export { endpointNames, networkNames, runtimePaths, uapiSocketPath };

/** The host bridge of a network (`wb<N12>`). */
export function bridgeOf(networkId: string): string {
  return networkNames(networkId).bridge;
}

/** The names of a container's endpoint on a network, and its ids. */
export async function endpointObjects(
  d: TestDaemon,
  container: string,
  net: string,
): Promise<{ endpointId: string; networkId: string; netns: string; wgIf: string; hostVeth: string; pidFile: string; address: string }> {
  const ep = await endpointOf(d, container, net);
  const names = endpointNames(daemonTag(d.root), ep.EndpointID);
  return { endpointId: ep.EndpointID, networkId: ep.NetworkID, ...names, pidFile: runtimePaths(d.execRoot, names.wgIf).pidFile, address: ep.IPAddress };
}

/** `ifname`'s argument of a live (not zombie) wireguard-go `pid`, else undefined. */
export function wireguardGoIf(pid: number): string | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if ((argv[0] ?? '').split('/').pop() !== 'wireguard-go') return undefined;
    return argv.slice(1).find((a) => a && !a.startsWith('-'));
  } catch {
    return undefined;
  }
}

/** The PID in an interface's pidfile, if it is that wireguard-go and alive. */
export function wgPid(d: TestDaemon, ifname: string): number | undefined {
  try {
    const pid = Number(readFileSync(runtimePaths(d.execRoot, ifname).pidFile, 'utf8').trim());
    return pid > 0 && wireguardGoIf(pid) === ifname ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Every pidfile under the daemon's `<execRoot>/wireguard`: interface → PID written (alive or not). */
export function pidFiles(d: TestDaemon): Map<string, number> {
  const dir = join(d.execRoot, 'wireguard');
  const out = new Map<string, number>();
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir)) if (f.endsWith('.pid')) out.set(f.slice(0, -4), Number(readFileSync(join(dir, f), 'utf8').trim()));
  return out;
}

/** Names of the namespaces under /run/netns. */
export function netnsList(): string[] {
  const r = spawnSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' });
  try {
    return ((JSON.parse(r.stdout || '[]') as Array<{ name: string }> | null) ?? []).map((n) => n.name);
  } catch {
    return [];
  }
}

/** The daemon's hidden namespaces (`arca-<tag>-w<E10>`). */
export function hiddenNamespaces(d: TestDaemon): string[] {
  const re = hiddenNetnsRe(daemonTag(d.root));
  return netnsList().filter((n) => re.test(n));
}

/** Every wireguard-go process on the machine running interface `ifname`. */
export function processesOf(ifname: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) if (/^[0-9]+$/.test(ent) && wireguardGoIf(Number(ent)) === ifname) out.push(Number(ent));
  return out;
}

/**
 * What the driver still holds for networks that are gone and endpoints that are gone: hidden
 * namespaces, `wb`/`wu`/`wg` links in the daemon's netns, pidfiles, wireguard-go processes and UAPI
 * sockets of the interfaces the daemon ever named (its pidfiles, and the `wg<E12>` its debug log
 * mentions). Called when the daemon has no container left.
 */
export function wireguardLeftovers(d: TestDaemon, networkIds: string[]): string[] {
  const out: string[] = [];
  for (const n of hiddenNamespaces(d)) out.push(`hidden netns ${n}`);
  const links = hostLinkNames(d);
  for (const id of networkIds) if (links.includes(bridgeOf(id))) out.push(`bridge ${bridgeOf(id)} of network ${id.slice(0, 12)}`);
  for (const l of links) if (HOST_VETH_RE.test(l) || WG_IF_RE.test(l)) out.push(`link ${l} in the daemon's netns`);
  const ifnames = new Set<string>();
  for (const [ifname, pid] of pidFiles(d)) {
    out.push(`pidfile ${ifname}.pid (pid ${pid})`);
    ifnames.add(ifname);
  }
  let log = '';
  try {
    log = readFileSync(d.logPath, 'utf8');
  } catch {
    /* no log */
  }
  for (const m of log.matchAll(/\bwg[0-9a-f]{12}\b/g)) ifnames.add(m[0]);
  for (const ifname of ifnames) {
    for (const pid of processesOf(ifname)) out.push(`wireguard-go ${ifname} (pid ${pid})`);
    if (existsSync(uapiSocketPath(ifname))) out.push(`UAPI socket ${uapiSocketPath(ifname)}`);
  }
  return out;
}

// ---- addresses ------------------------------------------------------------------------------------

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/** Whether an IPv4 address is in CIDR `cidr`. */
export function inCidr(addr: string, cidr: string): boolean {
  const [base, len] = cidr.split('/') as [string, string];
  const bits = Number(len);
  const size = 2 ** (32 - bits);
  return Math.floor(ipv4ToInt(addr) / size) === Math.floor(ipv4ToInt(base) / size);
}

export const inUnderlay = (addr: string): boolean => inCidr(addr, UNDERLAY_POOL);

// ---- pcap -----------------------------------------------------------------------------------------

/** One captured Ethernet frame, decoded as far as the proof needs. */
export interface Frame {
  ethertype: number;
  /** The whole frame. */
  bytes: Buffer;
  ipv4?: {
    src: string;
    dst: string;
    proto: number;
    sport?: number;
    dport?: number;
    /** ICMP: type, code, and for errors the header of the datagram it quotes. */
    icmp?: { type: number; code: number; quoted?: { src: string; dst: string; proto: number; sport?: number; dport?: number } };
  };
  arp?: { sender: string; target: string };
  ipv6?: { src: string; dst: string; next: number };
}

const ip4 = (b: Buffer, o: number): string => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
const ip6 = (b: Buffer, o: number): string => {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(o + i).toString(16));
  return groups.join(':');
};

/** Reads a classic pcap file (tcpdump -w) of link type Ethernet; throws on anything else. */
export function parsePcap(buf: Buffer): Frame[] {
  if (buf.length < 24) throw new Error(`pcap too short (${buf.length} bytes)`);
  const magic = buf.readUInt32LE(0);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else throw new Error(`not a pcap file (magic ${magic.toString(16)})`);
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linkType = u32(20);
  if (linkType !== 1) throw new Error(`pcap link type ${linkType}, not Ethernet`);
  const frames: Frame[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const incl = u32(off + 8);
    const start = off + 16;
    off = start + incl;
    if (off > buf.length) break; // a record cut short by the kill: not a frame
    const b = buf.subarray(start, start + incl);
    if (b.length < 14) continue;
    let ethertype = b.readUInt16BE(12);
    let l3 = 14;
    if (ethertype === 0x8100 && b.length >= 18) {
      ethertype = b.readUInt16BE(16);
      l3 = 18;
    }
    const f: Frame = { ethertype, bytes: b };
    if (ethertype === 0x0800 && b.length >= l3 + 20) {
      const ihl = (b[l3]! & 0x0f) * 4;
      const proto = b[l3 + 9]!;
      f.ipv4 = { src: ip4(b, l3 + 12), dst: ip4(b, l3 + 16), proto };
      if ((proto === 17 || proto === 6) && b.length >= l3 + ihl + 4) {
        f.ipv4.sport = b.readUInt16BE(l3 + ihl);
        f.ipv4.dport = b.readUInt16BE(l3 + ihl + 2);
      }
      if (proto === 1 && b.length >= l3 + ihl + 8) {
        const icmp: NonNullable<NonNullable<Frame['ipv4']>['icmp']> = { type: b[l3 + ihl]!, code: b[l3 + ihl + 1]! };
        const q = l3 + ihl + 8;
        // Errors (destination unreachable, time exceeded, ...) quote the offending datagram's header.
        if ([3, 4, 5, 11, 12].includes(icmp.type) && b.length >= q + 20) {
          const qihl = (b[q]! & 0x0f) * 4;
          icmp.quoted = { src: ip4(b, q + 12), dst: ip4(b, q + 16), proto: b[q + 9]! };
          if (b.length >= q + qihl + 4) {
            icmp.quoted.sport = b.readUInt16BE(q + qihl);
            icmp.quoted.dport = b.readUInt16BE(q + qihl + 2);
          }
        }
        f.ipv4.icmp = icmp;
      }
    } else if (ethertype === 0x0806 && b.length >= l3 + 28) {
      f.arp = { sender: ip4(b, l3 + 14), target: ip4(b, l3 + 24) };
    } else if (ethertype === 0x86dd && b.length >= l3 + 40) {
      f.ipv6 = { src: ip6(b, l3 + 8), dst: ip6(b, l3 + 24), next: b[l3 + 6]! };
    }
    frames.push(f);
  }
  return frames;
}

/** A one-line description of a frame, for failure messages. */
export function describeFrame(f: Frame): string {
  if (f.ipv4) {
    const ports = f.ipv4.sport !== undefined ? ` ${f.ipv4.sport} > ${f.ipv4.dport}` : '';
    const i = f.ipv4.icmp;
    const q = i?.quoted ? `, quoting proto ${i.quoted.proto} ${i.quoted.src}:${i.quoted.sport} > ${i.quoted.dst}:${i.quoted.dport}` : '';
    const icmp = i ? ` ICMP type ${i.type} code ${i.code}${q}` : '';
    return `IPv4 proto ${f.ipv4.proto} ${f.ipv4.src} > ${f.ipv4.dst}${ports}${icmp} (${f.bytes.length} B)`;
  }
  if (f.arp) return `ARP ${f.arp.sender} → ${f.arp.target}`;
  if (f.ipv6) return `IPv6 next ${f.ipv6.next} ${f.ipv6.src} > ${f.ipv6.dst}`;
  return `ethertype 0x${f.ethertype.toString(16)} (${f.bytes.length} B)`;
}

/** How often `needle` occurs in `hay` (overlapping occurrences counted once each start). */
export function occurrences(hay: Buffer, needle: string | Buffer): number {
  const n = typeof needle === 'string' ? Buffer.from(needle) : needle;
  let count = 0;
  for (let i = hay.indexOf(n); i >= 0; i = hay.indexOf(n, i + 1)) count++;
  return count;
}
