/**
 * A network's transit veth: `on<id12>` in the daemon's namespace ↔ `ot<id12>` in the switch's,
 * where it is an OVS port bound to the transit switch. The daemon side carries the same two
 * addresses on every network (each link is a segment of its own) and routes the network's
 * subnets to its router with `onlink`, so no per-network transit addresses need allocating.
 */
import type { LinkOps } from '../../link-ops.js';
import { TRANSIT, ovnNames } from './ovn-names.js';
import type { DriverNetwork } from '../../driver.js';

export async function ensureTransit(hostOps: LinkOps, switchOps: LinkOps, switchNs: string, net: DriverNetwork, mtu: number): Promise<void> {
  const host = ovnNames.transitHostVeth(net.id);
  const links = await hostOps.links();
  if (!links.some((l) => l.name === host)) {
    await hostOps.addVeth({ hostName: host, ns: switchNs, peerName: ovnNames.transitSwitchVeth(net.id), mtu });
    // Not at creation: a veth cannot come up before its peer exists (ENOTCONN).
    await switchOps.setUp(ovnNames.transitSwitchVeth(net.id));
  }
  await hostOps.configureHostLink(
    host,
    [`${TRANSIT.host4}/32`, `${TRANSIT.host6}/128`],
    net.subnets.map((s) => ({ prefix: s.subnet, via: s.subnet.includes(':') ? TRANSIT.router6 : TRANSIT.router4 })),
  );
}
