import { formatIp, Prefix } from '../ipam/ip-address.js';
import { PolicyChecker, type CheckQuery } from './policy-check.js';
import type { PolicyDoc, PolicyEndpointInfo, PolicyPeer, PolicyPortSpec, PolicyProto, PolicyRule, PolicySelector, PolicyWorld } from './policy-types.js';

/**
 * Random worlds and policies for the model-based tests: the unit test compares the checker with
 * a second, literal reading of the semantics; the e2e test creates the world for real, applies
 * the policies, probes every pair and compares with {@link expectedMatrix}. Everything comes from
 * a seeded PRNG, so a failing seed replays.
 */

/** mulberry32: small, fast, and the same sequence on every machine for a seed. */
export class Rng {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  /** A random subset of n distinct elements (in their original order), n clamped to the length. */
  some<T>(xs: readonly T[], n: number): T[] {
    const idx = xs.map((_, i) => i);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    return idx
      .slice(0, Math.min(n, xs.length))
      .sort((a, b) => a - b)
      .map((i) => xs[i]!);
  }
}

/** The labels containers get: few keys and values, so selectors often match something. */
export const RANDOM_LABELS: Readonly<Record<string, readonly string[]>> = { app: ['a', 'b', 'c'], tier: ['x', 'y'] };

/** A world to create: containers with names and labels, each on one or more of the networks. */
export interface WorldSpec {
  networks: string[];
  containers: Array<{ name: string; labels: Record<string, string>; networks: string[] }>;
}

export interface WorldOptions {
  /** The networks' names (the e2e test creates them). */
  networks: string[];
  /** Number of containers; default 5. */
  containers?: number;
  /** Container names are `<prefix>0`, `<prefix>1`...; default `c`. */
  namePrefix?: string;
  /** Chance that a container is on a second network; default 0.3. */
  secondNetwork?: number;
}

export function randomWorldSpec(rng: Rng, opts: WorldOptions): WorldSpec {
  const n = opts.containers ?? 5;
  const prefix = opts.namePrefix ?? 'c';
  const containers: WorldSpec['containers'] = [];
  for (let i = 0; i < n; i++) {
    const labels: Record<string, string> = {};
    for (const [k, vs] of Object.entries(RANDOM_LABELS)) if (rng.chance(0.7)) labels[k] = rng.pick(vs);
    const nets = opts.networks.length > 1 && rng.chance(opts.secondNetwork ?? 0.3) ? rng.some(opts.networks, 2) : [rng.pick(opts.networks)];
    containers.push({ name: `${prefix}${i}`, labels, networks: nets });
  }
  return { networks: [...opts.networks], containers };
}

/**
 * A {@link PolicyWorld} for a spec without creating anything: network i gets `10.(200+i).0.0/24`
 * (or `subnets[name]`), container j the address `.(j+2)` on each of its networks.
 */
export function worldFromSpec(spec: WorldSpec, subnets: Record<string, string> = {}): PolicyWorld {
  const networks = spec.networks.map((name, i) => ({ id: `net${i}-${name}`, name, driver: 'bridge' }));
  const endpoints: PolicyEndpointInfo[] = [];
  spec.containers.forEach((c, j) => {
    for (const netName of c.networks) {
      const i = spec.networks.indexOf(netName);
      const prefix = Prefix.parse(subnets[netName] ?? `10.${200 + i}.0.0/24`)!.masked();
      endpoints.push({
        endpointId: `ep-${c.name}-${netName}`,
        containerId: `id-${c.name}`,
        containerName: c.name,
        labels: c.labels,
        networkId: networks[i]!.id,
        networkName: netName,
        addresses: [formatIp(prefix.nth(BigInt(j + 2)))],
      });
    }
  });
  return { networks, endpoints };
}

export interface PolicyOptions {
  /** The ports servers listen on (probes use the same): rules pick among them, and ranges around them. */
  ports: Array<{ proto: PolicyProto; port: number }>;
  /** Number of policies; default 1-4 at random. */
  count?: number;
  /** Policy names are `<prefix>0`...; default `p`. */
  namePrefix?: string;
  /** Networks' subnets, for cidr peers (none without). */
  subnets?: Record<string, string>;
}

/** Random policies over the spec's networks, containers and labels. */
export function randomPolicies(rng: Rng, spec: WorldSpec, opts: PolicyOptions): PolicyDoc[] {
  const count = opts.count ?? rng.int(1, 4);
  const prefix = opts.namePrefix ?? 'p';
  const docs: PolicyDoc[] = [];
  for (let i = 0; i < count; i++) {
    const doc: PolicyDoc = { name: `${prefix}${i}`, network: rng.pick(spec.networks) };
    const sel = randomSelector(rng, spec, 0.25);
    if (sel !== undefined) doc.select = sel;
    const dirs = rng.pick([['ingress'], ['egress'], ['ingress', 'egress']] as const);
    for (const dir of dirs) {
      const rules: PolicyRule[] = [];
      const nRules = rng.pick([0, 1, 1, 2, 2, 3]);
      for (let r = 0; r < nRules; r++) {
        const rule: PolicyRule = {};
        if (rng.chance(0.75)) {
          const peers: PolicyPeer[] = [];
          const nPeers = rng.int(1, 2);
          for (let k = 0; k < nPeers; k++) peers.push(randomPeer(rng, spec, opts.subnets));
          rule[dir === 'ingress' ? 'from' : 'to'] = peers;
        }
        if (rng.chance(0.75)) rule.ports = randomPorts(rng, opts.ports);
        rules.push(rule);
      }
      doc[dir] = rules;
    }
    docs.push(doc);
  }
  return docs;
}

function randomSelector(rng: Rng, spec: WorldSpec, emptyChance: number): PolicySelector | undefined {
  if (rng.chance(emptyChance)) return rng.chance(0.5) ? undefined : {};
  const sel: PolicySelector = {};
  const kind = rng.int(0, 2);
  if (kind !== 1) {
    const k = rng.pick(Object.keys(RANDOM_LABELS));
    sel.labels = { [k]: rng.pick(RANDOM_LABELS[k]!) };
  }
  if (kind !== 0) sel.names = rng.some(spec.containers.map((c) => c.name), rng.int(1, 2));
  return sel;
}

function randomPeer(rng: Rng, spec: WorldSpec, subnets?: Record<string, string>): PolicyPeer {
  const cidrNets = subnets ? spec.networks.filter((n) => subnets[n]) : [];
  const kind = rng.int(0, cidrNets.length > 0 ? 3 : 2);
  if (kind === 0) return randomSelector(rng, spec, 0) ?? { names: [spec.containers[0]!.name] };
  if (kind === 1) {
    const peer: PolicyPeer = { network: rng.pick(spec.networks) };
    if (rng.chance(0.3)) Object.assign(peer, randomSelector(rng, spec, 0));
    return peer;
  }
  if (kind === 2) return { names: [rng.pick(spec.containers).name] };
  // A subnet, maybe with the upper half carved out.
  const p = Prefix.parse(subnets![rng.pick(cidrNets)]!)!.masked();
  const peer: PolicyPeer = { cidr: p.toString() };
  if (rng.chance(0.5) && p.bits < (p.family === 4 ? 32 : 128)) {
    const half = new Prefix(p.nth(p.size() / 2n), p.bits + 1);
    peer.except = [half.toString()];
  }
  return peer;
}

function randomPorts(rng: Rng, ports: PolicyOptions['ports']): PolicyPortSpec[] {
  const out: PolicyPortSpec[] = [];
  const n = rng.int(1, 2);
  for (let i = 0; i < n; i++) {
    const p = rng.pick(ports);
    const shape = rng.int(0, 4);
    if (shape === 0) out.push({ proto: p.proto });
    else if (shape === 1) out.push({ proto: p.proto, port: `${Math.max(1, p.port - rng.int(0, 1))}-${p.port + rng.int(0, 1)}` });
    else out.push({ proto: p.proto, port: p.port });
  }
  return out;
}

/** One probe: a connection attempt from a container to a container's address. */
export interface Probe {
  from: string;
  to: { container: string } | { address: string };
  proto: PolicyProto;
  port: number;
}

/**
 * Every ordered pair of distinct containers sharing a network, to the destination's first address
 * on each shared network, on each port: what the e2e test tries.
 */
export function allProbes(world: PolicyWorld, ports: PolicyOptions['ports']): Probe[] {
  const probes: Probe[] = [];
  const eps = [...world.endpoints].sort((a, b) => cmp(a.containerName, b.containerName) || cmp(a.networkName, b.networkName));
  for (const s of eps) {
    for (const d of eps) {
      if (s.containerId === d.containerId || s.networkId !== d.networkId || d.addresses.length === 0) continue;
      for (const p of ports) probes.push({ from: s.containerName, to: { address: d.addresses[0]! }, proto: p.proto, port: p.port });
    }
  }
  return probes;
}

/** The model's answer for every probe: what `arca policy check` would say. */
export function expectedMatrix(policies: PolicyDoc[], world: PolicyWorld, probes: Probe[]): Array<Probe & { allowed: boolean; reason: string }> {
  const checker = new PolicyChecker(policies, world);
  return probes.map((p) => {
    const q: CheckQuery = { fromContainer: p.from, to: p.to, proto: p.proto, port: p.port };
    const r = checker.check(q);
    return { ...p, allowed: r.allowed, reason: r.reason };
  });
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
