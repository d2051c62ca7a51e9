/**
 * Egress allowlists (`-o arca.egress=deny`) in the host ruleset. Every driver's network leaves
 * the host through one interface the firewall knows it by (bridge: the Linux bridge; ovn: the
 * transit link; wireguard: the underlay bridge), so one rendering serves them all.
 *
 * For each deny network (S = its id12, I = its interface):
 *
 *   forward: `iifname I jump e_S` before every other rule, so no later accept (a published port
 *            of another network, the network's own "out" accept) can skip it.
 *   input:   `iifname I jump e_S_host` (the host's own addresses are destinations like others).
 *   e_S:      same-interface traffic returns (the network itself; policies govern it), replies
 *            return (published ports keep working), then the strategy's fast path, then e_S_chk.
 *   e_S_host: replies, fast path, IPv6 neighbour/router discovery, the embedded DNS on the
 *            gateways when it listens there, then e_S_chk.
 *   e_S_chk:  allowlisted destinations return; DNS (53) and DoT (853) to anyone not allowed
 *            with an explicit port are dropped and counted in `e_S_dns`, so a broad CIDR does
 *            not let names be resolved past the embedded server; the rest of the any-port
 *            destinations return; everything else is dropped and counted in `e_S_drop`.
 *
 * Strategies: `conntrack` returns established/related packets before the check; `sampled`
 * returns established packets but one in N (numgen), which goes through the check; `full` checks
 * every packet of the original direction. A new flow is checked under every strategy. A packet
 * the check drops marks its flow ({@link EGRESS_CUT_MARK}) and the flow's later packets are
 * dropped before anything else.
 *
 * Sets: CIDR entries grouped by their port part (`e_S_c4_K`, `e_S_c6_K`; K = 0 is "any port"),
 * merged into non-overlapping interval elements; each name entry K has its own learnt sets
 * `e_S_nK_4` / `e_S_nK_6` (flags timeout), which the DNS learner fills with `add element` and
 * which a reload re-creates with the elements' remaining timeouts.
 */
import { InvalidParameter } from '../../../errors.js';
import type { EgressPolicy, EgressPorts } from '../../egress/egress-options.js';
import { mergeRanges, parseCidr, rangeElements, type Family } from './address-ranges.js';

/** One learnt element: an address and the seconds it has left. */
export interface LearntElement {
  addr: string;
  fam: Family;
  timeoutS: number;
}

/** Learnt elements by network id, then by name rule index. */
export type LearntElements = ReadonlyMap<string, ReadonlyMap<number, readonly LearntElement[]>>;

export interface EgressNetworkInfo {
  id: string;
  /** The rules' tag (`comment "arca:net:<id12>"`). */
  tag: string;
  /** The quoted interface name. */
  ifname: string;
  gateways: readonly string[];
  egress: EgressPolicy;
}

export interface EgressRendering {
  /** Table-level declarations (sets, counters). */
  decls: string[];
  /** Chains, complete. */
  chains: string[];
  /** Rules at the top of the forward chain. */
  forward: string[];
  /** Rules at the top of the input chain. */
  input: string[];
}

/**
 * The conntrack mark bit of a flow the check dropped: every later packet of it is dropped at
 * once, so a flow `full` or `sampled` found no longer allowed stays cut (TCP would otherwise get
 * a retransmission past the next unsampled packet). One bit, set and tested alone, so other
 * users of the ct mark keep theirs.
 */
export const EGRESS_CUT_MARK = 0x00800000;
const CUT = `0x${EGRESS_CUT_MARK.toString(16).padStart(8, '0')}`;

function short(id: string): string {
  return id.slice(0, 12).replace(/[.-]/g, '_');
}

/** The chain/set/counter prefix of a network. */
export function egressPrefix(networkId: string): string {
  return `e_${short(networkId)}`;
}

/** The learnt set of name rule `k` for a family. */
export function egressNameSet(networkId: string, k: number, fam: Family): string {
  return `${egressPrefix(networkId)}_n${k}_${fam}`;
}

/** The named counters of a network: other drops, DNS/DoT drops. */
export function egressCounterNames(networkId: string): { drop: string; dns: string } {
  const p = egressPrefix(networkId);
  return { drop: `${p}_drop`, dns: `${p}_dns` };
}

/** nft's `expires 1h2m3s456ms` as seconds (rounded down). */
function nftDurationS(text: string): number {
  let ms = 0;
  for (const m of text.matchAll(/(\d+)(ms|d|h|m|s)/g)) {
    const n = Number(m[1]);
    ms += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : m[2] === 'h' ? n * 3_600_000 : n * 86_400_000;
  }
  return Math.floor(ms / 1000);
}

/** Elements of a learnt set's `list set` text, with the seconds they have left. */
export function parseLearntSet(text: string, fam: Family): LearntElement[] {
  const body = /elements = \{([^}]*)\}/.exec(text)?.[1];
  if (!body) return [];
  const out: LearntElement[] = [];
  for (const raw of body.split(',')) {
    const m = /^\s*(\S+)(?:\s+timeout\s+\S+)?\s+expires\s+(\S+)/.exec(raw);
    if (!m) continue;
    const left = nftDurationS(m[2]!);
    if (left >= 1) out.push({ addr: m[1]!, fam, timeoutS: left });
  }
  return out;
}

function portMatch(p: EgressPorts): string {
  const range = p.from === p.to ? `${p.from}` : `${p.from}-${p.to}`;
  return `meta l4proto ${p.proto ?? '{ tcp, udp }'} th dport ${range}`;
}

function portKey(p: EgressPorts | undefined): string {
  return p ? `${p.proto ?? 'tcp+udp'}:${p.from}-${p.to}` : '';
}

function ipKw(fam: Family): 'ip' | 'ip6' {
  return fam === 4 ? 'ip' : 'ip6';
}

function setType(fam: Family): string {
  return fam === 4 ? 'ipv4_addr' : 'ipv6_addr';
}

function fastPath(e: EgressPolicy): string[] {
  switch (e.strategy) {
    case 'conntrack':
      return ['ct state established,related return'];
    case 'sampled':
      return [`ct state established numgen random mod ${e.sample} != 0 return`];
    case 'full':
      return [];
  }
}

/** Renders the egress part of the filter table for the deny networks among `nets`. */
export function renderEgress(nets: readonly EgressNetworkInfo[], dnsPort: number | null, learnt: LearntElements = new Map()): EgressRendering {
  const out: EgressRendering = { decls: [], chains: [], forward: [], input: [] };
  const chain = (name: string, lines: string[]): void => {
    out.chains.push(`\tchain ${name} {`, ...lines.map((l) => `\t\t${l}`), '\t}');
  };
  for (const n of nets) {
    const e = n.egress;
    const p = egressPrefix(n.id);
    const counters = egressCounterNames(n.id);
    out.decls.push(`\tcounter ${counters.drop} {}`, `\tcounter ${counters.dns} {}`);

    // CIDR groups by port part; "" (any port) first so its index is stable.
    const groups = new Map<string, { ports?: EgressPorts; cidrs: Map<Family, string[]> }>();
    groups.set('', { cidrs: new Map() });
    for (const c of e.cidrs) {
      const key = portKey(c.ports);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { ...(c.ports ? { ports: c.ports } : {}), cidrs: new Map() }));
      const list = g.cidrs.get(c.fam) ?? [];
      list.push(c.cidr);
      g.cidrs.set(c.fam, list);
    }
    const ported: string[] = [];
    const anyPort: string[] = [];
    [...groups.values()].forEach((g, k) => {
      for (const fam of [4, 6] as const) {
        const cidrs = g.cidrs.get(fam);
        if (!cidrs?.length) continue;
        const set = `${p}_c${fam}_${k}`;
        const elements = rangeElements(fam, mergeRanges(cidrs.map((c) => parseCidr(c).range)));
        out.decls.push(`\tset ${set} { type ${setType(fam)}; flags interval; elements = { ${elements.join(', ')} } }`);
        const rule = `${ipKw(fam)} daddr @${set}${g.ports ? ` ${portMatch(g.ports)}` : ''} return ${n.tag}`;
        (g.ports ? ported : anyPort).push(rule);
      }
    });
    e.names.forEach((r, k) => {
      for (const fam of [4, 6] as const) {
        const set = egressNameSet(n.id, k, fam);
        const els = learnt.get(n.id)?.get(k)?.filter((x) => x.fam === fam) ?? [];
        const elements = els.length ? `; elements = { ${els.map((x) => `${x.addr} timeout ${Math.max(1, Math.ceil(x.timeoutS))}s`).join(', ')} }` : '';
        out.decls.push(`\tset ${set} { type ${setType(fam)}; flags timeout${elements}; comment "${r.entry.replace(/[^\x21-\x7e]|["\\]/g, '').slice(0, 100)}"; }`);
        const rule = `${ipKw(fam)} daddr @${set}${r.ports ? ` ${portMatch(r.ports)}` : ''} return ${n.tag}`;
        (r.ports ? ported : anyPort).push(rule);
      }
    });

    const fp = fastPath(e);
    const cut = `ct mark and ${CUT} == ${CUT} counter name "${counters.drop}" drop ${n.tag}`;
    chain(p, [`oifname ${n.ifname} return ${n.tag}`, cut, `ct direction reply return ${n.tag}`, ...fp.map((l) => `${l} ${n.tag}`), `jump ${p}_chk ${n.tag}`]);
    const host = [cut, `ct direction reply return ${n.tag}`, ...fp.map((l) => `${l} ${n.tag}`)];
    host.push(`icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } return ${n.tag}`);
    if (dnsPort !== null) {
      for (const gw of [...n.gateways].sort()) {
        const fam: Family = gw.includes(':') ? 6 : 4;
        if (!/^[0-9a-fA-F.:]+$/.test(gw)) throw new InvalidParameter(`invalid gateway "${gw}" for network ${n.id}`);
        host.push(`${ipKw(fam)} daddr ${gw} meta l4proto { tcp, udp } th dport ${dnsPort} return ${n.tag}`);
      }
    }
    host.push(`jump ${p}_chk ${n.tag}`);
    chain(`${p}_host`, host);
    chain(`${p}_chk`, [
      ...ported,
      `meta l4proto { tcp, udp } th dport { 53, 853 } counter name "${counters.dns}" ct mark set ct mark or ${CUT} drop ${n.tag}`,
      ...anyPort,
      `counter name "${counters.drop}" ct mark set ct mark or ${CUT} drop ${n.tag}`,
    ]);
    out.forward.push(`iifname ${n.ifname} jump ${p} ${n.tag}`);
    out.input.push(`iifname ${n.ifname} jump ${p}_host ${n.tag}`);
  }
  return out;
}
