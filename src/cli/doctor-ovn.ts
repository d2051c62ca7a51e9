/**
 * `arca doctor`'s checks of the OVN stack (the `ovn` driver): whether Open vSwitch and OVN are
 * installed, with their versions, and how the stack of the daemon with this root is doing, read
 * from its pidfiles and sockets (nothing is started). Both are optional: without OVN every other
 * driver works.
 */
import { join } from 'node:path';
import { OvnStack, stackOptionsFor } from '../network/drivers/ovn/stack/ovn-stack.js';
import type { CheckResult } from './doctor.js';

const INSTALL = 'apt-get install openvswitch-switch ovn-central ovn-host (or run scripts/setup.sh)';

export async function ovnChecks(root: string, execRoot: string): Promise<CheckResult[]> {
  const missing = OvnStack.missing();
  if (missing) return [{ status: 'warn', text: `OVN (ovn driver, optional): ${missing}`, fix: INSTALL }];
  const opts = stackOptionsFor(root, execRoot);
  let report: Awaited<ReturnType<OvnStack['report']>>;
  try {
    report = await new OvnStack(opts).report();
  } catch (e) {
    return [{ status: 'warn', text: `OVN stack: cannot read its state: ${e instanceof Error ? e.message : String(e)}` }];
  }
  const v = report.versions;
  const out: CheckResult[] = [
    { status: 'ok', text: `Open vSwitch ${v['ovs-vswitchd'] ?? '?'}, OVN ${v['ovn-controller'] ?? '?'} (ovn driver)` },
  ];
  const st = report.status;
  const logs = join(opts.stateDir, 'logs');
  if (st.state === 'stopped') {
    out.push({ status: 'ok', text: `OVN stack of ${root}: not running (the daemon starts it with the first ovn network)` });
  } else if (st.state === 'running') {
    const flows = report.flows ? `, ${report.flows.openflow} OpenFlow flows, ${report.flows.logical} logical flows` : '';
    out.push({ status: 'ok', text: `OVN stack of ${root}: running, ${st.processes.length} processes${flows}` });
  } else {
    out.push({
      status: 'warn',
      text: `OVN stack of ${root}: ${st.state}${st.reason ? ` (${st.reason})` : ''}`,
      fix: `the daemon restarts its processes while it runs: start it, or read ${logs}`,
    });
  }
  return out;
}
