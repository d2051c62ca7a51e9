/** The `ovn` driver passes the shared driver compliance suite, unchanged. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { runDriverCompliance } from './driver-compliance.js';

const ovnInstalled = spawnSync('which', ['ovsdb-server', 'ovn-northd', 'ovn-controller', 'ovs-vswitchd']).status === 0;

/** NB rows still tagged with a removed network's id (switches, routers, DHCP, DNS, load balancers). */
const NB_TABLES = ['Logical_Switch', 'Logical_Router', 'DHCP_Options', 'DNS', 'Load_Balancer'];

runDriverCompliance('ovn', {
  // The network's transit link in the daemon's namespace (internal networks have none).
  hostLinksOf: (id) => [`on${id.slice(0, 12)}`],
  leftoversOf: (d, ids) =>
    ids.flatMap((id) =>
      NB_TABLES.flatMap((table) => {
        const r = spawnSync('ovn-nbctl', [`--db=unix:${join(d.execRoot, 'ovn', 'ovnnb_db.sock')}`, '--bare', '--columns=_uuid', 'find', table, `external_ids:arca-network=${id}`], {
          encoding: 'utf8',
        });
        if (r.status !== 0) return [`ovn-nbctl find ${table}: ${r.stderr.trim()}`];
        return r.stdout.split('\n').filter(Boolean).map((u) => `${table} ${u} of network ${id.slice(0, 12)}`);
      }),
    ),
  skip: ovnInstalled ? undefined : 'OVN is not installed (Debian packages openvswitch-switch, ovn-central, ovn-host; scripts/setup.sh installs them)',
});
