import { existsSync } from 'node:fs';
import { Unavailable, errorMessage } from '../../../errors.js';
import { KeyedLock } from '../../../keyed-lock.js';
import { logger } from '../../../log.js';
import { OvsdbSession } from '../../../ovsdb/ovsdb-session.js';
import type { EgressLearnt, FirewallNetwork } from '../../firewall/firewall.js';
import type {
  DriverAddresses,
  DriverEndpoint,
  DriverNetwork,
  FirewallContributor,
  GatewaySwitcher,
  HostDnsPeers,
  EndpointNamesKeeper,
  KernelSweeper,
  LiveAttach,
  NetworkDriver,
  PolicyDnsLearner,
  PolicyEnforcer,
  Reapplier,
  Sandbox,
  Supervised,
  SupervisorContext,
  VirtualNames,
} from '../../driver.js';
import { VipBalancer } from './vip-balancer.js';
import { OvnPolicyEnforcer } from './ovn-policy-enforcer.js';
import type { NetworkPolicyPlan, PolicyCounters } from '../../policies/policy-types.js';
import type { LinkOps } from '../../link-ops.js';
import { OvnStack } from './stack/ovn-stack.js';
import {
  createNetworkOps,
  deleteEndpointOps,
  deleteNetworkOps,
  dnsRecordOps,
  networkLookupOps,
  selectPortOps,
  upsertEndpointOps,
  waitPortUpOps,
} from './nb-ops.js';
import { ENDPOINT_VETH, EXT_ENDPOINT, EXT_NETWORK, TRANSIT_HOST_VETH, TRANSIT_SWITCH_VETH, ovnNames } from './ovn-names.js';
import { parseOvnOptions } from './ovn-options.js';
import { OvsPorts } from './ovs-ports.js';
import { ensureTransit } from './host-transit.js';
import { keepUdpChecksumsFrom, zeroUdpChecksumsFrom } from './udp-checksum.js';
import { fromMap, fromUuid, type OvsdbOp, type OvsdbRow } from '../../../ovsdb/ovsdb-values.js';

const log = logger('arca:net:ovn');

/** How long a join waits for ovn-controller to report the port's flows installed. */
const PORT_UP_TIMEOUT_MS = 10_000;

export interface OvnDriverDeps {
  /** Kernel operations in the daemon's namespace (transit links, container interfaces). */
  linkOps: LinkOps;
  /** Kernel operations acting in another namespace (the switch's). */
  linkOpsIn(ns: string): LinkOps;
  stack: OvnStack;
}

/** What exists once the stack runs: database sessions and the switch namespace's link operations. */
interface Live {
  nb: OvsdbSession;
  ports: OvsPorts;
  switchOps: LinkOps;
}

/** The rows of a select's result. */
function rowsOf(r: { rows?: OvsdbRow[] } | undefined): OvsdbRow[] {
  return r?.rows ?? [];
}

/**
 * Docker networks on OVN: a logical switch per network whose gateway is a logical router port,
 * endpoints as logical switch ports fed by veths in the switch's namespace, OVN's DHCP and DNS
 * rows kept from arca's state. The way out is a transit link into the daemon's namespace, where
 * the one nftables firewall does masquerade, published ports and isolation for every driver:
 * OVN's own SNAT would need a gateway chassis and would duplicate what the firewall already does,
 * and published ports would then need OVN load balancers on the host side too.
 */
export class OvnDriver
  implements NetworkDriver, LiveAttach, Reapplier, KernelSweeper, GatewaySwitcher, FirewallContributor, Supervised, VirtualNames, PolicyEnforcer, PolicyDnsLearner, HostDnsPeers, EndpointNamesKeeper
{
  readonly name = 'ovn';
  /**
   * Traffic out leaves through the transit link with the container's own address (no SNAT in
   * OVN), so the host ruleset judges `dns` peers beyond the network: an answer is then in force
   * after one nft element, not OVN's chain of hand-offs (see policy-dns.ts).
   */
  readonly dnsPeersOnHost = true;
  readonly usesIpam = true;
  readonly liveAttach = true;

  private live?: Promise<Live>;
  /** Networks and endpoints arca handed us, by id: what a rebuilt NB is replayed from. */
  private readonly nets = new Map<string, DriverNetwork>();
  private readonly eps = new Map<string, Map<string, DriverEndpoint>>();
  /** The DHCP_Options row of each network's IPv4 subnet, by network id. */
  private readonly dhcp = new Map<string, string>();
  private readonly dnsLock = new KeyedLock();
  /** Serialises a network's NB lookup-then-insert: the start-up replay and an nb-reset replay may overlap. */
  private readonly netLock = new KeyedLock();
  private stateDir = '';
  private addresses?: DriverAddresses;
  private readonly vips = new VipBalancer(() => {
    if (!this.addresses) throw new Error('ovn driver used before start()');
    return this.addresses;
  });

  private readonly policies: OvnPolicyEnforcer;

  constructor(private readonly deps: OvnDriverDeps) {
    this.policies = new OvnPolicyEnforcer(
      () => this.ready().then((l) => l.nb),
      deps.stack,
      (netId) => [...this.vips.names(netId).values()],
    );
    deps.stack.on('nb-reset', () => {
      void this.replay().catch((e: unknown) => log.error('rebuilding the northbound database failed', { error: errorMessage(e) }));
    });
    // conf.db was recreated: the veths are still there, their OVS ports are not.
    deps.stack.on('ovs-reset', () => {
      void this.replugAll().catch((e: unknown) => log.error('re-plugging OVS ports failed', { error: errorMessage(e) }));
    });
  }

  // ---- the stack ------------------------------------------------------------------------------------

  async start(ctx: SupervisorContext): Promise<void> {
    this.stateDir = ctx.stateDir;
    this.addresses = ctx.addresses;
    // Nothing starts here: the stack runs once an ovn network needs it (createNetwork is replayed
    // for every network at start-up, which adopts a running stack).
  }

  async stop(): Promise<void> {
    const live = this.live;
    this.live = undefined;
    this.policies.close();
    if (live) (await live.catch(() => undefined))?.nb.close();
    await this.deps.stack.detach();
  }

  private ready(): Promise<Live> {
    const missing = OvnStack.missing();
    if (missing) return Promise.reject(new Unavailable(missing));
    this.live ??= (async () => {
      const stack = this.deps.stack;
      await stack.ensure();
      return {
        nb: new OvsdbSession(stack.nbSocket, 'OVN_Northbound'),
        ports: new OvsPorts(new OvsdbSession(stack.ovsSocket, 'Open_vSwitch'), stack.bridge),
        switchOps: this.deps.linkOpsIn(stack.switchNetns),
      };
    })();
    const live = this.live;
    live.catch(() => {
      if (this.live === live) this.live = undefined;
    });
    return live.then((l) => {
      const st = this.deps.stack.status();
      if (st.state === 'down') throw new Unavailable(`the OVN stack is down: ${st.reason ?? 'unknown reason'}`);
      return l;
    });
  }

  // ---- networks -------------------------------------------------------------------------------------

  validateNetwork(net: DriverNetwork): void {
    parseOvnOptions(net);
    const missing = OvnStack.missing();
    if (missing) throw new Unavailable(missing);
  }

  async createNetwork(net: DriverNetwork): Promise<void> {
    const { mtu } = parseOvnOptions(net);
    const live = await this.ready();
    this.nets.set(net.id, net);
    if (!this.eps.has(net.id)) this.eps.set(net.id, new Map());
    await this.netLock.run(net.id, async () => {
      const [sw, dhcp] = await live.nb.transact(networkLookupOps(net.id));
      let dhcpRow = fromUuid(rowsOf(dhcp)[0]?.['_uuid']);
      if (!rowsOf(sw).length) {
        // The insert's own result names the new DHCP row: no second lookup.
        const ops = createNetworkOps(net, mtu);
        const res = await live.nb.transact(ops);
        const i = ops.findIndex((o) => o.op === 'insert' && o.table === 'DHCP_Options');
        dhcpRow = i < 0 ? undefined : fromUuid(res[i]?.uuid);
      }
      if (dhcpRow) this.dhcp.set(net.id, dhcpRow);
      else this.dhcp.delete(net.id);
    });
    if (!net.internal) {
      await ensureTransit(this.deps.linkOps, live.switchOps, this.deps.stack.switchNetns, net, mtu);
      await live.ports.add(ovnNames.transitSwitchVeth(net.id), ovnNames.transitHostPort(net.id));
    }
  }

  async deleteNetwork(net: DriverNetwork): Promise<void> {
    this.nets.delete(net.id);
    this.eps.delete(net.id);
    this.dhcp.delete(net.id);
    this.vips.drop(net.id);
    this.policies.forget(net.id);
    if (OvnStack.missing()) return;
    const live = await this.ready();
    await live.nb.transact(deleteNetworkOps(net.id));
    await live.ports.remove(ovnNames.transitSwitchVeth(net.id));
    // Deleting one end of a veth deletes both.
    await this.deps.linkOps.deleteLink(ovnNames.transitHostVeth(net.id));
  }

  // ---- endpoints ------------------------------------------------------------------------------------

  async createEndpoint(net: DriverNetwork, ep: DriverEndpoint): Promise<void> {
    const live = await this.ready();
    await this.upsertPort(live, net, ep);
    await this.track(net, ep, true);
    // A plan that came before the port could not name it yet.
    if (this.policies.governs(net.id, ep.id)) await this.policies.reapply(net.id);
  }

  async deleteEndpoint(net: DriverNetwork, ep: DriverEndpoint): Promise<void> {
    const live = await this.ready();
    const row = await this.portUuid(live, ep);
    if (row) await live.nb.transact(deleteEndpointOps(net.id, row));
    await this.track(net, ep, false);
  }

  /** A rename: the endpoint's DNS row entries follow its names (the index swaps the old ones out). */
  async endpointNamesChanged(net: DriverNetwork, ep: DriverEndpoint): Promise<void> {
    await this.track(net, ep, true);
  }

  private async portUuid(live: Live, ep: DriverEndpoint): Promise<string | undefined> {
    const [found] = await live.nb.transact(selectPortOps(ovnNames.endpointPort(ep.id)));
    return fromUuid(rowsOf(found)[0]?.['_uuid']);
  }

  private async upsertPort(live: Live, net: DriverNetwork, ep: DriverEndpoint): Promise<void> {
    await live.nb.transact(upsertEndpointOps(net, ep, await this.portUuid(live, ep), this.dhcp.get(net.id)));
  }

  async join(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    const live = await this.ready();
    const { mtu } = parseOvnOptions(net);
    await live.switchOps.addVeth({ hostName: ovnNames.endpointVeth(ep.id), ns: sb.netnsName, peerName: ep.ifname, mac: ep.mac, mtu });
    await Promise.all([
      this.deps.linkOps.configureInside(sb.netnsName, { ifname: ep.ifname, addresses: ep.addresses, gateways: ep.gateways }),
      live.ports.add(ovnNames.endpointVeth(ep.id), ovnNames.endpointPort(ep.id)),
      zeroUdpChecksumsFrom(sb.netnsPath, ep.ifname),
    ]);
    await this.waitUp(live, ep);
  }

  /** Returns once ovn-controller installed the port's flows: the container can talk when run returns. */
  private async waitUp(live: Live, ep: DriverEndpoint): Promise<void> {
    try {
      await live.nb.transact(waitPortUpOps(ep.id, PORT_UP_TIMEOUT_MS), { timeoutMs: PORT_UP_TIMEOUT_MS + 2000 });
    } catch (e) {
      log.warn('logical port not up in time; continuing', { endpoint: ep.id.slice(0, 12), error: errorMessage(e) });
    }
  }

  async leave(_net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    const live = await this.ready();
    await live.ports.remove(ovnNames.endpointVeth(ep.id));
    // A closing namespace takes the pair with it.
    if (!sb.closing) {
      await live.switchOps.deleteLink(ovnNames.endpointVeth(ep.id));
      await keepUdpChecksumsFrom(sb.netnsPath, ep.ifname).catch(() => undefined);
    }
  }

  async reapply(net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    await this.createEndpoint(net, ep);
    const live = await this.ready();
    // Both ends of a veth exist or neither: the container's side tells.
    if (!(await this.deps.linkOps.linksInside(sb.netnsName)).includes(ep.ifname)) {
      await this.join(net, ep, sb);
      return;
    }
    await this.deps.linkOps.configureInside(sb.netnsName, { ifname: ep.ifname, addresses: ep.addresses, gateways: ep.gateways });
    await live.ports.add(ovnNames.endpointVeth(ep.id), ovnNames.endpointPort(ep.id));
    await this.waitUp(live, ep);
  }

  async setGateways(_net: DriverNetwork, ep: DriverEndpoint, sb: Sandbox): Promise<void> {
    await this.deps.linkOps.setDefaultRoutes(sb.netnsName, ep.ifname, ep.gateways);
  }

  // ---- DNS rows -------------------------------------------------------------------------------------

  /** The names an endpoint answers to in the network's DNS row: Docker's, plus `name.network`. */
  private static names(net: DriverNetwork, ep: DriverEndpoint): string[] {
    const base = ep.dnsNames.map((n) => n.toLowerCase());
    return [...new Set([...base, ...base.map((n) => `${n}.${net.name.toLowerCase()}`)])];
  }

  /** Adds or removes an endpoint in the index and rewrites the load balancers and DNS values of its names. */
  private track(net: DriverNetwork, ep: DriverEndpoint, present: boolean): Promise<void> {
    return this.dnsLock.run(net.id, async () => {
      const index = this.eps.get(net.id) ?? new Map<string, DriverEndpoint>();
      this.eps.set(net.id, index);
      const before = index.get(ep.id);
      if (present) index.set(ep.id, ep);
      else index.delete(ep.id);
      const touched = [before, ep].filter((e) => e !== undefined);
      if (parseOvnOptions(net).vip) {
        const live = await this.ready();
        const vipsBefore = [...this.vips.names(net.id).values()].sort().join(' ');
        await this.vips.sync(live.nb, net, index.values(), touched.flatMap((e) => e.aliases.map((a) => a.toLowerCase())));
        // Isolated backends let their own hairpin traffic in, which comes from the VIPs.
        if ([...this.vips.names(net.id).values()].sort().join(' ') !== vipsBefore) await this.policies.reapply(net.id);
      }
      await this.writeDns(net, index, touched.flatMap((e) => OvnDriver.names(net, e)));
    });
  }

  /** Rewrites `names` in the network's DNS row: a VIP for a balanced alias, else every endpoint's addresses. */
  private async writeDns(net: DriverNetwork, index: Map<string, DriverEndpoint>, names: Iterable<string>): Promise<void> {
    const suffix = `.${net.name.toLowerCase()}`;
    const vips = this.vips.names(net.id);
    const values = new Map<string, string>();
    for (const name of names) values.set(name, vips.get(name) ?? vips.get(name.endsWith(suffix) ? name.slice(0, -suffix.length) : '') ?? '');
    const balanced = new Set([...values].filter(([, v]) => v !== '').map(([k]) => k));
    for (const e of index.values()) {
      for (const name of OvnDriver.names(net, e)) {
        if (!values.has(name) || balanced.has(name)) continue;
        const addrs = e.addresses.map((a) => a.split('/')[0]!);
        values.set(name, [values.get(name), ...addrs].filter(Boolean).join(' '));
      }
    }
    const live = await this.ready();
    const ops = dnsRecordOps(net.id, values);
    if (ops.length) await live.nb.transact(ops);
  }

  virtualNames(net: DriverNetwork): Array<{ name: string; ipv4: string }> {
    return [...this.vips.names(net.id)].map(([name, ipv4]) => ({ name, ipv4 }));
  }

  // ---- recovery -------------------------------------------------------------------------------------

  /** The NB database came back empty: every network and endpoint arca knows is written again. */
  private async replay(): Promise<void> {
    log.warn('the northbound database was recreated: rebuilding it from arca state', { networks: this.nets.size });
    for (const net of [...this.nets.values()]) {
      await this.createNetwork(net);
      const index = this.eps.get(net.id);
      for (const ep of [...(index?.values() ?? [])]) {
        await this.upsertPort(await this.ready(), net, ep);
      }
      if (!index) continue;
      await this.dnsLock.run(net.id, async () => {
        const all = [...index.values()];
        if (parseOvnOptions(net).vip) await this.vips.sync((await this.ready()).nb, net, all, all.flatMap((e) => e.aliases.map((a) => a.toLowerCase())));
        await this.writeDns(net, index, all.flatMap((e) => OvnDriver.names(net, e)));
      });
      await this.policies.reapply(net.id);
    }
  }

  /** Every known veth end in the switch namespace gets its OVS port back. */
  private async replugAll(): Promise<void> {
    const live = await this.ready();
    const have = new Set((await live.switchOps.links()).map((l) => l.name));
    for (const net of this.nets.values()) {
      if (!net.internal && have.has(ovnNames.transitSwitchVeth(net.id))) await live.ports.add(ovnNames.transitSwitchVeth(net.id), ovnNames.transitHostPort(net.id));
      for (const ep of this.eps.get(net.id)?.values() ?? []) {
        if (have.has(ovnNames.endpointVeth(ep.id))) await live.ports.add(ovnNames.endpointVeth(ep.id), ovnNames.endpointPort(ep.id));
      }
    }
  }

  async sweep(known: { networks: DriverNetwork[]; endpoints: DriverEndpoint[] }): Promise<void> {
    // A machine that never ran an ovn network has no stack to sweep, and must not get one.
    if (!this.nets.size && !(this.stateDir && existsSync(this.stateDir))) return;
    if (OvnStack.missing()) return;
    const live = await this.ready();
    const nets = new Set(known.networks.map((n) => n.id));
    const eps = new Set(known.endpoints.map((e) => e.id));
    const ops: OvsdbOp[] = [];
    // Policy rows (port groups, address sets) of a known network stay: they are its last plan, applied again soon.
    const tables = ['Logical_Switch', 'Logical_Router', 'DHCP_Options', 'DNS', 'Load_Balancer', 'Port_Group', 'Address_Set', 'Logical_Switch_Port'];
    const found = await live.nb.transact(tables.map((table) => ({ op: 'select', table, where: [], columns: ['_uuid', 'external_ids'] })));
    for (const [i, table] of tables.entries()) {
      for (const row of rowsOf(found[i])) {
        const ext = fromMap(row['external_ids']);
        const id = row['_uuid']!;
        if (table !== 'Logical_Switch_Port') {
          if (ext[EXT_NETWORK] && !nets.has(ext[EXT_NETWORK])) ops.push({ op: 'delete', table, where: [['_uuid', '==', id]] });
        } else if (ext[EXT_ENDPOINT] && !eps.has(ext[EXT_ENDPOINT]) && nets.has(ext[EXT_NETWORK] ?? '')) {
          // Ports of unknown networks go with their switch, deleted above.
          ops.push({ op: 'mutate', table: 'Logical_Switch', where: [['ports', 'includes', id]], mutations: [['ports', 'delete', id]] });
        }
      }
    }
    if (ops.length) {
      log.info('removing northbound rows arca does not know', { rows: ops.length });
      await live.nb.transact(ops);
    }
    const veths = new Set(known.endpoints.map((e) => ovnNames.endpointVeth(e.id)));
    const transits = new Set(known.networks.map((n) => ovnNames.transitSwitchVeth(n.id)));
    const hostTransits = new Set(known.networks.map((n) => ovnNames.transitHostVeth(n.id)));
    const stale = (name: string): boolean => (ENDPOINT_VETH.test(name) && !veths.has(name)) || (TRANSIT_SWITCH_VETH.test(name) && !transits.has(name));
    for (const name of await live.ports.names()) if (stale(name)) await live.ports.remove(name);
    for (const l of await live.switchOps.links()) if (stale(l.name)) await live.switchOps.deleteLink(l.name);
    for (const l of await this.deps.linkOps.links()) {
      if (l.kind === 'veth' && TRANSIT_HOST_VETH.test(l.name) && !hostTransits.has(l.name)) await this.deps.linkOps.deleteLink(l.name);
    }
  }

  // ---- policies -------------------------------------------------------------------------------------

  async applyPolicies(net: DriverNetwork, plan: NetworkPolicyPlan): Promise<void> {
    await this.ready();
    await this.policies.apply(net.id, plan, net.subnets.map((s) => s.subnet));
  }

  async policyCounters(net: DriverNetwork): Promise<Record<string, PolicyCounters>> {
    await this.ready();
    return this.policies.counters(net.id);
  }

  async learnPolicyDns(net: DriverNetwork, items: EgressLearnt[]): Promise<void> {
    await this.ready();
    await this.policies.learnDns(net.id, items);
  }

  // ---- firewall -------------------------------------------------------------------------------------

  firewallNetwork(net: DriverNetwork): FirewallNetwork {
    return {
      id: net.id,
      // Internal networks have no transit link: the name matches nothing, and their rules
      // (drop out, publish nothing) stay as for an internal bridge.
      bridge: ovnNames.transitHostVeth(net.id),
      subnets4: net.subnets.filter((s) => !s.subnet.includes(':')).map((s) => s.subnet),
      subnets6: net.subnets.filter((s) => s.subnet.includes(':')).map((s) => s.subnet),
      // The gateways live on OVN's router, not on a host interface.
      gateways: [],
      internal: net.internal,
      // Traffic between a network's endpoints never reaches the host: OVN switches it.
      icc: true,
      masquerade: true,
      zeroUdpChecksums: true,
      driverPolicies: true,
    };
  }
}
