import type { PolicyEndpointInfo, PolicyWorld } from '../../src/network/policies/policy-types.js';

/** A container of a test world: its name, labels, and addresses by network name. */
export interface FixtureContainer {
  name: string;
  labels?: Record<string, string>;
  on: Record<string, string | string[]>;
}

/** A small policy world: networks `net-<name>` on bridge, one endpoint per container and network. */
export function fixtureWorld(containers: FixtureContainer[], networks: string[]): PolicyWorld {
  const endpoints: PolicyEndpointInfo[] = [];
  for (const c of containers) {
    for (const [net, addrs] of Object.entries(c.on)) {
      endpoints.push({
        endpointId: `ep-${c.name}-${net}`,
        containerId: `id-${c.name}`,
        containerName: c.name,
        labels: c.labels ?? {},
        networkId: `net-${net}`,
        networkName: net,
        addresses: Array.isArray(addrs) ? addrs : [addrs],
      });
    }
  }
  return { networks: networks.map((n) => ({ id: `net-${n}`, name: n, driver: 'bridge' })), endpoints };
}
