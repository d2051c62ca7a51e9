/**
 * Names and MAC addresses of what the ovn driver makes, derived from arca's ids alone so that any
 * call can be replayed (start-up, NB rebuilt) and the start-up sweep can tell arca's objects from
 * others by name. NB names are unique within arca's own NB database; kernel names are unique
 * within the namespace they live in (≤ 15 bytes).
 */

const short = (id: string): string => id.slice(0, 12);

/** The transit link between a network's router and the daemon's namespace (the same on every network: each link is its own segment). */
export const TRANSIT = {
  host4: '169.254.100.1',
  router4: '169.254.100.2',
  routerNet4: '169.254.100.2/30',
  host6: 'fdac:a5ca::1',
  router6: 'fdac:a5ca::2',
  routerNet6: 'fdac:a5ca::2/126',
} as const;

export const ovnNames = {
  switch: (netId: string) => `arca-${short(netId)}`,
  router: (netId: string) => `arca-r-${short(netId)}`,
  /** The router port holding the gateway addresses. */
  gatewayPort: (netId: string) => `arca-rg-${short(netId)}`,
  /** The switch port of type router facing {@link gatewayPort}. */
  switchRouterPort: (netId: string) => `arca-sr-${short(netId)}`,
  transitSwitch: (netId: string) => `arca-t-${short(netId)}`,
  transitRouterPort: (netId: string) => `arca-rt-${short(netId)}`,
  transitSwitchRouterPort: (netId: string) => `arca-tr-${short(netId)}`,
  transitHostPort: (netId: string) => `arca-th-${short(netId)}`,
  endpointPort: (epId: string) => `arca-ep-${short(epId)}`,
  /** Kernel: the endpoint veth's end in the switch namespace (an OVS port). */
  endpointVeth: (epId: string) => `ov${short(epId)}`,
  /** Kernel: the transit veth's end in the switch namespace (an OVS port). */
  transitSwitchVeth: (netId: string) => `ot${short(netId)}`,
  /** Kernel: the transit veth's end in the daemon's namespace: the network's interface for the firewall. */
  transitHostVeth: (netId: string) => `on${short(netId)}`,
};

export const ENDPOINT_VETH = /^ov[0-9a-f]{12}$/;
export const TRANSIT_SWITCH_VETH = /^ot[0-9a-f]{12}$/;
export const TRANSIT_HOST_VETH = /^on[0-9a-f]{12}$/;

/** external_ids keys on NB rows: which arca object a row belongs to. */
export const EXT_NETWORK = 'arca-network';
export const EXT_ENDPOINT = 'arca-endpoint';

function macFrom(prefix: string, hex: string): string {
  const b = hex.slice(0, 8).match(/../g)!;
  return [prefix, ...b].join(':');
}

/** Locally administered MACs, one per router port: `0a:58:<4 bytes of the network id>` and `0a:59:…`. */
export function gatewayMac(netId: string): string {
  return macFrom('0a:58', netId);
}
export function transitMac(netId: string): string {
  return macFrom('0a:59', netId);
}
