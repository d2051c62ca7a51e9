import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PRIO_ALLOW, PRIO_DROP, peersMatch, policyDiffOps, policyRows, portsMatch, type AddressSetSpec } from '../../src/network/drivers/ovn/ovn-policies.js';
import type { NetworkPolicyPlan } from '../../src/network/policies/policy-types.js';

const NET = 'a1b2c3d4e5f6'.padEnd(64, '0');
const EP1 = '1'.repeat(64);
const EP2 = '2'.repeat(64);
const EP3 = '3'.repeat(64);

const plan: NetworkPolicyPlan = {
  networkId: NET,
  policies: ['db', 'web-out'],
  endpoints: [
    {
      endpointId: EP1,
      containerId: 'c1',
      addresses: ['10.0.0.2'],
      policies: ['db'],
      ingress: [{ policy: 'db', index: 0, peers: { addrs4: ['10.0.0.3'], addrs6: ['fd00::3'], cidrs: [] }, ports: [{ proto: 'tcp', from: 5432, to: 5432 }] }],
    },
    {
      endpointId: EP2,
      containerId: 'c2',
      addresses: ['10.0.0.3'],
      policies: ['web-out'],
      egress: [{ policy: 'web-out', index: 0, peers: { addrs4: [], addrs6: [], cidrs: [{ cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }] }, ports: 'any' }],
    },
    // Its port is not written yet: left out until it is.
    { endpointId: EP3, containerId: 'c3', addresses: ['10.0.0.4'], policies: ['db'], ingress: [] },
  ],
};
const lsps = new Map([
  [EP1, 'u-1'],
  [EP2, 'u-2'],
]);

/** OVN refuses `&&` and `||` side by side without parentheses: check every parenthesised level. */
function mixesWithoutParens(match: string): boolean {
  const levels: string[] = [''];
  for (const ch of match) {
    if (ch === '(' || ch === '{') levels.push('');
    else if (ch === ')' || ch === '}') {
      const inner = levels.pop()!;
      if (inner.includes('&&') && inner.includes('||')) return true;
    } else levels[levels.length - 1] += ch;
  }
  const top = levels[0]!;
  return top.includes('&&') && top.includes('||');
}

describe('ovn policy rows', () => {
  it('writes ports per protocol, as sets and ranges', () => {
    assert.equal(portsMatch('any'), '');
    assert.equal(portsMatch([{ proto: 'tcp', from: 80, to: 80 }]), 'tcp.dst == 80');
    assert.equal(
      portsMatch([
        { proto: 'tcp', from: 443, to: 443 },
        { proto: 'tcp', from: 80, to: 80 },
        { proto: 'udp', from: 8000, to: 8100 },
      ]),
      '(tcp.dst == {80, 443} || 8000 <= udp.dst <= 8100)',
    );
    assert.equal(portsMatch([{ proto: 'sctp', from: 1, to: 65535 }]), 'sctp');
  });

  it('writes peers as address sets and CIDRs with holes, by direction', () => {
    const sets: AddressSetSpec[] = [];
    const m = peersMatch({ addrs4: ['10.0.0.3'], addrs6: [], cidrs: [{ cidr: '192.168.0.0/16', except: ['192.168.1.0/24', 'fd00::/8'] }] }, 'egress', 'as', {}, sets);
    assert.equal(m, '(ip4.dst == $as_4 || (ip4.dst == 192.168.0.0/16 && ip4.dst != {192.168.1.0/24}))');
    assert.deepEqual(
      sets.map((s) => [s.name, s.addresses]),
      [['as_4', ['10.0.0.3']]],
    );
    assert.equal(peersMatch('any', 'ingress', 'as', {}, []), '');
    assert.equal(peersMatch({ addrs4: [], addrs6: [], cidrs: [] }, 'ingress', 'as', {}, []), undefined, 'no address: the rule matches nothing');
  });

  it('makes a port group per policy with its allows and per direction an isolated group with drop, ARP/ND and DHCP', () => {
    const rows = policyRows(NET, plan, lsps);
    for (const pg of rows.portGroups) {
      assert.match(pg.name, /^[a-zA-Z_.][a-zA-Z_.0-9]*$/);
      for (const a of pg.acls) {
        assert.ok(!mixesWithoutParens(a.match), a.match);
        assert.ok(a.name.length <= 63);
        assert.equal(a.ext['arca-network'], NET);
      }
    }
    const byPolicy = (p: string) => rows.portGroups.filter((g) => g.ext['arca-policy'] === p);
    const [db, dbIso] = byPolicy('db');
    assert.deepEqual(db!.ports, ['u-1'], 'an endpoint without a port is left out');
    assert.equal(db!.acls.length, 1);
    assert.equal(db!.acls[0]!.direction, 'to-lport');
    assert.equal(db!.acls[0]!.action, 'allow-related');
    assert.equal(db!.acls[0]!.priority, PRIO_ALLOW);
    assert.match(db!.acls[0]!.match, /^outport == @\S+ && \(ip4\.src == \$\S+_4 \|\| ip6\.src == \$\S+_6\) && tcp\.dst == 5432$/);
    assert.deepEqual(
      dbIso!.acls.map((a) => [a.key, a.action, a.priority]),
      [
        ['drop', 'drop', PRIO_DROP],
        ['arp', 'allow', PRIO_ALLOW],
        ['nd', 'allow-related', PRIO_ALLOW],
      ],
    );
    const [out, outIso] = byPolicy('web-out');
    assert.equal(out!.acls[0]!.direction, 'from-lport');
    assert.deepEqual(out!.acls[0]!.options, { 'apply-after-lb': 'true' });
    assert.match(out!.acls[0]!.match, /^inport == @\S+ && \(ip4\.dst == 0\.0\.0\.0\/0 && ip4\.dst != \{10\.0\.0\.0\/8\}\)$/);
    assert.deepEqual(
      outIso!.acls.map((a) => a.key),
      ['drop', 'arp', 'nd', 'dhcp'],
    );
    assert.deepEqual(
      rows.addressSets.map((s) => s.addresses),
      [['10.0.0.3'], ['fd00::3']],
    );
  });

  it('lets hairpin traffic (source: a VIP of the network) into ingress-isolated ports only', () => {
    const rows = policyRows(NET, plan, lsps, { hairpinSources: ['10.0.0.200', '10.0.0.201'] });
    const hairpin = rows.portGroups.flatMap((g) => g.acls.filter((a) => a.key === 'hairpin'));
    assert.equal(hairpin.length, 1, 'the ingress-isolated group of db only');
    assert.match(hairpin[0]!.match, /^outport == @\S+ && ip4\.src == \{10\.0\.0\.200, 10\.0\.0\.201\}$/);
    assert.equal(hairpin[0]!.action, 'allow-related');
  });

  it('an empty plan against nothing writes nothing; against rows deletes them', () => {
    const empty = { portGroups: [], acls: new Map(), addressSets: [], lsps: new Map() };
    assert.deepEqual(policyDiffOps(empty, policyRows(NET, { networkId: NET, policies: [], endpoints: [] }, lsps)), []);
    const have = { ...empty, portGroups: [{ _uuid: ['uuid', 'pg-1'] as ['uuid', string], name: 'x', ports: ['set', []] as ['set', []], acls: ['set', []] as ['set', []], external_ids: ['map', []] as ['map', []] }] };
    assert.deepEqual(policyDiffOps(have, { portGroups: [], addressSets: [] }), [{ op: 'delete', table: 'Port_Group', where: [['_uuid', '==', ['uuid', 'pg-1']]] }]);
  });
});
