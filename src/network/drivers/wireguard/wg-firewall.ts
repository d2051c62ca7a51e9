/**
 * The ruleset inside one endpoint's hidden namespace (`table inet arca_wg`), replaced whole on
 * every change. Two jobs:
 *
 * - Control-plane protection (the seed's): the container reaches nothing of the hidden namespace
 *   itself (its wireguard-go UDP port, its underlay address, the gateway's other ports; ICMP to
 *   the gateway stays) and no underlay address of any endpoint, and sends from its own
 *   addresses only; overlay traffic, the way out (forwarded to the host, whose ruleset
 *   masquerades and isolates) and replies pass.
 * - Network policies on wireguard networks: traffic between two containers never crosses the
 *   host (it goes container → hidden ns → tunnel → hidden ns → container), so policies are
 *   judged here, each endpoint's own rules in its own namespace (its egress where it is the
 *   client, its ingress where it is the server), with the nft-policy renderer the bridge driver
 *   uses, so the semantics are the same.
 *
 * Where packets are judged. The hidden namespace routes everything of its container, so the
 * container's traffic with anyone but the hidden namespace itself crosses its `forward` hook:
 * container↔peer (c0↔wg), container↔host and outside (c0↔u0), outside→published port (u0→c0,
 * DNATed by the host, the client's address kept). That is the hook nft-policy's
 * `policy_forward` judges by conntrack addresses; with only this endpoint's EndpointPolicy in
 * the table, A→B is judged for A's egress in A's namespace and for B's ingress in B's, and a
 * connection needs both, as on a bridge. `policy_input`/`policy_output` judge the container
 * talking to the hidden namespace itself (only ICMP gets past the guard), the way a bridge's
 * egress rules judge the host that holds its gateway. One difference from a bridge: the host's
 * own connections to the container cross `forward` here too, from its underlay address, so the
 * underlay is exempt as a client (a bridge never judges the host); a host connection from
 * another of its addresses (a published port dialled on its LAN address) is judged like an
 * outside client's.
 *
 * Order: the source check hooks prerouting at `raw` (before conntrack: a spoofed packet leaves
 * no connection behind); the other guard chains hook at `filter - 2`, ahead of the policy
 * chains (`filter - 1`), so a probe of the control plane counts as a guard drop, not as a
 * policy's.
 */
import { isIP } from 'node:net';
import { errorMessage, InvalidParameter, SystemError } from '../../../errors.js';
import { logger } from '../../../log.js';
import { NftError, nftLoad, nftOutput } from '../../../sys/nft.js';
import { parseCounters, parseDropSet, PolicyCounterBook, policiesInForce, type DroppedFlow } from '../../firewall/nftables/nft-policy-readback.js';
import { DROP_SETS, policyCounterNames, renderPolicies, type PolicyDnsLearnt } from '../../firewall/nftables/nft-policy.js';
import type { NetworkPolicyPlan, PolicyCounters } from '../../policies/policy-types.js';

const log = logger('arca:net:wireguard');

export const HIDDEN_TABLE = 'arca_wg';

/**
 * The guard's named counters (packets it dropped), for `nft list counter inet arca_wg NAME`:
 * `input` what the container (or the tunnel) sent to the hidden namespace itself, `underlay`
 * what it sent towards an underlay address, `transit` forwarding that does not involve the
 * container (underlay↔tunnel), `underlayInput` what reached the hidden namespace from the
 * underlay but WireGuard's port, `spoof` what the container sent from an address not routed to
 * it, `yield` the handshake initiations this side ignored because the other of a crossing pair
 * won (see {@link HANDSHAKE_YIELD_MS}).
 */
export const GUARD_COUNTERS = {
  spoof: 'guard_spoof_drop',
  yield: 'guard_handshake_yield',
  input: 'guard_input_drop',
  underlay: 'guard_underlay_drop',
  transit: 'guard_transit_drop',
  underlayInput: 'guard_underlay_input_drop',
} as const;

/**
 * The handshake tie-break's memory, per peer. Two initiations that cross (both containers send
 * their first packet before either side has processed the other's initiation) each overwrite the
 * other side's handshake, so both responses are dropped as stale and neither side has a session
 * until wireguard-go retries after REKEY_TIMEOUT (5 s plus jitter): the first packet either way is
 * lost. Exactly one of the two initiations must be ignored, and the lower underlay address L
 * decides which: the first of the two its namespace sees, its own leaving or H's arriving, wins.
 *
 * - L's went first: L ignores H's initiation when it arrives; H answers L's, and L, its
 *   handshake intact, completes it.
 * - H's arrived first: L will answer it whether its wireguard-go makes its own before or after
 *   (it makes none within 5 s of having answered one), so L's own handshake is lost either way;
 *   L marks its initiation (DSCP CS1 on the underlay header, outside WireGuard's MACs) and H
 *   ignores marked initiations from lower addresses. L answers H's, and H completes it.
 *
 * The two packets are judged on different CPUs at once (L's in its sender's output, H's in the
 * receive softirq), so two sets, each written by one side and read by the other, let both miss
 * each other's entry (or both see it), and both first packets were lost. One map entry per peer
 * holds the winner instead: each side `add`s its own claim, which does not replace one already
 * there (the set's insert is atomic), and then reads back which claim the entry holds.
 *
 * An entry ends when the winning handshake is answered (H's response to L, L's to H) or after
 * this long, so one handshake's entry does not decide the next. Longer than any crossing (arrival
 * to processing under load), shorter than REKEY_TIMEOUT: an initiation that was lost only holds
 * the other side's back for this long.
 */
export const HANDSHAKE_YIELD_MS = 1000;

/** WireGuard's handshake initiation on the wire: UDP length 8 + 148, message type 1 (little-endian u32). */
const INITIATION_MATCH = 'udp length 156 @th,64,32 0x01000000';
/** Its response: UDP length 8 + 92, message type 2. */
const RESPONSE_MATCH = 'udp length 100 @th,64,32 0x02000000';
/** The tie-break's map (peer's underlay address → whose initiation came first) and its two claims. */
const FIRST_MAP = 'first';
const FIRST_OURS = '0x1';
const FIRST_THEIRS = '0x2';

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
  /**
   * This endpoint's own underlay address (bare), for the handshake tie-break with peers whose
   * address is higher ({@link HANDSHAKE_YIELD_MS}); without it, none.
   */
  underlay?: string;
  /** Gateway addresses held on `innerIf` (bare). */
  gateways: string[];
  /**
   * This endpoint's part of the network's plan: `endpoints` holds at most this endpoint's entry.
   * Absent or without endpoints: not governed.
   */
  plan?: NetworkPolicyPlan;
  /** `--log-policy-drops`. */
  logDrops?: boolean;
  /** Elements of the plan's `dns` peer sets to re-create (wg-policy-dns.ts). */
  dnsLearnt?: PolicyDnsLearnt;
}

function quoteIfname(name: string, what: string): string {
  if (!/^[^\s"'\\/]{1,15}$/.test(name)) throw new InvalidParameter(`invalid ${what} interface name "${name}"`);
  return `"${name}"`;
}

function cidrFamily(cidr: string): 4 | 6 {
  const [addr, len, ...rest] = cidr.split('/');
  const fam = isIP(addr ?? '');
  if ((fam !== 4 && fam !== 6) || rest.length || !/^[0-9]{1,3}$/.test(len ?? '') || Number(len) > (fam === 4 ? 32 : 128)) {
    throw new InvalidParameter(`invalid underlay pool "${cidr}"`);
  }
  return fam;
}

function chain(name: string, hook: string, lines: string[]): string[] {
  return [`\tchain ${name} {`, `\t\t${hook}`, ...lines.map((l) => `\t\t${l}`), '\t}'];
}

/** The policy names whose counters the namespace's table holds (what {@link HiddenNsCounters.load} wants). */
export function hiddenNsPolicies(spec: Pick<HiddenNsFirewallSpec, 'plan'>): string[] {
  return spec.plan?.endpoints.length ? policiesInForce([spec.plan]) : [];
}

/** The nft script (replaces the table). Pure. */
export function renderHiddenNsRuleset(spec: HiddenNsFirewallSpec): string {
  const id12 = spec.networkId.slice(0, 12);
  if (!/^[A-Za-z0-9]{1,12}$/.test(id12)) throw new InvalidParameter(`invalid network id "${spec.networkId}"`);
  const tag = `comment "arca:net:${id12}"`;
  const inner = quoteIfname(spec.innerIf, 'inner');
  const under = quoteIfname(spec.underlayIf, 'underlay');
  const wg = quoteIfname(spec.wgIf, 'WireGuard');
  if (!Number.isInteger(spec.listenPort) || spec.listenPort < 1 || spec.listenPort > 65535) {
    throw new InvalidParameter(`invalid listen port ${spec.listenPort}`);
  }
  for (const gw of spec.gateways) if (!isIP(gw)) throw new InvalidParameter(`invalid gateway "${gw}"`);
  const selfFam = spec.underlay === undefined ? 0 : isIP(spec.underlay);
  if (spec.underlay !== undefined && !selfFam) throw new InvalidParameter(`invalid underlay address "${spec.underlay}"`);
  const pool: Record<4 | 6, string[]> = { 4: [], 6: [] };
  for (const c of spec.underlayPool) pool[cidrFamily(c)].push(c);

  const sets: string[] = [];
  const toUnderlay: string[] = [];
  for (const fam of [4, 6] as const) {
    if (!pool[fam].length) continue;
    const name = `underlay${fam}`;
    sets.push(`\tset ${name} { type ${fam === 4 ? 'ipv4_addr' : 'ipv6_addr'}; flags interval; elements = { ${[...pool[fam]].sort().join(', ')} } }`);
    // New connections only: the host reaches the container from its underlay address (its own
    // connections, and published ports dialled on the host, masqueraded to it), and the
    // container answers.
    toUnderlay.push(
      `iifname ${inner} ${fam === 4 ? 'ip' : 'ip6'} daddr @${name} ct state new,invalid,untracked counter name "${GUARD_COUNTERS.underlay}" drop ${tag}`,
    );
  }

  // Nothing of the hidden namespace is served to the container or over the tunnel: a peer only
  // ever tunnels to its peers' containers, so what a tunnel delivers here is someone's probe.
  const local = `{ ${inner}, ${wg} }`;
  const input = [
    `iifname ${local} ct state established,related accept ${tag}`,
    `iifname ${local} meta l4proto { icmp, ipv6-icmp } accept ${tag}`,
    `iifname ${local} counter name "${GUARD_COUNTERS.input}" drop ${tag}`,
    // From the underlay: WireGuard itself (peers' handshakes and data, replies to its own) and ICMP.
    `iifname ${under} udp dport ${spec.listenPort} accept ${tag}`,
    `iifname ${under} ct state established,related accept ${tag}`,
    `iifname ${under} meta l4proto { icmp, ipv6-icmp } accept ${tag}`,
    `iifname ${under} counter name "${GUARD_COUNTERS.underlayInput}" drop ${tag}`,
  ];
  const forward = [
    ...toUnderlay,
    // Underlay↔tunnel would make this namespace a relay: into a peer's tunnel for the host's
    // side, or onto this host's underlay (and its masquerade) for a peer.
    `iifname != ${inner} oifname != ${inner} counter name "${GUARD_COUNTERS.transit}" drop ${tag}`,
  ];

  // The handshake tie-break (HANDSHAKE_YIELD_MS): as the lower address of a pair, whose
  // initiation came first; as the higher one, the marked ones it ignores.
  const yieldSets: string[] = [];
  const yieldIn: string[] = [];
  const yieldOut: string[] = [];
  if (spec.underlay !== undefined) {
    const ipk = selfFam === 4 ? 'ip' : 'ip6';
    const type = selfFam === 4 ? 'ipv4_addr' : 'ipv6_addr';
    const dscp = selfFam === 4 ? 'ip dscp' : 'ip6 dscp';
    yieldSets.push(`\tmap ${FIRST_MAP} { type ${type} : mark; flags dynamic, timeout; timeout ${HANDSHAKE_YIELD_MS}ms; }`);
    const inPort = `iifname ${under} udp dport ${spec.listenPort}`;
    const outPort = `oifname ${under} udp sport ${spec.listenPort}`;
    const higher = (dir: 'saddr' | 'daddr'): string => `${ipk} ${dir} > ${spec.underlay}`;
    // The packet mark carries the winner from the map to the next rule and is cleared again
    // (nothing in the hidden namespace marks packets, wireguard-go runs without an fwmark).
    const claim = (dir: 'saddr' | 'daddr', mine: string): string =>
      `add @${FIRST_MAP} { ${ipk} ${dir} : ${mine} } meta mark set ${ipk} ${dir} map @${FIRST_MAP}`;
    const initFromHigher = `${inPort} ${INITIATION_MATCH} ${higher('saddr')}`;
    const initToHigher = `${outPort} ${INITIATION_MATCH} ${higher('daddr')}`;
    yieldIn.push(
      `${initFromHigher} ${claim('saddr', FIRST_THEIRS)} ${tag}`,
      `${initFromHigher} meta mark ${FIRST_OURS} counter name "${GUARD_COUNTERS.yield}" drop ${tag}`,
      `${initFromHigher} meta mark set 0 ${tag}`,
      `${inPort} ${INITIATION_MATCH} ${ipk} saddr < ${spec.underlay} ${dscp} cs1 counter name "${GUARD_COUNTERS.yield}" drop ${tag}`,
      `${inPort} ${RESPONSE_MATCH} ${higher('saddr')} delete @${FIRST_MAP} { ${ipk} saddr : 0 } ${tag}`,
    );
    yieldOut.push(
      `${outPort} ${RESPONSE_MATCH} ${higher('daddr')} delete @${FIRST_MAP} { ${ipk} daddr : 0 } ${tag}`,
      `${initToHigher} ${claim('daddr', FIRST_OURS)} ${tag}`,
      `${initToHigher} meta mark ${FIRST_THEIRS} ${dscp} set cs1 ${tag}`,
      `${initToHigher} meta mark set 0 ${tag}`,
    );
  }
  // Anti-spoofing needs no bridge table here (renderPolicies' `bridge` part is for bridge ports):
  // the container is alone behind c0, so a source is its own when the route back to it is c0
  // (its /32 and /128 routes, link-local for neighbour discovery). The rules here trust source
  // addresses (A's egress is only in A's table: a packet from A claiming another address would
  // not be judged), and IPv6 has no rp_filter, hence the fib check ahead of conntrack; the
  // driver's rp_filter=1 on c0 does the same for IPv4, and the receiving peer's WireGuard drops
  // any inner source outside the sender's allowed-ips. (DAD probes from `::` are dropped too:
  // harmless, no one else can hold the container's address behind c0.)
  const prerouting = [
    `iifname ${inner} fib saddr . iif oif missing counter name "${GUARD_COUNTERS.spoof}" drop ${tag}`,
    ...yieldIn,
    // The tunnel's own datagrams need no connection tracking (the guard passes them by port):
    // tracking each one costs a hash lookup per packet on the tunnel's CPU-bound path.
    `iifname ${under} udp dport ${spec.listenPort} notrack ${tag}`,
  ];
  const rawOutput = [...yieldOut, `oifname ${under} udp sport ${spec.listenPort} notrack ${tag}`];
  const policy: string[] = [];
  const plan = spec.plan;
  if (plan?.endpoints.length) {
    if (plan.endpoints.length > 1) {
      throw new InvalidParameter(`the hidden namespace's plan holds ${plan.endpoints.length} endpoints, at most its own one expected`);
    }
    if (plan.networkId !== spec.networkId) throw new InvalidParameter(`plan of network ${plan.networkId} for network ${spec.networkId}`);
    const nets = new Map([[spec.networkId, { id: spec.networkId, tag, gateways: spec.gateways }]]);
    // No DNS port: the embedded DNS answers inside the container's own namespace. The underlay
    // is exempt as a client: from there only the host opens connections (another endpoint's
    // underlay address cannot be a source here: its namespace tunnels to containers, and the
    // container cannot claim it past the fib check), and on a bridge the host is never judged.
    const rendered = renderPolicies([plan], nets, null, {
      logDrops: spec.logDrops ?? false,
      exemptClients: spec.underlayPool,
      ...(spec.dnsLearnt ? { dnsLearnt: spec.dnsLearnt } : {}),
    });
    policy.push(...rendered.filter);
  }

  const counters = Object.values(GUARD_COUNTERS).map((n) => `\tcounter ${n} {}`);
  const hook = (h: string): string => `type filter hook ${h} priority filter - 2; policy accept;`;
  return (
    [
      '# Generated by arca for a wireguard endpoint\'s hidden namespace; replaced as a whole on every change.',
      `table inet ${HIDDEN_TABLE} {}`,
      `delete table inet ${HIDDEN_TABLE}`,
      `table inet ${HIDDEN_TABLE} {`,
      ...counters,
      ...sets,
      ...yieldSets,
      ...chain('guard_prerouting', 'type filter hook prerouting priority raw; policy accept;', prerouting),
      ...chain('guard_raw_output', 'type filter hook output priority raw; policy accept;', rawOutput),
      ...chain('guard_input', hook('input'), input),
      ...chain('guard_forward', hook('forward'), forward),
      ...policy,
      '}',
    ].join('\n') + '\n'
  );
}

/** The script that removes the table (idempotent). */
export function renderHiddenNsTeardown(): string {
  return `table inet ${HIDDEN_TABLE} {}\ndelete table inet ${HIDDEN_TABLE}\n`;
}

/**
 * The flows the namespace's policies dropped lately (`--log-policy-drops`: each stays
 * DROP_SET_TIMEOUT_S in its set), for a PolicyDropReporter. Only for a table rendered with
 * `logDrops` and a plan: without them the sets do not exist and nft says so.
 */
export async function readHiddenNsDrops(nsPath: string): Promise<Array<DroppedFlow & { dir: 'ingress' | 'egress' }>> {
  const flows: Array<DroppedFlow & { dir: 'ingress' | 'egress' }> = [];
  for (const dir of ['ingress', 'egress'] as const) {
    for (const fam of [4, 6] as const) {
      for (const f of parseDropSet(await nftOutput(`list set inet ${HIDDEN_TABLE} ${DROP_SETS[dir][fam]}`, nsPath))) flows.push({ ...f, dir });
    }
  }
  return flows;
}

type Counts = Map<string, { packets: number; bytes: number }>;

interface NsBook {
  book: PolicyCounterBook;
  /** Policies of the last loaded script. */
  policies: readonly string[];
  /** Whether a table of ours is in the namespace (a load succeeded). */
  loaded: boolean;
}

/**
 * Policy counters of the hidden namespaces, summed per policy and kept across table reloads
 * (a reload zeroes the kernel's counters). Keyed by the namespace's path. Like the nftables
 * firewall, it moves the kernel's counts into its book with `reset counters` (read and zero in
 * one step), on every read and just before every reload; packets counted between that reset
 * and the new table are lost (a few at most).
 */
export class HiddenNsCounters {
  private readonly books = new Map<string, NsBook>();
  /** What forgotten namespaces had counted, per counter name. */
  private readonly retired = new PolicyCounterBook();
  private readonly retiredPolicies = new Set<string>();

  /**
   * Loads `script` into the namespace, first folding the counters it is about to reset into the
   * totals. `policies`: the policy names the script counts ({@link hiddenNsPolicies} of its spec);
   * nft's counter names cannot be turned back into them.
   */
  async load(nsPath: string, script: string, policies: readonly string[]): Promise<void> {
    let entry = this.books.get(nsPath);
    if (entry?.loaded) await this.collect(nsPath, entry);
    try {
      await nftLoad(script, nsPath);
    } catch (err) {
      const stderr = err instanceof NftError ? err.stderr.trim() : errorMessage(err);
      const numbered = script
        .split('\n')
        .map((l, i) => `${String(i + 1).padStart(4)}  ${l}`)
        .join('\n');
      log.error(`nft load in ${nsPath} failed: ${stderr}\n${numbered}`);
      throw new SystemError(`hidden namespace firewall failed: ${stderr}`, { cause: err });
    }
    if (!entry) this.books.set(nsPath, (entry = { book: new PolicyCounterBook(), policies: [], loaded: false }));
    entry.policies = [...policies];
    entry.loaded = true;
  }

  /** Current totals per policy for the namespace (kernel counters plus what earlier reloads reset). */
  async read(nsPath: string): Promise<Record<string, PolicyCounters>> {
    const entry = this.books.get(nsPath);
    if (!entry) return {};
    if (entry.loaded) await this.collect(nsPath, entry);
    return entry.book.totals(entry.policies, new Map());
  }

  /**
   * Forgets a namespace that is gone: its counts stay in {@link totals} (what it counted since
   * the last read or load is lost with it: read first to keep it).
   */
  forget(nsPath: string): void {
    const entry = this.books.get(nsPath);
    if (!entry) return;
    this.books.delete(nsPath);
    this.retired.absorb(toCounts(entry.book.totals(entry.policies, new Map())));
    for (const p of entry.policies) this.retiredPolicies.add(p);
  }

  /** Totals per policy over every namespace, forgotten ones included, for `policies` (default: all seen). */
  async totals(policies?: Iterable<string>): Promise<Record<string, PolicyCounters>> {
    const names = new Set(policies ?? [...this.retiredPolicies, ...[...this.books.values()].flatMap((e) => e.policies)]);
    const sum = new PolicyCounterBook();
    sum.absorb(toCounts(this.retired.totals(names, new Map())));
    for (const ns of [...this.books.keys()]) sum.absorb(toCounts(await this.read(ns)));
    return sum.totals(names, new Map());
  }

  private async collect(nsPath: string, entry: NsBook): Promise<void> {
    try {
      entry.book.absorb(parseCounters(await nftOutput(`reset counters table inet ${HIDDEN_TABLE}`, nsPath)));
    } catch (err) {
      log.warn('cannot read the hidden namespace\'s policy counters', { netns: nsPath, error: errorMessage(err) });
    }
  }
}

/** Per-policy totals back as counter-name counts (so books can be summed). */
function toCounts(totals: Record<string, PolicyCounters>): Counts {
  const out: Counts = new Map();
  for (const [policy, c] of Object.entries(totals)) {
    const n = policyCounterNames(policy);
    out.set(n.allowed, { packets: c.allowedPackets, bytes: c.allowedBytes });
    out.set(n.dropped, { packets: c.droppedPackets, bytes: c.droppedBytes });
  }
  return out;
}
