/**
 * Kernel operations the bridge driver needs, as intent rather than `ip` syntax, so that a netlink
 * backend can replace {@link IpLinkOps} on the hot paths without touching the driver.
 *
 * Host-side calls act in the daemon's own network namespace; `ns` arguments name a namespace
 * under /run/netns.
 */
export interface LinkInfo {
  name: string;
  /** `bridge`, `veth`, … (undefined for plain devices). */
  kind?: string;
  /** Bridge the link is enslaved to. */
  master?: string;
  up: boolean;
}

export interface BridgeSpec {
  name: string;
  /** Addresses with prefix length (gateways), kept exactly: others are removed. */
  addresses: string[];
  mtu?: number;
  /**
   * Whether frames bridged between its ports cross the IP hooks (br_netfilter's per-bridge
   * nf_call_iptables/ip6tables). Left as is when undefined.
   */
  nfCallIptables?: boolean;
  /**
   * IGMP/MLD snooping; when on, the bridge also joins the multicast router discovery groups and
   * announces them. Left as is when undefined.
   */
  multicastSnooping?: boolean;
}

export interface VethSpec {
  /** Host-side name (≤ 15 bytes). */
  hostName: string;
  /** Bridge the host side is enslaved to; none when another switch (OVS) takes the host side. */
  bridge?: string;
  /** Namespace the peer is born in. */
  ns: string;
  /** The peer's name inside the namespace (`eth0`). */
  peerName: string;
  /** The peer's MAC address (the kernel's choice when omitted). */
  mac?: string;
  mtu?: number;
}

export interface InterfaceConfig {
  ifname: string;
  /** Addresses with prefix length. */
  addresses: string[];
  /** Default routes to install (gateway addresses); the rest of the interface's defaults are removed. */
  gateways: string[];
}

/** A route through a gateway the kernel is told is on the link (`onlink`): unnumbered links. */
export interface OnlinkRoute {
  /** CIDR, masked. */
  prefix: string;
  via: string;
}

export interface LinkOps {
  /** Links of the daemon's namespace. */
  links(): Promise<LinkInfo[]>;
  /** Creates the bridge if missing; sets MTU and addresses; brings it up. Idempotent. */
  ensureBridge(spec: BridgeSpec): Promise<void>;
  /** Deletes a host-side link; already gone is success. */
  deleteLink(name: string): Promise<void>;
  /**
   * A host-side link's addresses (added or replaced, IPv6 without DAD), up, and `routes` through
   * it with `onlink` gateways: an unnumbered point-to-point link such as ovn's transit veth.
   */
  configureHostLink(name: string, addresses: string[], routes: OnlinkRoute[]): Promise<void>;
  /** Brings a link up (a veth end another switch, OVS, reads). */
  setUp(name: string): Promise<void>;
  /** Sets a host-side link down (fast, unlike deletion; its routes go at once). Gone is success. */
  setDown(name: string): Promise<void>;
  /** A veth whose peer is born inside `spec.ns`; host side enslaved (if a bridge is named) and up. */
  addVeth(spec: VethSpec): Promise<void>;
  /** Enslaves an existing host-side link and brings it up (repair after a bridge was recreated). */
  enslave(name: string, bridge: string): Promise<void>;
  /** Inside `ns`: addresses, up, default routes — one batch. Replaces rather than adds. */
  configureInside(ns: string, cfg: InterfaceConfig): Promise<void>;
  /** Inside `ns`: makes `gateways` the default routes through `ifname`, or removes them when empty. */
  setDefaultRoutes(ns: string, ifname: string, gateways: string[]): Promise<void>;
  /** Inside `ns`: names of the links there. */
  linksInside(ns: string): Promise<string[]>;
  /**
   * Releases what the instance holds (netlink sockets). An instance acting in another namespace
   * pins that namespace until closed: a short-lived one must be closed, or the namespace (and
   * the veth ends inside it) outlives its deletion.
   */
  close?(): void;
}
