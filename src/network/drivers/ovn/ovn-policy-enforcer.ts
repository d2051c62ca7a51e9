import { KeyedLock } from '../../../keyed-lock.js';
import { errorMessage } from '../../../errors.js';
import { logger } from '../../../log.js';
import { OvsdbClient } from '../../../ovsdb/ovsdb-client.js';
import { OvsdbSession } from '../../../ovsdb/ovsdb-session.js';
import { fromMap, fromSet, atomText, map, type Condition, type OvsdbOp, type OvsdbRow } from '../../../ovsdb/ovsdb-values.js';
import { run } from '../../../sys/runner.js';
import type { NetworkPolicyPlan, PolicyCounters } from '../../policies/policy-types.js';
import { EXT_NETWORK } from './ovn-names.js';
import { EgressBook } from '../../egress/egress-book.js';
import type { EgressLearnt } from '../../firewall/firewall.js';
import { EXT_DNS, EXT_EXPIRES, EXT_POLICY, EXT_VERDICT, parseExpires, parsePolicyRead, type PolicyRowOptions, policyDiffOps, policyReadOps, policyRows } from './ovn-policies.js';
import type { OvnStack } from './stack/ovn-stack.js';
import { StackLayout } from './stack/stack-layout.js';

const log = logger('arca:net:ovn:policy');

/**
 * How long an apply waits for ovn-controller to have installed the flows of the change (the
 * container must not run before it is governed); past it the apply returns with a warning.
 */
const ENFORCED_TIMEOUT_MS = 10_000;

/**
 * Keeps each network's last plan (what a rebuilt northbound database and a re-created port are
 * given again) and writes plans to NB: one transaction per change, then a wait until the chassis
 * reports the change's `nb_cfg` as installed in OpenFlow, so that "applied" means "enforced".
 * The wait is on the chassis' own row in SB (`Chassis_Private.nb_cfg`), not on NB's `hv_cfg`
 * (what `ovn-nbctl --wait=hv` reads): that saves northd's round of copying it back. Applies run
 * one at a time, for every network: concurrent `nb_cfg` bumps could make a waiter miss the value
 * it waits for.
 */
export class OvnPolicyEnforcer {
  private readonly plans = new Map<string, NetworkPolicyPlan>();
  private readonly lock = new KeyedLock();
  private sb?: OvsdbSession;
  /** `dns` peers' learnt addresses per network and pattern: what their address sets hold. */
  private readonly dns = new EgressBook<string>();
  /** Networks whose `dns` sets were read back from NB in this process (a restarted daemon keeps them). */
  private readonly dnsAdopted = new Set<string>();
  /** Rewrites the `dns` sets when their next address expires (OVN's sets have no timeouts). */
  private expiryTimer?: NodeJS.Timeout;

  constructor(
    private readonly nb: () => Promise<OvsdbSession>,
    private readonly stack: OvnStack,
    /** A network's load-balancer VIPs (see {@link PolicyRowOptions.hairpinSources}). */
    private readonly vipsOf: (netId: string) => string[] = () => [],
  ) {}

  /** Makes `plan` the network's whole policy state in NB and returns once it is enforced. */
  async apply(netId: string, plan: NetworkPolicyPlan): Promise<void> {
    if (plan.endpoints.length || plan.policies.length) this.plans.set(netId, plan);
    else this.plans.delete(netId);
    const keep = new Set(plan.dns ?? []);
    this.dns.retainKeys((id, dns) => id !== netId || keep.has(dns));
    await this.write(netId, plan);
  }

  /**
   * DNS-learnt addresses of the network's `dns` peers: into their address sets, resolving once
   * they are enforced (the container's answer waits for it).
   */
  async learnDns(netId: string, items: readonly EgressLearnt[]): Promise<void> {
    const plan = this.plans.get(netId);
    if (!plan?.dns?.length) return;
    const now = Date.now();
    let changed = false;
    for (const it of items) {
      if (it.dns === undefined || it.networkId !== netId || !plan.dns.includes(it.dns)) continue;
      const before = JSON.stringify(this.dns.elements(now).get(netId)?.get(it.dns) ?? []);
      this.dns.record(netId, it.dns, this.dns.timeouts(it, now), now);
      changed ||= before !== JSON.stringify(this.dns.elements(now).get(netId)?.get(it.dns) ?? []);
    }
    // Only additions (and later expiry times): no revalidator round, which costs ~0.5 s. A new
    // connection's first packet misses the datapath cache and meets the installed flows; only a
    // flow dropped before the lookup may ride its cached drop until the next round.
    if (changed) await this.write(netId, plan, false);
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
  }

  networks(): string[] {
    return [...this.plans.keys()];
  }

  close(): void {
    this.sb?.close();
    this.sb = undefined;
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

  /** `revalidate`: wait for a datapath revalidation round too (what cuts live connections at once). */
  private write(netId: string, plan: NetworkPolicyPlan, revalidate = true): Promise<void> {
    return this.lock.run('nb', async () => {
      const t0 = performance.now();
      const nb = await this.nb();
      const have = parsePolicyRead(await nb.transact(policyReadOps(netId)));
      const now = Date.now();
      if (!this.dnsAdopted.has(netId)) {
        this.dnsAdopted.add(netId);
        for (const r of have.addressSets) {
          const ext = fromMap(r['external_ids']);
          const dns = ext[EXT_DNS];
          if (dns === undefined || !(plan.dns ?? []).includes(dns)) continue;
          const els = parseExpires(ext[EXT_EXPIRES], String(r['name']).endsWith('_6') ? 6 : 4, now);
          if (els.length) this.dns.record(netId, dns, els, now);
        }
      }
      const dnsLearnt = this.dns.elements(now).get(netId);
      const ops: OvsdbOp[] = policyDiffOps(have, policyRows(netId, plan, have.lsps, { hairpinSources: this.vipsOf(netId), now, ...(dnsLearnt ? { dnsLearnt } : {}) }));
      this.scheduleExpiry();
      if (!ops.length) return;
      const tRead = performance.now();
      ops.push(
        { op: 'mutate', table: 'NB_Global', where: [], mutations: [['nb_cfg', '+=', 1]] },
        { op: 'select', table: 'NB_Global', where: [], columns: ['nb_cfg'] },
      );
      const res = await nb.transact(ops);
      const tWrite = performance.now();
      const cfg = res[res.length - 1]?.rows?.[0]?.['nb_cfg'];
      if (typeof cfg !== 'number') return;
      try {
        this.sb ??= new OvsdbSession(this.stack.sbSocket, 'OVN_Southbound');
        const chassis = [['name', '==', this.stack.opts.chassis]] satisfies Condition[];
        await this.sb.transact([{ op: 'wait', table: 'Chassis_Private', where: chassis, columns: ['nb_cfg'], until: '==', rows: [{ nb_cfg: cfg }], timeout: ENFORCED_TIMEOUT_MS }], {
          timeoutMs: ENFORCED_TIMEOUT_MS + 2000,
        });
      } catch (e) {
        log.warn('policy change written but not reported installed in time', { network: netId.slice(0, 12), error: errorMessage(e) });
        return;
      }
      // Installed in OpenFlow is not yet enforced: the datapath's cached flows keep carrying a
      // live connection until a revalidator round has been through them (under load, well after
      // the report). Waiting for one makes "applied" mean the next packet meets the new rules.
      if (!revalidate) return;
      const layout = new StackLayout(this.stack.opts);
      await run(['ovs-appctl', '-t', layout.run('ovs-vswitchd.ctl'), 'revalidator/wait'], { env: layout.env(), timeoutMs: 5000 }).catch((e: unknown) =>
        log.warn('datapath revalidation not awaited', { network: netId.slice(0, 12), error: errorMessage(e) }),
      );
      const ms = (a: number, b: number): number => Math.round((b - a) * 10) / 10;
      const tEnd = performance.now();
      log.debug('policies enforced', { network: netId.slice(0, 12), operations: ops.length - 2, readMs: ms(t0, tRead), writeMs: ms(tRead, tWrite), installMs: ms(tWrite, tEnd) });
    });
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
