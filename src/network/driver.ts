/**
 * The network driver contract. The NetworkManager owns state (SQLite), IPAM, names, gateway
 * choice, /etc/hosts, DNS and firewall snapshots; a driver only turns that state into kernel (or
 * helper-process) objects. Every value a driver receives is plain data the manager already
 * validated and persisted, so any call can be replayed at start-up: that is how recovery works.
 *
 * Required: the three create/delete pairs below. Everything else is an optional capability —
 * a separate interface with a type guard — so that later drivers add only what they need:
 *
 * - `ovn`: a supervised helper stack (ovsdb, ovn-northd, ovn-controller) → {@link Supervised};
 *   ACLs from network policies → {@link PolicyEnforcer}; VIPs in DNS → {@link VirtualNames}; its
 *   own port reconciliation → {@link Reapplier}.
 * - `wireguard`: one wireguard-go per network, started in `createNetwork`, stopped in
 *   `deleteNetwork`, watched through {@link Supervised}; per-network options (`listen_port`,
 *   `peers`, `mtu`) arrive verbatim in {@link DriverNetwork.options} and are checked in
 *   {@link NetworkDriver.validateNetwork} before anything exists.
 * - egress-allowlist networks (issue 12): the same policy model's `dns` peers and CIDR rules.
 */
import type { EgressLearnt, FirewallNetwork } from './firewall/firewall.js';
import type { NetworkPolicyPlan, PolicyCounters } from './policies/policy-types.js';

/** One subnet of a network with its gateway. */
export interface DriverSubnet {
  /** CIDR, masked: `172.18.0.0/16`, `fd12:3456:789a::/64`. */
  subnet: string;
  /** Gateway address without prefix length. */
  gateway: string;
}

/** A network as a driver sees it. */
export interface DriverNetwork {
  /** 64 hex. Drivers derive kernel names from it (`br-<id12>`). */
  id: string;
  name: string;
  /**
   * Driver options (`docker network create -o k=v`), exactly as sent. Unknown keys are the driver's
   * business: it rejects them in {@link NetworkDriver.validateNetwork} or ignores them, like Docker.
   */
  options: Readonly<Record<string, string>>;
  /** `--internal`: no default route out, no gateway on the endpoints. */
  internal: boolean;
  enableIPv4: boolean;
  enableIPv6: boolean;
  /** Subnets chosen by IPAM (empty for `host`/`null`). */
  subnets: DriverSubnet[];
  /** The predefined network of this driver (`bridge` → Linux bridge `arca0`). */
  predefined: boolean;
}

/** Per-endpoint DNS configuration the container's resolv.conf is written from. */
export interface EndpointDnsConfig {
  nameservers: string[];
  search: string[];
  options: string[];
}

/** One container's attachment to one network. */
export interface DriverEndpoint {
  /** 64 hex; stable for the life of the endpoint. Drivers derive host-side names from it. */
  id: string;
  networkId: string;
  containerId: string;
  /** Interface name inside the container: `eth0`, `eth1`, … in order of attachment. */
  ifname: string;
  /** `02:42:…` derived from the IPv4 address, or `--mac-address`. */
  mac: string;
  /** Addresses with prefix length: `172.18.0.2/16`, `fd..::2/64`. */
  addresses: string[];
  /**
   * Default routes this endpoint carries, one per family (`172.18.0.1`): only the endpoint that won
   * the gateway-priority choice of its container gets them.
   */
  gateways: string[];
  /** `EndpointSettings.DriverOpts`, exactly as sent. */
  options: Readonly<Record<string, string>>;
  /** Names on the network (container name, aliases, short id): for drivers that keep DNS themselves. */
  dnsNames: string[];
  /** `--network-alias` names (compose service names): what a load-balancing driver gives VIPs. */
  aliases: string[];
  /** The container's exposed ports (`EXPOSE`, `--expose`): what a load balancer health-checks. */
  exposed: Array<{ proto: 'tcp' | 'udp'; port: number }>;
}

/** Where the container lives. */
export interface Sandbox {
  containerId: string;
  /** `/run/netns/<name>`. */
  netnsPath: string;
  /** The namespace's name under /run/netns (for `ip -n`). */
  netnsName: string;
  /**
   * The namespace is deleted right after this leave (the container exited): what lives only
   * inside it, a veth pair included, goes with it, so a driver need not remove it one by one.
   */
  closing?: boolean;
}

export interface NetworkDriver {
  /** The API string (`bridge`, `host`, `null`): the registry key, `Driver` in inspect. */
  readonly name: string;
  /** Whether the manager allocates subnets and addresses for this driver's networks. */
  readonly usesIpam: boolean;
  /** Checks options and subnets of a network about to be created. No side effects. InvalidParameter on error. */
  validateNetwork(net: DriverNetwork): void;
  /** Makes the network exist. Idempotent: at start-up it is called again for every network. */
  createNetwork(net: DriverNetwork): Promise<void>;
  /** Removes the network's objects. Idempotent; already gone is success. */
  deleteNetwork(net: DriverNetwork): Promise<void>;
  /** Prepares an endpoint (e.g. a port on a virtual switch). Called before {@link join}. */
  createEndpoint(net: DriverNetwork, ep: DriverEndpoint): Promise<void>;
  /** Undoes {@link createEndpoint}. Idempotent. `sb`: the sandbox it just left, if any. */
  deleteEndpoint(net: DriverNetwork, ep: DriverEndpoint, sb?: Sandbox): Promise<void>;
  /**
   * Puts the endpoint into the container's namespace: interface `ep.ifname` with its MAC, addresses,
   * up, and default routes for `ep.gateways`. May run while the container runs (see {@link LiveAttach}).
   */
  join(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void>;
  /** Takes it out again. Idempotent; a vanished namespace is success. */
  leave(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void>;
}

// ---- optional capabilities ----------------------------------------------------------------------

/** Endpoints can join and leave while the container runs (`docker network connect`). */
export interface LiveAttach {
  readonly liveAttach: true;
}
export function isLiveAttach(d: NetworkDriver): d is NetworkDriver & LiveAttach {
  return (d as Partial<LiveAttach>).liveAttach === true;
}

/**
 * Re-establishes an endpoint of a running container that may exist in part (daemon restart) or not
 * at all (kernel state wiped), without disturbing what is already right.
 */
export interface Reapplier {
  reapply(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void>;
}
export function isReapplier(d: NetworkDriver): d is NetworkDriver & Reapplier {
  return typeof (d as Partial<Reapplier>).reapply === 'function';
}

/** Removes objects the driver owns that the database does not know (start-up sweep). */
export interface KernelSweeper {
  sweep(known: { networks: DriverNetwork[]; endpoints: DriverEndpoint[] }): Promise<void>;
}
export function isKernelSweeper(d: NetworkDriver): d is NetworkDriver & KernelSweeper {
  return typeof (d as Partial<KernelSweeper>).sweep === 'function';
}

/** Moves a container's default route when the gateway-priority winner changes. */
export interface GatewaySwitcher {
  /** Sets (`gateways` non-empty) or removes this endpoint's default routes inside the sandbox. */
  setGateways(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void>;
}
export function isGatewaySwitcher(d: NetworkDriver): d is NetworkDriver & GatewaySwitcher {
  return typeof (d as Partial<GatewaySwitcher>).setGateways === 'function';
}

/** Describes the network to the firewall (bridge name, subnets, masquerade, icc). */
export interface FirewallContributor {
  firewallNetwork(net: DriverNetwork): FirewallNetwork | undefined;
}
export function isFirewallContributor(d: NetworkDriver): d is NetworkDriver & FirewallContributor {
  return typeof (d as Partial<FirewallContributor>).firewallNetwork === 'function';
}

/** The driver serves DNS itself for its endpoints (e.g. OVN native DNS) instead of 127.0.0.11. */
export interface EndpointDnsProvider {
  dnsConfig(net: DriverNetwork, ep: DriverEndpoint): EndpointDnsConfig | undefined;
}
export function isEndpointDnsProvider(d: NetworkDriver): d is NetworkDriver & EndpointDnsProvider {
  return typeof (d as Partial<EndpointDnsProvider>).dnsConfig === 'function';
}

/** The driver keeps endpoints' DNS names itself (OVN's DNS rows): told when a rename changes them. */
export interface EndpointNamesKeeper {
  endpointNamesChanged(net: DriverNetwork, ep: DriverEndpoint): Promise<void>;
}
export function isEndpointNamesKeeper(d: NetworkDriver): d is NetworkDriver & EndpointNamesKeeper {
  return typeof (d as Partial<EndpointNamesKeeper>).endpointNamesChanged === 'function';
}

/** Addresses a driver takes from a network's IPAM for its own use (load-balancer VIPs, probes). */
export interface DriverAddresses {
  /** The IPv4 address held by `owner` on the network, taken now if it holds none. */
  take(networkId: string, owner: string): string;
  /** Gives the owner's address back; none held is success. */
  release(networkId: string, owner: string): void;
}

/**
 * Names the driver answers with addresses of its own (load-balancer VIPs) instead of the
 * endpoints': the embedded DNS gives the VIP for these names on that network.
 */
export interface VirtualNames {
  virtualNames(net: DriverNetwork): Array<{ name: string; ipv4: string }>;
}
export function isVirtualNames(d: NetworkDriver): d is NetworkDriver & VirtualNames {
  return typeof (d as Partial<VirtualNames>).virtualNames === 'function';
}

/** Context handed to drivers that run helper processes. */
export interface SupervisorContext {
  addresses: DriverAddresses;
  /** A folder of the daemon's root the driver may use for state and sockets. */
  stateDir: string;
  /** Reports that a helper died; the manager logs it and marks the driver unhealthy. */
  onFailure(err: Error): void;
}

/** The driver runs helper processes (ovsdb/ovn-controller, wireguard-go) the daemon supervises. */
export interface Supervised {
  /** Starts (or adopts, after a daemon restart) the helpers. Called once, before any other call. */
  start(ctx: SupervisorContext): Promise<void>;
  /** Stops the helpers at daemon shutdown (networks stay in the database). */
  stop(): Promise<void>;
}
export function isSupervised(d: NetworkDriver): d is NetworkDriver & Supervised {
  const s = d as Partial<Supervised>;
  return typeof s.start === 'function' && typeof s.stop === 'function';
}

/**
 * The driver enforces network policies itself (ovn: port groups, address sets, ACLs). Drivers
 * without it whose networks the firewall describes (bridge) are enforced by the nftables ruleset;
 * on any other driver a policy is refused with a clear error.
 */
export interface PolicyEnforcer {
  /** Makes `plan` the network's whole policy state (idempotent; an empty plan removes every rule). */
  applyPolicies(net: DriverNetwork, plan: NetworkPolicyPlan): Promise<void>;
  /** Counters per policy name on this network. */
  policyCounters?(net: DriverNetwork): Promise<Record<string, PolicyCounters>>;
}
/**
 * Optional capability of a {@link PolicyEnforcer}: DNS-learnt addresses of policies' `dns` peers
 * (items with `dns` set), in force before it resolves: the container's answer waits for it.
 */
export interface PolicyDnsLearner {
  learnPolicyDns(net: DriverNetwork, items: EgressLearnt[]): Promise<void>;
}
export function isPolicyDnsLearner(d: NetworkDriver): d is NetworkDriver & PolicyDnsLearner {
  return typeof (d as Partial<PolicyDnsLearner>).learnPolicyDns === 'function';
}

/**
 * Optional capability of a {@link PolicyDnsLearner} whose networks reach the outside through the
 * host firewall's interface for them, with the containers' own source addresses (ovn's transit
 * link): the host ruleset judges its policies' `dns` peers outside the network (the plan it gets
 * says so, {@link NetworkPolicyPlan.dnsOnHost}; see policy-dns.ts).
 */
export interface HostDnsPeers {
  readonly dnsPeersOnHost: true;
}
export function hasHostDnsPeers(d: NetworkDriver): d is NetworkDriver & HostDnsPeers {
  return (d as Partial<HostDnsPeers>).dnsPeersOnHost === true;
}

export function isPolicyEnforcer(d: NetworkDriver): d is NetworkDriver & PolicyEnforcer {
  return typeof (d as Partial<PolicyEnforcer>).applyPolicies === 'function';
}

/** Live per-endpoint state the driver reports in `docker network inspect -v` (wireguard: peers, handshakes, bytes). */
export interface EndpointStatusReporter {
  /** By endpoint id. */
  endpointStatus(net: DriverNetwork): Promise<Record<string, Record<string, unknown>>>;
}
export function isEndpointStatusReporter(d: NetworkDriver): d is NetworkDriver & EndpointStatusReporter {
  return typeof (d as Partial<EndpointStatusReporter>).endpointStatus === 'function';
}
