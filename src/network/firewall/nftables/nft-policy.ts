/**
 * Network policies on bridge networks, rendered into the daemon's nft tables (see
 * {@link renderPolicies}). Pure: the same plans always give the same text.
 *
 * Where packets are judged. br_netfilter is on in every namespace here (bridge-nf-call-iptables
 * defaults to 1 per netns), so same-bridge traffic crosses the inet `forward` hook like routed
 * traffic does; `forward` therefore sees container↔container (same bridge, hairpin through a
 * published port, other networks), container↔outside and outside→published port. A container
 * talking to the host itself meets `input` (its packets) and `output` (the host's answers). The
 * host opening a connection to a container is never judged (Kubernetes' "the node may always
 * reach its pods"), nor is DNS at 127.0.0.11, answered inside the container's own namespace.
 *
 * How. Three base chains (`policy_forward`, `policy_input`, `policy_output`) at priority
 * `filter - 1`, ahead of the rest of the ruleset; they only drop or fall through, never accept,
 * so what today's chains decide (networks isolated from each other, icc, internal, published
 * ports) still holds for governed endpoints too: a connection needs both. Each packet is
 * judged by the connection it belongs to, from the conntrack tuple: the client is `ct original
 * saddr`, the server `ct reply saddr` (the container behind a DNAT, not the host address the
 * client dialled). Verdict maps keyed by those addresses jump to the chain of the endpoint's
 * rules (one chain per distinct set of rules, shared by endpoints with the same ones): egress
 * by client, ingress by server. A rule matches the peer address and the server port from the
 * packet's own headers, swapped for the reply direction (`ct direction`), because in `forward`
 * the headers are already the real endpoints on both sides and nft 1.0.6 cannot put `ct ...
 * proto-src` into a set lookup. A match counts the packet for its policy and returns; the end
 * of the chain counts the drop for every policy isolating the endpoint in that direction, and
 * drops.
 *
 * Every packet is judged, not only the first: there is no `ct state established accept` for
 * governed traffic, so a connection the new rules no longer allow dies on its next packet,
 * either way (OVN's behaviour). Only related packets (ICMP errors) pass unjudged.
 *
 * Anti-spoofing: rules trust source addresses, so in `table bridge <prefix>_br` a governed
 * endpoint's port (host veth `vx<endpoint id 12>`) may only send its own addresses (and IPv6
 * link-local / unspecified ones, for neighbour discovery), and a governed address may only come
 * from its own port, in IP and in ARP. The same table keeps traffic the address maps cannot see (IPv6
 * link-local, broadcast and multicast) off isolated ports, but for ICMPv6.
 */
import { createHash } from 'node:crypto';
import { InvalidParameter } from '../../../errors.js';
import type { CompiledPeers, CompiledRule, EndpointPolicy, NetworkPolicyPlan, PortRange } from '../../policies/policy-types.js';
import type { FirewallNetwork } from '../firewall.js';
import { parseLearntSet, type LearntElement } from './nft-egress.js';
import { familyOf, mergeRanges, parseAddress, parseCidr, rangeElements, subtractRanges, type AddrRange, type Family } from './address-ranges.js';

/** What the policy renderer needs to know about a network of the ruleset. */
export interface PolicyNetworkInfo {
  id: string;
  /** The network's comment tag, `comment "arca:net:<id12>"`. */
  tag: string;
  gateways: string[];
  /** See {@link FirewallNetwork.driverPolicies}. */
  driverPolicies?: boolean;
}

export interface PolicyRenderOptions {
  /**
   * Log dropped connections (`arca daemon --log-policy-drops`): each isolated chain, before its
   * drop, adds the packet (first direction only, 10 per second at most) to a timed set the
   * daemon polls (see {@link DROP_SETS}), and logs it with a kernel `log` prefix for hosts that
   * read the kernel log.
   */
  logDrops?: boolean;
  /**
   * Clients (CIDRs) whose connections no rule judges in `forward`. Empty on a bridge, where the
   * host's own connections to containers never cross `forward`; a wireguard endpoint's hidden
   * namespace routes them (the host reaches it from its underlay address, a published port
   * dialled on the host arrives masqueraded to it), so it names the underlay to keep "the host
   * may always reach its containers" true there too.
   */
  exemptClients?: readonly string[];
  /**
   * The elements `dns` peers' learnt sets hold now (network id → pattern → elements, with the
   * seconds they have left), re-created by a reload; see {@link policyDnsSet}.
   */
  dnsLearnt?: PolicyDnsLearnt;
}

/** Learnt elements of `dns` peers: network id → normalised pattern → elements. */
export type PolicyDnsLearnt = ReadonlyMap<string, ReadonlyMap<string, readonly LearntElement[]>>;

/**
 * The learnt set of a `dns` peer on a network, per family (`flags timeout`): every rule naming the
 * pattern on that network refers to it, and the DNS learner adds to it with `add element`.
 */
export function policyDnsSet(networkId: string, pattern: string, fam: Family): string {
  const h = createHash('sha256').update(pattern).digest('hex').slice(0, 10);
  return `pol_d_${networkId.slice(0, 12).replace(/[^A-Za-z0-9]/g, '_')}_${h}_${fam}`;
}

/**
 * The `dns` peer sets in a listing of a table (`nft list table`), with their live elements: the
 * network among `networkIds` and the pattern (the set's comment) that name the set. Sets of
 * other networks, or whose name does not match, are left out.
 */
export function parsePolicyDnsSets(text: string, networkIds: readonly string[]): Array<{ networkId: string; dns: string; elements: LearntElement[] }> {
  const out: Array<{ networkId: string; dns: string; elements: LearntElement[] }> = [];
  for (const m of text.matchAll(/set (pol_d_[A-Za-z0-9_]+_([46])) \{([^{}]*(?:\{[^{}]*\}[^{}]*)?)\}/g)) {
    const [, name, famText, body] = m as unknown as [string, string, string, string];
    const dns = /comment "([^"]*)"/.exec(body)?.[1];
    if (dns === undefined) continue;
    const fam: Family = famText === '4' ? 4 : 6;
    const networkId = networkIds.find((id) => policyDnsSet(id, dns, fam) === name);
    if (!networkId) continue;
    const elements = parseLearntSet(body, fam);
    if (elements.length) out.push({ networkId, dns, elements });
  }
  return out;
}

/** `elements = { a timeout 30s, ... }` text of learnt elements of one family ('' when none). */
export function learntElementsText(els: readonly LearntElement[] | undefined, fam: Family): string {
  const mine = (els ?? []).filter((x) => x.fam === fam);
  return mine.length ? `elements = { ${mine.map((x) => `${x.addr} timeout ${Math.max(1, Math.ceil(x.timeoutS))}s`).join(', ')} }` : '';
}

export interface PolicyRendering {
  /** Lines inside `table inet <filter>` (sets, maps, counters, chains); empty without plans. */
  filter: string[];
  /** Lines inside `table bridge <prefix>_br` (anti-spoofing); empty when nothing is governed. */
  bridge: string[];
}

type Dir = 'ingress' | 'egress';

/** The timed sets of dropped first packets: `saddr . daddr . l4proto . dport`, per direction and family. */
export const DROP_SETS = {
  ingress: { 4: 'pol_drops_in4', 6: 'pol_drops_in6' },
  egress: { 4: 'pol_drops_out4', 6: 'pol_drops_out6' },
} as const;

/** How long a dropped flow stays in its set: one log line per flow per window. */
export const DROP_SET_TIMEOUT_S = 10;

const POLICY_TAG = 'comment "arca:policies"';
const PROTOS = new Set(['tcp', 'udp', 'sctp']);

/**
 * The nft names of a policy's two counters. Policy names allow `.` and `-`, nft object names
 * are safer without, so the name is folded and a short hash keeps folded names apart.
 */
export function policyCounterNames(policy: string): { allowed: string; dropped: string } {
  const folded = policy.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 40);
  const h = createHash('sha256').update(policy).digest('hex').slice(0, 8);
  return { allowed: `pol_${folded}_${h}_ok`, dropped: `pol_${folded}_${h}_drop` };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function ipKw(fam: Family): 'ip' | 'ip6' {
  return fam === 4 ? 'ip' : 'ip6';
}

function setDecl(name: string, type: string, elements: string[], flags?: string): string {
  const parts = [`type ${type};`];
  if (flags) parts.push(`flags ${flags};`);
  if (elements.length) parts.push(`elements = { ${elements.join(', ')} }`);
  return `\tset ${name} { ${parts.join(' ')} }`;
}

function mapDecl(name: string, type: string, elements: string[]): string {
  return `\tmap ${name} { type ${type} : verdict;${elements.length ? ` elements = { ${elements.join(', ')} }` : ''} }`;
}

function chainLines(name: string, lines: string[], hook?: string): string[] {
  return [`\tchain ${name} {`, ...(hook ? [`\t\t${hook}`] : []), ...lines.map((l) => `\t\t${l}`), '\t}'];
}

/** A compiled peer list as merged address ranges per family; undefined for `any`. */
function peerRanges(peers: CompiledPeers, where: string): Record<Family, AddrRange[]> | undefined {
  if (peers === 'any') return undefined;
  const byFam: Record<Family, AddrRange[]> = { 4: [], 6: [] };
  for (const a of [...peers.addrs4, ...peers.addrs6]) {
    const { fam, value } = parseAddress(a);
    byFam[fam].push({ from: value, to: value });
  }
  for (const c of peers.cidrs) {
    let base: ReturnType<typeof parseCidr>;
    try {
      base = parseCidr(c.cidr);
    } catch {
      throw new InvalidParameter(`${where}: invalid cidr "${c.cidr}"`);
    }
    const holes: AddrRange[] = [];
    for (const e of c.except) {
      const h = parseCidr(e);
      if (h.fam === base.fam) holes.push(h.range);
    }
    byFam[base.fam].push(...subtractRanges([base.range], holes));
  }
  return { 4: mergeRanges(byFam[4]), 6: mergeRanges(byFam[6]) };
}

/** Port ranges as `proto . from-to` elements, merged per protocol; undefined for `any`. */
function portElements(ports: 'any' | PortRange[], where: string): string[] | undefined {
  if (ports === 'any') return undefined;
  const byProto = new Map<string, Array<{ from: number; to: number }>>();
  for (const p of ports) {
    if (!PROTOS.has(p.proto)) throw new InvalidParameter(`${where}: invalid proto "${p.proto}"`);
    if (!Number.isInteger(p.from) || !Number.isInteger(p.to) || p.from < 0 || p.to > 65535 || p.from > p.to) {
      throw new InvalidParameter(`${where}: invalid port range ${p.from}-${p.to}`);
    }
    byProto.set(p.proto, [...(byProto.get(p.proto) ?? []), { from: p.from, to: p.to }]);
  }
  const out: string[] = [];
  for (const proto of [...byProto.keys()].sort()) {
    const merged = mergeRanges(byProto.get(proto)!.map((r) => ({ from: BigInt(r.from), to: BigInt(r.to) })));
    for (const r of merged) out.push(`${proto} . ${r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`}`);
  }
  return out;
}

/** One rule's data, as named sets shared by every chain that uses the same rule. */
interface RuleData {
  /** Address sets per family, static then learnt (absent family: no peer of it); undefined: any peer. */
  addrs?: Partial<Record<Family, string[]>>;
  /** Port set; undefined: every port and protocol. */
  ports?: string;
}

/**
 * Renders the policy part of the ruleset for `plans`, on the networks `nets` of the ruleset.
 * Throws InvalidParameter on a plan the ruleset cannot hold (unknown network, one address
 * governed twice, bad addresses or ports).
 */
export function renderPolicies(
  plans: readonly NetworkPolicyPlan[],
  nets: ReadonlyMap<string, PolicyNetworkInfo>,
  dnsPort: number | null,
  opts: PolicyRenderOptions = {},
): PolicyRendering {
  if (!plans.length) return { filter: [], bridge: [] };
  const sets: string[] = [];
  const chains: string[] = [];
  const ruleData = new Map<string, RuleData>();
  const sigChains = new Map<string, string>();
  const dispatch: Record<Dir, Record<Family, Map<string, string>>> = {
    ingress: { 4: new Map(), 6: new Map() },
    egress: { 4: new Map(), 6: new Map() },
  };
  const governed: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };
  /** Of those, the ones on bridge ports (what the bridge table keeps honest). */
  const bridged: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };
  const ports: string[] = [];
  const inPorts: string[] = [];
  const outPorts: string[] = [];
  const own: Record<Family, string[]> = { 4: [], 6: [] };
  const dnsGateways: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };

  // The compiler shares one CompiledRule object among the endpoints a policy selects: key rules by
  // identity first, content second, so 1000 endpoints do not serialise the same peers 1000 times.
  const ruleKeys = new Map<CompiledRule, { data: string; id: number }>();
  const ruleIds = new Map<string, number>();
  const keyOf = (rule: CompiledRule): { data: string; id: number } => {
    let k = ruleKeys.get(rule);
    if (!k) {
      const data = JSON.stringify([rule.peers, rule.ports]);
      const full = JSON.stringify([rule.policy, rule.index]) + data;
      let id = ruleIds.get(full);
      if (id === undefined) ruleIds.set(full, (id = ruleIds.size));
      k = { data, id };
      ruleKeys.set(rule, k);
    }
    return k;
  };

  const dnsSets = new Set<string>();
  const dataFor = (rule: CompiledRule, where: string, networkId: string): RuleData => {
    const dns = rule.peers === 'any' ? [] : rule.peers.dns ?? [];
    // Learnt sets are the network's: a rule naming a pattern is not the same data on another one.
    const key = dns.length ? `${networkId} ${keyOf(rule).data}` : keyOf(rule).data;
    const known = ruleData.get(key);
    if (known) return known;
    const k = ruleData.size + 1;
    const data: RuleData = {};
    const ranges = peerRanges(rule.peers, where);
    if (ranges) {
      data.addrs = {};
      for (const fam of [4, 6] as const) {
        const list: string[] = [];
        if (ranges[fam].length) {
          const name = `pol_r${k}_a${fam}`;
          sets.push(setDecl(name, fam === 4 ? 'ipv4_addr' : 'ipv6_addr', rangeElements(fam, ranges[fam]), 'interval'));
          list.push(name);
        }
        for (const pattern of dns) {
          const name = policyDnsSet(networkId, pattern, fam);
          if (!dnsSets.has(name)) {
            dnsSets.add(name);
            const els = learntElementsText(opts.dnsLearnt?.get(networkId)?.get(pattern), fam);
            const comment = pattern.replace(/[^\x21-\x7e]|["\\]/g, '').slice(0, 100);
            sets.push(`\tset ${name} { type ${fam === 4 ? 'ipv4_addr' : 'ipv6_addr'}; flags timeout;${els ? ` ${els};` : ''} comment "${comment}"; }`);
          }
          list.push(name);
        }
        if (list.length) data.addrs[fam] = list;
      }
    }
    const pe = portElements(rule.ports, where);
    if (pe) {
      data.ports = `pol_r${k}_p`;
      sets.push(setDecl(data.ports, 'inet_proto . inet_service', pe, 'interval'));
    }
    ruleData.set(key, data);
    return data;
  };

  /** The chain judging one endpoint in one direction; shared by endpoints with the same rules. */
  const chainFor = (net: PolicyNetworkInfo, ep: EndpointPolicy, dir: Dir): string => {
    const rules = ep[dir]!;
    const isolating = [...new Set(ep.isolatedBy?.[dir] ?? (rules.length ? rules.map((r) => r.policy) : ep.policies))].sort(cmp);
    const key = `${net.id} ${dir} ${rules.map((r) => keyOf(r).id).join(',')} ${isolating.join(',')}`;
    const known = sigChains.get(key);
    if (known) return known;
    const name = `pol_g${sigChains.size + 1}`;
    sigChains.set(key, name);
    // The peer is the server for egress, the client for ingress; in the reply direction the
    // packet's source and destination swap, and the server port is its source port.
    const peerField = { original: dir === 'egress' ? 'daddr' : 'saddr', reply: dir === 'egress' ? 'saddr' : 'daddr' } as const;
    const lines: string[] = [];
    for (const rule of rules) {
      const where = `policy "${rule.policy}" ${dir}[${rule.index}]`;
      const data = dataFor(rule, where, net.id);
      // The driver counts what it lets out; the host only what it drops.
      const count = net.driverPolicies ? `return ${net.tag}` : `counter name "${policyCounterNames(rule.policy).allowed}" return ${net.tag}`;
      const targets: Array<{ fam: Family; set: string } | undefined> = data.addrs
        ? ([4, 6] as const).flatMap((fam) => (data.addrs![fam] ?? []).map((set) => ({ fam, set })))
        : [undefined];
      if (!data.addrs && !data.ports) {
        lines.push(count);
        continue;
      }
      for (const t of targets) {
        for (const d of ['original', 'reply'] as const) {
          const m = [`ct direction ${d}`];
          if (t) m.push(`${ipKw(t.fam)} ${peerField[d]} @${t.set}`);
          if (data.ports) m.push(`meta l4proto . th ${d === 'original' ? 'dport' : 'sport'} @${data.ports}`);
          lines.push(`${m.join(' ')} ${count}`);
        }
      }
    }
    for (const p of isolating) lines.push(`counter name "${policyCounterNames(p).dropped}" ${net.tag}`);
    if (opts.logDrops) {
      const who = `${ep.endpointId.slice(0, 12)} ${dir === 'ingress' ? 'in' : 'out'}`;
      for (const fam of [4, 6] as const) {
        const kw = ipKw(fam);
        lines.push(
          `ct direction original meta nfproto ${fam === 4 ? 'ipv4' : 'ipv6'} limit rate 10/second ` +
            `log prefix "arca policy drop ${who}: " add @${DROP_SETS[dir][fam]} { ${kw} saddr . ${kw} daddr . meta l4proto . th dport } ${net.tag}`,
        );
      }
    }
    lines.push(`drop ${net.tag}`);
    chains.push(...chainLines(name, lines));
    return name;
  };

  const policyNames = new Set<string>();
  for (const plan of [...plans].sort((a, b) => cmp(a.networkId, b.networkId))) {
    const net = nets.get(plan.networkId);
    // A plan that governs nothing (a config-only network, say) needs no network of the ruleset.
    if (!net && !plan.endpoints.length) {
      for (const p of plan.policies) policyNames.add(p);
      continue;
    }
    if (!net) throw new InvalidParameter(`policies for network ${plan.networkId}, which the firewall does not manage`);
    for (const p of plan.policies) policyNames.add(p);
    for (const ep of [...plan.endpoints].sort((a, b) => cmp(a.endpointId, b.endpointId))) {
      for (const r of [...(ep.ingress ?? []), ...(ep.egress ?? [])]) policyNames.add(r.policy);
      for (const p of [...ep.policies, ...(ep.isolatedBy?.ingress ?? []), ...(ep.isolatedBy?.egress ?? [])]) policyNames.add(p);
      const veth = `vx${ep.endpointId.slice(0, 12)}`;
      if (!/^vx[A-Za-z0-9]{12}$/.test(veth)) throw new InvalidParameter(`invalid endpoint id "${ep.endpointId}"`);
      const addrs = ep.addresses.map((a) => {
        const fam = familyOf(a);
        if (!fam) throw new InvalidParameter(`endpoint ${ep.endpointId.slice(0, 12)}: invalid address "${a}"`);
        return { a, fam };
      });
      for (const { a, fam } of addrs) governed[fam].add(a);
      // A driver enforcing policies itself keeps its endpoints' addresses honest (OVN's port security).
      if (!net.driverPolicies) {
        ports.push(`"${veth}"`);
        if (ep.ingress) inPorts.push(`"${veth}"`);
        if (ep.egress) outPorts.push(`"${veth}"`);
        for (const { a, fam } of addrs) {
          own[fam].push(`"${veth}" . ${a}`);
          bridged[fam].add(a);
        }
      }
      for (const dir of ['ingress', 'egress'] as const) {
        if (!ep[dir]) continue;
        const target = chainFor(net, ep, dir);
        for (const { a, fam } of addrs) {
          const other = dispatch[dir][fam].get(a);
          if (other !== undefined && other !== target) throw new InvalidParameter(`address ${a} is governed twice (${dir})`);
          dispatch[dir][fam].set(a, target);
        }
      }
      if (ep.egress && dnsPort !== null) {
        for (const gw of net.gateways) {
          const fam = familyOf(gw);
          if (!fam) throw new InvalidParameter(`invalid gateway "${gw}" for network ${net.id}`);
          dnsGateways[fam].add(gw);
        }
      }
    }
  }

  const counters: string[] = [];
  for (const p of [...policyNames].sort(cmp)) {
    const n = policyCounterNames(p);
    counters.push(`\tcounter ${n.allowed} {}`, `\tcounter ${n.dropped} {}`);
  }

  const maps: string[] = [];
  const fwd: string[] = ['ct state related return ' + POLICY_TAG];
  const exempt: Record<Family, AddrRange[]> = { 4: [], 6: [] };
  for (const c of opts.exemptClients ?? []) {
    let r: ReturnType<typeof parseCidr>;
    try {
      r = parseCidr(c);
    } catch {
      throw new InvalidParameter(`invalid exempt client "${c}"`);
    }
    exempt[r.fam].push(r.range);
  }
  for (const fam of [4, 6] as const) {
    if (!exempt[fam].length) continue;
    sets.push(setDecl(`pol_exempt${fam}`, fam === 4 ? 'ipv4_addr' : 'ipv6_addr', rangeElements(fam, mergeRanges(exempt[fam])), 'interval'));
    fwd.push(`ct original ${ipKw(fam)} saddr @pol_exempt${fam} return ${POLICY_TAG}`);
  }
  const input: string[] = ['ct state related return ' + POLICY_TAG];
  const output: string[] = ['ct state related return ' + POLICY_TAG];
  for (const fam of [4, 6] as const) {
    const kw = ipKw(fam);
    const addrType = fam === 4 ? 'ipv4_addr' : 'ipv6_addr';
    if (!governed[fam].size) continue;
    const gov = `pol_gov${fam}`;
    sets.push(setDecl(gov, addrType, sortAddrs([...governed[fam]])));
    // Without conntrack state, the maps below could not tell who the connection belongs to.
    fwd.push(`ct state invalid ${kw} saddr @${gov} drop ${POLICY_TAG}`, `ct state invalid ${kw} daddr @${gov} drop ${POLICY_TAG}`);
  }
  for (const fam of [4, 6] as const) {
    const kw = ipKw(fam);
    const addrType = fam === 4 ? 'ipv4_addr' : 'ipv6_addr';
    for (const [dir, suffix, tuple] of [
      ['egress', 'out', 'original'],
      ['ingress', 'in', 'reply'],
    ] as const) {
      const m = dispatch[dir][fam];
      if (!m.size) continue;
      const name = `pol_${suffix}${fam}`;
      maps.push(mapDecl(name, addrType, sortAddrs([...m.keys()]).map((a) => `${a} : jump ${m.get(a)}`)));
      fwd.push(`ct ${tuple} ${kw} saddr vmap @${name} ${POLICY_TAG}`);
      if (dir === 'egress') {
        // The embedded DNS on a gateway (when it listens there) stays reachable, like 127.0.0.11.
        const gws = sortAddrs([...dnsGateways[fam]]);
        if (gws.length) {
          const g = gws.length === 1 ? gws[0]! : `{ ${gws.join(', ')} }`;
          input.push(`${kw} daddr ${g} meta l4proto { tcp, udp } th dport ${dnsPort} return ${POLICY_TAG}`);
          output.push(`${kw} saddr ${g} meta l4proto { tcp, udp } th sport ${dnsPort} return ${POLICY_TAG}`);
        }
        input.push(`ct original ${kw} saddr vmap @${name} ${POLICY_TAG}`);
        output.push(`ct original ${kw} saddr vmap @${name} ${POLICY_TAG}`);
      }
    }
  }
  if (opts.logDrops) {
    for (const dir of ['ingress', 'egress'] as const) {
      for (const fam of [4, 6] as const) {
        const a = fam === 4 ? 'ipv4_addr' : 'ipv6_addr';
        sets.push(
          `\tset ${DROP_SETS[dir][fam]} { type ${a} . ${a} . inet_proto . inet_service; flags dynamic, timeout; timeout ${DROP_SET_TIMEOUT_S}s; size 4096; }`,
        );
      }
    }
  }

  const filter = [...counters, ...sets, ...maps, ...chains];
  const hook = (h: string): string => `type filter hook ${h} priority filter - 1; policy accept;`;
  if (fwd.length > 1) filter.push(...chainLines('policy_forward', fwd, hook('forward')));
  if (input.length > 1) filter.push(...chainLines('policy_input', input, hook('input')));
  if (output.length > 1) filter.push(...chainLines('policy_output', output, hook('output')));

  const bridge: string[] = [];
  if (ports.length) {
    bridge.push(setDecl('pol_ports', 'ifname', [...ports].sort(cmp)));
    const pre: string[] = [];
    for (const fam of [4, 6] as const) {
      const kw = ipKw(fam);
      const name = `pol_own${fam}`;
      bridge.push(setDecl(name, `ifname . ${fam === 4 ? 'ipv4_addr' : 'ipv6_addr'}`, [...own[fam]].sort(cmp)));
      const linkLocal = fam === 6 ? ` ${kw} saddr != { ::, fe80::/10 }` : '';
      pre.push(`meta protocol ${kw} iifname @pol_ports${linkLocal} iifname . ${kw} saddr != @${name} counter drop ${POLICY_TAG}`);
      if (bridged[fam].size) {
        bridge.push(setDecl(`pol_gov${fam}`, fam === 4 ? 'ipv4_addr' : 'ipv6_addr', sortAddrs([...bridged[fam]])));
        pre.push(`meta protocol ${kw} ${kw} saddr @pol_gov${fam} iifname . ${kw} saddr != @${name} counter drop ${POLICY_TAG}`);
      }
    }
    // ARP too: a port answering for a governed address would draw its traffic (0.0.0.0: probes).
    pre.push(`meta protocol arp iifname @pol_ports arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @pol_own4 counter drop ${POLICY_TAG}`);
    if (bridged[4].size) pre.push(`meta protocol arp arp saddr ip @pol_gov4 iifname . arp saddr ip != @pol_own4 counter drop ${POLICY_TAG}`);
    // Link-local IPv6 and broadcast/multicast carry no address the maps know (the dispatch is by
    // an endpoint's own addresses), so for an isolated port they would bypass its rules: only
    // ICMPv6 (neighbour discovery) may use them. Frames from an egress-isolated port, at
    // prerouting (to peers and to the host alike); to an ingress-isolated port, at forward.
    const nonNd = 'meta l4proto != ipv6-icmp';
    if (outPorts.length) {
      bridge.push(setDecl('pol_out_ports', 'ifname', [...outPorts].sort(cmp)));
      pre.push(`iifname @pol_out_ports meta protocol ip6 ip6 saddr fe80::/10 ${nonNd} counter drop ${POLICY_TAG}`);
      pre.push(`iifname @pol_out_ports meta protocol ip6 ip6 daddr ff00::/8 ${nonNd} counter drop ${POLICY_TAG}`);
    }
    bridge.push(...chainLines('prerouting', pre, 'type filter hook prerouting priority filter; policy accept;'));
    if (inPorts.length) {
      bridge.push(setDecl('pol_in_ports', 'ifname', [...inPorts].sort(cmp)));
      bridge.push(
        ...chainLines(
          'forward',
          [
            `oifname @pol_in_ports meta protocol ip6 ip6 saddr fe80::/10 ${nonNd} counter drop ${POLICY_TAG}`,
            `oifname @pol_in_ports meta protocol ip6 ip6 daddr ff00::/8 ${nonNd} counter drop ${POLICY_TAG}`,
            `oifname @pol_in_ports meta protocol ip meta pkttype { broadcast, multicast } counter drop ${POLICY_TAG}`,
          ],
          'type filter hook forward priority filter; policy accept;',
        ),
      );
    }
  }
  return { filter, bridge };
}

/** Numeric order of addresses (IPv4 before IPv6), through a fixed-width sort key. */
function sortAddrs(list: string[]): string[] {
  return list
    .map((a) => ({ a, k: sortKey(a) }))
    .sort((x, y) => (x.k < y.k ? -1 : x.k > y.k ? 1 : 0))
    .map((x) => x.a);
}

const sortKeys = new Map<string, string>();

function sortKey(a: string): string {
  let k = sortKeys.get(a);
  if (k === undefined) {
    const { fam, value } = parseAddress(a);
    k = `${fam}${value.toString(16).padStart(fam === 4 ? 8 : 32, '0')}`;
    if (sortKeys.size > 100_000) sortKeys.clear();
    sortKeys.set(a, k);
  }
  return k;
}
