import type { NetworkPolicyPlan, PolicyEndpointInfo, PolicyWorld } from '../../src/network/policies/policy-types.js';

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

/** The network and endpoint of {@link dnsPeerPlan}. */
export const DNS_PLAN_NET = 'a1b2c3d4e5f6'.padEnd(64, '0');
export const DNS_PLAN_EP = '1'.repeat(64);

/** One endpoint whose policy `api-out` allows tcp/443 to the dns peer `pattern`, and nothing else out. */
export function dnsPeerPlan(pattern: string): NetworkPolicyPlan {
  return {
    networkId: DNS_PLAN_NET,
    policies: ['api-out'],
    dns: [pattern],
    endpoints: [
      {
        endpointId: DNS_PLAN_EP,
        containerId: 'c1',
        addresses: ['10.0.0.2'],
        policies: ['api-out'],
        isolatedBy: { egress: ['api-out'] },
        egress: [{ policy: 'api-out', index: 0, peers: { addrs4: [], addrs6: [], cidrs: [], dns: [pattern] }, ports: [{ proto: 'tcp', from: 443, to: 443 }] }],
      },
    ],
  };
}
