/**
 * Kernel operations the bridge driver needs, as intent rather than `ip` syntax, so that a netlink
 * backend can replace {@link IpLinkOps} on the hot paths without touching the driver.
 *
 * Host-side calls act in the daemon's own network namespace; `ns` arguments name a namespace
 * under /run/netns.
 */
import { createHash } from 'node:crypto';

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

/**
 * The MAC a bridge is given when made: fixed, from its name (locally administered, unicast). A
 * bridge left to itself takes the lowest MAC of its ports, so a port joining or leaving changes
 * the gateway's MAC under every neighbour; the gratuitous ARP that follows is ignored by those
 * that updated the entry under a second before (neighbour locktime), and they keep sending to a
 * MAC nobody has until the entry goes stale (seconds). With its own MAC the bridge never changes.
 */
export function bridgeMac(name: string): string {
  const h = createHash('sha256').update(`arca-bridge:${name}`).digest();
  h[0] = (h[0]! & 0xfc) | 0x02;
  return [...h.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
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
