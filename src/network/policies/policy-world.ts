import type { ContainerRecord } from '../../containers/container-record.js';
import type { EndpointRecord, NetworkRecord } from '../network-record.js';
import type { PolicyWorld } from './policy-types.js';

/**
 * The world policies are compiled against, from the network manager's state: every network with
 * its driver, and every live endpoint with its container's name, labels and bare addresses.
 * Endpoints of containers the directory no longer knows are left out (they are going away).
 */
export function buildPolicyWorld(
  networks: Iterable<NetworkRecord>,
  endpoints: EndpointRecord[],
  findContainer: (id: string) => ContainerRecord | undefined,
): PolicyWorld {
  const nets = [...networks].filter((n) => !n.ConfigOnly);
  const byId = new Map(nets.map((n) => [n.Id, n]));
  return {
    networks: nets.map((n) => ({ id: n.Id, name: n.Name, driver: n.Driver || 'bridge' })),
    endpoints: endpoints.flatMap((e) => {
      const n = byId.get(e.networkId);
      const c = findContainer(e.containerId);
      if (!n || !c) return [];
      return [
        {
          endpointId: e.id,
          containerId: c.Id,
          containerName: c.Name.replace(/^\//, ''),
          labels: c.Config.Labels ?? {},
          networkId: n.Id,
          networkName: n.Name,
          addresses: [e.ipv4, e.ipv6].filter((a): a is string => !!a),
        },
      ];
    }),
  };
}
