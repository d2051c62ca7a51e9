import { isIPv4, isIPv6 } from 'node:net';
import type { FirewallPort } from '../firewall/firewall.js';
import type { PublishedPort } from './port-spec.js';

/** A container's endpoint on the network its ports are published from. */
export interface PortEndpoint {
  endpointId: string;
  networkId: string;
  ipv4?: string;
  ipv6?: string;
}

/**
 * The DNAT entries for a container's published ports: each host address maps to the container
 * address of the same family. A binding with no such address (`::` for a container without
 * IPv6) gets no rule: nft cannot translate between families, and without docker-proxy there is
 * nothing to bridge them (Docker's proxy would; arca reserves the port but does not forward it).
 */
export function firewallPorts(published: readonly PublishedPort[], ep: PortEndpoint): FirewallPort[] {
  const out: FirewallPort[] = [];
  for (const p of published) {
    const containerIp = isIPv4(p.hostIp) ? ep.ipv4 : isIPv6(p.hostIp) ? ep.ipv6 : undefined;
    if (!containerIp) continue;
    out.push({
      endpointId: ep.endpointId,
      networkId: ep.networkId,
      proto: p.proto,
      hostIp: p.hostIp,
      hostPort: p.hostPort,
      containerIp,
      containerPort: p.containerPort,
    });
  }
  return out;
}
