/**
 * The firewall contract. The daemon owns its nft tables; the NetworkManager describes what
 * should exist as plain data ({@link FirewallState}) and the firewall renders it and applies it
 * atomically. Every call carries the whole state: there is no incremental patching to drift.
 */
import type { NetworkPolicyPlan, PolicyCounters } from '../policies/policy-types.js';
import type { PolicyEnforcer } from '../driver.js';
import type { EgressPolicy } from '../egress/egress-options.js';

/** One network's part in the ruleset. */
export interface FirewallNetwork {
  /** Network id (tags rules: `comment "arca:net:<id12>"`). */
  id: string;
  /** Host-side interface (the Linux bridge), e.g. `arca0`, `br-<id12>`. */
  bridge: string;
  /** IPv4 subnets in CIDR form. */
  subnets4: string[];
  /** IPv6 subnets in CIDR form. */
  subnets6: string[];
  /** Gateway addresses on the bridge (for hairpin and DNS). */
  gateways: string[];
  /** `--internal`: no traffic to or from outside the network. */
  internal: boolean;
  /** `com.docker.network.bridge.enable_icc` (default true). */
  icc: boolean;
  /** `com.docker.network.bridge.enable_ip_masquerade` (default true). */
  masquerade: boolean;
  /**
   * Control-plane protection: containers on this network may not open connections to the host
   * itself (any of its addresses), except DNS to the gateway on {@link FirewallState.dnsPort}
   * and ICMP. Published ports stay reachable (they are forwarded, not delivered to the host).
   * Default false: Docker lets containers reach the host's services.
   */
  protectHost?: boolean;
  /**
   * IPv4 UDP leaving the host by this network's interface gets checksum 0 ("none"): a switch
   * behind it (OVS's userspace datapath) forwards partial checksums uncompleted (see the ovn
   * driver's udp-checksum.ts).
   */
  zeroUdpChecksums?: boolean;
  /**
   * UDP the host only forwards between addresses of `cidrs` on this network's interface, to and
   * from `port` (wireguard's underlay: already encrypted, judged by nothing here): left out of
   * connection tracking, which would otherwise cost a lookup per tunnel packet.
   */
  untrackedUdp?: { cidrs: string[]; port: number };
  /**
   * `-o arca.egress=deny`: what the network's containers may reach outside the network (added by
   * the NetworkManager for every driver from the network's options; see nft-egress.ts).
   */
  egress?: EgressPolicy;
  /**
   * The driver enforces the network's policies itself (ovn): a plan of it in
   * {@link FirewallState.policies} is only the part the host judges (its `dns` peers' outside
   * destinations, see policy-dns.ts). The driver keeps its endpoints' source addresses honest and
   * counts what it allows, so the ruleset adds no anti-spoofing for them and counts only drops.
   */
  driverPolicies?: boolean;
}

/** One published port (`-p [hostIp:]hostPort:containerPort[/proto]`), already allocated. */
export interface FirewallPort {
  /** Endpoint/container id (tags rules: `comment "arca:ep:<id12>"`). */
  endpointId: string;
  networkId: string;
  proto: 'tcp' | 'udp' | 'sctp';
  /** '' or '0.0.0.0' / '::' for all host addresses. */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export interface FirewallState {
  networks: FirewallNetwork[];
  ports: FirewallPort[];
  /**
   * Network policies of the networks the firewall enforces them for (bridge-like drivers without
   * their own {@link PolicyEnforcer}); absent or empty: no endpoint is governed.
   */
  policies?: NetworkPolicyPlan[];
  /**
   * Port the embedded DNS server listens on at each gateway address (UDP and TCP); the one
   * service a {@link FirewallNetwork.protectHost} network may still reach. Default 53; null when
   * the server listens only inside containers (at 127.0.0.11), so no gateway port is opened.
   */
  dnsPort?: number | null;
}

/** A DNS answer's addresses for one name rule of a deny network (see {@link EgressLearner}). */
export interface EgressLearnt {
  networkId: string;
  /** Index of the name rule in the network's {@link EgressPolicy.names}; -1 for a policy's `dns` peer. */
  rule: number;
  /** The policy `dns` peer pattern (normalised) the answer is for, instead of a name rule. */
  dns?: string;
  addresses: Array<{ addr: string; fam: 4 | 6; ttl: number }>;
}

/** What the network's deny list stands for right now (`arca network egress`). */
export interface EgressStatus {
  /** Per name rule index: the learnt addresses and their remaining seconds. */
  learnt: Record<number, Array<{ addr: string; expiresInS: number }>>;
  /** Packets and bytes dropped: other destinations, DNS/DoT to other servers. */
  dropped: { packets: number; bytes: number };
  droppedDns: { packets: number; bytes: number };
}

/** Optional capability of a firewall: DNS-learnt egress addresses. */
export interface EgressLearner {
  /** Allows the addresses in the kernel before it resolves (the DNS answer waits for it). */
  learnEgress(items: EgressLearnt[]): Promise<void>;
  egressStatus(networkId: string): Promise<EgressStatus | undefined>;
}

export function isEgressLearner(f: unknown): f is EgressLearner {
  return typeof (f as Partial<EgressLearner>).learnEgress === 'function';
}

export interface Firewall {
  /** Counters per policy name, summed over networks (absent when the firewall keeps none). */
  policyCounters?(): Promise<Record<string, PolicyCounters>>;
  /** Name shown in logs (`nftables`, `none`). */
  readonly name: string;
  /** Replaces the daemon's ruleset with one rendered from `state`, atomically. */
  apply(state: FirewallState): Promise<void>;
  /** Removes every table the daemon owns (idempotent). */
  teardown(): Promise<void>;
}
