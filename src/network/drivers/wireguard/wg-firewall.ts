/**
 * The ruleset inside one endpoint's hidden namespace (`table inet arca_wg`), replaced whole on
 * every change. Two jobs:
 *
 * - Control-plane protection (the seed's): the container reaches nothing of the hidden namespace
 *   itself (its wireguard-go UDP port, its underlay address, the gateway's other ports; ICMP to
 *   the gateway stays) and no underlay address of any endpoint; overlay traffic, the way out
 *   (forwarded to the host, whose ruleset masquerades and isolates) and replies pass.
 * - Network policies on wireguard networks: traffic between two containers never crosses the
 *   host (it goes container → hidden ns → tunnel → hidden ns → container), so policies are
 *   judged here, each endpoint's own rules in its own namespace (its egress where it is the
 *   client, its ingress where it is the server), with the nft-policy renderer the bridge driver
 *   uses, so the semantics are the same.
 */
import type { NetworkPolicyPlan, PolicyCounters } from '../../policies/policy-types.js';

export const HIDDEN_TABLE = 'arca_wg';

export interface HiddenNsFirewallSpec {
  networkId: string;
  /** The interface facing the container (`c0`). */
  innerIf: string;
  /** The underlay interface (`u0`). */
  underlayIf: string;
  /** CIDRs of the underlay (every endpoint's underlay address is in one). */
  underlayPool: string[];
  /** The WireGuard interface. */
  wgIf: string;
  listenPort: number;
  /** Gateway addresses held on `innerIf` (bare). */
  gateways: string[];
  /**
   * This endpoint's part of the network's plan: `endpoints` holds at most this endpoint's entry.
   * Absent or without endpoints: not governed.
   */
  plan?: NetworkPolicyPlan;
  /** `--log-policy-drops`. */
  logDrops?: boolean;
}

/** The nft script (replaces the table). Pure. */
export function renderHiddenNsRuleset(spec: HiddenNsFirewallSpec): string {
  void spec;
  throw new Error('not implemented');
}

/**
 * Policy counters of one hidden namespace, summed per policy and kept across table reloads
 * (a reload zeroes the kernel's counters: the caller passes the same `book` key every time).
 */
export class HiddenNsCounters {
  /** Loads `script` into the namespace, first folding the counters it is about to reset into the totals. */
  async load(nsPath: string, script: string): Promise<void> {
    void nsPath;
    void script;
    throw new Error('not implemented');
  }
  /** Current totals per policy for the namespace (kernel counters plus what earlier reloads reset). */
  async read(nsPath: string): Promise<Record<string, PolicyCounters>> {
    void nsPath;
    throw new Error('not implemented');
  }
  /** Forgets a namespace that is gone (its counts stay in the network's totals). */
  forget(nsPath: string): void {
    void nsPath;
  }
}
