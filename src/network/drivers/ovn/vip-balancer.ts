/**
 * Swarm's "endpoint mode vip" without Swarm: on a network created with `-o arca.endpoint_mode=vip`
 * every alias (a compose service name) gets one virtual IPv4 address from the network's IPAM, and
 * an OVN Load_Balancer spreads connections to it over the endpoints carrying the alias. DNS (OVN's
 * and 127.0.0.11) answers the VIP for the alias.
 *
 * Per alias, one row per protocol: the TCP row also holds the port-less VIP (every other protocol
 * and port, ICMP included, so `ping api` works), and each exposed port gets a VIP:port entry with an
 * OVN health check, which is why exposed ports are listed separately: a backend that stops
 * answering on them stops receiving new connections. A stopped container leaves the network and so
 * the backend set.
 */
import type { DriverAddresses, DriverEndpoint, DriverNetwork } from '../../driver.js';
import type { OvsdbSession } from '../../../ovsdb/ovsdb-session.js';
import { map, namedUuid, set, type Condition, type OvsdbOp } from '../../../ovsdb/ovsdb-values.js';
import { EXT_NETWORK, ovnNames } from './ovn-names.js';

const EXT_VIP = 'arca-vip';
/** The IPAM owner of a network's health-check source address (OVN probes backends from it). */
const MONITOR_OWNER = 'ovn:svc-monitor';

/** Probe every 2 s, 1 s to answer; two misses take a backend out, one success puts it back. */
const HEALTH = { interval: '2', timeout: '1', failure_count: '2', success_count: '1' };

export class VipBalancer {
  /** VIP of each alias, by network id. */
  private readonly vips = new Map<string, Map<string, string>>();

  constructor(private readonly addresses: () => DriverAddresses) {}

  /** The alias → VIP pairs of a network (for DNS). */
  names(netId: string): Map<string, string> {
    return this.vips.get(netId) ?? new Map();
  }

  /** Forgets a network (its LB rows go with deleteNetworkOps; its addresses with its IPAM). */
  drop(netId: string): void {
    this.vips.delete(netId);
  }

  /** Rewrites the load balancers of `aliases` from the network's current endpoints. */
  async sync(nb: OvsdbSession, net: DriverNetwork, endpoints: Iterable<DriverEndpoint>, aliases: Iterable<string>): Promise<void> {
    const eps = [...endpoints];
    for (const alias of new Set(aliases)) {
      const backends = eps.filter((e) => e.aliases.some((a) => a.toLowerCase() === alias) && v4(e));
      const where: Condition[] = [['external_ids', 'includes', map({ [EXT_NETWORK]: net.id, [EXT_VIP]: alias })]];
      if (!backends.length) {
        await nb.transact([{ op: 'delete', table: 'Load_Balancer', where }]);
        this.vips.get(net.id)?.delete(alias);
        this.addresses().release(net.id, `vip:${alias}`);
        continue;
      }
      const vip = this.addresses().take(net.id, `vip:${alias}`);
      const monitor = this.addresses().take(net.id, MONITOR_OWNER);
      const ops: OvsdbOp[] = [{ op: 'delete', table: 'Load_Balancer', where }];
      const rows: string[] = [];
      for (const proto of ['tcp', 'udp'] as const) {
        const vipsMap: Record<string, string> = {};
        if (proto === 'tcp') vipsMap[vip] = backends.map(v4).join(',');
        const ports = [...new Set(backends.flatMap((b) => b.exposed.filter((p) => p.proto === proto).map((p) => p.port)))].sort((a, b) => a - b);
        const checks: string[] = [];
        for (const port of ports) {
          const members = backends.filter((b) => b.exposed.some((p) => p.proto === proto && p.port === port));
          vipsMap[`${vip}:${port}`] = members.map((b) => `${v4(b)}:${port}`).join(',');
          const hc = `hc_${proto}_${port}`;
          ops.push({ op: 'insert', table: 'Load_Balancer_Health_Check', 'uuid-name': hc, row: { vip: `${vip}:${port}`, options: map(HEALTH) } });
          checks.push(hc);
        }
        if (!Object.keys(vipsMap).length) continue;
        const name = `lb_${proto}`;
        rows.push(name);
        ops.push({
          op: 'insert',
          table: 'Load_Balancer',
          'uuid-name': name,
          row: {
            name: `arca-${net.id.slice(0, 12)}-${alias}-${proto}`,
            protocol: proto,
            vips: map(vipsMap),
            health_check: set(checks.map(namedUuid)),
            ip_port_mappings: map(Object.fromEntries(backends.map((b) => [v4(b), `${ovnNames.endpointPort(b.id)}:${monitor}`]))),
            external_ids: map({ [EXT_NETWORK]: net.id, [EXT_VIP]: alias }),
          },
        });
      }
      // The switch balances what its ports send; the router answers ARP for an in-subnet VIP.
      const refs = set(rows.map(namedUuid));
      ops.push({ op: 'mutate', table: 'Logical_Switch', where: [['name', '==', ovnNames.switch(net.id)]], mutations: [['load_balancer', 'insert', refs]] });
      ops.push({ op: 'mutate', table: 'Logical_Router', where: [['name', '==', ovnNames.router(net.id)]], mutations: [['load_balancer', 'insert', refs]] });
      await nb.transact(ops);
      let byAlias = this.vips.get(net.id);
      if (!byAlias) this.vips.set(net.id, (byAlias = new Map()));
      byAlias.set(alias, vip);
    }
  }
}

function v4(e: DriverEndpoint): string {
  return e.addresses.find((a) => !a.includes(':'))?.split('/')[0] ?? '';
}
