/**
 * Network policies: the documents users write (YAML or JSON), and what they compile to for the
 * enforcers. One model for every driver: the nftables renderer (bridge) and the ovn driver's ACLs
 * read the same {@link NetworkPolicyPlan}, and `arca policy check` evaluates the same compiled
 * rules, so the explanation matches the kernel.
 *
 * Semantics are Kubernetes NetworkPolicy's: allow-only and additive; an endpoint is isolated in a
 * direction once some policy selecting it has that key (`ingress`/`egress`, even `[]`); a
 * connection needs the source's egress and the destination's ingress to allow it; replies and
 * their related ICMP pass; the embedded DNS (127.0.0.11) is always reachable. No `policyTypes`.
 */

export type PolicyProto = 'tcp' | 'udp' | 'sctp';

/** Container selection: every key given must hold; `names` matches any of its entries. */
export interface PolicySelector {
  /** Container labels, all must match. */
  labels?: Record<string, string>;
  /** Container names (without the leading `/`), any. */
  names?: string[];
  /** Compose service: the label `com.docker.compose.service` (and project, when applied with `-p`). */
  service?: string;
}

/** A peer: containers (by selector or network) matched by any of their addresses, or addresses. */
export interface PolicyPeer extends PolicySelector {
  /** Any endpoint of the network of that name (the containers, by any of their addresses). */
  network?: string;
  /** Addresses; `except` carves holes. Only with `cidr`. */
  cidr?: string;
  except?: string[];
  /**
   * A DNS name or `*.example.com` (egress `to` only, alone in its peer): the addresses the
   * embedded DNS answered for matching names to containers of the policy's network, learnt
   * before the answer reaches them (see policy-dns.ts). Normalised: lower case, no trailing dot.
   */
  dns?: string;
}

/** `{proto: tcp, port: 5432}`, `{proto: udp, port: "8000-8100"}`; proto defaults to tcp; no port: every port of proto. */
export interface PolicyPortSpec {
  proto?: PolicyProto;
  port?: number | string;
}

export interface PolicyRule {
  /** Ingress: the sources allowed; omitted: any source. */
  from?: PolicyPeer[];
  /** Egress: the destinations allowed; omitted: any destination. */
  to?: PolicyPeer[];
  /** Omitted: every port and protocol. */
  ports?: PolicyPortSpec[];
}

/** One policy document, as parsed and validated. */
export interface PolicyDoc {
  /** Unique; `[A-Za-z0-9][A-Za-z0-9_.-]*`. */
  name: string;
  /** A network name: the policy applies whenever a network of that name exists. */
  network: string;
  /** Omitted or `{}`: every endpoint on the network. */
  select?: PolicySelector;
  ingress?: PolicyRule[];
  egress?: PolicyRule[];
}

/** A policy as stored and shown by the API. */
export interface StoredPolicy extends PolicyDoc {
  /** RFC 3339. */
  created: string;
  updated: string;
}

// ---- the world a plan is compiled from ------------------------------------------------------------

/** One endpoint of a container on a network, as the compiler sees it. */
export interface PolicyEndpointInfo {
  endpointId: string;
  containerId: string;
  /** Without the leading `/`. */
  containerName: string;
  labels: Record<string, string>;
  networkId: string;
  networkName: string;
  /** Bare addresses (no prefix length), IPv4 and IPv6. */
  addresses: string[];
}

export interface PolicyWorld {
  networks: Array<{ id: string; name: string; driver: string }>;
  endpoints: PolicyEndpointInfo[];
}

// ---- compiled ---------------------------------------------------------------------------------------

/** Inclusive port range of one protocol. */
export interface PortRange {
  proto: PolicyProto;
  from: number;
  to: number;
}

/** Where a rule lets traffic come from (ingress) or go to (egress). */
export type CompiledPeers =
  | 'any'
  | {
      /** Addresses of the selected containers (bare, every network of theirs). */
      addrs4: string[];
      addrs6: string[];
      /** `cidr` peers, masked, with their holes. */
      cidrs: Array<{ cidr: string; except: string[] }>;
      /** `dns` peers (normalised patterns, sorted); absent when there are none. */
      dns?: string[];
    };

/** One rule of one policy, compiled against the current world. */
export interface CompiledRule {
  policy: string;
  /** Index of the rule in the policy's `ingress` or `egress` list (for explanations and counters). */
  index: number;
  peers: CompiledPeers;
  /** `any`: every port and protocol. */
  ports: 'any' | PortRange[];
}

/** What governs one endpoint. A direction left undefined is not isolated (everything passes). */
export interface EndpointPolicy {
  endpointId: string;
  containerId: string;
  /** Bare addresses of this endpoint on this network. */
  addresses: string[];
  /** Policies that select this endpoint. */
  policies: string[];
  /**
   * Of those, the ones isolating each direction (they have that key, even `[]`): the enforcers
   * attribute a drop to each. Absent: the policies named by the direction's rules (which misses
   * a policy whose list is empty).
   */
  isolatedBy?: { ingress?: string[]; egress?: string[] };
  ingress?: CompiledRule[];
  egress?: CompiledRule[];
}

/** A network's policies compiled: only endpoints some policy selects are listed. */
export interface NetworkPolicyPlan {
  networkId: string;
  /** Names of the policies in force on the network. */
  policies: string[];
  /**
   * The `dns` peer patterns of those policies' egress rules, sorted, whether or not an endpoint
   * is selected yet (a restarted daemon keeps their learnt sets); absent when there are none.
   */
  dns?: string[];
  /**
   * Set on the plan a driver gets when the host firewall judges its `dns` peers' outside
   * destinations (ovn: see policy-dns.ts): the driver lets a dns rule's traffic out of the
   * network and keeps only the addresses inside its own subnets itself.
   */
  dnsOnHost?: boolean;
  endpoints: EndpointPolicy[];
}

/** Per-policy counters, as `arca policy inspect` shows them. */
export interface PolicyCounters {
  allowedPackets: number;
  allowedBytes: number;
  droppedPackets: number;
  droppedBytes: number;
}
