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
  /**
   * The container's own upstream resolvers (`docker run --dns`), tried in order instead of the
   * snapshot's host {@link DnsSnapshot.upstreams} when forwarding this container's queries; absent
   * or empty means the host's. As in moby, `--dns` on a user-defined network does not change the
   * container's `nameserver 127.0.0.11`: it only changes where the embedded server forwards.
   * Same syntax as {@link DnsSnapshot.upstreams}; `--internal` networks still never forward.
   * A container has one set for all its networks, so its endpoints carry the same list.
   * Queried from the container's namespace (its routes, its loopback) as moby does, when the
   * server listens in there; from the daemon's otherwise. The host's resolvers are always
   * queried from the daemon's namespace.
   */
  upstreams?: string[];
  /**
   * Legacy links on this network (`--link name:alias`, or an endpoint's `Links`): the alias
   * resolves to the target container's addresses on this network, for this container only.
   */
  links?: Array<{ alias: string; containerId: string }>;
}

export interface DnsNetwork {
  id: string;
  /** The network's name, for `<container>.<network>` lookups. */
  name: string;
  /** `--internal`: names only, never forward. */
  internal: boolean;
  endpoints: DnsEndpoint[];
  /**
   * `-o arca.egress=deny`: the allowlist's name rules (index = rule index); upstream answers for
   * names they match are learnt by the firewall before the container gets them.
   */
  egressNames?: Array<{ name: string; wildcard: boolean }>;
  /** The `dns` peers of the policies on the network (normalised patterns), learnt the same way. */
  policyDns?: string[];
}

export interface DnsSnapshot {
  /** Only user-defined networks have embedded DNS (the default bridge does not). */
  networks: DnsNetwork[];
  /**
   * Upstream resolvers (from the host's resolv.conf), tried in order, for containers whose
   * endpoints have no {@link DnsEndpoint.upstreams} of their own.
   */
  upstreams: string[];
  /**
   * Containers whose resolver outlives their last user-defined network: moby starts a sandbox's
   * resolver once and keeps it until the sandbox goes, and leaves its resolv.conf pointing at
   * 127.0.0.11, so a container disconnected from its last such network still asks there. They
   * know no names; their queries are forwarded (to their own `upstreams`, else the host's).
   */
  forwardOnly?: Array<{ containerId: string; upstreams?: string[] }>;
}
