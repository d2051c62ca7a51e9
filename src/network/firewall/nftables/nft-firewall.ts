import { errorMessage, SystemError } from '../../../errors.js';
import { logger } from '../../../log.js';
import { NftError, nftLoad, nftOutput } from '../../../sys/nft.js';
import type { NetworkPolicyPlan, PolicyCounters } from '../../policies/policy-types.js';
import type { EgressLearner, EgressLearnt, EgressStatus, Firewall, FirewallState } from '../firewall.js';
import type { EgressPolicy } from '../../egress/egress-options.js';
import { EgressBook } from '../../egress/egress-book.js';
import { egressCounterNames, egressNameSet, parseLearntSet, type LearntElement } from './nft-egress.js';
import { requiredSysctls, writeSysctls } from './host-sysctls.js';
import { DROP_SETS, policyDnsSet } from './nft-policy.js';
import { planDnsSets } from '../../policies/policy-dns.js';
import {
  parseCounters,
  parseDropSet,
  PolicyCounterBook,
  PolicyDropReporter,
  policiesInForce,
  type AddressNamer,
  type DroppedFlow,
} from './nft-policy-readback.js';
import { renderRuleset, renderTeardown, tableNames } from './nft-ruleset.js';

const log = logger('arca:net:firewall');

export interface NftFirewallOptions {
  /**
   * Prefix unique to this daemon; it owns the tables `inet <prefix>` and `inet <prefix>_nat`
   * and nothing else. Letters, digits and `_`.
   */
  tablePrefix: string;
  /** Path of the network namespace to program (`/run/netns/x`); default: the daemon's own. */
  netns?: string;
  /** Write {@link requiredSysctls} after each apply (default true). */
  sysctls?: boolean;
  /**
   * `arca daemon --log-policy-drops`: the ruleset records dropped flows (10/s at most) and the
   * firewall logs each once, every {@link dropPollMs}, through {@link dropLog}.
   */
  logPolicyDrops?: boolean;
  /** How often recorded drops are read (default 1000 ms). */
  dropPollMs?: number;
  /** Where drop lines go (default: this component's logger, level info). */
  dropLog?: (line: string, extra: Record<string, unknown>) => void;
  /** Names addresses in drop lines (container names); see also {@link NftFirewall.setAddressNamer}. */
  addressNamer?: AddressNamer;
}

/**
 * The `nftables` firewall: renders the whole state into one script and loads it with a single
 * transaction (in-process through libnftables, or `nft -f -`), which replaces the daemon's tables in one kernel transaction (all or nothing).
 * It never reads the ruleset back: the daemon's state is the truth.
 */
export class NftFirewall implements Firewall, EgressLearner {
  readonly name = 'nftables';
  readonly tables: { filter: string; nat: string; bridge: string };
  /** Plans of the ruleset in the kernel (the last successful apply). */
  private plans: readonly NetworkPolicyPlan[] = [];
  private readonly counters = new PolicyCounterBook();
  private readonly drops: PolicyDropReporter;
  private dropTimer?: NodeJS.Timeout;
  private namer?: AddressNamer;
  /** Deny networks of the ruleset in the kernel, by id. */
  private egressNets = new Map<string, EgressPolicy>();
  private readonly learnt = new EgressBook();
  /** Policies' `dns` peers: the learnt sets of the ruleset in the kernel (`<network id> <pattern>`), and their elements. */
  private dnsSets = new Set<string>();
  private readonly dnsLearnt = new EgressBook<string>();
  /** Loads one at a time: a learnt element must not be lost to a reload rendered before it. */
  private loading: Promise<unknown> = Promise.resolve();
  /** Whether the learnt sets a previous daemon left in the kernel were read back (once, at the first apply). */
  private adopted = false;

  constructor(private readonly opts: NftFirewallOptions) {
    this.tables = tableNames(opts.tablePrefix);
    this.namer = opts.addressNamer;
    this.drops = new PolicyDropReporter(opts.dropLog ?? ((line, extra) => log.info(line, extra)));
  }

  /** Container names for drop log lines, set by whoever knows them (the network manager). */
  setAddressNamer(namer: AddressNamer | undefined): void {
    this.namer = namer;
  }

  /** The nft script {@link apply} would load for `state`. Pure; throws InvalidParameter on bad state. */
  render(state: FirewallState): string {
    const now = Date.now();
    return renderRuleset(state, this.opts.tablePrefix, {
      logDrops: this.opts.logPolicyDrops ?? false,
      egressLearnt: this.learnt.elements(now),
      dnsLearnt: this.dnsLearnt.elements(now),
    });
  }

  async apply(state: FirewallState): Promise<void> {
    await this.serialised(async () => {
      // The reload re-creates the named counters at zero: collect what they counted so far (on
      // libnftables' thread while this one renders). collectCounters never rejects.
      const collecting = this.plans.length || this.egressNets.size ? this.collectCounters() : Promise.resolve();
      const egressNets = new Map(state.networks.flatMap((n) => (n.egress ? [[n.id, n.egress] as const] : [])));
      const dnsSets = planDnsSets(state.policies ?? []);
      if (!this.adopted) {
        this.adopted = true;
        await this.adoptLearnt(egressNets);
        await this.adoptDnsLearnt(state.policies ?? []);
      }
      this.learnt.retain(egressNets);
      // Kept while a policy in force names the pattern, even when no governed endpoint uses the
      // set right now (at start-up containers come back after the first apply).
      const inForce = new Set((state.policies ?? []).flatMap((p) => (p.dns ?? []).map((dns) => `${p.networkId} ${dns}`)));
      this.dnsLearnt.retainKeys((id, dns) => inForce.has(`${id} ${dns}`));
      const dnsKeys = new Set(dnsSets.map((d) => `${d.networkId} ${d.dns}`));
      const script = this.render(state);
      await collecting;
      await this.load(script, 'apply');
      this.egressNets = egressNets;
      this.dnsSets = dnsKeys;
    });
    this.plans = state.policies ?? [];
    this.scheduleDropPolls();
    if (this.opts.sysctls ?? true) await writeSysctls(requiredSysctls(state), this.opts.netns);
  }

  async teardown(): Promise<void> {
    this.plans = [];
    this.scheduleDropPolls();
    await this.serialised(async () => {
      this.egressNets = new Map();
      this.dnsSets = new Set();
      await this.load(renderTeardown(this.opts.tablePrefix), 'teardown');
    });
  }

  /**
   * Adds DNS-learnt addresses to the deny networks' sets, incrementally (`add element`, one
   * transaction), never by a reload. Items of networks or rules the kernel's ruleset does not
   * have are left out. Resolves once the kernel has them.
   */
  async learnEgress(items: EgressLearnt[]): Promise<void> {
    await this.serialised(async () => {
      const now = Date.now();
      const lines: string[] = [];
      const accepted: Array<{ it: EgressLearnt; timed: LearntElement[] }> = [];
      for (const it of items) {
        if (it.dns !== undefined) {
          // A policy's dns peer: its set exists while a governed endpoint's rule names it.
          if (!this.dnsSets.has(`${it.networkId} ${it.dns}`)) continue;
          const timed = this.dnsLearnt.timeouts(it, now);
          for (const fam of [4, 6] as const) {
            const els = timed.filter((x) => x.fam === fam);
            if (els.length) lines.push(`add element inet ${this.tables.filter} ${policyDnsSet(it.networkId, it.dns, fam)} { ${els.map((x) => `${x.addr} timeout ${x.timeoutS}s`).join(', ')} }`);
          }
          accepted.push({ it, timed });
          continue;
        }
        const pol = this.egressNets.get(it.networkId);
        if (!pol || !pol.names[it.rule]) continue;
        const timed = this.learnt.timeouts(it, now);
        for (const fam of [4, 6] as const) {
          const els = timed.filter((x) => x.fam === fam);
          if (!els.length) continue;
          const set = egressNameSet(it.networkId, it.rule, fam);
          lines.push(`add element inet ${this.tables.filter} ${set} { ${els.map((x) => `${x.addr} timeout ${x.timeoutS}s`).join(', ')} }`);
        }
        accepted.push({ it, timed });
      }
      if (!lines.length) return;
      await this.load(lines.join('\n') + '\n', 'learn');
      for (const a of accepted) {
        if (a.it.dns !== undefined) this.dnsLearnt.record(a.it.networkId, a.it.dns, a.timed, now);
        else this.learnt.record(a.it.networkId, a.it.rule, a.timed, now);
      }
    });
  }

  /** The learnt addresses of a deny network and its drop counters; undefined if it is not one. */
  async egressStatus(networkId: string): Promise<EgressStatus | undefined> {
    if (!this.egressNets.has(networkId)) return undefined;
    await this.serialised(() => this.collectCounters());
    const c = egressCounterNames(networkId);
    return { learnt: this.learnt.status(networkId, Date.now()), dropped: this.counters.get(c.drop), droppedDns: this.counters.get(c.dns) };
  }

  /**
   * A restarted daemon keeps what its containers learnt: the first apply reads the learnt sets
   * the kernel still has (start-up only, never on a hot path), so the reload re-creates them.
   */
  private async adoptLearnt(nets: ReadonlyMap<string, EgressPolicy>): Promise<void> {
    const now = Date.now();
    for (const [id, pol] of nets) {
      for (let k = 0; k < pol.names.length; k++) {
        for (const fam of [4, 6] as const) {
          try {
            const text = await nftOutput(`list set inet ${this.tables.filter} ${egressNameSet(id, k, fam)}`, this.opts.netns);
            const els = parseLearntSet(text, fam);
            if (els.length) this.learnt.record(id, k, els, now);
          } catch {
            // No such set (a new network, or a kernel without our tables): nothing to keep.
          }
        }
      }
    }
  }

  /** The same for the `dns` peer sets of the policies in force (a governed endpoint or not). */
  private async adoptDnsLearnt(plans: readonly NetworkPolicyPlan[]): Promise<void> {
    const now = Date.now();
    for (const plan of plans) {
      for (const dns of plan.dns ?? []) {
        for (const fam of [4, 6] as const) {
          try {
            const els = parseLearntSet(await nftOutput(`list set inet ${this.tables.filter} ${policyDnsSet(plan.networkId, dns, fam)}`, this.opts.netns), fam);
            if (els.length) this.dnsLearnt.record(plan.networkId, dns, els, now);
          } catch {
            // Not in the kernel (a new policy, or no tables of ours): nothing to keep.
          }
        }
      }
    }
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.loading.then(fn, fn);
    this.loading = run.catch(() => {});
    return run;
  }

  /** Packets and bytes each policy in force allowed and dropped, since the firewall started. */
  async policyCounters(): Promise<Record<string, PolicyCounters>> {
    const names = policiesInForce(this.plans);
    if (!names.length) return {};
    await this.serialised(() => this.collectCounters());
    return this.counters.totals(names, new Map());
  }

  /** Reads the recorded drops once and logs the new ones (the timer calls it; tests may too). */
  async pollDrops(): Promise<void> {
    if (!this.opts.logPolicyDrops || !this.plans.length) return;
    const flows: Array<DroppedFlow & { dir: 'ingress' | 'egress' }> = [];
    for (const dir of ['ingress', 'egress'] as const) {
      for (const fam of [4, 6] as const) {
        const text = await nftOutput(`list set inet ${this.tables.filter} ${DROP_SETS[dir][fam]}`, this.opts.netns);
        for (const f of parseDropSet(text)) flows.push({ ...f, dir });
      }
    }
    this.drops.report(flows, this.plans, this.namer);
  }

  private scheduleDropPolls(): void {
    const want = !!this.opts.logPolicyDrops && this.plans.length > 0;
    if (want && !this.dropTimer) {
      this.dropTimer = setInterval(() => {
        this.pollDrops().catch((err: unknown) => log.debug('reading policy drops failed', { error: errorMessage(err) }));
      }, this.opts.dropPollMs ?? 1000);
      this.dropTimer.unref();
    } else if (!want && this.dropTimer) {
      clearInterval(this.dropTimer);
      this.dropTimer = undefined;
    }
  }

  /**
   * Moves what the kernel's named counters hold into the book: `reset counters` reads and zeroes
   * each atomically, so nothing is counted twice or lost between reads, and it is cheap (unlike
   * `list counters`, which makes nft 1.0.6 fetch the whole ruleset: ~1 ms against ~40 ms with
   * 1000 endpoints × 50 policies).
   */
  private async collectCounters(): Promise<void> {
    try {
      this.counters.absorb(parseCounters(await nftOutput(`reset counters table inet ${this.tables.filter}`, this.opts.netns)));
    } catch (err) {
      log.warn('cannot read policy counters', { error: errorMessage(err) });
    }
  }

  private async load(script: string, what: string): Promise<void> {
    const started = Date.now();
    try {
      await nftLoad(script, this.opts.netns);
    } catch (err) {
      const stderr = err instanceof NftError ? err.stderr.trim() : errorMessage(err);
      const numbered = script
        .split('\n')
        .map((l, i) => `${String(i + 1).padStart(4)}  ${l}`)
        .join('\n');
      log.error(`nft ${what} failed: ${stderr}\n${numbered}`);
      throw new SystemError(`firewall ${what} failed: ${stderr}`, { cause: err });
    }
    log.debug(`nft ${what}`, { tables: this.tables, ms: Date.now() - started, bytes: script.length });
  }
}
