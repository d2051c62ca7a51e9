/**
 * Every name and address the wireguard driver derives, in one place: the driver, the sweep, the
 * tests and the benchmark must agree on them.
 *
 * Per endpoint (container × wireguard network) there is a hidden namespace playing the seed's VM
 * root namespace. One per endpoint rather than per container: each network then has its own
 * host-side bridge of underlay ports, which is the one interface the shared nftables firewall
 * knows the network by (masquerade, published ports, isolation, `--internal`), exactly as for
 * `bridge`; a container on two wireguard networks has two hidden namespaces and two underlay
 * addresses, which is also what a multi-host mesh needs (one endpoint address per peer).
 */

/** The kernel's limit for interface names (IFNAMSIZ − 1). */
export const IFNAME_MAX = 15;

/** Inside the hidden namespace: the underlay end (peer of the host's `wu<ep12>`). */
export const HIDDEN_UNDERLAY_IF = 'u0';
/** Inside the hidden namespace: the end facing the container (its peer is the container's `ethN`); holds the gateway. */
export const HIDDEN_INNER_IF = 'c0';

/**
 * The routed underlay: each hidden namespace's `u0` holds one /32 of this pool, the host's
 * network bridge holds {@link UNDERLAY_HOST_ADDRESS}, and the host routes each /32 to its port.
 * Link-local, so it never meets a LAN's or a user's subnet, and clear of 169.254.169.254 (cloud
 * metadata, which containers may still reach through the masquerade) and of ovn's transit pair
 * (169.254.100.0/30).
 */
export const UNDERLAY_POOL = '169.254.192.0/18';
/** The host's address on every wireguard network bridge: the hidden namespaces' default gateway (onlink). */
export const UNDERLAY_HOST_ADDRESS = '169.254.192.1';

/** The UDP port every endpoint's WireGuard listens on (each lives in its own namespace). */
export const LISTEN_PORT = 51820;

/** Underlay MTU (veth default) and WireGuard's overhead over an IPv6 underlay (the larger one). */
export const UNDERLAY_MTU = 1500;
export const WG_OVERHEAD = 80;
/** Default MTU of `ethN`, the hidden `c0` and the WireGuard interface. */
export const DEFAULT_WG_MTU = UNDERLAY_MTU - WG_OVERHEAD;
/** Smallest MTU accepted: IPv6's minimum, which WireGuard needs for its inner packets. */
export const MIN_WG_MTU = 1280;

/** Names of one network's host-side objects. */
export function networkNames(networkId: string): { bridge: string } {
  return { bridge: `wb${networkId.slice(0, 12)}` };
}

/** Names of one endpoint's objects. `tag` is the daemon's (see Daemon.tag). */
export function endpointNames(
  tag: string,
  endpointId: string,
): {
  /** Hidden namespace under /run/netns (not matched by NetnsManager.list's container pattern). */
  netns: string;
  /** WireGuard interface in the hidden namespace; unique machine-wide (its UAPI socket path is global). */
  wgIf: string;
  /** Host side of the underlay veth, a port of the network's bridge. */
  hostVeth: string;
} {
  const e12 = endpointId.slice(0, 12);
  return { netns: `arca-${tag}-w${endpointId.slice(0, 10)}`, wgIf: `wg${e12}`, hostVeth: `wu${e12}` };
}

/** Host-side names the sweep may remove when the state does not know them. */
export const HOST_BRIDGE_RE = /^wb[0-9a-f]{12}$/;
export const HOST_VETH_RE = /^wu[0-9a-f]{12}$/;
export const WG_IF_RE = /^wg[0-9a-f]{12}$/;
/** Hidden namespaces of the daemon with tag `tag`. */
export function hiddenNetnsRe(tag: string): RegExp {
  return new RegExp(`^arca-${tag}-w[0-9a-f]{10}$`);
}

/** Where wireguard-go's UAPI socket for `ifname` lives (global: the same path from every netns). */
export function uapiSocketPath(ifname: string): string {
  return `/run/wireguard/${ifname}.sock`;
}

/** Runtime files of the driver under the daemon's exec-root. */
export function runtimePaths(execRoot: string, ifname: string): { pidFile: string; logFile: string } {
  return { pidFile: `${execRoot}/wireguard/${ifname}.pid`, logFile: `${execRoot}/wireguard/${ifname}.log` };
}

/** The state file (keys, underlay addresses), mode 0600, under the driver's state dir. */
export const STATE_FILE = 'endpoints.json';
