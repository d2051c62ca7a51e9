import { KeyedLock } from '../../../keyed-lock.js';
import { errorMessage } from '../../../errors.js';
import { logger } from '../../../log.js';
import { OvsdbClient } from '../../../ovsdb/ovsdb-client.js';
import type { OvsdbSession } from '../../../ovsdb/ovsdb-session.js';
import { fromMap, fromSet, atomText, map, type OvsdbOp, type OvsdbOpResult, type OvsdbRow } from '../../../ovsdb/ovsdb-values.js';
import { run } from '../../../sys/runner.js';
import type { NetworkPolicyPlan, PolicyCounters } from '../../policies/policy-types.js';
import { EXT_NETWORK } from './ovn-names.js';
import { EgressBook } from '../../egress/egress-book.js';
import type { EgressLearnt } from '../../firewall/firewall.js';
import { ChassisCfgWatch } from './chassis-cfg-watch.js';
import {
  cfgBumpOps,
  dnsLearnOp,
  EXT_DNS,
  EXT_EXPIRES,
  EXT_POLICY,
  EXT_VERDICT,
  expiresText,
  parseExpires,
  parsePolicyRead,
  type PolicyRowOptions,
  policyDiffOps,
  policyReadOps,
  policyRows,
  staysInOvn,
} from './ovn-policies.js';
import type { OvnStack } from './stack/ovn-stack.js';
import { StackLayout } from './stack/stack-layout.js';

const log = logger('arca:net:ovn:policy');

const installKey = (netId: string, dns: string, addr: string): string => `${netId} ${dns} ${addr}`;

/**
 * How long an apply waits for ovn-controller to have installed the flows of the change (the
 * container must not run before it is governed); past it the apply returns with a warning.
 */
const ENFORCED_TIMEOUT_MS = 10_000;

/**
 * Keeps each network's last plan (what a rebuilt northbound database and a re-created port are
 * given again) and writes plans to NB: one transaction per change, then a wait until the chassis
 * reports the change's `nb_cfg` as installed in OpenFlow, so that "applied" means "enforced".
 * The wait is on the chassis' own row in SB (`Chassis_Private.nb_cfg`, {@link ChassisCfgWatch}),
 * not on NB's `hv_cfg` (what `ovn-nbctl --wait=hv` reads): that saves northd's round of copying
 * it back. NB transactions run one at a time, for every network (a full write reads, diffs and
 * writes; a learn must not slip between); the waits for installation overlap.
 */
export class OvnPolicyEnforcer {
  private readonly plans = new Map<string, NetworkPolicyPlan>();
  /** Each planned network's subnets (what a `dns` peer's set keeps when the host judges the rest). */
  private readonly subnets = new Map<string, readonly string[]>();
  private readonly lock = new KeyedLock();
  private cfgWatch?: ChassisCfgWatch;
  /** `dns` peers' learnt addresses per network and pattern: what their address sets hold. */
  private readonly dns = new EgressBook<string>();
  /** Networks whose `dns` sets were read back from NB in this process (a restarted daemon keeps them). */
  private readonly dnsAdopted = new Set<string>();
  /** Learnt addresses written to NB whose flows the chassis has not reported yet, with the `nb_cfg` that covers them. */
  private readonly installing = new Map<string, number>();
  /** Rewrites the `dns` sets when their next address expires (OVN's sets have no timeouts). */
  private expiryTimer?: NodeJS.Timeout;

  constructor(
    private readonly nb: () => Promise<OvsdbSession>,
    private readonly stack: OvnStack,
    /** A network's load-balancer VIPs (see {@link PolicyRowOptions.hairpinSources}). */
    private readonly vipsOf: (netId: string) => string[] = () => [],
  ) {}

  /** Makes `plan` the network's whole policy state in NB and returns once it is enforced. */
  async apply(netId: string, plan: NetworkPolicyPlan, subnets: readonly string[] = []): Promise<void> {
    if (plan.endpoints.length || plan.policies.length) {
      this.plans.set(netId, plan);
      this.subnets.set(netId, subnets);
    } else {
      this.plans.delete(netId);
      this.subnets.delete(netId);
    }
    const keep = new Set(plan.dns ?? []);
    this.dns.retainKeys((id, dns) => id !== netId || keep.has(dns));
    await this.write(netId, plan);
  }

  /**
   * DNS-learnt addresses of the network's `dns` peers: into their address sets, resolving once
   * they are enforced (the container's answer waits for it). The sets exist from the plan's apply
   * on, so a learn is one mutation of them (no read, no diff of the network's rows); only if a set
   * is missing does it fall back to writing the whole plan. When the host judges the plan's dns
   * peers, only the addresses inside the network are OVN's: the others need nothing here.
   */
  async learnDns(netId: string, items: readonly EgressLearnt[]): Promise<void> {
    const plan = this.plans.get(netId);
    if (!plan?.dns?.length) return;
    const mine = this.dnsAddresses(netId, plan);
    const batch = new Map<string, EgressLearnt['addresses']>();
    for (const it of items) {
      if (it.dns === undefined || it.networkId !== netId || !plan.dns.includes(it.dns)) continue;
      const addrs = mine ? it.addresses.filter((a) => mine(a.addr)) : it.addresses;
      if (addrs.length) batch.set(it.dns, [...(batch.get(it.dns) ?? []), ...addrs]);
    }
    if (!batch.size) return;
    const recordAll = (now: number): void => {
      for (const [dns, addrs] of batch) this.dns.record(netId, dns, this.dns.timeoutsFor(netId, dns, addrs, now), now);
    };
    const cfg = await this.lock.run('nb', async () => {
      // Before the first full write, the sets' expiry times are not read back yet: that path does it.
      if (!this.dnsAdopted.has(netId)) return 'full' as const;
      const now = Date.now();
      const ops: OvsdbOp[] = [];
      const fresh: string[] = [];
      // Addresses an earlier learn wrote whose flows are not reported installed yet: this answer waits for them too.
      let pending: number | undefined;
      for (const [dns, addrs] of batch) {
        const have = this.dns.elements(now).get(netId)?.get(dns) ?? [];
        const after = new Map(have.map((e) => [e.addr, e]));
        for (const e of this.dns.timeoutsFor(netId, dns, addrs, now)) after.set(e.addr, e);
        for (const a of addrs) {
          const p = this.installing.get(installKey(netId, dns, a.addr));
          if (p !== undefined) pending = Math.max(pending ?? p, p);
        }
        for (const fam of [4, 6] as const) {
          const add = [...after.keys()].filter((a) => after.get(a)!.fam === fam && !have.some((h) => h.addr === a));
          const text = expiresText([...after.values()].filter((e) => e.fam === fam), now);
          if (!add.length && text === expiresText(have.filter((e) => e.fam === fam), now)) continue;
          fresh.push(...add.map((a) => installKey(netId, dns, a)));
          ops.push(dnsLearnOp(netId, dns, fam, add, text));
        }
      }
      if (!ops.length) return pending;
      const res = await (await this.nb()).transact([...ops, ...cfgBumpOps()]);
      if (res.slice(0, ops.length).some((r) => r.count === 0)) return 'full' as const;
      recordAll(now);
      this.scheduleExpiry();
      // An answer that only moves expiry times changes no flow: its addresses are in force already.
      const cfg = fresh.length ? this.issued(res) : undefined;
      if (cfg !== undefined) for (const k of fresh) this.installing.set(k, cfg);
      return cfg ?? pending;
    });
    // Only additions: no revalidator round, which costs ~0.5 s. A new connection's first packet
    // misses the datapath cache and meets the installed flows; only a flow dropped before the
    // lookup may ride its cached drop until the next round.
    if (cfg === 'full') {
      recordAll(Date.now());
      await this.write(netId, plan, false);
    } else if (cfg !== undefined) {
      await this.installed(netId, cfg);
      // Reported (or given up on, and logged): later answers no longer wait for these.
      for (const [k, v] of this.installing) if (v <= cfg) this.installing.delete(k);
    }
  }

  /** Writes the last plan of the network again (after its rows or ports were re-created). */
  async reapply(netId: string): Promise<void> {
    const plan = this.plans.get(netId);
    if (plan) await this.write(netId, plan);
  }

  /** Whether the network's last plan governs the endpoint. */
  governs(netId: string, endpointId: string): boolean {
    return this.plans.get(netId)?.endpoints.some((e) => e.endpointId === endpointId) ?? false;
  }

  /** The network is gone (its rows go with deleteNetworkOps). */
  forget(netId: string): void {
    this.plans.delete(netId);
    this.subnets.delete(netId);
  }

  /** Which learnt addresses the plan's `dns` sets hold; undefined: all of them. */
  private dnsAddresses(netId: string, plan: NetworkPolicyPlan): ((addr: string) => boolean) | undefined {
    return plan.dnsOnHost ? staysInOvn(this.subnets.get(netId) ?? []) : undefined;
  }

  networks(): string[] {
    return [...this.plans.keys()];
  }

  close(): void {
    this.cfgWatch?.close();
    this.cfgWatch = undefined;
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
  }

  /** Arms the timer for the earliest expiry among the `dns` sets' addresses. */
  private scheduleExpiry(): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    let soonest = Infinity;
    for (const byPattern of this.dns.elements(Date.now()).values()) for (const els of byPattern.values()) for (const e of els) soonest = Math.min(soonest, e.timeoutS);
    if (soonest === Infinity) return;
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = undefined;
      for (const [netId, plan] of this.plans) {
        if (!plan.dns?.length) continue;
        this.write(netId, plan).catch((e: unknown) => log.warn('expiring dns peer addresses failed', { network: netId.slice(0, 12), error: errorMessage(e) }));
      }
    }, (soonest + 1) * 1000);
    this.expiryTimer.unref();
  }

  /**
   * Writes the plan's rows (read, diff, one transaction), then waits until they are installed.
   * `revalidate`: wait for a datapath revalidation round too (what cuts live connections at once).
   * Only the NB part holds the lock: waits overlap, since a report covers every lower `nb_cfg`.
   */
  private async write(netId: string, plan: NetworkPolicyPlan, revalidate = true): Promise<void> {
    const t0 = performance.now();
    const cfg = await this.lock.run('nb', async () => {
      const nb = await this.nb();
      const have = parsePolicyRead(await nb.transact(policyReadOps(netId)));
      const now = Date.now();
      const mine = this.dnsAddresses(netId, plan);
      if (!this.dnsAdopted.has(netId)) {
        this.dnsAdopted.add(netId);
        for (const r of have.addressSets) {
          const ext = fromMap(r['external_ids']);
          const dns = ext[EXT_DNS];
          if (dns === undefined || !(plan.dns ?? []).includes(dns)) continue;
          const els = parseExpires(ext[EXT_EXPIRES], String(r['name']).endsWith('_6') ? 6 : 4, now).filter((e) => !mine || mine(e.addr));
          if (els.length) this.dns.record(netId, dns, els, now);
        }
      }
      const dnsLearnt = this.dns.elements(now).get(netId);
      const subnets = this.subnets.get(netId) ?? [];
      const ops: OvsdbOp[] = policyDiffOps(
        have,
        policyRows(netId, plan, have.lsps, { hairpinSources: this.vipsOf(netId), now, subnets, ...(dnsLearnt ? { dnsLearnt } : {}) }),
      );
      this.scheduleExpiry();
      if (!ops.length) return undefined;
      return { cfg: this.issued(await nb.transact([...ops, ...cfgBumpOps()])), operations: ops.length };
    });
    if (cfg?.cfg === undefined) return;
    const tWrite = performance.now();
    if (!(await this.installed(netId, cfg.cfg))) return;
    // Installed in OpenFlow is not yet enforced: the datapath's cached flows keep carrying a
    // live connection until a revalidator round has been through them (under load, well after
    // the report). Waiting for one makes "applied" mean the next packet meets the new rules.
    if (!revalidate) return;
    const layout = new StackLayout(this.stack.opts);
    await run(['ovs-appctl', '-t', layout.run('ovs-vswitchd.ctl'), 'revalidator/wait'], { env: layout.env(), timeoutMs: 5000 }).catch((e: unknown) =>
      log.warn('datapath revalidation not awaited', { network: netId.slice(0, 12), error: errorMessage(e) }),
    );
    const ms = (a: number, b: number): number => Math.round((b - a) * 10) / 10;
    log.debug('policies enforced', { network: netId.slice(0, 12), operations: cfg.operations, writeMs: ms(t0, tWrite), installMs: ms(tWrite, performance.now()) });
  }

  /** The `nb_cfg` the bump at the end of a transaction's results got (see {@link cfgBumpOps}). */
  private issued(res: OvsdbOpResult[]): number | undefined {
    const cfg = res[res.length - 1]?.rows?.[0]?.['nb_cfg'];
    if (typeof cfg !== 'number') return undefined;
    this.watch().issued(cfg);
    return cfg;
  }

  /** Waits until the chassis reports `cfg` installed in OpenFlow; false (logged) past the timeout. */
  private async installed(netId: string, cfg: number): Promise<boolean> {
    const ok = await this.watch()
      .reached(cfg, ENFORCED_TIMEOUT_MS)
      .catch((e: unknown) => {
        log.warn('southbound not reachable', { network: netId.slice(0, 12), error: errorMessage(e) });
        return false;
      });
    if (!ok) log.warn('policy change written but not reported installed in time', { network: netId.slice(0, 12) });
    return ok;
  }

  private watch(): ChassisCfgWatch {
    return (this.cfgWatch ??= new ChassisCfgWatch(this.stack.sbSocket, this.stack.opts.chassis));
  }

  /**
   * Packets and bytes per policy. NB ACLs have no counters: each ACL's logical flows (southbound
   * `stage-hint` = the ACL's UUID prefix) become OpenFlow flows whose cookie is the logical
   * flow's UUID prefix, and those flows' statistics are summed. Allowed counts the request-direction
   * packets of allowed connections (OVN re-judges each of them; replies skip the ACLs), dropped
   * counts the drops of isolated endpoints, blamed on the policies the drop ACL names. A rule
   * rewritten since (a changed peer set keeps its ACL; a changed match restarts its flows) counts
   * from the change.
   */
  async counters(netId: string): Promise<Record<string, PolicyCounters>> {
    const out: Record<string, PolicyCounters> = {};
    const zero = (p: string): PolicyCounters => (out[p] ??= { allowedPackets: 0, allowedBytes: 0, droppedPackets: 0, droppedBytes: 0 });
    for (const p of this.plans.get(netId)?.policies ?? []) zero(p);
    const nb = await this.nb();
    const [found] = await nb.transact([
      { op: 'select', table: 'ACL', where: [['external_ids', 'includes', map({ [EXT_NETWORK]: netId })]], columns: ['_uuid', 'external_ids'] },
    ]);
    const acls = (found?.rows ?? [])
      .map((r: OvsdbRow) => ({ id: atomText(fromSet(r['_uuid'])[0]!), ext: fromMap(r['external_ids']) }))
      .filter((a) => a.ext[EXT_POLICY] && (a.ext[EXT_VERDICT] === 'allow' || a.ext[EXT_VERDICT] === 'drop'));
    if (!acls.length) return out;
    const sb = await OvsdbClient.connect(this.stack.sbSocket, { timeoutMs: 5000 });
    let flows;
    try {
      flows = await sb.transact(
        'OVN_Southbound',
        acls.map((a) => ({ op: 'select', table: 'Logical_Flow', where: [['external_ids', 'includes', map({ 'stage-hint': a.id.slice(0, 8) })]], columns: ['_uuid'] })),
      );
    } finally {
      sb.close();
    }
    const byCookie = new Map<number, number[]>();
    acls.forEach((_, i) => {
      for (const r of flows[i]?.rows ?? []) {
        const cookie = parseInt(atomText(fromSet(r['_uuid'])[0]!).slice(0, 8), 16);
        byCookie.set(cookie, [...(byCookie.get(cookie) ?? []), i]);
      }
    });
    // OpenFlow is not OVSDB: ovs-ofctl asks br-int.mgmt, found through the stack's OVS_RUNDIR.
    const dump = await run(['ovs-ofctl', '-O', 'OpenFlow15', 'dump-flows', this.stack.bridge], { env: new StackLayout(this.stack.opts).env(), timeoutMs: 10_000 });
    const stats = acls.map(() => ({ packets: 0, bytes: 0 }));
    for (const line of dump.stdout.split('\n')) {
      const m = /cookie=0x([0-9a-f]+),.*?n_packets=([0-9]+), n_bytes=([0-9]+)/.exec(line);
      if (!m) continue;
      for (const i of byCookie.get(parseInt(m[1]!, 16)) ?? []) {
        stats[i]!.packets += Number(m[2]);
        stats[i]!.bytes += Number(m[3]);
      }
    }
    acls.forEach((a, i) => {
      for (const p of a.ext[EXT_POLICY]!.split(',')) {
        const c = zero(p);
        if (a.ext[EXT_VERDICT] === 'allow') {
          c.allowedPackets += stats[i]!.packets;
          c.allowedBytes += stats[i]!.bytes;
        } else {
          c.droppedPackets += stats[i]!.packets;
          c.droppedBytes += stats[i]!.bytes;
        }
      }
    });
    return out;
  }
}
