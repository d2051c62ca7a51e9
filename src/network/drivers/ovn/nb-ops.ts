/**
 * The northbound rows of a network and of an endpoint, as OVSDB operations. Pure: the driver
 * sends them; unit tests read them. A network is one transaction (switch, router with the gateway
 * port, transit switch and port, static routes, DHCP options, DNS row), so after a crash it exists
 * in NB wholly or not at all.
 */
import type { DriverEndpoint, DriverNetwork } from '../../driver.js';
import { map, namedUuid, set, uuid, type Condition, type Mutation, type OvsdbOp } from '../../../ovsdb/ovsdb-values.js';
import { EXT_ENDPOINT, EXT_NETWORK, TRANSIT, gatewayMac, ovnNames, transitMac } from './ovn-names.js';

const byName = (name: string): Condition[] => [['name', '==', name]];
const ownedBy = (key: string, id: string): Condition[] => [['external_ids', 'includes', map({ [key]: id })]];

function prefixLen(cidr: string): string {
  return cidr.slice(cidr.indexOf('/'));
}

/** DHCP lease time handed out (seconds); leases are renewed long before, addresses never move. */
const LEASE_SECONDS = 3600;

/** Operations creating every NB row of a network that does not exist yet in NB. */
export function createNetworkOps(net: DriverNetwork, mtu: number): OvsdbOp[] {
  const n = ovnNames;
  const ext = map({ [EXT_NETWORK]: net.id });
  const gwMac = gatewayMac(net.id);
  const ops: OvsdbOp[] = [];
  const routerPorts = ['gwport'];
  ops.push({
    op: 'insert',
    table: 'Logical_Router_Port',
    'uuid-name': 'gwport',
    row: { name: n.gatewayPort(net.id), mac: gwMac, networks: set(net.subnets.map((s) => s.gateway + prefixLen(s.subnet))), external_ids: ext },
  });
  const routes: string[] = [];
  if (!net.internal) {
    routerPorts.push('transitport');
    ops.push({
      op: 'insert',
      table: 'Logical_Router_Port',
      'uuid-name': 'transitport',
      row: { name: n.transitRouterPort(net.id), mac: transitMac(net.id), networks: set([TRANSIT.routerNet4, TRANSIT.routerNet6]), external_ids: ext },
    });
    // The way out: the daemon's namespace, whose nftables masquerade, publish and isolate exactly
    // as for `bridge` (one firewall for every driver, and host-side published ports for free).
    const families = new Set(net.subnets.map((s) => (s.subnet.includes(':') ? 6 : 4)));
    if (families.has(4)) routes.push('route4');
    if (families.has(6)) routes.push('route6');
    if (families.has(4)) ops.push({ op: 'insert', table: 'Logical_Router_Static_Route', 'uuid-name': 'route4', row: { ip_prefix: '0.0.0.0/0', nexthop: TRANSIT.host4, external_ids: ext } });
    if (families.has(6)) ops.push({ op: 'insert', table: 'Logical_Router_Static_Route', 'uuid-name': 'route6', row: { ip_prefix: '::/0', nexthop: TRANSIT.host6, external_ids: ext } });
  }
  ops.push({
    op: 'insert',
    table: 'Logical_Router',
    row: { name: n.router(net.id), ports: set(routerPorts.map(namedUuid)), static_routes: set(routes.map(namedUuid)), external_ids: ext },
  });
  ops.push({
    op: 'insert',
    table: 'Logical_Switch_Port',
    'uuid-name': 'swrouter',
    row: { name: n.switchRouterPort(net.id), type: 'router', addresses: 'router', options: map({ 'router-port': n.gatewayPort(net.id) }), external_ids: ext },
  });
  for (const [i, s] of net.subnets.entries()) {
    if (s.subnet.includes(':')) continue;
    const options: Record<string, string> = {
      lease_time: String(LEASE_SECONDS),
      server_id: s.gateway,
      server_mac: gwMac,
      // OVN answers DNS sent to the gateway for the names in the switch's DNS row.
      dns_server: s.gateway,
      mtu: String(mtu),
    };
    if (!net.internal) options['router'] = s.gateway;
    ops.push({ op: 'insert', table: 'DHCP_Options', 'uuid-name': `dhcp${i}`, row: { cidr: s.subnet, options: map(options), external_ids: ext } });
  }
  ops.push({ op: 'insert', table: 'DNS', 'uuid-name': 'dns', row: { records: map({}), external_ids: ext } });
  ops.push({
    op: 'insert',
    table: 'Logical_Switch',
    row: { name: n.switch(net.id), ports: set([namedUuid('swrouter')]), dns_records: set([namedUuid('dns')]), external_ids: ext },
  });
  if (!net.internal) {
    ops.push({
      op: 'insert',
      table: 'Logical_Switch_Port',
      'uuid-name': 'trrouter',
      row: { name: n.transitSwitchRouterPort(net.id), type: 'router', addresses: 'router', options: map({ 'router-port': n.transitRouterPort(net.id) }), external_ids: ext },
    });
    // "unknown": the host side's MAC is the kernel's choice, and frames to it must still arrive.
    ops.push({ op: 'insert', table: 'Logical_Switch_Port', 'uuid-name': 'trhost', row: { name: n.transitHostPort(net.id), addresses: 'unknown', external_ids: ext } });
    ops.push({ op: 'insert', table: 'Logical_Switch', row: { name: n.transitSwitch(net.id), ports: set([namedUuid('trrouter'), namedUuid('trhost')]), external_ids: ext } });
  }
  return ops;
}

/** Root rows of a network (the rest is garbage-collected with them, or deleted explicitly). */
export function deleteNetworkOps(netId: string): OvsdbOp[] {
  const w = ownedBy(EXT_NETWORK, netId);
  // Root tables only: ports, routes and health checks are garbage-collected with their owners.
  return ['Logical_Switch', 'Logical_Router', 'DHCP_Options', 'DNS', 'Load_Balancer', 'Port_Group', 'Address_Set'].map((table) => ({ op: 'delete', table, where: w }));
}

/** Selects that tell whether a network's NB rows exist and which DHCP row its endpoints use. */
export function networkLookupOps(netId: string): OvsdbOp[] {
  return [
    { op: 'select', table: 'Logical_Switch', where: byName(ovnNames.switch(netId)), columns: ['_uuid'] },
    { op: 'select', table: 'DHCP_Options', where: ownedBy(EXT_NETWORK, netId), columns: ['_uuid', 'cidr'] },
  ];
}

/** The address column of an endpoint's port: "MAC IP..." (no prefix lengths). */
export function portAddresses(ep: Pick<DriverEndpoint, 'mac' | 'addresses'>): string {
  return [ep.mac, ...ep.addresses.map((a) => a.split('/')[0]!)].join(' ');
}

/**
 * Inserts an endpoint's Logical_Switch_Port (replacing one of the same name: a replay after the
 * addresses changed), with port security and the subnet's DHCP options.
 */
export function upsertEndpointOps(net: DriverNetwork, ep: DriverEndpoint, existing: string | undefined, dhcpUuid: string | undefined): OvsdbOp[] {
  const sw = byName(ovnNames.switch(net.id));
  const addrs = portAddresses(ep);
  const ops: OvsdbOp[] = [];
  if (existing) ops.push({ op: 'mutate', table: 'Logical_Switch', where: sw, mutations: [['ports', 'delete', set([uuid(existing)])]] });
  ops.push({
    op: 'insert',
    table: 'Logical_Switch_Port',
    'uuid-name': 'ep',
    row: {
      name: ovnNames.endpointPort(ep.id),
      addresses: addrs,
      port_security: addrs,
      ...(dhcpUuid ? { dhcpv4_options: uuid(dhcpUuid) } : {}),
      external_ids: map({ [EXT_ENDPOINT]: ep.id, [EXT_NETWORK]: net.id, 'arca-container': ep.containerId }),
    },
  });
  ops.push({ op: 'mutate', table: 'Logical_Switch', where: sw, mutations: [['ports', 'insert', set([namedUuid('ep')])]] });
  // The replaced port's policy port groups hold the new one (weak references drop the old at commit):
  // an endpoint stays governed across a replay, with no window before its plan is applied again.
  if (existing) ops.push({ op: 'mutate', table: 'Port_Group', where: [['ports', 'includes', set([uuid(existing)])]], mutations: [['ports', 'insert', set([namedUuid('ep')])]] });
  return ops;
}

export function selectPortOps(name: string): OvsdbOp[] {
  return [{ op: 'select', table: 'Logical_Switch_Port', where: byName(name), columns: ['_uuid'] }];
}

/** Removes an endpoint's port from its switch (the row goes with the last reference). */
export function deleteEndpointOps(netId: string, portUuid: string): OvsdbOp[] {
  return [{ op: 'mutate', table: 'Logical_Switch', where: byName(ovnNames.switch(netId)), mutations: [['ports', 'delete', set([uuid(portUuid)])]] }];
}

/** Blocks (server side) until ovn-controller has installed the port's flows, or fails after `timeoutMs`. */
export function waitPortUpOps(epId: string, timeoutMs: number): OvsdbOp[] {
  return [{ op: 'wait', table: 'Logical_Switch_Port', where: byName(ovnNames.endpointPort(epId)), columns: ['up'], until: '==', rows: [{ up: true }], timeout: timeoutMs }];
}

/** Rewrites the values of `names` in the network's DNS row: names with no address left are removed. */
export function dnsRecordOps(netId: string, values: Map<string, string>): OvsdbOp[] {
  if (!values.size) return [];
  const present = [...values].filter(([, v]) => v !== '');
  const mutations: Mutation[] = [['records', 'delete', set([...values.keys()])]];
  if (present.length) mutations.push(['records', 'insert', map(Object.fromEntries(present))]);
  return [{ op: 'mutate', table: 'DNS', where: ownedBy(EXT_NETWORK, netId), mutations }];
}
