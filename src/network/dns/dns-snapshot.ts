/**
 * What the embedded DNS server answers from: an immutable snapshot, rebuilt by the
 * NetworkManager whenever an endpoint changes and swapped in whole (never patched in place).
 */

/** One container's endpoint on one network. */
export interface DnsEndpoint {
  containerId: string;
  /** Names it answers to on this network: container name, aliases, short id, hostname. */
  names: string[];
  ipv4?: string;
  ipv6?: string;
}

export interface DnsNetwork {
  id: string;
  /** The network's name, for `<container>.<network>` lookups. */
  name: string;
  /** `--internal`: names only, never forward. */
  internal: boolean;
  endpoints: DnsEndpoint[];
}

export interface DnsSnapshot {
  /** Only user-defined networks have embedded DNS (the default bridge does not). */
  networks: DnsNetwork[];
  /** Upstream resolvers (from the host's resolv.conf), tried in order. */
  upstreams: string[];
}
