import { parseIp, Prefix } from '../ipam/ip-address.js';
import { portRange, COMPOSE_SERVICE_LABEL } from './policy-parse.js';
import { policyDnsPatterns } from './policy-dns.js';
import type {
  CompiledPeers,
  CompiledRule,
  EndpointPolicy,
  NetworkPolicyPlan,
  PolicyDoc,
  PolicyEndpointInfo,
  PolicyPeer,
  PolicyPortSpec,
  PolicyRule,
  PolicySelector,
  PolicyWorld,
  PortRange,
} from './policy-types.js';

/** The whole of a protocol's port space: a port spec without `port`, and what `1-65535` compiles to. */
export const ALL_PORTS = { from: 1, to: 65535 } as const;

/** A container as selectors see it: its name, labels and every endpoint of it in the world. */
interface ContainerView {
  id: string;
  name: string;
  labels: Record<string, string>;
  endpoints: PolicyEndpointInfo[];
}

/**
 * Compiles the policies against the world: one plan per network of the world that some policy
 * names (policies naming absent networks wait for them), listing the endpoints some policy
 * selects. Pure and deterministic: plans sorted by network id, endpoints by endpoint id, a
 * direction's rules by policy name then rule index, addresses numerically, port ranges by
 * protocol then start and merged, so renderers produce stable text. The result shares objects
 * (a policy's compiled rules appear under every endpoint it selects, equal peers once): read only.
 *
 * - An endpoint is selected by a policy when it is on the policy's network and every selector key
 *   holds (labels all equal, one of `names`, `service` = label `com.docker.compose.service`).
 * - A direction is isolated (`ingress`/`egress` defined) once a selecting policy has that key; its
 *   rules are the union of those policies' rules, `isolatedBy` names those policies.
 * - Selector and `network` peers are containers, by every address of theirs on any network; a
 *   peer with both kinds of key needs both to hold. Omitted `from`/`to` or `ports` is `'any'`.
 * - `dns` peers stay patterns (`peers.dns`): their addresses are learnt by the enforcers.
 */
export function compilePlans(policies: PolicyDoc[], world: PolicyWorld): NetworkPolicyPlan[] {
  const pc = new PeerCompiler(containerViews(world));
  const sorted = [...policies].sort((a, b) => cmp(a.name, b.name));
  const plans: NetworkPolicyPlan[] = [];
  for (const net of [...world.networks].sort((a, b) => cmp(a.id, b.id))) {
    const inForce = sorted.filter((p) => p.network === net.name);
    if (inForce.length === 0) continue;
    const compiled = inForce.map((p) => ({
      doc: p,
      ingress: p.ingress?.map((r, i) => compileRule(p.name, i, r, r.from, pc)),
      egress: p.egress?.map((r, i) => compileRule(p.name, i, r, r.to, pc)),
    }));
    const endpoints: EndpointPolicy[] = [];
    const onNet = world.endpoints.filter((e) => e.networkId === net.id).sort((a, b) => cmp(a.endpointId, b.endpointId));
    for (const ep of onNet) {
      const selecting = compiled.filter((c) => selects(c.doc.select, ep));
      if (selecting.length === 0) continue;
      const entry: EndpointPolicy = {
        endpointId: ep.endpointId,
        containerId: ep.containerId,
        addresses: sortAddresses(ep.addresses),
        policies: selecting.map((c) => c.doc.name),
      };
      for (const dir of ['ingress', 'egress'] as const) {
        const isolating = selecting.filter((c) => c[dir] !== undefined);
        if (isolating.length === 0) continue;
        entry[dir] = isolating.flatMap((c) => c[dir]!);
        (entry.isolatedBy ??= {})[dir] = isolating.map((c) => c.doc.name);
      }
      endpoints.push(entry);
    }
    const dns = policyDnsPatterns(inForce, net.name);
    plans.push({ networkId: net.id, policies: inForce.map((p) => p.name), ...(dns.length ? { dns } : {}), endpoints });
  }
  return plans;
}

/** Whether the selector (omitted: everything) picks the endpoint's container. */
export function selects(sel: PolicySelector | undefined, c: { containerName: string; labels: Record<string, string> }): boolean {
  if (!sel) return true;
  if (sel.labels) for (const k in sel.labels) if (c.labels[k] !== sel.labels[k]) return false;
  if (sel.names && !sel.names.includes(c.containerName)) return false;
  if (sel.service !== undefined && c.labels[COMPOSE_SERVICE_LABEL] !== sel.service) return false;
  return true;
}

function containerViews(world: PolicyWorld): ContainerView[] {
  const byId = new Map<string, ContainerView>();
  for (const ep of world.endpoints) {
    let c = byId.get(ep.containerId);
    if (!c) {
      c = { id: ep.containerId, name: ep.containerName, labels: ep.labels, endpoints: [] };
      byId.set(ep.containerId, c);
    }
    c.endpoints.push(ep);
  }
  return [...byId.values()].sort((a, b) => cmp(a.id, b.id));
}

/**
 * What compiling a world's rules shares: the containers, every address in the world sorted once
 * (a peer's addresses are then a filter, not a sort), and peers already compiled (policies repeat
 * the same peers, and thousands of endpoints share one policy's rules).
 */
class PeerCompiler {
  /** Every address, sorted (equal addresses adjacent), with the index of its container. */
  private readonly sorted: Array<{ addr: string; v6: boolean; ci: number }>;
  private readonly cache = new Map<string, CompiledPeers>();

  constructor(private readonly containers: ContainerView[]) {
    const all: Array<{ addr: string; ci: number }> = [];
    containers.forEach((c, ci) => {
      for (const ep of c.endpoints) for (const addr of ep.addresses) all.push({ addr, ci });
    });
    const order = new Map(sortAddresses(all.map((a) => a.addr)).map((a, i) => [a, i]));
    all.sort((a, b) => order.get(a.addr)! - order.get(b.addr)! || a.ci - b.ci);
    this.sorted = all.map((a) => ({ ...a, v6: a.addr.includes(':') }));
  }

  compile(peers: PolicyPeer[] | undefined): CompiledPeers {
    if (peers === undefined) return 'any';
    const key = JSON.stringify(peers);
    let out = this.cache.get(key);
    if (!out) {
      out = this.build(peers);
      this.cache.set(key, out);
    }
    return out;
  }

  private build(peers: PolicyPeer[]): CompiledPeers {
    const members = new Uint8Array(this.containers.length);
    // Keyed by cidr and holes: the same cidr with other holes is another peer (either may allow).
    const cidrs = new Map<string, { cidr: string; except: string[] }>();
    const dns = new Set<string>();
    for (const p of peers) {
      if (p.dns !== undefined) {
        dns.add(p.dns);
        continue;
      }
      if (p.cidr !== undefined) {
        const except = [...new Set(p.except ?? [])].sort(comparePrefixes);
        cidrs.set(`${p.cidr} ${except.join(' ')}`, { cidr: p.cidr, except });
        continue;
      }
      this.containers.forEach((c, ci) => {
        if (!members[ci] && peerMatches(p, c)) members[ci] = 1;
      });
    }
    const addrs4: string[] = [];
    const addrs6: string[] = [];
    let last = '';
    for (const a of this.sorted) {
      if (!members[a.ci] || a.addr === last) continue;
      last = a.addr;
      (a.v6 ? addrs6 : addrs4).push(a.addr);
    }
    return {
      addrs4,
      addrs6,
      cidrs: [...cidrs.values()].sort((a, b) => comparePrefixes(a.cidr, b.cidr) || cmp(a.except.join(' '), b.except.join(' '))),
      ...(dns.size ? { dns: [...dns].sort(cmp) } : {}),
    };
  }
}

function compileRule(policy: string, index: number, rule: PolicyRule, peers: PolicyPeer[] | undefined, pc: PeerCompiler): CompiledRule {
  return { policy, index, peers: pc.compile(peers), ports: compilePorts(rule.ports) };
}

function peerMatches(p: PolicyPeer, c: ContainerView): boolean {
  if (p.network !== undefined && !c.endpoints.some((e) => e.networkName === p.network)) return false;
  return selects(p, { containerName: c.name, labels: c.labels });
}

/** Port specs → ranges per protocol, sorted and merged (overlapping or adjacent). */
export function compilePorts(specs: PolicyPortSpec[] | undefined): 'any' | PortRange[] {
  if (specs === undefined) return 'any';
  const ranges: PortRange[] = specs.map((s) => {
    const r = s.port === undefined ? ALL_PORTS : portRange(s.port) ?? ALL_PORTS;
    return { proto: s.proto ?? 'tcp', from: r.from, to: r.to };
  });
  ranges.sort((a, b) => cmp(a.proto, b.proto) || a.from - b.from || a.to - b.to);
  const out: PortRange[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && last.proto === r.proto && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}

/** Addresses deduplicated, IPv4 before IPv6, numerically. */
export function sortAddresses(addrs: string[]): string[] {
  if (addrs.length < 2) return [...addrs];
  const parsed = [...new Set(addrs)].map((s) => ({ s, ip: parseIp(s) }));
  parsed.sort((a, b) => {
    if (!a.ip || !b.ip) return cmp(a.s, b.s);
    if (a.ip.family !== b.ip.family) return a.ip.family - b.ip.family;
    return a.ip.value < b.ip.value ? -1 : a.ip.value > b.ip.value ? 1 : 0;
  });
  return parsed.map((p) => p.s);
}

function comparePrefixes(a: string, b: string): number {
  const pa = Prefix.parse(a);
  const pb = Prefix.parse(b);
  if (!pa || !pb) return cmp(a, b);
  if (pa.family !== pb.family) return pa.family - pb.family;
  if (pa.addr.value !== pb.addr.value) return pa.addr.value < pb.addr.value ? -1 : 1;
  return pa.bits - pb.bits;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
