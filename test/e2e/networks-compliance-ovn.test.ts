/** The `ovn` driver passes the shared driver compliance suite, unchanged. */
import { spawnSync } from 'node:child_process';
import { runDriverCompliance } from './driver-compliance.js';

const ovnInstalled = spawnSync('which', ['ovsdb-server', 'ovn-northd', 'ovn-controller', 'ovs-vswitchd']).status === 0;

runDriverCompliance('ovn', {
  // The network's transit link in the daemon's namespace (internal networks have none).
  hostLinksOf: (id) => [`on${id.slice(0, 12)}`],
  skip: ovnInstalled ? undefined : 'OVN is not installed (Debian packages openvswitch-switch, ovn-central, ovn-host; scripts/setup.sh installs them)',
});
