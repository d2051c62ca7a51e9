import { OvsdbClient } from '../../../../ovsdb/ovsdb-client.js';
import { map, namedUuid, set, type Mutation, type OvsdbOp } from '../../../../ovsdb/ovsdb-values.js';
import { run } from '../../../../sys/runner.js';
import type { StackLayout } from './stack-layout.js';

/** The integration bridge ovn-controller programs. */
export const BRIDGE = 'br-int';

const CALL_TIMEOUT_MS = 5000;

/** Opens a connection for one short exchange, always closed after. */
async function withClient<T>(socket: string, fn: (c: OvsdbClient) => Promise<T>): Promise<T> {
  const c = await OvsdbClient.connect(socket, { timeoutMs: CALL_TIMEOUT_MS });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/**
 * Writes the Open_vSwitch configuration the stack needs, idempotently, before vswitchd and
 * ovn-controller start (userspace TSO is read only at vswitchd's start: without it TCP over veth
 * ports is silently dropped, see the reference's pitfall 1). br-int is made here, netdev and
 * fail-secure: left to ovn-controller it would be made on the kernel datapath, which is absent.
 * Runs at start-up and after the database server was restarted, never on a hot path.
 */
export async function configureSwitch(layout: StackLayout, chassis: string): Promise<void> {
  const ids: Record<string, string> = {
    'system-id': chassis,
    'ovn-remote': `unix:${layout.sbSocket}`,
    'ovn-encap-type': 'geneve',
    'ovn-encap-ip': '127.0.0.1',
    'ovn-bridge': BRIDGE,
    'ovn-bridge-datapath-type': 'netdev',
  };
  // Nothing else is tuned on purpose. Ping RTT grows with the number of ports (0.3 ms at 2, 4-10 ms
  // at 300, 13-32 ms at 1500 on this loaded 2-core box) because every main-loop wake-up polls every
  // AF_PACKET port, and each poll allocates a 32-packet batch (and touches 32 TSO buffers). That
  // loop is fixed code in OVS 3.1: stats-update-interval, max-idle, n-handler/revalidator-threads,
  // pmd-cpu-mask, emc/smc and mac-aging-time all measured within noise.
  // Turning TSO off halves the RTT but breaks TCP unless tx offload is off in every container, and
  // then TCP drops about tenfold.
  const other: Record<string, string> = { 'userspace-tso-enable': 'true' };
  await withClient(layout.ovsSocket, async (c) => {
    const [root, bridge] = await c.transact('Open_vSwitch', [
      { op: 'select', table: 'Open_vSwitch', where: [], columns: ['_uuid'] },
      { op: 'select', table: 'Bridge', where: [['name', '==', BRIDGE]], columns: ['_uuid'] },
    ]);
    const ops: OvsdbOp[] = [];
    const haveBridge = (bridge?.rows?.length ?? 0) > 0;
    if (haveBridge) {
      ops.push({ op: 'update', table: 'Bridge', where: [['name', '==', BRIDGE]], row: { datapath_type: 'netdev', fail_mode: 'secure' } });
    } else {
      // A bridge needs its own internal port and interface of the same name (what `ovs-vsctl add-br` makes).
      ops.push(
        { op: 'insert', table: 'Interface', row: { name: BRIDGE, type: 'internal' }, 'uuid-name': 'iface' },
        { op: 'insert', table: 'Port', row: { name: BRIDGE, interfaces: namedUuid('iface') }, 'uuid-name': 'port' },
        { op: 'insert', table: 'Bridge', row: { name: BRIDGE, ports: namedUuid('port'), datapath_type: 'netdev', fail_mode: 'secure' }, 'uuid-name': 'br' },
      );
    }
    if ((root?.rows?.length ?? 0) === 0) {
      ops.push({
        op: 'insert',
        table: 'Open_vSwitch',
        row: { external_ids: map(ids), other_config: map(other), ...(haveBridge ? {} : { bridges: set([namedUuid('br')]) }) },
      });
    } else {
      // Our keys replaced, anything else another writer put there kept.
      ops.push({
        op: 'mutate',
        table: 'Open_vSwitch',
        where: [],
        mutations: [
          ['external_ids', 'delete', set(Object.keys(ids))],
          ['external_ids', 'insert', map(ids)],
          ['other_config', 'delete', set(Object.keys(other))],
          ['other_config', 'insert', map(other)],
          ...(haveBridge ? [] : [['bridges', 'insert', set([namedUuid('br')])] satisfies Mutation]),
        ],
      });
    }
    await c.transact('Open_vSwitch', ops);
  });
}

/** Waits (on the server, one call) until ovn-controller has registered its Chassis row in the southbound database. */
export async function waitForChassis(layout: StackLayout, chassis: string, timeoutMs: number): Promise<void> {
  await withClient(layout.sbSocket, (c) =>
    c.transact('OVN_Southbound', [
      { op: 'wait', table: 'Chassis', where: [['name', '==', chassis]], columns: ['name'], until: '==', rows: [{ name: chassis }], timeout: timeoutMs },
    ]),
  );
}

/** Whether a database server answers on its socket (an echo round trip). */
export async function answers(socket: string): Promise<boolean> {
  return withClient(socket, (c) => c.echo()).then(
    () => true,
    () => false,
  );
}

/** OpenFlow flows on br-int and logical flows in the southbound database (for `arca doctor`). */
export async function countFlows(layout: StackLayout): Promise<{ openflow: number; logical: number }> {
  const [of, logical] = await Promise.all([
    // OpenFlow is not OVSDB: vswitchd's own tool asks br-int.mgmt (found through OVS_RUNDIR).
    run(['ovs-ofctl', 'dump-aggregate', BRIDGE], { env: layout.env(), timeoutMs: CALL_TIMEOUT_MS }),
    withClient(layout.sbSocket, (c) => c.transact('OVN_Southbound', [{ op: 'select', table: 'Logical_Flow', where: [], columns: ['_uuid'] }])),
  ]);
  const m = /flow_count=([0-9]+)/.exec(of.stdout);
  return { openflow: m ? Number(m[1]) : 0, logical: logical[0]?.rows?.length ?? 0 };
}
