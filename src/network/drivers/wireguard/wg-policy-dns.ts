/**
 * Policies' `dns` peers on wireguard networks. The endpoint's policy rules live in its hidden
 * namespace's ruleset (wg-firewall.ts, nft-policy's renderer), so the learnt sets do too: one per
 * (network, pattern) and family in every hidden namespace whose endpoint's rules name the
 * pattern. What the embedded DNS learns for the network is added to each of them before the
 * answer goes back (`add element`, no reload), and kept in a book so a reload re-creates it with
 * the time it has left; a restarted daemon reads a namespace's sets back before its first reload.
 */
import { nftLoad, nftOutput } from '../../../sys/nft.js';
import { EgressBook } from '../../egress/egress-book.js';
import type { EgressLearnt } from '../../firewall/firewall.js';
import { parsePolicyDnsSets, policyDnsSet, type PolicyDnsLearnt } from '../../firewall/nftables/nft-policy.js';
import { planDnsSets } from '../../policies/policy-dns.js';
import type { NetworkPolicyPlan } from '../../policies/policy-types.js';

/** One hidden namespace and the part of its network's plan rendered there. */
export interface HiddenNsTarget {
  nsPath: string;
  plan: NetworkPolicyPlan;
}

export class HiddenNsDnsSets {
  private readonly book = new EgressBook<string>();
  /** Namespaces whose sets were read back (or found to need none) in this process. */
  private readonly adopted = new Set<string>();

  constructor(private readonly table: string) {}

  /** What a reload of one of the network's namespaces re-creates. */
  elements(networkId: string): PolicyDnsLearnt {
    const mine = this.book.elements(Date.now()).get(networkId);
    return mine ? new Map([[networkId, mine]]) : new Map();
  }

  /** Forgets the network's patterns that no policy in force names any more. */
  retain(plan: NetworkPolicyPlan): void {
    const keep = new Set(plan.dns ?? []);
    this.book.retainKeys((id, dns) => id !== plan.networkId || keep.has(dns));
  }

  /**
   * Before the first load into a namespace in this process: the elements its sets still hold (a
   * previous daemon's), so the reload does not drop them. The whole (small) table is read, as
   * the first load after a restart may come before the network's plan does.
   */
  async adopt(nsPath: string, networkId: string): Promise<void> {
    if (this.adopted.has(nsPath)) return;
    this.adopted.add(nsPath);
    let text: string;
    try {
      text = await nftOutput(`list table inet ${this.table}`, nsPath);
    } catch {
      return; // A new namespace: no table yet.
    }
    const now = Date.now();
    for (const s of parsePolicyDnsSets(text, [networkId])) this.book.record(networkId, s.dns, s.elements, now);
  }

  /** A namespace this process is about to make: its first load has nothing to read back (no `list table` on a join). */
  born(nsPath: string): void {
    this.adopted.add(nsPath);
  }

  /** A namespace went away: read it back again should it come back. */
  forget(nsPath: string): void {
    this.adopted.delete(nsPath);
  }

  /**
   * Records what was learnt (so any reload from now on has it) and adds it to each target whose
   * rules use the pattern; `run` serialises each add with that namespace's reloads.
   */
  async learn<T extends HiddenNsTarget>(
    networkId: string,
    items: readonly EgressLearnt[],
    targets: readonly T[],
    run: (t: T, fn: () => Promise<void>) => Promise<void>,
  ): Promise<void> {
    const now = Date.now();
    const lines = new Map<string, string[]>();
    for (const it of items) {
      if (it.dns === undefined || it.networkId !== networkId) continue;
      const timed = this.book.timeouts(it, now);
      this.book.record(networkId, it.dns, timed, now);
      for (const fam of [4, 6] as const) {
        const els = timed.filter((x) => x.fam === fam);
        if (!els.length) continue;
        const set = policyDnsSet(networkId, it.dns, fam);
        const list = lines.get(it.dns) ?? [];
        list.push(`add element inet ${this.table} ${set} { ${els.map((x) => `${x.addr} timeout ${x.timeoutS}s`).join(', ')} }`);
        lines.set(it.dns, list);
      }
    }
    const errors: unknown[] = [];
    await Promise.all(
      targets.map(async (t) => {
        const uses = new Set(planDnsSets([t.plan]).map((s) => s.dns));
        const script = [...lines].flatMap(([dns, l]) => (uses.has(dns) ? l : []));
        if (!script.length) return;
        await run(t, () => nftLoad(script.join('\n') + '\n', t.nsPath)).catch((e: unknown) => errors.push(e));
      }),
    );
    if (errors.length) throw new AggregateError(errors, `dns peer addresses not added in ${errors.length} hidden namespace(s)`);
  }
}
