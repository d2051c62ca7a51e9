import { InvalidParameter } from '../../../errors.js';
import { GENERIC_NETWORK_OPTION_KEYS } from '../../egress/egress-options.js';
import { parseCidr } from '../../firewall/nftables/address-ranges.js';
import type { DriverNetwork } from '../../driver.js';
import { DEFAULT_WG_MTU, MIN_WG_MTU, UNDERLAY_POOL, WG_OVERHEAD } from './wg-names.js';

export const OPT_MTU = 'com.docker.network.driver.mtu';

/** The largest inner MTU: a veth underlay goes up to 65535. */
export const MAX_WG_MTU = 65535 - WG_OVERHEAD;

// The generic keys (egress) are the NetworkManager's, checked there for every driver.
const KNOWN = new Set([OPT_MTU, ...GENERIC_NETWORK_OPTION_KEYS]);

export interface WgNetworkOptions {
  /** MTU of ethN, c0 and the WireGuard interface (equal across the network: ICMP from a remote hop never arrives). */
  mtu: number;
  /** MTU of the underlay veths: the inner MTU plus WireGuard's overhead, at least the usual 1500. */
  underlayMtu: number;
}

/** Checks a network's options and subnets; InvalidParameter naming what is wrong. */
export function parseWgOptions(net: DriverNetwork): WgNetworkOptions {
  for (const k of Object.keys(net.options)) {
    if (!KNOWN.has(k)) throw new InvalidParameter(`wireguard driver: unknown option "${k}" (known: ${[...KNOWN].join(', ')})`);
  }
  const raw = net.options[OPT_MTU];
  let mtu = DEFAULT_WG_MTU;
  if (raw !== undefined && raw !== '') {
    if (!/^[0-9]+$/.test(raw)) throw new InvalidParameter(`invalid MTU number: ${raw}`);
    mtu = Number(raw);
    if (mtu < MIN_WG_MTU) {
      throw new InvalidParameter(`wireguard driver: MTU ${mtu} is too small for WireGuard (at least ${MIN_WG_MTU}, the IPv6 minimum its inner packets need)`);
    }
    if (mtu > MAX_WG_MTU) throw new InvalidParameter(`wireguard driver: MTU ${mtu} is too large (at most ${MAX_WG_MTU}: WireGuard adds ${WG_OVERHEAD} bytes)`);
  }
  const pool = parseCidr(UNDERLAY_POOL);
  for (const s of net.subnets) {
    const { fam, range: r } = parseCidr(s.subnet);
    if (fam === pool.fam && r.from <= pool.range.to && pool.range.from <= r.to) {
      throw new InvalidParameter(`wireguard driver: subnet ${s.subnet} overlaps the wireguard underlay ${UNDERLAY_POOL}`);
    }
  }
  return { mtu, underlayMtu: Math.max(1500, mtu + WG_OVERHEAD) };
}
