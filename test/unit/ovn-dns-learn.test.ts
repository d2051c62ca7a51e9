/**
 * The ovn learn path's two parts against a real ovsdb-server: the one-mutation learn of a `dns`
 * peer's address set (with the `nb_cfg` bump), and the chassis report watch that tells when a
 * change is installed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OvsdbClient } from '../../src/ovsdb/ovsdb-client.js';
import { fromMap, fromSet, map, type OvsdbRow } from '../../src/ovsdb/ovsdb-values.js';
import { cfgBumpOps, dnsLearnOp, dnsSetName, EXT_DNS, EXT_EXPIRES, policyRows } from '../../src/network/drivers/ovn/ovn-policies.js';
import { ChassisCfgWatch } from '../../src/network/drivers/ovn/chassis-cfg-watch.js';
import { DNS_PLAN_EP, DNS_PLAN_NET, dnsPeerPlan } from './policies-fixtures.js';
import { OvsdbServerFixture, SB_SCHEMA, ovsdbServerMissing } from './ovsdb-server-fixture.js';

const missing = ovsdbServerMissing();
const NET = DNS_PLAN_NET;
const EP = DNS_PLAN_EP;
const plan = dnsPeerPlan('*.example.com');

describe('ovn dns learn against ovsdb-server', { skip: missing ?? false }, () => {
  let srv: OvsdbServerFixture;
  let c: OvsdbClient;

  before(async () => {
    srv = new OvsdbServerFixture([['sb.db', SB_SCHEMA]]);
    await srv.start();
    c = await OvsdbClient.connect(srv.socket);
    await c.transact('OVN_Northbound', [{ op: 'insert', table: 'NB_Global', row: {} }]);
  });

  after(async () => {
    c?.close();
    await srv?.destroy();
  });

  const setRow = async (fam: 4 | 6): Promise<OvsdbRow | undefined> =>
    (await c.transact('OVN_Northbound', [{ op: 'select', table: 'Address_Set', where: [['name', '==', dnsSetName(NET, '*.example.com', fam)]] }]))[0]?.rows?.[0];

  it('adds to the set the plan made, replaces its expiry times, keeps its other ids, and returns the new nb_cfg', async () => {
    // The set as an apply writes it (empty: nothing learnt yet).
    const v4 = policyRows(NET, plan, new Map([[EP, 'u-1']]), { now: 0 }).addressSets.find((s) => s.name === dnsSetName(NET, '*.example.com', 4))!;
    await c.transact('OVN_Northbound', [{ op: 'insert', table: 'Address_Set', row: { name: v4.name, external_ids: map(v4.ext) } }]);
    const before = (await c.transact('OVN_Northbound', cfgBumpOps()))[1]!.rows![0]!['nb_cfg'] as number;
    const res = await c.transact('OVN_Northbound', [dnsLearnOp(NET, '*.example.com', 4, ['203.0.113.5'], '203.0.113.5=1800000090'), ...cfgBumpOps()]);
    assert.equal(res[0]!.count, 1);
    assert.equal(res[res.length - 1]!.rows![0]!['nb_cfg'], before + 1);
    // A second answer: one more address, the first one's time moved.
    await c.transact('OVN_Northbound', [dnsLearnOp(NET, '*.example.com', 4, ['203.0.113.9'], '203.0.113.5=1800000100,203.0.113.9=1800000100')]);
    const row = (await setRow(4))!;
    assert.deepEqual(fromSet(row['addresses']).sort(), ['203.0.113.5', '203.0.113.9']);
    const ext = fromMap(row['external_ids']);
    assert.equal(ext[EXT_EXPIRES], '203.0.113.5=1800000100,203.0.113.9=1800000100');
    assert.equal(ext[EXT_DNS], '*.example.com');
  });

  it('touches nothing and says so (count 0) when the set does not exist', async () => {
    const res = await c.transact('OVN_Northbound', [dnsLearnOp(NET, '*.example.com', 6, ['2001:db8::5'], '2001:db8::5=1800000090')]);
    assert.equal(res[0]!.count, 0);
    assert.equal(await setRow(6), undefined);
  });

  it('the chassis watch resolves at the value or past it, not before, and not on a report of an older numbering', async () => {
    const sb = 'OVN_Southbound';
    const [ins] = await c.transact(sb, [{ op: 'insert', table: 'Chassis_Private', row: { name: 'ch-1', nb_cfg: 3 } }]);
    assert.ok(ins!.uuid);
    const report = (n: number): Promise<unknown> => c.transact(sb, [{ op: 'update', table: 'Chassis_Private', where: [['name', '==', 'ch-1']], row: { nb_cfg: n } }]);
    const w = new ChassisCfgWatch(srv.socket, 'ch-1');
    try {
      w.issued(3);
      assert.equal(await w.reached(3, 2000), true, 'already reported');
      let settled: boolean | undefined;
      const five = w.reached(5, 5000).then((v) => (settled = v));
      w.issued(5);
      // Another chassis' report and a lower value do not satisfy it.
      await c.transact(sb, [{ op: 'insert', table: 'Chassis_Private', row: { name: 'ch-2', nb_cfg: 9 } }]);
      await report(4);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(settled, undefined);
      // ovn-controller reports a later change at once (two changes, one report): both are done.
      await report(6);
      assert.equal(await five, true);
      assert.equal(await w.reached(6, 1000), true);
      // NB rebuilt: its numbering starts again, and the old report (6) must not count for the new 2.
      w.issued(2);
      let two: boolean | undefined;
      const p = w.reached(2, 5000).then((v) => (two = v));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(two, undefined);
      await report(2);
      assert.equal(await p, true);
      // Never reported: false after the timeout.
      assert.equal(await w.reached(50, 200), false);
    } finally {
      w.close();
    }
  });
});
