/**
 * Renders a {@link FirewallState} as one nft script that replaces the daemon's two tables in a
 * single transaction. Pure: the same state always gives the same text (networks and ports are
 * sorted), which is what the golden tests compare.
 *
 * Layout (T = the table prefix):
 *
 * `table inet T` (filter)
 *   - `forward` (hook forward): first every `oifname <bridge> jump n_<id>_in`, then every
 *     `iifname <bridge> jump n_<id>_out`. The order matters: a packet from network A to network
 *     B must meet B's "in" chain (which ends in a verdict) before A's "out" chain accepts it.
 *   - `n_<id>_in`: traffic entering a network: established/related, then published ports
 *     (`ct status dnat`, per port), then same-bridge traffic (icc), then drop. The final drop is
 *     what isolates networks from each other and keeps unpublished container ports unreachable
 *     from outside (Docker ≥ 28 behaves the same way).
 *   - `n_<id>_out`: traffic leaving a network for another interface: accept, or drop if internal.
 *   - `prerouting` (hook prerouting, priority raw): containers may not send to 127.0.0.0/8
 *     through the bridge; `route_localnet=1` on the bridge (needed for published ports on
 *     127.0.0.1) would otherwise let them reach the host's loopback-only services.
 *   - `input` + `n_<id>_host`: only for networks with `protectHost`.
 *
 * `table inet T_nat`
 *   - `prerouting` and `output` (hook, priority dstnat): one DNAT rule per published port; the
 *     output chain serves connections made on the host itself (127.0.0.1 included).
 *   - `postrouting` (priority srcnat): per subnet, masquerade what leaves by another interface;
 *     hairpin (`ct status dnat` back into the same bridge from its own subnet); and loopback
 *     sources DNATed from the host into the bridge.
 *
 * Network policies (`state.policies`) add sets, maps and chains of their own to the filter table
 * and `table bridge T_br`; see nft-policy.ts.
 *
 * Every rule carries `comment "arca:net:<id12>"` or `comment "arca:ep:<id12>"` (policy
 * dispatch and anti-spoofing rules: `comment "arca:policies"`).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { InvalidParameter } from '../../../errors.js';
import type { FirewallNetwork, FirewallPort, FirewallState } from '../firewall.js';
import { renderEgress, type LearntElements } from './nft-egress.js';
import { renderPolicies, type PolicyRenderOptions } from './nft-policy.js';

export interface RulesetOptions extends PolicyRenderOptions {
  /** DNS-learnt egress elements to re-create (with their remaining timeouts). */
  egressLearnt?: LearntElements;
}

/** The DNS port on the gateway when the state does not give one. */
export const DEFAULT_DNS_PORT = 53;

/** The names of the daemon's tables for a prefix: filter, nat (both inet), bridge (policies' anti-spoofing). */
export function tableNames(prefix: string): { filter: string; nat: string; bridge: string } {
  if (!/^[A-Za-z][A-Za-z0-9_]{0,40}$/.test(prefix)) {
    throw new InvalidParameter(`invalid nft table prefix "${prefix}": letters, digits and _ only, starting with a letter`);
  }
  return { filter: prefix, nat: `${prefix}_nat`, bridge: `${prefix}_br` };
}

/** Script fragment that deletes a table if it exists, in the same transaction as what follows. */
function dropTable(name: string, family: 'inet' | 'bridge' = 'inet'): string[] {
  // `table X {}` creates it if missing, so the `delete` never fails: the idiom for "replace".
  return [`table ${family} ${name} {}`, `delete table ${family} ${name}`];
}

/** The script that removes the daemon's tables (idempotent: missing tables are no error). */
export function renderTeardown(prefix: string): string {
  const t = tableNames(prefix);
  return [...dropTable(t.filter), ...dropTable(t.nat), ...dropTable(t.bridge, 'bridge')].join('\n') + '\n';
}

type Family = 4 | 6;

function familyOfAddress(addr: string): Family | undefined {
  if (isIPv4(addr)) return 4;
  if (isIPv6(addr)) return 6;
  return undefined;
}

function familyOfCidr(cidr: string, what: string): Family {
  const [addr, len, ...rest] = cidr.split('/');
  const fam = addr === undefined ? undefined : familyOfAddress(addr);
  const n = Number(len);
  if (!fam || rest.length || !/^[0-9]+$/.test(len ?? '') || n > (fam === 4 ? 32 : 128)) {
    throw new InvalidParameter(`invalid subnet "${cidr}" for ${what}`);
  }
  return fam;
}

const UNSPECIFIED = new Set(['', '0.0.0.0', '::']);

function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1';
}

function quoteIfname(name: string): string {
  // Linux interface names: 1-15 bytes, no '/', no whitespace; we also refuse quotes.
  if (!/^[^\s"'\\/]{1,15}$/.test(name)) throw new InvalidParameter(`invalid bridge name "${name}"`);
  return `"${name}"`;
}

function id12(id: string, what: string): string {
  const short = id.slice(0, 12);
  if (!/^[A-Za-z0-9_.-]+$/.test(short)) throw new InvalidParameter(`invalid ${what} id "${id}"`);
  return short;
}

/** nft syntax for an address family: the match keyword and the NAT family. */
function ipKw(fam: Family): 'ip' | 'ip6' {
  return fam === 4 ? 'ip' : 'ip6';
}

function natTarget(fam: Family, addr: string, port: number): string {
  return fam === 4 ? `${addr}:${port}` : `[${addr}]:${port}`;
}

interface NetInfo {
  net: FirewallNetwork;
  tag: string;
  chain: string;
  ifname: string;
  subnets: { cidr: string; fam: Family }[];
}

interface PortInfo {
  port: FirewallPort;
  tag: string;
  fam: Family;
  /** A specific host address, or undefined for all local addresses. */
  hostIp?: string;
}

function describeNetworks(state: FirewallState): NetInfo[] {
  const seenBridges = new Map<string, string>();
  const seenChains = new Set<string>();
  const nets = [...state.networks].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return nets.map((net) => {
    const short = id12(net.id, 'network');
    const chain = `n_${short.replace(/[.-]/g, '_')}`;
    if (seenChains.has(chain)) throw new InvalidParameter(`two networks share the id prefix "${short}"`);
    seenChains.add(chain);
    const other = seenBridges.get(net.bridge);
    if (other !== undefined) throw new InvalidParameter(`networks ${other} and ${net.id} share the bridge "${net.bridge}"`);
    seenBridges.set(net.bridge, net.id);
    const subnets = [
      ...net.subnets4.map((cidr) => ({ cidr, fam: familyOfCidr(cidr, `network ${short}`) })),
      ...net.subnets6.map((cidr) => ({ cidr, fam: familyOfCidr(cidr, `network ${short}`) })),
    ];
    return { net, tag: `comment "arca:net:${short}"`, chain, ifname: quoteIfname(net.bridge), subnets };
  });
}

function describePorts(state: FirewallState, nets: Map<string, NetInfo>): PortInfo[] {
  const out: PortInfo[] = [];
  for (const port of state.ports) {
    const where = `port ${port.hostIp || '*'}:${port.hostPort}/${port.proto} of ${port.endpointId.slice(0, 12)}`;
    const ni = nets.get(port.networkId);
    if (!ni) throw new InvalidParameter(`${where}: unknown network ${port.networkId}`);
    // Docker: an internal network publishes nothing.
    if (ni.net.internal) continue;
    if (!['tcp', 'udp', 'sctp'].includes(port.proto)) throw new InvalidParameter(`${where}: invalid proto "${port.proto}"`);
    for (const p of [port.hostPort, port.containerPort]) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InvalidParameter(`${where}: invalid port ${p}`);
    }
    const fam = familyOfAddress(port.containerIp);
    if (!fam) throw new InvalidParameter(`${where}: invalid container address "${port.containerIp}"`);
    let hostIp: string | undefined;
    if (UNSPECIFIED.has(port.hostIp)) {
      if ((port.hostIp === '0.0.0.0' && fam !== 4) || (port.hostIp === '::' && fam !== 6)) {
        throw new InvalidParameter(`${where}: host address family does not match container address ${port.containerIp}`);
      }
    } else {
      const hfam = familyOfAddress(port.hostIp);
      if (!hfam) throw new InvalidParameter(`${where}: invalid host address "${port.hostIp}"`);
      if (hfam !== fam) {
        throw new InvalidParameter(`${where}: host address family does not match container address ${port.containerIp}`);
      }
      hostIp = port.hostIp;
    }
    out.push({ port, tag: `comment "arca:ep:${id12(port.endpointId, 'endpoint')}"`, fam, hostIp });
  }
  const key = (p: PortInfo): string =>
    [p.port.networkId, p.port.endpointId, p.port.proto, String(p.port.hostPort).padStart(5, '0'), p.port.hostIp, p.port.containerIp].join(
      ' ',
    );
  return out.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** Indents rule lines inside a chain. */
function chain(name: string, lines: string[], hook?: string): string[] {
  return [`\tchain ${name} {`, ...(hook ? [`\t\t${hook}`] : []), ...lines.map((l) => `\t\t${l}`), '\t}'];
}

/** Renders the complete script for `state` (tables `prefix`, `prefix_nat` and `prefix_br`). */
export function renderRuleset(state: FirewallState, prefix: string, opts: RulesetOptions = {}): string {
  const t = tableNames(prefix);
  const nets = describeNetworks(state);
  const byId = new Map(nets.map((n) => [n.net.id, n]));
  const ports = describePorts(state, byId);
  const dnsPort = state.dnsPort === undefined ? DEFAULT_DNS_PORT : state.dnsPort;
  if (dnsPort !== null && (!Number.isInteger(dnsPort) || dnsPort < 1 || dnsPort > 65535)) throw new InvalidParameter(`invalid DNS port ${dnsPort}`);

  // ---- filter table
  const egress = renderEgress(
    nets.flatMap((n) => (n.net.egress ? [{ id: n.net.id, tag: n.tag, ifname: n.ifname, gateways: n.net.gateways, egress: n.net.egress }] : [])),
    dnsPort,
    opts.egressLearnt,
  );
  const forward: string[] = [...egress.forward];
  for (const n of nets) forward.push(`oifname ${n.ifname} jump ${n.chain}_in ${n.tag}`);
  for (const n of nets) forward.push(`iifname ${n.ifname} jump ${n.chain}_out ${n.tag}`);

  const filterChains: string[] = [...egress.decls];
  filterChains.push(...chain('forward', forward, 'type filter hook forward priority filter; policy accept;'));
  for (const n of nets) {
    const into: string[] = [`ct state established,related accept ${n.tag}`];
    for (const p of ports) {
      if (p.port.networkId !== n.net.id) continue;
      into.push(
        `${ipKw(p.fam)} daddr ${p.port.containerIp} ${p.port.proto} dport ${p.port.containerPort} ct status dnat accept ${p.tag}`,
      );
    }
    into.push(`iifname ${n.ifname} ${n.net.icc ? 'accept' : 'drop'} ${n.tag}`);
    into.push(`drop ${n.tag}`);
    filterChains.push(...chain(`${n.chain}_in`, into));
    filterChains.push(...chain(`${n.chain}_out`, [`${n.net.internal ? 'drop' : 'accept'} ${n.tag}`]));
  }

  const loopGuard = nets.map((n) => `iifname ${n.ifname} ip daddr 127.0.0.0/8 drop ${n.tag}`);
  for (const n of nets) {
    const u = n.net.untrackedUdp;
    if (!u?.cidrs.length) continue;
    if (!Number.isInteger(u.port) || u.port < 1 || u.port > 65535) throw new InvalidParameter(`invalid untracked UDP port ${u.port} for network ${n.net.id}`);
    for (const c of u.cidrs) familyOfCidr(c, `network ${n.net.id}`);
    const set = `{ ${[...u.cidrs].sort().join(', ')} }`;
    loopGuard.push(`iifname ${n.ifname} ip saddr ${set} ip daddr ${set} udp dport ${u.port} notrack ${n.tag}`);
  }
  if (loopGuard.length) {
    filterChains.push(...chain('prerouting', loopGuard, 'type filter hook prerouting priority raw; policy accept;'));
  }

  filterChains.push(...egress.chains);
  const protectedNets = nets.filter((n) => n.net.protectHost);
  if (protectedNets.length || egress.input.length) {
    filterChains.push(
      ...chain(
        'input',
        [...egress.input, ...protectedNets.map((n) => `iifname ${n.ifname} jump ${n.chain}_host ${n.tag}`)],
        'type filter hook input priority filter; policy accept;',
      ),
    );
  }
  for (const n of protectedNets) {
    const lines = [`ct state established,related accept ${n.tag}`, `meta l4proto { icmp, ipv6-icmp } accept ${n.tag}`];
    for (const gw of dnsPort === null ? [] : [...n.net.gateways].sort()) {
      const fam = familyOfAddress(gw);
      if (!fam) throw new InvalidParameter(`invalid gateway "${gw}" for network ${n.net.id}`);
      lines.push(`${ipKw(fam)} daddr ${gw} meta l4proto { tcp, udp } th dport ${dnsPort} accept ${n.tag}`);
    }
    lines.push(`drop ${n.tag}`);
    filterChains.push(...chain(`${n.chain}_host`, lines));
  }

  const zeroed = nets.filter((n) => n.net.zeroUdpChecksums);
  if (zeroed.length) {
    filterChains.push(
      ...chain(
        'postrouting',
        zeroed.map((n) => `oifname ${n.ifname} meta nfproto ipv4 udp checksum set 0 ${n.tag}`),
        // After NAT (srcnat is 100), which would turn a checksum of 0 into garbage.
        'type filter hook postrouting priority 200; policy accept;',
      ),
    );
  }

  // ---- policies (filter table and bridge table)
  const pol = renderPolicies(
    state.policies ?? [],
    new Map(nets.map((n) => [n.net.id, { id: n.net.id, tag: n.tag, gateways: n.net.gateways, ...(n.net.driverPolicies ? { driverPolicies: true } : {}) }])),
    dnsPort,
    opts,
  );
  filterChains.push(...pol.filter);

  // ---- nat table
  // Same rules in prerouting (from outside and from containers) and output (from the host
  // itself), except that a loopback host address is only reachable from the host.
  const dnatPre: string[] = [];
  const dnatOut: string[] = [];
  for (const p of ports) {
    const { port } = p;
    const kw = ipKw(p.fam);
    const match = p.hostIp ? `${kw} daddr ${p.hostIp}` : `meta nfproto ${p.fam === 4 ? 'ipv4' : 'ipv6'} fib daddr type local`;
    const rule = `${match} ${port.proto} dport ${port.hostPort} dnat ${kw} to ${natTarget(p.fam, port.containerIp, port.containerPort)} ${p.tag}`;
    if (!(p.hostIp && isLoopback(p.hostIp))) dnatPre.push(rule);
    dnatOut.push(rule);
  }

  const post: string[] = [];
  for (const n of nets) {
    if (n.net.internal) continue;
    for (const s of n.subnets) {
      if (n.net.masquerade) post.push(`${ipKw(s.fam)} saddr ${s.cidr} oifname != ${n.ifname} masquerade ${n.tag}`);
      // Hairpin: a container reached a published port through a host address and the DNAT sent
      // it back into its own bridge; without SNAT the peer would answer directly and the
      // client would drop a reply from an address it never talked to.
      post.push(`oifname ${n.ifname} ${ipKw(s.fam)} saddr ${s.cidr} ct status dnat masquerade ${n.tag}`);
    }
    // The host connected to 127.0.0.1:<published>; a loopback source cannot leave by the bridge.
    if (n.subnets.some((s) => s.fam === 4)) post.push(`oifname ${n.ifname} ip saddr 127.0.0.0/8 masquerade ${n.tag}`);
  }

  const natChains: string[] = [
    ...chain('prerouting', dnatPre, 'type nat hook prerouting priority dstnat; policy accept;'),
    // nft 1.0.6 knows the name `dstnat` only for prerouting; -100 is its value.
    ...chain('output', dnatOut, 'type nat hook output priority -100; policy accept;'),
    ...chain('postrouting', post, 'type nat hook postrouting priority srcnat; policy accept;'),
  ];

  return (
    [
      '# Generated by arca from its network state; replaced as a whole on every change.',
      ...dropTable(t.filter),
      `table inet ${t.filter} {`,
      ...filterChains,
      '}',
      ...dropTable(t.nat),
      `table inet ${t.nat} {`,
      ...natChains,
      '}',
      // Always replaced, so the last policy's removal removes its rules too.
      ...dropTable(t.bridge, 'bridge'),
      ...(pol.bridge.length ? [`table bridge ${t.bridge} {`, ...pol.bridge, '}'] : []),
    ].join('\n') + '\n'
  );
}
