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
 */
import type { NetworkPolicyPlan, PolicyDoc } from './policy-types.js';

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
