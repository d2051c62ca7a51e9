import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseIp, Prefix } from '../../src/network/ipam/ip-address.js';
import { validatePolicy } from '../../src/network/policies/policy-parse.js';
import { compilePlans } from '../../src/network/policies/policy-compile.js';
import { allProbes, expectedMatrix, randomPolicies, randomWorldSpec, Rng, worldFromSpec, type Probe } from '../../src/network/policies/policy-random.js';
import type { PolicyDoc, PolicyPeer, PolicyProto, PolicySelector, PolicyWorld } from '../../src/network/policies/policy-types.js';

/**
 * A second reading of the semantics, straight from the documents (no compilation): the checker,
 * which the enforcers' plans feed, must agree with it on random worlds and policies.
 */
function reference(docs: PolicyDoc[], world: PolicyWorld, p: Probe): boolean {
  const ip = parseIp((p.to as { address: string }).address)!;
  const dst = world.endpoints.find((e) => e.addresses.some((a) => parseIp(a)!.value === ip.value && parseIp(a)!.family === ip.family))!;
  const src = world.endpoints.find((e) => e.containerName === p.from && e.networkId === dst.networkId);
  if (!src) return false;
  if (src.containerId === dst.containerId) return true;
  const netName = dst.networkName;
  const srcIp = parseIp(src.addresses.find((a) => parseIp(a)!.family === ip.family)!)!;
  const owner = (a: ReturnType<typeof parseIp>) => world.endpoints.find((e) => e.addresses.some((x) => parseIp(x)!.value === a!.value && parseIp(x)!.family === a!.family));
  const sel = (s: PolicySelector | undefined, containerId: string): boolean => {
    const e = world.endpoints.find((x) => x.containerId === containerId)!;
    if (!s) return true;
    if (s.labels && Object.entries(s.labels).some(([k, v]) => e.labels[k] !== v)) return false;
    if (s.names && !s.names.includes(e.containerName)) return false;
    if (s.service && e.labels['com.docker.compose.service'] !== s.service) return false;
    return true;
  };
  const peerHas = (peer: PolicyPeer, a: NonNullable<ReturnType<typeof parseIp>>): boolean => {
    if (peer.cidr) {
      const c = Prefix.parse(peer.cidr)!;
      return c.contains(a) && !(peer.except ?? []).some((e) => Prefix.parse(e)!.contains(a));
    }
    const o = owner(a);
    if (!o) return false;
    if (peer.network && !world.endpoints.some((e) => e.containerId === o.containerId && e.networkName === peer.network)) return false;
    return sel(peer, o.containerId);
  };
  const portOk = (specs: PolicyDoc['ingress'] extends Array<infer R> | undefined ? R : never): boolean =>
    !specs.ports ||
    specs.ports.some((s) => {
      if ((s.proto ?? 'tcp') !== p.proto) return false;
      if (s.port === undefined) return true;
      const [lo, hi] = String(s.port).split('-').map(Number);
      return p.port >= lo! && p.port <= (hi ?? lo)!;
    });
  const side = (dir: 'ingress' | 'egress', containerId: string, peerIp: NonNullable<ReturnType<typeof parseIp>>): boolean => {
    const isolating = docs.filter((d) => d.network === netName && d[dir] !== undefined && sel(d.select, containerId));
    if (isolating.length === 0) return true;
    return isolating.some((d) =>
      d[dir]!.some((r) => {
        const peers = dir === 'ingress' ? r.from : r.to;
        return (!peers || peers.some((peer) => peerHas(peer, peerIp))) && portOk(r);
      }),
    );
  };
  return side('egress', src.containerId, ip) && side('ingress', dst.containerId, srcIp);
}

const PORTS: Array<{ proto: PolicyProto; port: number }> = [
  { proto: 'tcp', port: 80 },
  { proto: 'tcp', port: 81 },
  { proto: 'udp', port: 53 },
  { proto: 'udp', port: 5000 },
];

describe('policy model (random worlds and policies)', () => {
  it('the checker agrees with a literal reading of the semantics on 400 seeds', () => {
    let allowed = 0;
    let denied = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const rng = new Rng(seed);
      const networks = rng.chance(0.5) ? ['na', 'nb'] : ['na', 'nb', 'nc'];
      const subnets = Object.fromEntries(networks.map((n, i) => [n, `10.${100 + i}.0.0/24`]));
      const spec = randomWorldSpec(rng, { networks, containers: rng.int(2, 6), secondNetwork: 0.4 });
      const world = worldFromSpec(spec, subnets);
      const docs = randomPolicies(rng, spec, { ports: PORTS, subnets });
      // What the generator writes is valid input, unchanged by validation.
      for (const d of docs) assert.deepEqual(validatePolicy(JSON.parse(JSON.stringify(d))), d, `seed ${seed}`);
      const probes = allProbes(world, PORTS);
      for (const e of expectedMatrix(docs, world, probes)) {
        const want = reference(docs, world, e);
        assert.equal(e.allowed, want, `seed ${seed}: ${e.from} -> ${JSON.stringify(e.to)} ${e.proto}/${e.port}: ${e.reason}\n${JSON.stringify(docs)}`);
        if (e.allowed) allowed++;
        else denied++;
      }
    }
    // The generator must exercise both answers in earnest.
    assert.ok(allowed > 1000 && denied > 1000, `allowed ${allowed}, denied ${denied}`);
  });

  it('the same seed gives the same world, policies and plans', () => {
    const make = (seed: number) => {
      const rng = new Rng(seed);
      const spec = randomWorldSpec(rng, { networks: ['x', 'y'] });
      const docs = randomPolicies(rng, spec, { ports: PORTS });
      return { spec, docs, plans: compilePlans(docs, worldFromSpec(spec)) };
    };
    assert.deepEqual(make(7), make(7));
    assert.notDeepEqual(make(7).docs, make(8).docs);
  });

  it('without policies everything sharing a network is allowed', () => {
    const rng = new Rng(3);
    const world = worldFromSpec(randomWorldSpec(rng, { networks: ['x', 'y'], containers: 6 }));
    const probes = allProbes(world, PORTS);
    assert.ok(probes.length > 0);
    assert.ok(expectedMatrix([], world, probes).every((e) => e.allowed));
  });

  it('adding a rule never takes anything away (union), an isolating policy never adds', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const rng = new Rng(seed);
      const spec = randomWorldSpec(rng, { networks: ['x', 'y'], containers: 4 });
      const world = worldFromSpec(spec);
      const docs = randomPolicies(rng, spec, { ports: PORTS });
      const probes = allProbes(world, PORTS);
      const before = expectedMatrix(docs, world, probes);
      const wider = docs.map((d) => (d.ingress ? { ...d, ingress: [...d.ingress, { ports: [{ proto: 'udp' as const, port: 53 }] }] } : d));
      expectedMatrix(wider, world, probes).forEach((e, i) => assert.ok(e.allowed || !before[i]!.allowed, `seed ${seed}`));
      const closed = [...docs, { name: 'zz-closed', network: 'x', ingress: [] }];
      expectedMatrix(closed, world, probes).forEach((e, i) => assert.ok(!e.allowed || before[i]!.allowed, `seed ${seed}`));
    }
  });
});

