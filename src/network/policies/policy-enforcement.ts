import { InvalidParameter, errorMessage } from '../../errors.js';
import { logger } from '../../log.js';
import { hasHostDnsPeers, isFirewallContributor, isPolicyDnsLearner, isPolicyEnforcer, type DriverNetwork, type NetworkDriver } from '../driver.js';
import type { DriverRegistry } from '../driver-registry.js';
import { isEgressLearner, type EgressLearnt, type Firewall } from '../firewall/firewall.js';
import type { NetworkRecord } from '../network-record.js';
import { checkConnection, type CheckQuery, type CheckResult } from './policy-check.js';
import { compilePlans } from './policy-compile.js';
import { hostDnsPlan, policyDnsPatterns, withHeldEndpoints } from './policy-dns.js';
import type { PolicyManager } from './policy-manager.js';
import type { NetworkPolicyPlan, PolicyCounters, PolicyDoc, PolicyWorld, StoredPolicy } from './policy-types.js';

const log = logger('arca:net:policy');

/** Who enforces policies on a network: its driver, arca's nftables ruleset, or nobody. */
export type PolicyEnforcerKind = 'driver' | 'firewall' | 'none';

export function enforcerKind(d: NetworkDriver): PolicyEnforcerKind {
  // A driver that enforces policies itself wins even when it also contributes firewall rules (ovn).
  if (isPolicyEnforcer(d)) return 'driver';
  if (isFirewallContributor(d)) return 'firewall';
  return 'none';
}

/** What the enforcement needs of the network layer (the NetworkManager). */
export interface PolicyNetworks {
  policyWorld(): PolicyWorld;
  find(ref: string): NetworkRecord | undefined;
  driverNetwork(n: NetworkRecord): DriverNetwork;
  /** Recompiles and applies everything (firewall and drivers); resolves once enforced. */
  publish(): Promise<void>;
}

/** The policies of one publish, compiled once and split by who enforces them. */
export interface PolicyRound {
  /**
   * Plans the nftables ruleset enforces: `FirewallState.policies`. Those of bridge networks, and
   * on networks whose driver has the host judge its `dns` peers (ovn), the host's part (see
   * policy-dns.ts), still with the endpoints the driver's last plan lets out.
   */
  firewall: NetworkPolicyPlan[];
  /**
   * Hands every PolicyEnforcer driver its networks' plans (empty where none); call after the
   * firewall apply. Resolves to the plans the ruleset should hold now that the drivers have theirs,
   * when they are fewer than {@link firewall} (else undefined).
   */
  enforce(force: boolean): Promise<NetworkPolicyPlan[] | undefined>;
  /** Whether some plan of this round governs the container (an endpoint of it is selected). */
  governs(containerId: string): boolean;
}

function zero(): PolicyCounters {
  return { allowedPackets: 0, allowedBytes: 0, droppedPackets: 0, droppedBytes: 0 };
}

/**
 * Connects the stored policies to their enforcers. The network manager asks for a
 * {@link PolicyRound} on every publish (network, endpoint or policy change), so the nftables
 * ruleset and the drivers always hold the plans of the current world; the API changes policies
 * through here so that a policy nobody could enforce is refused before it is stored, and answers
 * only once the change is enforced.
 */
export class PolicyEnforcement {
  /** JSON of the plan each PolicyEnforcer network last accepted: unchanged plans are not re-sent. */
  private readonly sent = new Map<string, string>();
  /** Networks already warned about (a policy on a network no driver can enforce it on). */
  private readonly warned = new Set<string>();
  /** The host's part of each network's plan whose driver holds the matching plan (see policy-dns.ts). */
  private readonly hostHeld = new Map<string, NetworkPolicyPlan>();
  private networks?: PolicyNetworks;

  constructor(
    readonly store: PolicyManager,
    private readonly drivers: Pick<DriverRegistry, 'get'>,
    private readonly firewall: Firewall,
  ) {}

  /** The driver and its view of a network, by id; undefined once the network is gone. */
  private target(networkId: string): { driver: NetworkDriver; net: DriverNetwork } | undefined {
    const n = this.networks?.find(networkId);
    return n && this.networks ? { driver: this.drivers.get(n.Driver), net: this.networks.driverNetwork(n) } : undefined;
  }

  /** Wires the network layer (it is constructed after the store). */
  attach(networks: PolicyNetworks): void {
    this.networks = networks;
  }

  private get net(): PolicyNetworks {
    if (!this.networks) throw new Error('policy enforcement used before the network layer was attached');
    return this.networks;
  }

  /** Compiles the stored policies against `world`; pure apart from logging. */
  compile(world: PolicyWorld): PolicyRound {
    const docs = this.store.docs();
    const plans = docs.length ? compilePlans(docs, world) : [];
    const planOf = new Map(plans.map((p) => [p.networkId, p]));
    const firewall: NetworkPolicyPlan[] = [];
    const driven: Array<{ id: string; driver: NetworkDriver; net: DriverNetwork; onHost: boolean }> = [];
    const hostNext = new Map<string, NetworkPolicyPlan | undefined>();
    const settled: NetworkPolicyPlan[] = [];
    for (const n of world.networks) {
      const t = this.target(n.id);
      if (!t) continue;
      const kind = enforcerKind(t.driver);
      const plan = planOf.get(n.id);
      const onHost = kind === 'driver' && hasHostDnsPeers(t.driver) && isEgressLearner(this.firewall);
      if (kind === 'driver') driven.push({ id: n.id, ...t, onHost });
      if (onHost) {
        // The host judges first: its part is in force before the driver lets the traffic out.
        const next = plan && hostDnsPlan(plan);
        hostNext.set(n.id, next);
        const held = withHeldEndpoints(next, this.hostHeld.get(n.id));
        if (held) firewall.push(held);
        if (next) settled.push(next);
      } else if (kind === 'firewall') {
        if (plan) {
          firewall.push(plan);
          settled.push(plan);
        }
      } else if (plan && !this.warned.has(n.id)) {
        // Refused at apply time; this is a network of that name created later on such a driver.
        this.warned.add(n.id);
        log.error('network policies not enforced: the driver cannot', { network: n.name, driver: n.driver, policies: plan.policies.join(',') });
      }
    }
    const live = new Set(world.networks.map((n) => n.id));
    for (const id of this.sent.keys()) if (!live.has(id)) this.sent.delete(id);
    for (const id of this.hostHeld.keys()) if (!live.has(id)) this.hostHeld.delete(id);
    const governed = new Set(plans.flatMap((p) => p.endpoints.map((e) => e.containerId)));
    return {
      firewall,
      governs: (id) => governed.has(id),
      enforce: async (force) => {
        const errors: unknown[] = [];
        for (const { id, driver, net, onHost } of driven) {
          const compiled = planOf.get(id) ?? { networkId: id, policies: [], endpoints: [] };
          const plan = onHost ? { ...compiled, dnsOnHost: true } : compiled;
          const key = JSON.stringify(plan);
          const applied = (): void => {
            this.sent.set(id, key);
            if (!onHost) return;
            const next = hostNext.get(id);
            if (next) this.hostHeld.set(id, next);
            else this.hostHeld.delete(id);
          };
          if (!force && this.sent.get(id) === key) {
            applied();
            continue;
          }
          this.sent.delete(id);
          try {
            if (isPolicyEnforcer(driver)) await driver.applyPolicies(net, plan);
            applied();
          } catch (e) {
            log.error('applying network policies failed', { network: net.name, driver: driver.name, error: errorMessage(e) });
            errors.push(e);
          }
        }
        if (errors.length) throw new AggregateError(errors, `network policies not applied on ${errors.length} network(s)`);
        return JSON.stringify(settled) !== JSON.stringify(firewall) ? settled : undefined;
      },
    };
  }

  /** The `dns` peer patterns of the stored policies, by network name (for the DNS snapshot). */
  dnsPeersByNetwork(): Map<string, string[]> {
    const docs = this.store.docs();
    const out = new Map<string, string[]>();
    for (const name of new Set(docs.map((d) => d.network))) {
      const peers = policyDnsPatterns(docs, name);
      if (peers.length) out.set(name, peers);
    }
    return out;
  }

  /**
   * Hands DNS-learnt addresses of `dns` peers to the drivers enforcing policies themselves (the
   * nftables firewall takes its own through the egress learner); resolves once they have them.
   */
  async learnDns(items: EgressLearnt[]): Promise<void> {
    const byNet = new Map<string, EgressLearnt[]>();
    for (const it of items) if (it.dns !== undefined) byNet.set(it.networkId, [...(byNet.get(it.networkId) ?? []), it]);
    await Promise.all(
      [...byNet].map(async ([id, list]) => {
        const t = this.target(id);
        if (!t || !isPolicyDnsLearner(t.driver)) return;
        await t.driver.learnPolicyDns(t.net, list).catch((e: unknown) => {
          log.warn('learning dns peer addresses failed', { network: t.net.name, driver: t.driver.name, error: errorMessage(e) });
        });
      }),
    );
  }

  /** Refuses documents whose network exists on a driver that enforces policies in no way. */
  private checkEnforceable(docs: PolicyDoc[]): void {
    const world = this.net.policyWorld();
    for (const doc of docs) {
      for (const n of world.networks.filter((x) => x.name === doc.network)) {
        const t = this.target(n.id);
        if (t && enforcerKind(t.driver) === 'none') {
          throw new InvalidParameter(`policy "${doc.name}": network: network "${n.name}" uses driver "${t.driver.name}", which cannot enforce network policies`);
        }
      }
    }
  }

  /** Creates or replaces one policy; resolves once it is enforced. */
  async put(doc: PolicyDoc): Promise<'created' | 'replaced'> {
    this.checkEnforceable([doc]);
    const result = this.store.put(doc);
    await this.net.publish();
    return result;
  }

  /** Creates or replaces every document, all or nothing; resolves once enforced. */
  async applyAll(docs: PolicyDoc[]): Promise<Array<{ name: string; result: 'created' | 'replaced' }>> {
    this.checkEnforceable(docs);
    const results = this.store.applyAll(docs);
    await this.net.publish();
    return results;
  }

  /** Removes one policy (NotFound); resolves once the rules are gone. */
  async remove(name: string): Promise<void> {
    this.store.remove(name);
    await this.net.publish();
  }

  /** `arca policy check`: the model's answer for one connection in the current world. */
  check(q: CheckQuery): CheckResult {
    return checkConnection(this.store.docs(), this.net.policyWorld(), q);
  }

  get(name: string): StoredPolicy {
    return this.store.get(name);
  }

  list(): StoredPolicy[] {
    return this.store.list();
  }

  /**
   * What one policy allowed and dropped, summed over the nftables ruleset and every driver that
   * enforces it; zeros where nothing counted yet. An enforcer that cannot be read is left out.
   */
  async counters(name: string): Promise<PolicyCounters> {
    const sum = zero();
    const add = (c: PolicyCounters | undefined): void => {
      if (!c) return;
      sum.allowedPackets += c.allowedPackets;
      sum.allowedBytes += c.allowedBytes;
      sum.droppedPackets += c.droppedPackets;
      sum.droppedBytes += c.droppedBytes;
    };
    if (this.firewall.policyCounters) {
      add(await this.firewall.policyCounters().then((all) => all[name], (e: unknown) => {
        log.warn('firewall policy counters unreadable', { error: errorMessage(e) });
        return undefined;
      }));
    }
    const world = this.net.policyWorld();
    for (const n of world.networks) {
      const t = this.target(n.id);
      if (!t || !isPolicyEnforcer(t.driver) || !t.driver.policyCounters) continue;
      const driver = t.driver;
      add(await driver.policyCounters!(t.net).then((all) => all[name], (e: unknown) => {
        log.warn('driver policy counters unreadable', { network: n.name, driver: driver.name, error: errorMessage(e) });
        return undefined;
      }));
    }
    return sum;
  }
}
