import { InvalidParameter } from '../../errors.js';
import type { Firewall } from './firewall.js';
import { NftFirewall } from './nftables/nft-firewall.js';
import { NoneFirewall } from './none/none-firewall.js';

/** What every firewall may be built from; each takes what it needs. */
export interface FirewallOptions {
  /** Daemon-unique prefix of the nft tables (`arca` + daemon tag). */
  tablePrefix: string;
  /** Network namespace to program; default the daemon's own. */
  netns?: string;
}

const BUILT_IN: Record<string, (opts: FirewallOptions) => Firewall> = {
  nftables: (opts) => new NftFirewall(opts),
  none: () => new NoneFirewall(),
};

/** The firewall names arca knows, for `--firewall` help and errors. */
export const FIREWALL_NAMES = Object.keys(BUILT_IN);

/** Builds the firewall called `name` ('' = the default, nftables). Unknown names are an error. */
export function createFirewall(name: string, opts: FirewallOptions): Firewall {
  const make = BUILT_IN[name === '' ? 'nftables' : name];
  if (!make) throw new InvalidParameter(`unknown firewall "${name}" (known: ${FIREWALL_NAMES.join(', ')})`);
  return make(opts);
}
