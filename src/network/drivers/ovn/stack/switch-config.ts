import { run } from '../../../../sys/runner.js';
import type { StackLayout } from './stack-layout.js';

/** The integration bridge ovn-controller programs. */
export const BRIDGE = 'br-int';

/**
 * Writes the Open_vSwitch configuration the stack needs, idempotently, before vswitchd and
 * ovn-controller start (userspace TSO is read only at vswitchd's start: without it TCP over veth
 * ports is silently dropped, see the reference's pitfall 1). br-int is made here, netdev and
 * fail-secure: left to ovn-controller it would be made on the kernel datapath, which is absent.
 * Runs only at start-up and after the database server was restarted, never on a hot path.
 */
export async function configureSwitch(layout: StackLayout, chassis: string): Promise<void> {
  const ids = {
    'system-id': chassis,
    'ovn-remote': `unix:${layout.sbSocket}`,
    'ovn-encap-type': 'geneve',
    'ovn-encap-ip': '127.0.0.1',
    'ovn-bridge': BRIDGE,
    'ovn-bridge-datapath-type': 'netdev',
  };
  await run(
    [
      'ovs-vsctl',
      `--db=unix:${layout.ovsSocket}`,
      '--no-wait',
      '--timeout=10',
      '--',
      'init',
      '--',
      'set',
      'Open_vSwitch',
      '.',
      ...Object.entries(ids).map(([k, v]) => `external_ids:${k}="${v}"`),
      'other_config:userspace-tso-enable=true',
      '--',
      '--may-exist',
      'add-br',
      BRIDGE,
      '--',
      'set',
      'Bridge',
      BRIDGE,
      'datapath_type=netdev',
      'fail_mode=secure',
    ],
    { env: layout.env() },
  );
}

/** Waits until ovn-controller has registered its Chassis row in the southbound database. */
export async function waitForChassis(layout: StackLayout, chassis: string, timeoutMs: number): Promise<void> {
  await run(['ovn-sbctl', `--db=unix:${layout.sbSocket}`, `--timeout=${Math.ceil(timeoutMs / 1000)}`, 'wait-until', 'Chassis', chassis], {
    env: layout.env(),
    timeoutMs: timeoutMs + 1000,
  });
}

/** OpenFlow flows on br-int and logical flows in the southbound database (for `arca doctor`). */
export async function countFlows(layout: StackLayout): Promise<{ openflow: number; logical: number }> {
  const env = layout.env();
  const [of, lf] = await Promise.all([
    run(['ovs-ofctl', 'dump-aggregate', BRIDGE], { env, timeoutMs: 5000 }),
    run(['ovn-sbctl', `--db=unix:${layout.sbSocket}`, '--timeout=5', '--bare', '--columns=_uuid', 'list', 'Logical_Flow'], { env, timeoutMs: 6000 }),
  ]);
  const m = /flow_count=([0-9]+)/.exec(of.stdout);
  return { openflow: m ? Number(m[1]) : 0, logical: lf.stdout.split('\n').filter((l) => l.trim()).length };
}
