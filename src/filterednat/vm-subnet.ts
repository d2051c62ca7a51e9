import { InvalidParameter } from '../errors.js';
import { formatIpv4, isLoopback, isMulticastOrReserved, isThisNetwork, parseIpv4 } from './ipv4-address.js';

/** The VM's side of the wire: one subnet, the engine as its gateway, one guest. */
export interface VmSubnet {
  cidr: string;
  network: number;
  prefix: number;
  mask: number;
  /** The first host address: the engine (ARP, DHCP server, router, and loopback destinations). */
  gateway: number;
  /** The second: the one address DHCP hands out. */
  guest: number;
}

export const DEFAULT_VM_SUBNET = '10.77.0.0/24';

/**
 * `A.B.C.D/N` with N in 8..30 (a /31 or /32 has no room for a gateway and a guest; wider than /8
 * is surely a typo), host bits zero, and not loopback, 0/8, multicast or reserved.
 */
export function parseVmSubnet(text: string): VmSubnet {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  const bad = (why: string): InvalidParameter => new InvalidParameter(`invalid subnet "${text}": ${why}`);
  if (!m) throw bad('expected an IPv4 CIDR such as 10.77.0.0/24');
  const network = parseIpv4(m[1]!);
  if (network === undefined) throw bad('expected an IPv4 CIDR such as 10.77.0.0/24');
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) throw bad('the prefix length must be 8 to 30');
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  if ((network & ~mask) >>> 0 !== 0) throw bad(`host bits set (did you mean ${formatIpv4((network & mask) >>> 0)}/${prefix}?)`);
  if (isLoopback(network) || isThisNetwork(network) || isMulticastOrReserved(network)) throw bad('loopback, 0.0.0.0/8, multicast and reserved ranges cannot be a VM subnet');
  return { cidr: `${formatIpv4(network)}/${prefix}`, network, prefix, mask, gateway: network + 1, guest: network + 2 };
}

export const inSubnet = (s: VmSubnet, ip: number): boolean => (ip & s.mask) >>> 0 === s.network;
