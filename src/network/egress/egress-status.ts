/**
 * `arca network egress NAME` / `GET /arca/v1/networks/{name}/egress`: a deny network's allowlist,
 * the addresses each name currently stands for (learnt from the answers its containers got, with
 * the seconds they have left) and what was dropped.
 */
import { InvalidParameter } from '../../errors.js';
import { isEgressLearner, type Firewall } from '../firewall/firewall.js';
import type { NetworkRecord } from '../network-record.js';
import { EGRESS_TTL_CEILING_S, EGRESS_TTL_FLOOR_S } from './egress-book.js';
import { parseEgressOptions } from './egress-options.js';

export interface EgressView {
  Network: string;
  Id: string;
  Strategy: string;
  Sample?: number;
  Allow: Array<{ Entry: string; Kind: 'cidr' | 'name'; Addresses?: Array<{ Address: string; ExpiresInSeconds: number }> }>;
  TtlFloorSeconds: number;
  TtlCeilingSeconds: number;
  Dropped: { Packets: number; Bytes: number };
  DroppedDns: { Packets: number; Bytes: number };
}

export async function describeEgress(n: NetworkRecord, firewall: Firewall): Promise<EgressView> {
  const pol = parseEgressOptions(n.Options);
  if (!pol) throw new InvalidParameter(`network ${n.Name} has no egress allowlist (arca.egress=deny)`);
  const st = isEgressLearner(firewall) ? await firewall.egressStatus(n.Id) : undefined;
  return {
    Network: n.Name,
    Id: n.Id,
    Strategy: pol.strategy,
    ...(pol.sample !== undefined ? { Sample: pol.sample } : {}),
    Allow: [
      ...pol.cidrs.map((c) => ({ Entry: c.entry, Kind: 'cidr' as const })),
      ...pol.names.map((r, k) => ({
        Entry: r.entry,
        Kind: 'name' as const,
        Addresses: (st?.learnt[k] ?? []).map((a) => ({ Address: a.addr, ExpiresInSeconds: a.expiresInS })),
      })),
    ],
    TtlFloorSeconds: EGRESS_TTL_FLOOR_S,
    TtlCeilingSeconds: EGRESS_TTL_CEILING_S,
    Dropped: { Packets: st?.dropped.packets ?? 0, Bytes: st?.dropped.bytes ?? 0 },
    DroppedDns: { Packets: st?.droppedDns.packets ?? 0, Bytes: st?.droppedDns.bytes ?? 0 },
  };
}
