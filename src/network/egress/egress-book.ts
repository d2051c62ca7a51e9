/**
 * The DNS-learnt addresses of deny networks, as the daemon last put them in the kernel: what a
 * ruleset reload re-creates (with the time each element has left) and what `arca network egress`
 * shows. The kernel expires elements itself; this book only mirrors it.
 *
 * An address lives for its record's TTL clamped to [{@link EGRESS_TTL_FLOOR_S},
 * {@link EGRESS_TTL_CEILING_S}]: the floor keeps a 0-second TTL (common behind CDNs) from closing
 * the address before the container's first packet, the ceiling bounds how long an address keeps
 * a name's access after the name moved. A new answer never shortens an element's time.
 */
import type { EgressLearnt } from '../firewall/firewall.js';
import type { LearntElement } from '../firewall/nftables/nft-egress.js';
import type { EgressPolicy } from './egress-options.js';

export const EGRESS_TTL_FLOOR_S = 30;
export const EGRESS_TTL_CEILING_S = 3600;

export function clampTtl(ttl: number): number {
  return Math.min(EGRESS_TTL_CEILING_S, Math.max(EGRESS_TTL_FLOOR_S, Math.floor(ttl)));
}

/**
 * Keyed by network, then by what the addresses stand for: a name rule's index (K = number, the
 * allowlists), or a policy `dns` peer's pattern (K = string, policy-dns.ts).
 */
export class EgressBook<K extends number | string = number> {
  /** network id → key → address → (family, expiry in ms since the epoch). */
  private readonly nets = new Map<string, Map<K, Map<string, { fam: 4 | 6; expiresAt: number }>>>();

  /** Forgets networks that are no longer deny networks, and rules they no longer have. */
  retain(nets: ReadonlyMap<string, EgressPolicy>): void {
    this.retainKeys((id, k) => typeof k === 'number' && k < (nets.get(id)?.names.length ?? 0));
  }

  /** Forgets every key `keep` refuses (and networks left without keys). */
  retainKeys(keep: (networkId: string, key: K) => boolean): void {
    for (const [id, rules] of this.nets) {
      for (const k of rules.keys()) if (!keep(id, k)) rules.delete(k);
      if (!rules.size) this.nets.delete(id);
    }
  }

  /** The timeouts to give an answer's addresses (clamped, never shorter than what they have). */
  timeouts(it: EgressLearnt, now: number): LearntElement[] {
    return this.timeoutsFor(it.networkId, (it.dns ?? it.rule) as K, it.addresses, now);
  }

  timeoutsFor(networkId: string, key: K, addresses: EgressLearnt['addresses'], now: number): LearntElement[] {
    const have = this.nets.get(networkId)?.get(key);
    const seen = new Set<string>();
    const out: LearntElement[] = [];
    for (const a of addresses) {
      if (seen.has(a.addr)) continue;
      seen.add(a.addr);
      const left = Math.ceil(((have?.get(a.addr)?.expiresAt ?? 0) - now) / 1000);
      out.push({ addr: a.addr, fam: a.fam, timeoutS: Math.max(clampTtl(a.ttl), left) });
    }
    return out;
  }

  /** Records elements the kernel now has. */
  record(networkId: string, rule: K, els: readonly LearntElement[], now: number): void {
    let rules = this.nets.get(networkId);
    if (!rules) this.nets.set(networkId, (rules = new Map()));
    let addrs = rules.get(rule);
    if (!addrs) rules.set(rule, (addrs = new Map()));
    for (const e of els) addrs.set(e.addr, { fam: e.fam, expiresAt: now + e.timeoutS * 1000 });
  }

  /** Live elements with the seconds they have left (expired ones are dropped from the book). */
  elements(now: number): ReadonlyMap<string, ReadonlyMap<K, readonly LearntElement[]>> {
    const out = new Map<string, Map<K, LearntElement[]>>();
    for (const [id, rules] of this.nets) {
      const r = new Map<K, LearntElement[]>();
      for (const [k, addrs] of rules) {
        const list: LearntElement[] = [];
        for (const [addr, v] of addrs) {
          const left = Math.floor((v.expiresAt - now) / 1000);
          // An element with under a second left would be re-created for a whole second: let it go.
          if (left < 1) addrs.delete(addr);
          else list.push({ addr, fam: v.fam, timeoutS: left });
        }
        if (list.length) r.set(k, list.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0)));
      }
      if (r.size) out.set(id, r);
    }
    return out;
  }

  /** One network's live addresses per rule index. */
  status(networkId: string, now: number): Record<K, Array<{ addr: string; expiresInS: number }>> {
    const out = {} as Record<K, Array<{ addr: string; expiresInS: number }>>;
    for (const [k, list] of this.elements(now).get(networkId) ?? []) {
      out[k] = list.map((e) => ({ addr: e.addr, expiresInS: e.timeoutS }));
    }
    return out;
  }
}
