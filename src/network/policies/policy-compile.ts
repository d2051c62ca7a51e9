import { parseIp, Prefix } from '../ipam/ip-address.js';
import { portRange, COMPOSE_SERVICE_LABEL } from './policy-parse.js';
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
 * protocol then start and merged, so renderers produce stable text.
 *
 * - An endpoint is selected by a policy when it is on the policy's network and every selector key
 *   holds (labels all equal, one of `names`, `service` = label `com.docker.compose.service`).
 * - A direction is isolated (`ingress`/`egress` defined) once a selecting policy has that key; its
 *   rules are the union of those policies' rules.
 * - Selector and `network` peers are containers, by every address of theirs on any network; a
 *   peer with both kinds of key needs both to hold. Omitted `from`/`to` or `ports` is `'any'`.
 */
export function compilePlans(policies: PolicyDoc[], world: PolicyWorld): NetworkPolicyPlan[] {
  const containers = containerViews(world);
  const sorted = [...policies].sort((a, b) => cmp(a.name, b.name));
  const plans: NetworkPolicyPlan[] = [];
  for (const net of [...world.networks].sort((a, b) => cmp(a.id, b.id))) {
    const inForce = sorted.filter((p) => p.network === net.name);
    if (inForce.length === 0) continue;
    const compiled = inForce.map((p) => ({
      doc: p,
      ingress: p.ingress?.map((r, i) => compileRule(p.name, i, r, r.from, containers)),
      egress: p.egress?.map((r, i) => compileRule(p.name, i, r, r.to, containers)),
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
        if (isolating.length > 0) entry[dir] = isolating.flatMap((c) => c[dir]!);
      }
      endpoints.push(entry);
    }
    plans.push({ networkId: net.id, policies: inForce.map((p) => p.name), endpoints });
  }
  return plans;
}

/** Whether the selector (omitted: everything) picks the endpoint's container. */
export function selects(sel: PolicySelector | undefined, c: { containerName: string; labels: Record<string, string> }): boolean {
  if (!sel) return true;
  if (sel.labels && !Object.entries(sel.labels).every(([k, v]) => c.labels[k] === v)) return false;
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

function compileRule(policy: string, index: number, rule: PolicyRule, peers: PolicyPeer[] | undefined, containers: ContainerView[]): CompiledRule {
  return { policy, index, peers: compilePeers(peers, containers), ports: compilePorts(rule.ports) };
}

function compilePeers(peers: PolicyPeer[] | undefined, containers: ContainerView[]): CompiledPeers {
  if (peers === undefined) return 'any';
  const addrs = new Set<string>();
  // Keyed by cidr and holes: the same cidr with other holes is another peer (either may allow).
  const cidrs = new Map<string, { cidr: string; except: string[] }>();
  for (const p of peers) {
    if (p.cidr !== undefined) {
      const except = [...new Set(p.except ?? [])].sort(comparePrefixes);
      cidrs.set(`${p.cidr} ${except.join(' ')}`, { cidr: p.cidr, except });
      continue;
    }
    for (const c of containers) {
      if (!peerMatches(p, c)) continue;
      for (const ep of c.endpoints) for (const a of ep.addresses) addrs.add(a);
    }
  }
  const all = sortAddresses([...addrs]);
  return {
    addrs4: all.filter((a) => !a.includes(':')),
    addrs6: all.filter((a) => a.includes(':')),
    cidrs: [...cidrs.values()].sort((a, b) => comparePrefixes(a.cidr, b.cidr) || cmp(a.except.join(' '), b.except.join(' '))),
  };
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
