import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { InvalidParameter } from '../../src/errors.js';
import type { DriverNetwork, NetworkDriver } from '../../src/network/driver.js';
import type { Firewall } from '../../src/network/firewall/firewall.js';
import type { NetworkRecord } from '../../src/network/network-record.js';
import { PolicyEnforcement, enforcerKind } from '../../src/network/policies/policy-enforcement.js';
import { PolicyManager } from '../../src/network/policies/policy-manager.js';
import type { NetworkPolicyPlan, PolicyCounters, PolicyWorld } from '../../src/network/policies/policy-types.js';

const counters = (n: number): PolicyCounters => ({ allowedPackets: n, allowedBytes: 10 * n, droppedPackets: 2 * n, droppedBytes: 20 * n });

/** A driver with the capabilities asked for; records the plans it is handed. */
function driver(name: string, caps: { firewall?: boolean; enforcer?: boolean }): NetworkDriver & { plans: NetworkPolicyPlan[] } {
  const d: Record<string, unknown> & { plans: NetworkPolicyPlan[] } = { name, plans: [] };
  if (caps.firewall) d['firewallNetwork'] = () => undefined;
  if (caps.enforcer) {
    d['applyPolicies'] = async (_net: DriverNetwork, plan: NetworkPolicyPlan) => {
      d.plans.push(plan);
    };
    d['policyCounters'] = async () => ({ p: counters(1) });
  }
  return d as unknown as NetworkDriver & { plans: NetworkPolicyPlan[] };
}

function setup(): {
  e: PolicyEnforcement;
  bridge: ReturnType<typeof driver>;
  ovn: ReturnType<typeof driver>;
  publishes: () => number;
  round: () => ReturnType<PolicyEnforcement['compile']>;
} {
  const bridge = driver('bridge', { firewall: true });
  const ovn = driver('ovn', { firewall: true, enforcer: true });
  const host = driver('host', {});
  const drivers = new Map([bridge, ovn, host].map((d) => [d.name, d as NetworkDriver]));
  const world: PolicyWorld = {
    networks: [
      { id: 'n-br', name: 'br', driver: 'bridge' },
      { id: 'n-ovn', name: 'ov', driver: 'ovn' },
      { id: 'n-host', name: 'host', driver: 'host' },
    ],
    endpoints: [
      { endpointId: 'e1', containerId: 'c-db', containerName: 'db', labels: { app: 'db' }, networkId: 'n-br', networkName: 'br', addresses: ['10.0.0.2'] },
      { endpointId: 'e2', containerId: 'c-vm', containerName: 'vm', labels: { app: 'vm' }, networkId: 'n-ovn', networkName: 'ov', addresses: ['10.1.0.2'] },
    ],
  };
  const recs = new Map(world.networks.map((n) => [n.id, { Id: n.id, Name: n.name, Driver: n.driver } as NetworkRecord]));
  const firewall: Firewall = { name: 'test', apply: async () => {}, teardown: async () => {}, policyCounters: async () => ({ p: counters(3) }) };
  const e = new PolicyEnforcement(new PolicyManager(new Database(':memory:')), { get: (n) => drivers.get(n)! }, firewall);
  let publishes = 0;
  e.attach({
    policyWorld: () => world,
    find: (id) => recs.get(id),
    driverNetwork: (n) => ({ id: n.Id, name: n.Name } as DriverNetwork),
    publish: async () => {
      publishes++;
    },
  });
  return { e, bridge, ovn, publishes: () => publishes, round: () => e.compile(world) };
}

describe('policy enforcement: who enforces which plan', () => {
  it('classifies drivers: its own enforcer first, then the firewall, else nobody', () => {
    assert.equal(enforcerKind(driver('ovn', { firewall: true, enforcer: true })), 'driver');
    assert.equal(enforcerKind(driver('bridge', { firewall: true })), 'firewall');
    assert.equal(enforcerKind(driver('host', {})), 'none');
  });

  it('bridge plans go to the firewall state, enforcer drivers get theirs (empty when none), unchanged plans are not re-sent', async () => {
    const { e, ovn, round, publishes } = setup();
    // Read through a function: deepEqual's assertion signature would narrow `ovn.plans` itself.
    const sent = (): NetworkPolicyPlan[] => ovn.plans;
    await e.put({ name: 'p', network: 'br', select: { labels: { app: 'db' } }, ingress: [] });
    assert.equal(publishes(), 1, 'a change publishes before it answers');
    let r = round();
    assert.deepEqual(r.firewall.map((p) => p.networkId), ['n-br']);
    assert.ok(r.governs('c-db'));
    assert.ok(!r.governs('c-vm'));
    await r.enforce(false);
    assert.deepEqual(sent(), [{ networkId: 'n-ovn', policies: [], endpoints: [] }], 'the ovn network is told it has no policy');
    await round().enforce(false);
    assert.equal(sent().length, 1, 'same plan: not sent again');
    await round().enforce(true);
    assert.equal(sent().length, 2, 'force re-sends');

    await e.put({ name: 'q', network: 'ov', select: { names: ['vm'] }, egress: [] });
    r = round();
    assert.deepEqual(r.firewall.map((p) => p.networkId), ['n-br'], 'an enforcer network never lands in the firewall state');
    assert.ok(r.governs('c-vm'));
    await r.enforce(false);
    assert.deepEqual(sent().at(-1)!.policies, ['q']);
    assert.deepEqual(sent().at(-1)!.endpoints.map((x) => x.containerId), ['c-vm']);

    await e.remove('q');
    await round().enforce(false);
    assert.deepEqual(sent().at(-1), { networkId: 'n-ovn', policies: [], endpoints: [] }, 'removal hands the empty plan');
  });

  it('a policy on a network whose driver can do neither is refused naming the driver, and nothing is stored', async () => {
    const { e, publishes } = setup();
    await assert.rejects(e.put({ name: 'h', network: 'host', ingress: [] }), (err: unknown) => err instanceof InvalidParameter && /policy "h": network: .*driver "host"/.test(err.message));
    await assert.rejects(
      e.applyAll([
        { name: 'ok', network: 'br', ingress: [] },
        { name: 'h', network: 'host', ingress: [] },
      ]),
      InvalidParameter,
    );
    assert.deepEqual(e.list(), []);
    assert.equal(publishes(), 0);
    // A network that does not exist yet is no reason to refuse: the policy waits for it.
    await e.put({ name: 'later', network: 'not-yet', ingress: [] });
    assert.deepEqual(e.list().map((p) => p.name), ['later']);
  });

  it('counters add the firewall\'s and every enforcer driver\'s; a policy nobody counted shows zeros', async () => {
    const { e } = setup();
    assert.deepEqual(await e.counters('p'), { allowedPackets: 4, allowedBytes: 40, droppedPackets: 8, droppedBytes: 80 });
    assert.deepEqual(await e.counters('other'), { allowedPackets: 0, allowedBytes: 0, droppedPackets: 0, droppedBytes: 0 });
  });
});
