/**
 * Network policies on OVN: a network's {@link NetworkPolicyPlan} as port groups, address sets and
 * ACLs in the northbound database, written as one transaction that turns whatever arca wrote
 * before into exactly the plan (rows left as they are when unchanged, so a re-sent plan costs one
 * read, and OpenFlow counters of unchanged rules keep counting).
 *
 * Layout (OVN 23.03: no ACL tiers, no `pass`, so priorities are the bands):
 * - per policy, a port group of the endpoints it selects, with one `allow-related` ACL per rule at
 *   {@link PRIO_ALLOW}: ingress rules `to-lport` on `outport == @pg`, egress rules `from-lport`
 *   on `inport == @pg`, after the load balancer (a VIP's traffic is judged by the backend it goes
 *   to, the address a policy names);
 * - per direction, port groups of the isolated endpoints with a `drop` at {@link PRIO_DROP} and the
 *   ARP/ND (and, outwards, DHCP) allows that keep the endpoint on the network. Isolated endpoints
 *   are grouped by the policies a drop is blamed on, so each drop ACL counts for known policies;
 * - the peers of a rule as address sets (`$name` in the match), CIDR peers and their `except`
 *   holes inline; a `dns` peer as the network's address sets of that pattern (one per family),
 *   holding the addresses the embedded DNS learnt for it, their expiry times in `external_ids`
 *   (OVN's sets have no timeouts: the enforcer rewrites them as elements expire). When the host
 *   judges the plan's dns peers ({@link NetworkPolicyPlan.dnsOnHost}, see policy-dns.ts), the
 *   rule also lets its traffic out to every destination beyond the router ({@link outwardMatch}),
 *   and the sets keep only the learnt addresses inside the network's subnets.
 * Allowed = some policy's allow matched (union); a connection needs the source's egress (judged at
 * its inport) and the destination's ingress (at the outport): both ends. Replies of allowed
 * connections pass (allow-related). OVN re-judges each request-direction packet of an established
 * connection, and a drop marks it `ct_mark.blocked`: a connection no longer allowed is cut on its
 * next packet. Traffic arriving from the router (published ports, other networks) reaches the
 * endpoint through its outport like any other, and egress to the outside leaves through inport.
 */
import { createHash } from 'node:crypto';
import type { CompiledPeers, CompiledRule, EndpointPolicy, NetworkPolicyPlan, PortRange } from '../../policies/policy-types.js';
import {
  fromMap,
  fromSet,
  atomText,
  map,
  namedUuid,
  set,
  uuid,
  type Condition,
  type Mutation,
  type OvsdbAtom,
  type OvsdbOp,
  type OvsdbOpResult,
  type OvsdbRow,
  type OvsdbValue,
} from '../../../ovsdb/ovsdb-values.js';
import type { LearntElement } from '../../firewall/nftables/nft-egress.js';
import { parseAddress, parseCidr, rangeCidrs, subtractRanges } from '../../firewall/nftables/address-ranges.js';
import { EXT_ENDPOINT, EXT_NETWORK, TRANSIT } from './ovn-names.js';

/** Default drop of an isolated direction. */
export const PRIO_DROP = 1000;
/** Allow rules and the ARP/ND/DHCP allows of isolated endpoints: above the drop, all equal (union). */
export const PRIO_ALLOW = 1001;

/** external_ids on every policy row: the policy (or policies, comma-separated) it belongs to. */
export const EXT_POLICY = 'arca-policy';
/** external_ids of an ACL: its key within its port group (what an update is matched by). */
export const EXT_ACL = 'arca-acl';
/** external_ids of an ACL: `allow` or `drop`, for counters. */
export const EXT_VERDICT = 'arca-verdict';

type Direction = 'ingress' | 'egress';

export interface AclSpec {
  key: string;
  name: string;
  priority: number;
  direction: 'to-lport' | 'from-lport';
  match: string;
  action: 'allow-related' | 'allow' | 'drop';
  options: Record<string, string>;
  ext: Record<string, string>;
}

export interface PortGroupSpec {
  name: string;
  /** Logical_Switch_Port UUIDs. */
  ports: string[];
  acls: AclSpec[];
  ext: Record<string, string>;
}

export interface AddressSetSpec {
  name: string;
  addresses: string[];
  ext: Record<string, string>;
}

/** What the northbound database must hold for one network's policies. */
export interface PolicyRows {
  portGroups: PortGroupSpec[];
  addressSets: AddressSetSpec[];
}

const hash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);

/** NB names allow `[a-zA-Z_.][a-zA-Z_.0-9]*`: policy names are hashed into them. */
function rowName(netId: string, what: string): string {
  return `arca_${netId.slice(0, 12)}_${hash(what)}`;
}

const dirTag = (d: Direction): string => (d === 'ingress' ? 'in' : 'eg');

/** The match term that picks the governed endpoints' traffic in a direction, and the ACL direction. */
function side(d: Direction, pg: string): { term: string; direction: AclSpec['direction']; options: Record<string, string> } {
  return d === 'ingress'
    ? { term: `outport == @${pg}`, direction: 'to-lport', options: {} }
    : // After the load balancer: a VIP is judged by the backend it was sent to.
      { term: `inport == @${pg}`, direction: 'from-lport', options: { 'apply-after-lb': 'true' } };
}

/** `tcp && (tcp.dst == {80, 443} || 8000 <= tcp.dst <= 8100) || udp && ...`; empty for every port. */
export function portsMatch(ports: 'any' | PortRange[]): string {
  if (ports === 'any') return '';
  const byProto = new Map<string, PortRange[]>();
  for (const p of ports) byProto.set(p.proto, [...(byProto.get(p.proto) ?? []), p]);
  const terms: string[] = [];
  for (const [proto, ranges] of byProto) {
    if (ranges.some((r) => r.from <= 1 && r.to >= 65535)) {
      terms.push(proto);
      continue;
    }
    const singles = ranges.filter((r) => r.from === r.to).map((r) => r.from);
    const parts: string[] = [];
    if (singles.length === 1) parts.push(`${proto}.dst == ${singles[0]}`);
    else if (singles.length > 1) parts.push(`${proto}.dst == {${[...new Set(singles)].sort((a, b) => a - b).join(', ')}}`);
    for (const r of ranges.filter((r) => r.from !== r.to)) parts.push(`${r.from} <= ${proto}.dst <= ${r.to}`);
    terms.push(parts.length === 1 ? parts[0]! : `(${parts.join(' || ')})`);
  }
  return terms.length === 1 ? terms[0]! : `(${terms.join(' || ')})`;
}

/**
 * The peer side of a rule's match (`ip4.src == $as || ip4.src == 10.0.0.0/8 && ip4.src != {...}`),
 * `''` for any peer, or undefined when the rule names no address at all (it matches nothing).
 * Address sets it needs are pushed to `sets`.
 */
export function peersMatch(
  peers: CompiledPeers,
  d: Direction,
  asBase: string,
  ext: Record<string, string>,
  sets: AddressSetSpec[],
  dnsSet?: (pattern: string, fam: '4' | '6') => string,
  /** With `dnsSet`: a rule with `dns` peers matches these destinations too ({@link outwardMatch}). */
  outward?: string,
): string | undefined {
  if (peers === 'any') return '';
  const f = d === 'ingress' ? 'src' : 'dst';
  const terms: string[] = [];
  for (const [fam, addrs] of [
    ['4', peers.addrs4],
    ['6', peers.addrs6],
  ] as const) {
    if (!addrs.length) continue;
    const name = `${asBase}_${fam}`;
    sets.push({ name, addresses: [...new Set(addrs)].sort(), ext });
    terms.push(`ip${fam}.${f} == $${name}`);
  }
  for (const c of peers.cidrs) {
    const fam = c.cidr.includes(':') ? '6' : '4';
    const holes = c.except.filter((e) => e.includes(':') === (fam === '6'));
    // `!=` against a set is "equal to none of them".
    terms.push(holes.length ? `(ip${fam}.${f} == ${c.cidr} && ip${fam}.${f} != {${holes.join(', ')}})` : `ip${fam}.${f} == ${c.cidr}`);
  }
  if (dnsSet) for (const dns of peers.dns ?? []) for (const fam of ['4', '6'] as const) terms.push(`ip${fam}.${f} == $${dnsSet(dns, fam)}`);
  if (dnsSet && outward && peers.dns?.length) terms.push(outward);
  if (!terms.length) return undefined;
  return terms.length === 1 ? terms[0]! : `(${terms.join(' || ')})`;
}

const and = (...terms: string[]): string => terms.filter(Boolean).join(' && ');

/**
 * Destinations that never leave through the transit link to the host: the network's subnets, the
 * router's own transit address, multicast, broadcast and IPv6 link-local (they stay on the switch
 * or end at the router). The complement is {@link outwardMatch}.
 */
export function localDestinations(subnets: readonly string[]): { 4: string[]; 6: string[] } {
  return {
    4: [...subnets.filter((s) => !s.includes(':')), `${TRANSIT.router4}/32`, '224.0.0.0/4', '255.255.255.255/32'],
    6: [...subnets.filter((s) => s.includes(':')), `${TRANSIT.router6}/128`, 'fe80::/10', 'ff00::/8'],
  };
}

/** Whether traffic to `addr` stays within OVN (it is one of {@link localDestinations}). */
export function staysInOvn(subnets: readonly string[]): (addr: string) => boolean {
  const local = localDestinations(subnets);
  const ranges = [...local[4], ...local[6]].map((c) => parseCidr(c));
  return (addr) => {
    const a = parseAddress(addr);
    return ranges.some((r) => r.fam === a.fam && a.value >= r.range.from && a.value <= r.range.to);
  };
}

/**
 * Destinations beyond the network's router: what leaves through the transit link to the host. As
 * the prefixes that cover the complement: OVN expands `!=` on a prefix into one flow per bit,
 * and several of them ANDed into their product (~100 000 OpenFlow flows for one rule).
 */
export function outwardMatch(subnets: readonly string[]): string {
  const local = localDestinations(subnets);
  const beyond = (fam: 4 | 6): string[] => {
    const all = parseCidr(fam === 4 ? '0.0.0.0/0' : '::/0').range;
    return rangeCidrs(fam, subtractRanges([all], local[fam].map((c) => parseCidr(c).range)));
  };
  return `(ip4.dst == {${beyond(4).join(', ')}} || ip6.dst == {${beyond(6).join(', ')}})`;
}

/**
 * The policies a drop of `ep` in direction `d` is blamed on: the ones isolating it there, as the
 * compiler says; else those with rules there, else all that select it.
 */
function blamed(ep: EndpointPolicy, d: Direction): string[] {
  const isolating = ep.isolatedBy?.[d];
  if (isolating?.length) return [...new Set(isolating)].sort();
  const withRules = new Set((ep[d] ?? []).map((r) => r.policy));
  const out = ep.policies.filter((p) => withRules.has(p));
  return (out.length ? out : [...ep.policies]).sort();
}

/** external_ids of a `dns` peer's address set: its pattern, and when each address expires. */
export const EXT_DNS = 'arca-dns';
export const EXT_EXPIRES = 'arca-expires';

/** Expiry times are kept to this granularity (seconds, rounded down): fewer rewrites of a set whose name is looked up often. */
const EXPIRY_STEP_S = 10;

/** `addr=epoch seconds,...` of a `dns` set's external_ids. */
export function expiresText(els: readonly LearntElement[], now: number): string {
  return els
    .map((e) => `${e.addr}=${Math.floor((now / 1000 + e.timeoutS) / EXPIRY_STEP_S) * EXPIRY_STEP_S}`)
    .sort()
    .join(',');
}

/** The elements a `dns` set's external_ids still gives time to (for a restarted daemon). */
export function parseExpires(text: string | undefined, fam: 4 | 6, now: number): LearntElement[] {
  const out: LearntElement[] = [];
  for (const part of (text ?? '').split(',')) {
    const m = /^([0-9a-fA-F.:]+)=([0-9]+)$/.exec(part);
    if (!m) continue;
    const left = Number(m[2]) - Math.floor(now / 1000);
    if (left >= 1) out.push({ addr: m[1]!, fam, timeoutS: left });
  }
  return out;
}

/** The address set of a network's `dns` peer pattern, per family (shared by every rule naming it). */
export function dnsSetName(netId: string, pattern: string, fam: 4 | 6 | '4' | '6'): string {
  return `${rowName(netId, `dns:${pattern}`)}_${fam}`;
}

/**
 * A learn: `fresh` addresses into the pattern's set and its expiry times replaced (`expires`,
 * {@link expiresText} of every address it keeps), as one mutation of the row. Its `count` is 0
 * when the set does not exist (the plan was not written yet).
 */
export function dnsLearnOp(netId: string, pattern: string, fam: 4 | 6, fresh: readonly string[], expires: string): OvsdbOp {
  const mutations: Mutation[] = [];
  if (fresh.length) mutations.push(['addresses', 'insert', set([...fresh])]);
  mutations.push(['external_ids', 'delete', set([EXT_EXPIRES])], ['external_ids', 'insert', map({ [EXT_EXPIRES]: expires })]);
  return { op: 'mutate', table: 'Address_Set', where: [['name', '==', dnsSetName(netId, pattern, fam)]], mutations };
}

/**
 * Ends a transaction that changes what must be enforced: bumps `NB_Global.nb_cfg` and reads the
 * new value (the last result), which the chassis reports back once the change's flows are installed.
 */
export function cfgBumpOps(): OvsdbOp[] {
  return [
    { op: 'mutate', table: 'NB_Global', where: [], mutations: [['nb_cfg', '+=', 1]] },
    { op: 'select', table: 'NB_Global', where: [], columns: ['nb_cfg'] },
  ];
}

export interface PolicyRowOptions {
  /** Learnt addresses of the network's `dns` peers, by pattern, with the seconds they have left. */
  dnsLearnt?: ReadonlyMap<string, readonly LearntElement[]>;
  /** Now (ms since the epoch), for the expiry times of `dns` sets. */
  now?: number;
  /**
   * The network's load-balancer VIPs. A backend that reaches itself through a VIP gets the packet
   * back with the VIP as source (OVN's hairpin SNAT): that source is the endpoint itself, which
   * may always reach itself, as in Kubernetes. Nothing else can send from a VIP (port security).
   */
  hairpinSources?: string[];
  /** The network's subnets: with {@link NetworkPolicyPlan.dnsOnHost}, what lies beyond them is the host's to judge. */
  subnets?: readonly string[];
}

/**
 * The rows a plan needs. `lsps` maps endpoint ids to their Logical_Switch_Port UUIDs; an endpoint
 * without one (its port is not written yet) is left out, and the driver applies the plan again
 * once the port exists.
 */
export function policyRows(netId: string, plan: NetworkPolicyPlan, lsps: ReadonlyMap<string, string>, opts: PolicyRowOptions = {}): PolicyRows {
  const portGroups: PortGroupSpec[] = [];
  const addressSets: AddressSetSpec[] = [];
  const eps = plan.endpoints.filter((e) => lsps.has(e.endpointId));
  const base = { [EXT_NETWORK]: netId };

  // `dns` peers' sets are the network's, shared by every rule naming the pattern.
  const dnsSets = new Map<string, AddressSetSpec>();
  const now = opts.now ?? Date.now();
  const dnsSet = (pattern: string, fam: '4' | '6'): string => {
    const name = dnsSetName(netId, pattern, fam);
    if (!dnsSets.has(name)) {
      const els = (opts.dnsLearnt?.get(pattern) ?? []).filter((e) => String(e.fam) === fam);
      dnsSets.set(name, { name, addresses: [...new Set(els.map((e) => e.addr))].sort(), ext: { ...base, [EXT_POLICY]: `dns:${pattern}`, [EXT_DNS]: pattern, [EXT_EXPIRES]: expiresText(els, now) } });
    }
    return name;
  };

  const outward = plan.dnsOnHost ? outwardMatch(opts.subnets ?? []) : undefined;
  const policies = [...new Set([...plan.policies, ...eps.flatMap((e) => e.policies)])].sort();
  for (const policy of policies) {
    const members = eps.filter((e) => e.policies.includes(policy));
    if (!members.length) continue;
    const pg = rowName(netId, `policy:${policy}`);
    const ext = { ...base, [EXT_POLICY]: policy };
    // Every endpoint a policy selects gets the same compiled rules from it: the first copy serves.
    const rules = new Map<string, { d: Direction; rule: CompiledRule }>();
    for (const e of members) {
      for (const d of ['ingress', 'egress'] as const) {
        for (const rule of e[d] ?? []) if (rule.policy === policy && !rules.has(`${d}:${rule.index}`)) rules.set(`${d}:${rule.index}`, { d, rule });
      }
    }
    const acls: AclSpec[] = [];
    for (const [key, { d, rule }] of [...rules].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
      const peers = peersMatch(rule.peers, d, rowName(netId, `peers:${policy}:${key}`), ext, addressSets, d === 'egress' ? dnsSet : undefined, outward);
      if (peers === undefined) continue;
      const s = side(d, pg);
      acls.push({
        key,
        name: `arca:${policy}:${dirTag(d)}:${rule.index}`.slice(0, 63),
        priority: PRIO_ALLOW,
        direction: s.direction,
        match: and(s.term, peers, portsMatch(rule.ports)),
        action: 'allow-related',
        options: s.options,
        ext: { ...ext, [EXT_ACL]: key, [EXT_VERDICT]: 'allow' },
      });
    }
    portGroups.push({ name: pg, ports: members.map((e) => lsps.get(e.endpointId)!).sort(), acls, ext });
  }

  for (const d of ['ingress', 'egress'] as const) {
    const groups = new Map<string, EndpointPolicy[]>();
    for (const e of eps) {
      if (!e[d]) continue;
      const key = blamed(e, d).join(',');
      groups.set(key, [...(groups.get(key) ?? []), e]);
    }
    for (const [blame, members] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
      const pg = rowName(netId, `isolated:${d}:${blame}`);
      const ext = { ...base, [EXT_POLICY]: blame };
      const s = side(d, pg);
      const acl = (key: string, priority: number, match: string, action: AclSpec['action'], verdict: string): AclSpec => ({
        key,
        name: `arca:${dirTag(d)}:${key}`,
        priority,
        direction: s.direction,
        match,
        action,
        options: s.options,
        ext: { ...ext, [EXT_ACL]: key, [EXT_VERDICT]: verdict },
      });
      // Neighbour discovery keeps the endpoint reachable at all: never policy. The IP ones are
      // allow-related on purpose: a switch whose ACLs are all stateless never consults conntrack,
      // and an isolated endpoint with no allow rule (`egress: []`) would lose the replies of every
      // connection in the other direction; one stateful ACL makes OVN track the switch's traffic.
      const acls = [
        acl('drop', PRIO_DROP, s.term, 'drop', 'drop'),
        acl('arp', PRIO_ALLOW, and(s.term, 'arp'), 'allow', 'infra'),
        acl('nd', PRIO_ALLOW, and(s.term, '(nd || nd_rs || nd_ra)'), 'allow-related', 'infra'),
      ];
      const hairpin = [...new Set(opts.hairpinSources ?? [])].filter((a) => !a.includes(':')).sort();
      if (d === 'ingress' && hairpin.length) acls.push(acl('hairpin', PRIO_ALLOW, and(s.term, `ip4.src == {${hairpin.join(', ')}}`), 'allow-related', 'infra'));
      // OVN's own DHCP server answers in the switch, after the ACL stage the request passes first.
      // (OVN refuses `&&` and `||` mixed without parentheses.)
      if (d === 'egress') acls.push(acl('dhcp', PRIO_ALLOW, and(s.term, '((udp.src == 68 && udp.dst == 67) || (udp.src == 546 && udp.dst == 547))'), 'allow-related', 'infra'));
      portGroups.push({ name: pg, ports: members.map((e) => lsps.get(e.endpointId)!).sort(), acls, ext });
    }
  }
  return { portGroups, addressSets: [...addressSets, ...[...dnsSets.values()].sort((a, b) => a.name.localeCompare(b.name))] };
}

const ownedBy = (netId: string): Condition[] => [['external_ids', 'includes', map({ [EXT_NETWORK]: netId })]];

/** Reads what the transaction of {@link policyDiffOps} needs: the network's ports and its policy rows. */
export function policyReadOps(netId: string): OvsdbOp[] {
  return [
    { op: 'select', table: 'Logical_Switch_Port', where: ownedBy(netId), columns: ['_uuid', 'external_ids'] },
    { op: 'select', table: 'Port_Group', where: ownedBy(netId), columns: ['_uuid', 'name', 'ports', 'acls', 'external_ids'] },
    { op: 'select', table: 'ACL', where: ownedBy(netId), columns: ['_uuid', 'name', 'priority', 'direction', 'match', 'action', 'options', 'external_ids'] },
    { op: 'select', table: 'Address_Set', where: ownedBy(netId), columns: ['_uuid', 'name', 'addresses', 'external_ids'] },
  ];
}

/** What the read found. */
export interface PolicyReadResult {
  /** Endpoint id → Logical_Switch_Port UUID. */
  lsps: Map<string, string>;
  portGroups: OvsdbRow[];
  acls: Map<string, OvsdbRow>;
  addressSets: OvsdbRow[];
}

export function parsePolicyRead(results: OvsdbOpResult[]): PolicyReadResult {
  const rows = (i: number): OvsdbRow[] => results[i]?.rows ?? [];
  const lsps = new Map<string, string>();
  for (const r of rows(0)) {
    const ep = fromMap(r['external_ids'])[EXT_ENDPOINT];
    if (ep) lsps.set(ep, uuidOf(r));
  }
  // Only rows of ours that belong to a policy (the network's other rows carry arca-network too).
  const mine = (r: OvsdbRow): boolean => EXT_POLICY in fromMap(r['external_ids']);
  return {
    lsps,
    portGroups: rows(1).filter(mine),
    acls: new Map(rows(2).filter(mine).map((r) => [uuidOf(r), r])),
    addressSets: rows(3).filter(mine),
  };
}

function uuidOf(r: OvsdbRow): string {
  return atomText(fromSet(r['_uuid'])[0]!);
}

const textSet = (v: OvsdbValue | undefined): string[] => fromSet(v).map(atomText).sort();
const sameList = (a: string[], b: string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const sameMap = (a: Record<string, string>, b: Record<string, string>): boolean => {
  const ka = Object.keys(a).sort();
  return sameList(ka, Object.keys(b).sort()) && ka.every((k) => a[k] === b[k]);
};

function aclRow(a: AclSpec): OvsdbRow {
  return { name: a.name, priority: a.priority, direction: a.direction, match: a.match, action: a.action, options: map(a.options), external_ids: map(a.ext), log: false };
}

function sameAcl(row: OvsdbRow, a: AclSpec): boolean {
  return (
    textSet(row['name'])[0] === a.name &&
    row['priority'] === a.priority &&
    row['direction'] === a.direction &&
    row['match'] === a.match &&
    row['action'] === a.action &&
    sameMap(fromMap(row['options']), a.options) &&
    sameMap(fromMap(row['external_ids']), a.ext)
  );
}

/**
 * The operations turning what `have` found into `want`: rows unchanged are not touched, changed ACLs
 * are updated in place, port groups and address sets no longer wanted are deleted (their ACLs go
 * with them). Empty when nothing changes.
 */
export function policyDiffOps(have: PolicyReadResult, want: PolicyRows): OvsdbOp[] {
  const ops: OvsdbOp[] = [];
  const wantSets = new Map(want.addressSets.map((s) => [s.name, s]));
  const haveSets = new Map(have.addressSets.map((r) => [String(r['name']), r]));
  for (const [name, r] of haveSets) if (!wantSets.has(name)) ops.push({ op: 'delete', table: 'Address_Set', where: [['_uuid', '==', uuid(uuidOf(r))]] });
  for (const [name, s] of wantSets) {
    const r = haveSets.get(name);
    if (!r) ops.push({ op: 'insert', table: 'Address_Set', row: { name, addresses: set(s.addresses), external_ids: map(s.ext) } });
    else if (!sameList(textSet(r['addresses']), [...s.addresses].sort()) || !sameMap(fromMap(r['external_ids']), s.ext)) {
      ops.push({ op: 'update', table: 'Address_Set', where: [['_uuid', '==', uuid(uuidOf(r))]], row: { addresses: set(s.addresses), external_ids: map(s.ext) } });
    }
  }

  const wantPgs = new Map(want.portGroups.map((p) => [p.name, p]));
  const havePgs = new Map(have.portGroups.map((r) => [String(r['name']), r]));
  for (const [name, r] of havePgs) if (!wantPgs.has(name)) ops.push({ op: 'delete', table: 'Port_Group', where: [['_uuid', '==', uuid(uuidOf(r))]] });
  let n = 0;
  for (const [name, pg] of wantPgs) {
    const r = havePgs.get(name);
    const existing = new Map<string, { id: string; row: OvsdbRow }>();
    for (const id of r ? textSet(r['acls']) : []) {
      const row = have.acls.get(id);
      const key = row && fromMap(row['external_ids'])[EXT_ACL];
      if (row && key !== undefined && !existing.has(key)) existing.set(key, { id, row });
    }
    const refs: OvsdbAtom[] = [];
    let aclsChanged = !r || existing.size !== textSet(r['acls']).length;
    for (const a of pg.acls) {
      const old = existing.get(a.key);
      if (old) {
        existing.delete(a.key);
        refs.push(uuid(old.id));
        if (!sameAcl(old.row, a)) ops.push({ op: 'update', table: 'ACL', where: [['_uuid', '==', uuid(old.id)]], row: aclRow(a) });
      } else {
        const tmp = `acl${n++}`;
        ops.push({ op: 'insert', table: 'ACL', 'uuid-name': tmp, row: aclRow(a) });
        refs.push(namedUuid(tmp));
        aclsChanged = true;
      }
    }
    if (existing.size) aclsChanged = true;
    const ports = set(pg.ports.map(uuid));
    if (!r) {
      ops.push({ op: 'insert', table: 'Port_Group', row: { name, ports, acls: set(refs), external_ids: map(pg.ext) } });
      continue;
    }
    const row: OvsdbRow = {};
    if (!sameList(textSet(r['ports']), pg.ports)) row['ports'] = ports;
    if (aclsChanged) row['acls'] = set(refs);
    if (!sameMap(fromMap(r['external_ids']), pg.ext)) row['external_ids'] = map(pg.ext);
    if (Object.keys(row).length) ops.push({ op: 'update', table: 'Port_Group', where: [['_uuid', '==', uuid(uuidOf(r))]], row });
  }
  return ops;
}
