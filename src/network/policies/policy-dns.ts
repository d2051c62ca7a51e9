/**
 * Policies' `dns` peers (`to: [{dns: "*.example.com"}]`): the destinations of the egress
 * allowlists (`-o arca.egress.allow=NAME`), as a peer kind. One mechanism serves both: the embedded
 * DNS matches the question of every upstream answer it forwards to a container against the
 * patterns of the container's networks (egress-dns.ts), and the enforcer of the network learns
 * the answer's addresses (TTL clamped as EgressBook does) before the container gets the answer.
 *
 * A pattern's addresses are per network: learnt from the answers given to any container of the
 * policy's network, and allowed to the endpoints whose egress rules name the pattern. Ports are
 * the rule's `ports`, as for every other peer kind.
 *
 * Where a driver enforces policies itself but its networks leave through the host (ovn: the
 * transit link; OVN does not SNAT, so packets arrive with the container's own address), the
 * outside destinations of `dns` peers are judged by the host ruleset instead, the mechanism the
 * allowlists use: learning an address is then one nft element, not an OVN address set change
 * (NB, northd, SB, ovn-controller, the chassis' report: ~7 ms). The driver lets a dns rule's
 * traffic out of the network (with the rule's ports), and the host judges everything an endpoint
 * with such a rule sends out, by all of its egress rules ({@link hostDnsPlan}). Addresses inside
 * the network's own subnets never reach the host: the driver keeps those in its own sets.
 */
import type { EndpointPolicy, NetworkPolicyPlan, PolicyDoc } from './policy-types.js';

/** The normalised text of a pattern: `api.example.com`, `*.example.com`. */
export function dnsPattern(p: { name: string; wildcard: boolean }): string {
  return p.wildcard ? `*.${p.name}` : p.name;
}

/** A normalised pattern as egress-options' name rules hold it. */
export function dnsRule(pattern: string): { name: string; wildcard: boolean } {
  return pattern.startsWith('*.') ? { name: pattern.slice(2), wildcard: true } : { name: pattern, wildcard: false };
}

/** The `dns` patterns of the egress rules of the policies on the network of that name, sorted. */
export function policyDnsPatterns(docs: readonly PolicyDoc[], networkName: string): string[] {
  const out = new Set<string>();
  for (const d of docs) {
    if (d.network !== networkName) continue;
    for (const r of d.egress ?? []) for (const p of r.to ?? []) if (p.dns !== undefined) out.add(p.dns);
  }
  return [...out].sort();
}

/** The (network, pattern) pairs some governed endpoint's egress rules use: the learnt sets an enforcer holds. */
export function planDnsSets(plans: readonly NetworkPolicyPlan[]): Array<{ networkId: string; dns: string }> {
  const out = new Map<string, { networkId: string; dns: string }>();
  for (const plan of plans) {
    for (const ep of plan.endpoints) {
      for (const r of ep.egress ?? []) {
        if (r.peers === 'any') continue;
        for (const dns of r.peers.dns ?? []) out.set(`${plan.networkId} ${dns}`, { networkId: plan.networkId, dns });
      }
    }
  }
  return [...out.values()];
}

const namesDns = (e: EndpointPolicy): boolean => (e.egress ?? []).some((r) => r.peers !== 'any' && !!r.peers.dns?.length);

/**
 * What the host ruleset judges of a network whose `dns` peers it enforces for the driver: the
 * egress of each endpoint with a rule naming a `dns` peer, by every egress rule of it (the driver
 * lets that rule's traffic out to any outside address, so the host must judge all of it: the
 * union of the endpoint's rules, as on bridge); no ingress, which the driver judges alone. The
 * plan's patterns stay named with no such endpoint (the learnt sets outlive a restart).
 * Undefined when there is nothing to judge.
 */
export function hostDnsPlan(plan: NetworkPolicyPlan): NetworkPolicyPlan | undefined {
  const endpoints = plan.endpoints.filter(namesDns).map(({ ingress: _, ...e }) => e);
  if (!endpoints.length && !plan.dns?.length) return undefined;
  return { networkId: plan.networkId, policies: plan.policies, ...(plan.dns ? { dns: plan.dns } : {}), endpoints };
}

/**
 * `next`, plus the endpoints of `held` it no longer judges: while the driver still lets their
 * dns rules' traffic out (its plan is written after the host's), the host must keep judging it.
 * An endpoint whose address `next` gives to another is dropped (the address is that one's now).
 */
export function withHeldEndpoints(next: NetworkPolicyPlan | undefined, held: NetworkPolicyPlan | undefined): NetworkPolicyPlan | undefined {
  if (!held) return next;
  if (!next) return held;
  const ids = new Set(next.endpoints.map((e) => e.endpointId));
  const addrs = new Set(next.endpoints.flatMap((e) => e.addresses));
  const kept = held.endpoints.filter((e) => !ids.has(e.endpointId) && !e.addresses.some((a) => addrs.has(a)));
  const dns = [...new Set([...(next.dns ?? []), ...(held.dns ?? [])])].sort();
  if (!kept.length && dns.length === (next.dns ?? []).length) return next;
  return {
    ...next,
    policies: [...new Set([...next.policies, ...held.policies])].sort(),
    ...(dns.length ? { dns } : {}),
    endpoints: [...next.endpoints, ...kept],
  };
}
