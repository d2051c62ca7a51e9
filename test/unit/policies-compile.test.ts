import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compilePlans, compilePorts } from '../../src/network/policies/policy-compile.js';
import { parsePolicies } from '../../src/network/policies/policy-parse.js';
import type { PolicyWorld } from '../../src/network/policies/policy-types.js';
import { fixtureWorld, type FixtureContainer } from './policies-fixtures.js';

const world = (containers: FixtureContainer[]): PolicyWorld => fixtureWorld(containers, ['back', 'front']);

const W = world([
  { name: 'db', labels: { app: 'db' }, on: { back: ['10.2.0.3', 'fd00:2::3'] } },
  { name: 'api', labels: { app: 'api', tier: 'x' }, on: { back: '10.2.0.2', front: '10.1.0.2' } },
  { name: 'web', labels: { app: 'web' }, on: { front: '10.1.0.3' } },
  { name: 'cache', labels: { app: 'db', tier: 'x' }, on: { back: '10.2.0.4' } },
]);

describe('policy compilation', () => {
  it('selects by labels (all), names (any) and both; compiles peers to every address of the matching containers', () => {
    const plans = compilePlans(
      parsePolicies(`
name: db-from-api
network: back
select: {labels: {app: db}, names: [db, other]}
ingress:
  - from: [{labels: {app: api}}]
    ports: [{port: 5432}]
`),
      W,
    );
    assert.deepEqual(plans, [
      {
        networkId: 'net-back',
        policies: ['db-from-api'],
        endpoints: [
          {
            endpointId: 'ep-db-back',
            containerId: 'id-db',
            addresses: ['10.2.0.3', 'fd00:2::3'],
            policies: ['db-from-api'],
            isolatedBy: { ingress: ['db-from-api'] },
            ingress: [
              {
                policy: 'db-from-api',
                index: 0,
                peers: { addrs4: ['10.1.0.2', '10.2.0.2'], addrs6: [], cidrs: [] },
                ports: [{ proto: 'tcp', from: 5432, to: 5432 }],
              },
            ],
          },
        ],
      },
    ]);
  });

  it('an omitted or empty selector selects every endpoint of the network, and only of that network', () => {
    const [plan] = compilePlans(parsePolicies('name: iso\nnetwork: back\nselect: {}\ningress: []\n'), W);
    assert.deepEqual(plan!.endpoints.map((e) => [e.endpointId, e.ingress, e.egress]), [
      ['ep-api-back', [], undefined],
      ['ep-cache-back', [], undefined],
      ['ep-db-back', [], undefined],
    ]);
    assert.equal(compilePlans(parsePolicies('name: iso\nnetwork: back\n'), W)[0]!.endpoints.length, 3);
  });

  it('isolates per direction only for the keys present; no key, no isolation (but still selected)', () => {
    const [plan] = compilePlans(
      parsePolicies('name: out\nnetwork: back\nselect: {names: [db]}\negress: [{ports: [{proto: udp, port: 53}]}]\n---\nname: sel\nnetwork: back\nselect: {names: [cache]}\n'),
      W,
    );
    const db = plan!.endpoints.find((e) => e.containerId === 'id-db')!;
    assert.equal(db.ingress, undefined);
    assert.deepEqual(db.egress, [{ policy: 'out', index: 0, peers: 'any', ports: [{ proto: 'udp', from: 53, to: 53 }] }]);
    const cache = plan!.endpoints.find((e) => e.containerId === 'id-cache')!;
    assert.deepEqual([cache.policies, cache.isolatedBy, cache.ingress, cache.egress], [['sel'], undefined, undefined, undefined]);
  });

  it('unites the rules of every selecting policy, ordered by policy name then rule index', () => {
    const [plan] = compilePlans(
      parsePolicies(`
- {name: z-second, network: back, select: {labels: {app: db}}, ingress: [{ports: [{port: 2}]}, {ports: [{port: 3}]}]}
- {name: a-first, network: back, select: {names: [db]}, ingress: [{ports: [{port: 1}]}]}
- {name: m-egress, network: back, select: {names: [db]}, egress: []}
`),
      W,
    );
    const db = plan!.endpoints.find((e) => e.containerId === 'id-db')!;
    assert.deepEqual(db.policies, ['a-first', 'm-egress', 'z-second']);
    assert.deepEqual(db.ingress!.map((r) => [r.policy, r.index, r.ports]), [
      ['a-first', 0, [{ proto: 'tcp', from: 1, to: 1 }]],
      ['z-second', 0, [{ proto: 'tcp', from: 2, to: 2 }]],
      ['z-second', 1, [{ proto: 'tcp', from: 3, to: 3 }]],
    ]);
    assert.deepEqual(db.egress, []);
    assert.deepEqual(db.isolatedBy, { ingress: ['a-first', 'z-second'], egress: ['m-egress'] });
    assert.deepEqual(plan!.policies, ['a-first', 'm-egress', 'z-second']);
  });

  it('network peers: every container with an endpoint there, by all of its addresses; AND with a selector in one peer', () => {
    const [plan] = compilePlans(
      parsePolicies(`
name: p
network: back
select: {names: [db]}
ingress:
  - from: [{network: front}]
  - from: [{network: front, labels: {app: web}}]
`),
      W,
    );
    const [r0, r1] = plan!.endpoints[0]!.ingress!;
    assert.deepEqual(r0!.peers, { addrs4: ['10.1.0.2', '10.1.0.3', '10.2.0.2'], addrs6: [], cidrs: [] });
    assert.deepEqual(r1!.peers, { addrs4: ['10.1.0.3'], addrs6: [], cidrs: [] });
  });

  it('cidr peers with their holes, sorted, identical ones merged; IPv6 addresses apart', () => {
    const [plan] = compilePlans(
      parsePolicies(`
name: p
network: back
select: {names: [api]}
egress:
  - to:
      - {cidr: 192.0.2.0/24, except: [192.0.2.128/25, 192.0.2.0/30]}
      - {cidr: 10.0.0.0/8}
      - {cidr: 10.0.0.0/8}
      - {cidr: "2001:db8::/32"}
      - {names: [db]}
`),
      W,
    );
    assert.deepEqual(plan!.endpoints[0]!.egress![0]!.peers, {
      addrs4: ['10.2.0.3'],
      addrs6: ['fd00:2::3'],
      cidrs: [
        { cidr: '10.0.0.0/8', except: [] },
        { cidr: '192.0.2.0/24', except: ['192.0.2.0/30', '192.0.2.128/25'] },
        { cidr: '2001:db8::/32', except: [] },
      ],
    });
  });

  it('a peer matching nothing compiles to an empty set (allows nothing), not to any', () => {
    const [plan] = compilePlans(parsePolicies('name: p\nnetwork: back\nselect: {names: [db]}\ningress: [{from: [{names: [ghost]}]}]\n'), W);
    assert.deepEqual(plan!.endpoints[0]!.ingress![0]!.peers, { addrs4: [], addrs6: [], cidrs: [] });
  });

  it('service selectors match the compose labels', () => {
    const w = world([
      { name: 'shop_db_1', labels: { 'com.docker.compose.service': 'db', 'com.docker.compose.project': 'shop' }, on: { back: '10.2.0.9' } },
      { name: 'other_db_1', labels: { 'com.docker.compose.service': 'db', 'com.docker.compose.project': 'other' }, on: { back: '10.2.0.8' } },
    ]);
    const docs = parsePolicies('services: {}\nnetworks: {b: {name: back}}\nx-arca-policies: [{name: p, network: b, select: {service: db}, ingress: []}]\n', { project: 'shop' });
    const [plan] = compilePlans(docs, w);
    assert.deepEqual(plan!.endpoints.map((e) => e.containerId), ['id-shop_db_1']);
  });

  it('policies of absent networks produce no plan; plans come sorted by network id', () => {
    const plans = compilePlans(parsePolicies('- {name: a, network: front, ingress: []}\n- {name: b, network: nowhere}\n- {name: c, network: back}\n'), W);
    assert.deepEqual(plans.map((p) => [p.networkId, p.policies]), [
      ['net-back', ['c']],
      ['net-front', ['a']],
    ]);
    assert.deepEqual(compilePlans([], W), []);
  });

  it('is deterministic whatever the order of its inputs', () => {
    const docs = parsePolicies('- {name: a, network: back, ingress: [{from: [{labels: {tier: x}}]}]}\n- {name: b, network: back, select: {names: [db]}, egress: [{to: [{network: front}]}]}\n');
    const shuffled: PolicyWorld = { networks: [...W.networks].reverse(), endpoints: [...W.endpoints].reverse() };
    assert.deepEqual(compilePlans([...docs].reverse(), shuffled), compilePlans(docs, W));
  });
});

describe('port compilation', () => {
  it('merges overlapping and adjacent ranges per protocol; no port is the whole protocol', () => {
    assert.equal(compilePorts(undefined), 'any');
    assert.deepEqual(
      compilePorts([
        { proto: 'udp', port: 53 },
        { proto: 'tcp', port: '8000-8100' },
        { proto: 'tcp', port: 80 },
        { proto: 'tcp', port: '8050-8200' },
        { proto: 'tcp', port: 81 },
        { proto: 'sctp' },
        { proto: 'udp', port: '1-65535' },
      ]),
      [
        { proto: 'sctp', from: 1, to: 65535 },
        { proto: 'tcp', from: 80, to: 81 },
        { proto: 'tcp', from: 8000, to: 8200 },
        { proto: 'udp', from: 1, to: 65535 },
      ],
    );
  });
});
