/**
 * What the kernel knows about policies and the ruleset does not: counter values and the flows
 * recorded as dropped (`--log-policy-drops`). Parsers of nft's text output (the native addon's
 * libnftables runs without the JSON output flag) and the bookkeeping around them. The
 * ruleset itself is never read back.
 */
import type { NetworkPolicyPlan, PolicyCounters, PolicyWorld } from '../../policies/policy-types.js';
import { policyCounterNames } from './nft-policy.js';

/** Named counters in `list counters table …` output: name → packets, bytes. */
export function parseCounters(text: string): Map<string, { packets: number; bytes: number }> {
  const out = new Map<string, { packets: number; bytes: number }>();
  for (const m of text.matchAll(/counter (\S+) \{\s*(?:comment "[^"]*"\s*)?packets (\d+) bytes (\d+)/g)) {
    out.set(m[1]!, { packets: Number(m[2]), bytes: Number(m[3]) });
  }
  return out;
}

/** One flow of a drop set: `saddr . daddr . proto . port`. */
export interface DroppedFlow {
  src: string;
  dst: string;
  proto: string;
  port: number;
}

/** Elements of a `list set` of a drop set (`1.2.3.4 . 5.6.7.8 . tcp . 5432 expires 9s`). */
export function parseDropSet(text: string): DroppedFlow[] {
  const body = /elements = \{([^}]*)\}/.exec(text)?.[1];
  if (!body) return [];
  const out: DroppedFlow[] = [];
  for (const raw of body.split(',')) {
    const m = /^\s*(\S+) \. (\S+) \. (\S+) \. (\S+)/.exec(raw);
    if (!m) continue;
    const port = Number(m[4]);
    out.push({ src: m[1]!, dst: m[2]!, proto: m[3]!, port: Number.isFinite(port) ? port : -1 });
  }
  return out;
}

/**
 * Per-policy totals across ruleset reloads. The firewall moves the kernel's counts here with
 * `reset counters` (read and zero) whenever it is asked for totals and just before each reload
 * (which re-creates the counters at zero); packets counted between that reset and the swap are
 * lost (a few at most).
 */
export class PolicyCounterBook {
  private readonly base = new Map<string, { packets: number; bytes: number }>();

  absorb(live: Map<string, { packets: number; bytes: number }>): void {
    for (const [name, v] of live) {
      const b = this.base.get(name) ?? { packets: 0, bytes: 0 };
      this.base.set(name, { packets: b.packets + v.packets, bytes: b.bytes + v.bytes });
    }
  }

  /** What one counter absorbed so far. */
  get(name: string): { packets: number; bytes: number } {
    return { ...(this.base.get(name) ?? { packets: 0, bytes: 0 }) };
  }

  /** Totals for `policies` (the ones in force), from the live counters plus what was absorbed. */
  totals(policies: Iterable<string>, live: Map<string, { packets: number; bytes: number }>): Record<string, PolicyCounters> {
    const out: Record<string, PolicyCounters> = {};
    const get = (name: string): { packets: number; bytes: number } => {
      const b = this.base.get(name) ?? { packets: 0, bytes: 0 };
      const l = live.get(name) ?? { packets: 0, bytes: 0 };
      return { packets: b.packets + l.packets, bytes: b.bytes + l.bytes };
    };
    for (const p of [...new Set(policies)].sort()) {
      const n = policyCounterNames(p);
      const a = get(n.allowed);
      const d = get(n.dropped);
      out[p] = { allowedPackets: a.packets, allowedBytes: a.bytes, droppedPackets: d.packets, droppedBytes: d.bytes };
    }
    return out;
  }
}

/** The policy names in force in `plans` (those of the plans and of their rules). */
export function policiesInForce(plans: readonly NetworkPolicyPlan[]): string[] {
  const names = new Set<string>();
  for (const plan of plans) {
    for (const p of plan.policies) names.add(p);
    for (const ep of plan.endpoints) {
      for (const p of ep.policies) names.add(p);
      for (const r of [...(ep.ingress ?? []), ...(ep.egress ?? [])]) names.add(r.policy);
    }
  }
  return [...names].sort();
}

/** Names an address for a log line (a container name), or undefined if it is nobody's. */
export type AddressNamer = (address: string) => string | undefined;

/**
 * A namer over the policy world (container names by every address of theirs), rebuilt at most
 * once a second: drop lines come in bursts and the world is the network manager's to compute.
 */
export function worldNamer(world: () => PolicyWorld, maxAgeMs = 1000): AddressNamer {
  let names = new Map<string, string>();
  let at = -Infinity;
  return (address) => {
    if (Date.now() - at > maxAgeMs) {
      names = new Map();
      for (const ep of world().endpoints) for (const a of ep.addresses) names.set(a, ep.containerName);
      at = Date.now();
    }
    return names.get(address);
  };
}

/**
 * Turns recorded drops into one log line per flow: who (both ends, by container name when the
 * namer knows them), what (proto/port), and which policies isolate the endpoint that dropped it.
 * A flow stays in the kernel's set for DROP_SET_TIMEOUT_S; it is logged once while it stays.
 */
export class PolicyDropReporter {
  private seen = new Set<string>();

  constructor(private readonly emit: (line: string, extra: Record<string, unknown>) => void) {}

  report(
    flows: Array<DroppedFlow & { dir: 'ingress' | 'egress' }>,
    plans: readonly NetworkPolicyPlan[],
    namer?: AddressNamer,
  ): void {
    const now = new Set<string>();
    for (const f of flows) {
      const key = `${f.dir} ${f.src} ${f.dst} ${f.proto} ${f.port}`;
      now.add(key);
      if (this.seen.has(key)) continue;
      const governed = f.dir === 'ingress' ? f.dst : f.src;
      let endpoint: { id: string; containerId: string; policies: string[] } | undefined;
      for (const plan of plans) {
        for (const ep of plan.endpoints) {
          if (ep.addresses.includes(governed)) {
            const rules = ep[f.dir] ?? [];
            const by = ep.isolatedBy?.[f.dir] ?? (rules.length ? [...new Set(rules.map((r) => r.policy))] : ep.policies);
            endpoint = { id: ep.endpointId, containerId: ep.containerId, policies: by };
          }
        }
      }
      const name = (addr: string): string => {
        const n = namer?.(addr);
        return n ? `${n} (${addr})` : addr;
      };
      const what = f.proto === 'tcp' || f.proto === 'udp' || f.proto === 'sctp' ? `${f.port}/${f.proto}` : f.proto;
      this.emit(`policy drop: ${name(f.src)} -> ${name(f.dst)} ${what} (${f.dir} of ${name(governed)})`, {
        direction: f.dir,
        policies: endpoint?.policies ?? [],
        ...(endpoint ? { endpoint: endpoint.id.slice(0, 12), container: endpoint.containerId.slice(0, 12) } : {}),
      });
    }
    this.seen = now;
  }
}
