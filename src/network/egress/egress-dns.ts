/**
 * What an upstream DNS answer teaches a deny network: the A/AAAA addresses of a name its
 * allowlist covers. Pure; the embedded DNS server calls it before passing the answer on and
 * waits for the firewall to have the addresses, so the container's first packet finds them.
 *
 * Only the question's name is matched against the rules, and only addresses reached from it
 * through the answer's CNAME chain are taken: a record for another owner in the same answer
 * (which an upstream could add) opens nothing.
 */
import { decodeMessage, DnsType, DnsFormatError } from '../dns/dns-codec.js';
import type { EgressLearnt } from '../firewall/firewall.js';
import { nameMatches, type EgressNameRule } from './egress-options.js';
import { dnsRule } from '../policies/policy-dns.js';

/**
 * A network's names to learn, as the DNS snapshot carries them: a deny network's name rules
 * (index = rule index) and the `dns` peers of the policies on it (policy-dns.ts).
 */
export interface EgressDnsView {
  networkId: string;
  names: ReadonlyArray<Pick<EgressNameRule, 'name' | 'wildcard'>>;
  /** Normalised `dns` peer patterns (`api.example.com`, `*.example.com`). */
  peers?: readonly string[];
}

/** What `qname` matches in `views`: (network, rule index) pairs, and (network, pattern) ones with rule -1. */
export function matchingRules(views: readonly EgressDnsView[], qname: string): Array<{ networkId: string; rule: number; dns?: string }> {
  const out: Array<{ networkId: string; rule: number; dns?: string }> = [];
  for (const v of views) {
    v.names.forEach((r, rule) => nameMatches(r, qname) && out.push({ networkId: v.networkId, rule }));
    for (const dns of v.peers ?? []) if (nameMatches(dnsRule(dns), qname)) out.push({ networkId: v.networkId, rule: -1, dns });
  }
  return out;
}

/** The addresses an answer gives for `qname` (through CNAMEs), with their TTLs. */
export function answerAddresses(answer: Uint8Array, qname: string): Array<{ addr: string; fam: 4 | 6; ttl: number }> {
  let msg;
  try {
    msg = decodeMessage(answer);
  } catch (err) {
    if (err instanceof DnsFormatError) return [];
    throw err;
  }
  const norm = (n: string): string => n.toLowerCase().replace(/\.$/, '');
  const owners = new Set([norm(qname)]);
  // CNAMEs may come in any order: follow until nothing new (bounded by the record count).
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of msg.answers) {
      if (r.type === DnsType.CNAME && owners.has(norm(r.name)) && typeof r.data === 'string' && !owners.has(norm(r.data))) {
        owners.add(norm(r.data));
        grew = true;
      }
    }
  }
  const out: Array<{ addr: string; fam: 4 | 6; ttl: number }> = [];
  for (const r of msg.answers) {
    if ((r.type !== DnsType.A && r.type !== DnsType.AAAA) || typeof r.data !== 'string' || !owners.has(norm(r.name))) continue;
    out.push({ addr: r.data, fam: r.type === DnsType.A ? 4 : 6, ttl: r.ttl });
  }
  return out;
}

/** What to learn from one answer (empty when no rule matches or it has no addresses). */
export function learntFromAnswer(views: readonly EgressDnsView[], qname: string, answer: Uint8Array): EgressLearnt[] {
  const rules = matchingRules(views, qname);
  if (!rules.length) return [];
  const addresses = answerAddresses(answer, qname);
  if (!addresses.length) return [];
  return rules.map((r) => ({ ...r, addresses }));
}
