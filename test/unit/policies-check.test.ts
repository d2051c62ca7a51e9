import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidParameter, NotFound } from '../../src/errors.js';
import { checkConnection, type CheckQuery } from '../../src/network/policies/policy-check.js';
import { parsePolicies } from '../../src/network/policies/policy-parse.js';
import type { PolicyWorld } from '../../src/network/policies/policy-types.js';
import { fixtureWorld, type FixtureContainer } from './policies-fixtures.js';

const world = (containers: FixtureContainer[]): PolicyWorld => fixtureWorld(containers, ['back', 'front', 'other']);

const W = world([
  { name: 'db', labels: { app: 'db' }, on: { back: ['10.2.0.3', 'fd00:2::3'] } },
  { name: 'api', labels: { app: 'api' }, on: { back: ['10.2.0.2', 'fd00:2::2'], front: '10.1.0.2' } },
  { name: 'web', labels: { app: 'web' }, on: { front: '10.1.0.3' } },
  { name: 'cache', labels: { app: 'cache' }, on: { back: '10.2.0.4' } },
  { name: 'lone', on: { other: '10.3.0.2' } },
]);

const POLICIES = parsePolicies(`
name: db-from-api
network: back
select: {labels: {app: db}}
ingress:
  - from: [{labels: {app: api}}]
    ports: [{port: 5432}]
  - from: [{network: front}]
    ports: [{proto: udp, port: "8000-8100"}]
---
name: api-out
network: back
select: {names: [api]}
egress:
  - to: [{names: [db]}]
  - to: [{cidr: 192.0.2.0/24, except: [192.0.2.128/25]}]
    ports: [{port: 443}]
---
name: cache-closed
network: back
select: {names: [cache]}
ingress: []
egress: []
`);

const q = (fromContainer: string, to: CheckQuery['to'], port: number, proto: CheckQuery['proto'] = 'tcp'): CheckQuery => ({ fromContainer, to, proto, port });

describe('policy check', () => {
  it('allows when both ends allow, naming the allowing rules of both sides', () => {
    const r = checkConnection(POLICIES, W, q('api', { container: 'db' }, 5432));
    assert.deepEqual(r, {
      allowed: true,
      decidedBy: [
        { policy: 'api-out', direction: 'egress', rule: 0 },
        { policy: 'db-from-api', direction: 'ingress', rule: 0 },
      ],
      reason: 'allowed on "back": egress of "api" allowed by api-out egress[0]; ingress of "db" allowed by db-from-api ingress[0]',
    });
  });

  it('denies on the destination\'s ingress, naming the isolating policy, the port and the source address', () => {
    const r = checkConnection(POLICIES, W, q('api', { container: 'db' }, 80));
    assert.deepEqual(r, {
      allowed: false,
      decidedBy: [{ policy: 'db-from-api', direction: 'ingress' }],
      reason: 'denied on "back": ingress of "db" is isolated by db-from-api and no rule allows tcp/80 from "api" (10.2.0.2)',
    });
  });

  it('denies on the source\'s egress (the destination not isolated)', () => {
    const r = checkConnection(POLICIES, W, q('api', { container: 'cache' }, 6379));
    assert.equal(r.allowed, false);
    assert.deepEqual(r.decidedBy, [
      { policy: 'api-out', direction: 'egress' },
      { policy: 'cache-closed', direction: 'ingress' },
    ]);
    assert.equal(
      r.reason,
      'denied on "back": egress of "api" is isolated by api-out and no rule allows tcp/6379 to "cache" (10.2.0.4); ingress of "cache" is isolated by cache-closed and no rule allows tcp/6379 from "api" (10.2.0.2)',
    );
  });

  it('endpoints no policy selects are open; protocol and range matter', () => {
    assert.deepEqual(checkConnection(POLICIES, W, q('web', { container: 'api' }, 1)), {
      allowed: true,
      decidedBy: [],
      reason: 'allowed on "front": egress of "web" is not isolated; ingress of "api" is not isolated',
    });
    assert.equal(checkConnection(POLICIES, W, q('db', { container: 'cache' }, 1)).allowed, false);
    // db's ingress: udp 8000-8100 from anything on front, i.e. api by any of its addresses.
    assert.equal(checkConnection(POLICIES, W, q('api', { container: 'db' }, 8050, 'udp')).allowed, true);
    assert.equal(checkConnection(POLICIES, W, q('api', { container: 'db' }, 8101, 'udp')).allowed, false);
    assert.equal(checkConnection(POLICIES, W, q('api', { container: 'db' }, 8050, 'tcp')).allowed, false);
    assert.equal(checkConnection(POLICIES, W, q('cache', { container: 'db' }, 5432)).allowed, false);
  });

  it('an address destination: a container\'s picks its endpoint; IPv6 is checked on its own addresses', () => {
    assert.equal(checkConnection(POLICIES, W, q('api', { address: 'fd00:2::3' }, 5432)).allowed, true);
    const r = checkConnection(POLICIES, W, q('cache', { address: '10.2.0.3' }, 5432));
    assert.equal(r.allowed, false);
    assert.match(r.reason, /from "cache" \(10\.2\.0\.4\)$/);
  });

  it('outside addresses consult only the source\'s egress, with cidr holes', () => {
    assert.deepEqual(checkConnection(POLICIES, W, q('api', { address: '192.0.2.10' }, 443)).decidedBy, [
      { policy: 'api-out', direction: 'egress', rule: 1 },
    ]);
    const hole = checkConnection(POLICIES, W, q('api', { address: '192.0.2.200' }, 443));
    assert.equal(hole.allowed, false);
    assert.match(hole.reason, /no rule allows tcp\/443 to 192\.0\.2\.200/);
    // api is on two networks: its egress on back is isolated, on front not: both must allow.
    assert.equal(checkConnection(POLICIES, W, q('api', { address: '198.51.100.1' }, 443)).allowed, false);
    assert.deepEqual(checkConnection(POLICIES, W, q('db', { address: '198.51.100.1' }, 443)), {
      allowed: true,
      decidedBy: [],
      reason: 'allowed on "back": egress of "db" is not isolated',
    });
  });

  it('says so when the two share no network, or the address is on a network the source is not on', () => {
    assert.deepEqual(checkConnection(POLICIES, W, q('web', { container: 'db' }, 5432)), {
      allowed: false,
      decidedBy: [],
      reason: 'denied: "web" and "db" share no network ("web" is on "front", "db" on "back")',
    });
    assert.equal(
      checkConnection(POLICIES, W, q('lone', { address: '10.2.0.3' }, 5432)).reason,
      'denied: "lone" is not on network "back" of "db" (10.2.0.3); it is on "other"',
    );
  });

  it('a container destination shared on several networks must be allowed on each', () => {
    const w = world([
      { name: 'a', on: { back: '10.2.0.10', front: '10.1.0.10' } },
      { name: 'b', on: { back: '10.2.0.11', front: '10.1.0.11' } },
    ]);
    const docs = parsePolicies('name: only-back\nnetwork: back\nselect: {names: [b]}\ningress: []\n');
    const r = checkConnection(docs, w, q('a', { container: 'b' }, 80));
    assert.equal(r.allowed, false);
    assert.match(r.reason, /^denied \(the networks disagree\): denied on "back": .*; allowed on "front": /);
    assert.equal(checkConnection(docs, w, q('a', { address: '10.1.0.11' }, 80)).allowed, true);
  });

  it('finds containers by id, id prefix, name, /name; refuses unknown ones and bad input', () => {
    assert.equal(checkConnection(POLICIES, W, q('id-api', { container: '/db' }, 5432)).allowed, true);
    assert.equal(checkConnection(POLICIES, W, q('id-ap', { container: 'id-d' }, 5432)).allowed, true);
    assert.throws(() => checkConnection(POLICIES, W, q('ghost', { container: 'db' }, 1)), NotFound);
    assert.throws(() => checkConnection(POLICIES, W, q('id-', { container: 'db' }, 1)), /multiple IDs found with provided prefix: id-/);
    assert.throws(() => checkConnection(POLICIES, W, q('api', { address: 'db.example' }, 1)), InvalidParameter);
    assert.throws(() => checkConnection(POLICIES, W, q('api', { container: 'db' }, 0)), InvalidParameter);
    assert.equal(checkConnection(POLICIES, W, q('cache', { container: 'cache' }, 1)).allowed, true);
  });
});
