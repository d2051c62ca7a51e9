import { InvalidParameter } from '../../../errors.js';
import { GENERIC_NETWORK_OPTION_KEYS } from '../../egress/egress-options.js';
import type { DriverNetwork } from '../../driver.js';

export const OPT_MTU = 'com.docker.network.driver.mtu';
/** `vip`: each alias gets one virtual IP load-balanced by OVN; `dnsrr` (default): DNS round-robin as Docker. */
export const OPT_ENDPOINT_MODE = 'arca.endpoint_mode';

// The generic keys (egress) are the NetworkManager's, checked there for every driver.
const KNOWN = new Set([OPT_MTU, OPT_ENDPOINT_MODE, ...GENERIC_NETWORK_OPTION_KEYS]);

export interface OvnNetworkOptions {
  mtu: number;
  vip: boolean;
}

/**
 * Reads and checks an ovn network's `-o` options. Unlike `bridge` (whose unknown keys Docker
 * ignores), unknown keys are refused: the ovn driver is arca's own, and a typo in a policy-bearing
 * option must not pass silently.
 */
export function parseOvnOptions(net: Pick<DriverNetwork, 'options'>): OvnNetworkOptions {
  for (const k of Object.keys(net.options)) {
    if (!KNOWN.has(k)) throw new InvalidParameter(`ovn driver: unknown option "${k}" (known: ${[...KNOWN].join(', ')})`);
  }
  const m = net.options[OPT_MTU];
  let mtu = 1500;
  if (m !== undefined && m !== '') {
    if (!/^[0-9]+$/.test(m) || Number(m) < 68 || Number(m) > 65535) {
      throw new InvalidParameter(`ovn driver: invalid value for ${OPT_MTU}: "${m}" (an integer from 68 to 65535)`);
    }
    mtu = Number(m);
  }
  const mode = net.options[OPT_ENDPOINT_MODE] ?? 'dnsrr';
  if (mode !== 'vip' && mode !== 'dnsrr') {
    throw new InvalidParameter(`ovn driver: invalid value for ${OPT_ENDPOINT_MODE}: "${mode}" (vip or dnsrr)`);
  }
  return { mtu, vip: mode === 'vip' };
}
