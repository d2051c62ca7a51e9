import { InvalidParameter } from '../errors.js';
import { DHCP_SERVER_PORT } from './dhcp-message.js';
import { formatIpv4, isLoopback, isMulticastOrReserved, isThisNetwork, parseIpv4 } from './ipv4-address.js';
import { inSubnet, type VmSubnet } from './vm-subnet.js';

/** One allowed UDP destination: where the guest sends, and where the host really sends it. */
export interface AllowEntry {
  /** As given: `127.0.0.1:51820/udp`. */
  text: string;
  hostIp: number;
  port: number;
  /**
   * What the guest addresses. The host's loopback cannot be routed out of a guest's eth0, so a
   * 127.x destination is offered as the gateway's address; any other keeps its own.
   */
  guestIp: number;
}

/** Parses `IP:PORT/udp`: a dotted quad, a port 1..65535, and the protocol spelt out. */
export function parseAllowEntry(text: string): { ip: number; port: number } {
  const bad = (why: string): InvalidParameter => new InvalidParameter(`invalid --allow "${text}": ${why} (expected IP:PORT/udp, e.g. 127.0.0.1:51820/udp)`);
  const m = /^([^:/]+):([^:/]+)\/([^:/]+)$/.exec(text);
  if (!m) throw bad('not of the form IP:PORT/udp');
  const ip = parseIpv4(m[1]!);
  if (ip === undefined) throw bad(`"${m[1]}" is not an IPv4 address`);
  if (!/^[0-9]{1,5}$/.test(m[2]!) || Number(m[2]) < 1 || Number(m[2]) > 65535) throw bad(`port "${m[2]}" is not 1 to 65535`);
  if (m[3] !== 'udp') throw bad(`protocol "${m[3]}": FilteredNAT forwards udp only`);
  if (isThisNetwork(ip) || isMulticastOrReserved(ip)) throw bad(`${formatIpv4(ip)} is not a unicast destination`);
  return { ip, port: Number(m[2]) };
}

/**
 * The allowlist as the engine looks it up: by the guest-visible ip:port, a number
 * (ip * 65536 + port), so a lookup builds no string.
 */
export class Allowlist {
  readonly entries: readonly AllowEntry[];
  private readonly byGuestDest = new Map<number, number>();

  constructor(texts: readonly string[], subnet: VmSubnet) {
    if (!texts.length) throw new InvalidParameter('no --allow entries: FilteredNAT would drop everything (give at least one IP:PORT/udp)');
    const entries: AllowEntry[] = [];
    for (const text of texts) {
      const { ip, port } = parseAllowEntry(text);
      const loop = isLoopback(ip);
      if (!loop && inSubnet(subnet, ip)) throw new InvalidParameter(`invalid --allow "${text}": inside the VM's own subnet ${subnet.cidr}`);
      if (loop && port === DHCP_SERVER_PORT) throw new InvalidParameter(`invalid --allow "${text}": the gateway's port 67 is its DHCP server`);
      const guestIp = loop ? subnet.gateway : ip;
      const key = guestIp * 65536 + port;
      const prev = this.byGuestDest.get(key);
      if (prev !== undefined) {
        const p = entries[prev]!;
        if (p.hostIp === ip) continue;
        throw new InvalidParameter(`invalid --allow "${text}": the guest would reach it and "${p.text}" at the same ${formatIpv4(guestIp)}:${port}`);
      }
      this.byGuestDest.set(key, entries.length);
      entries.push({ text, hostIp: ip, port, guestIp });
    }
    this.entries = entries;
  }

  /** The entry's index for a guest-visible destination, or -1. */
  find(guestIp: number, port: number): number {
    return this.byGuestDest.get(guestIp * 65536 + port) ?? -1;
  }
}
