import { InvalidParameter, NotFound } from '../../errors.js';
import { formatIp, parseIp, Prefix, type IpAddress } from '../ipam/ip-address.js';
import { compilePlans } from './policy-compile.js';
import type { CompiledPeers, EndpointPolicy, NetworkPolicyPlan, PolicyDoc, PolicyEndpointInfo, PolicyProto, PolicyWorld, PortRange } from './policy-types.js';

/** What `arca policy check` asks: may this container open this port there? */
export interface CheckQuery {
  /** Container id, unique id prefix, or name. */
  fromContainer: string;
  /** A container (by id, prefix or name), or an address: a container's (that endpoint) or one outside. */
  to: { container: string } | { address: string };
  proto: PolicyProto;
  port: number;
}

export interface CheckDecider {
  policy: string;
  direction: 'ingress' | 'egress';
  /** The allowing rule's index; absent when the policy is named for isolating (denied). */
  rule?: number;
}

export interface CheckResult {
  allowed: boolean;
  /** Allowed: the rules that allow it (on the isolated sides). Denied: the policies isolating the side that refuses. */
  decidedBy: CheckDecider[];
  /** One line, for people. */
  reason: string;
}

/**
 * Evaluates a connection on the compiled plans — the data the enforcers render — so the answer
 * explains what the kernel does. The source's egress and the destination's ingress must both
 * allow; for an address outside every network only the source's egress is consulted. A container
 * destination is reached on every network the two share (each must allow: which one a connection
 * takes is up to routing and name resolution); an address picks its network.
 */
export function checkConnection(policies: PolicyDoc[], world: PolicyWorld, q: CheckQuery): CheckResult {
  return new PolicyChecker(policies, world).check(q);
}

/** {@link checkConnection} with the compilation done once, for many queries. */
export class PolicyChecker {
  private readonly plans: Map<string, NetworkPolicyPlan>;

  constructor(
    policies: PolicyDoc[],
    private readonly world: PolicyWorld,
  ) {
    this.plans = new Map(compilePlans(policies, world).map((p) => [p.networkId, p]));
  }

  check(q: CheckQuery): CheckResult {
    if (!Number.isInteger(q.port) || q.port < 1 || q.port > 65535) throw new InvalidParameter(`invalid port ${q.port}`);
    const src = this.container(q.fromContainer);
    const srcName = src[0]!.containerName;
    const what = `${q.proto}/${q.port}`;
    let pairs: Array<{ s: PolicyEndpointInfo; d: PolicyEndpointInfo | IpAddress }>;
    let dstName: string;
    if ('container' in q.to) {
      const dst = this.container(q.to.container);
      dstName = dst[0]!.containerName;
      if (dst[0]!.containerId === src[0]!.containerId) {
        return { allowed: true, decidedBy: [], reason: `allowed: "${srcName}" reaching itself never crosses a network` };
      }
      pairs = [];
      for (const s of src) {
        const d = dst.find((e) => e.networkId === s.networkId);
        if (d) pairs.push({ s, d });
      }
      if (pairs.length === 0) {
        return {
          allowed: false,
          decidedBy: [],
          reason: `denied: "${srcName}" and "${dstName}" share no network ("${srcName}" is on ${nets(src)}, "${dstName}" on ${nets(dst)})`,
        };
      }
    } else {
      const ip = parseIp(q.to.address.trim());
      if (!ip) throw new InvalidParameter(`"${q.to.address}" is not an IP address`);
      const owner = this.world.endpoints.find((e) => e.addresses.some((a) => sameIp(a, ip)));
      if (owner) {
        dstName = owner.containerName;
        if (owner.containerId === src[0]!.containerId) {
          return { allowed: true, decidedBy: [], reason: `allowed: "${srcName}" reaching itself never crosses a network` };
        }
        const s = src.find((e) => e.networkId === owner.networkId);
        if (!s) {
          return {
            allowed: false,
            decidedBy: [],
            reason: `denied: "${srcName}" is not on network "${owner.networkName}" of "${dstName}" (${formatIp(ip)}); it is on ${nets(src)}`,
          };
        }
        pairs = [{ s, d: owner }];
      } else {
        dstName = formatIp(ip);
        pairs = src.map((s) => ({ s, d: ip }));
      }
    }
    const results = pairs.map(({ s, d }) => this.evaluate(s, d, srcName, dstName, q.proto, q.port, what));
    const allowed = results.every((r) => r.allowed);
    const decidedBy = results.filter((r) => r.allowed === allowed).flatMap((r) => r.decidedBy);
    let reason: string;
    if (results.length === 1) reason = results[0]!.reason;
    else if (results.every((r) => r.allowed === allowed)) reason = `${allowed ? 'allowed' : 'denied'}: ${results.map((r) => r.reason.replace(/^(allowed|denied) /, '')).join('; ')}`;
    else reason = `denied (the networks disagree): ${results.map((r) => r.reason).join('; ')}`;
    return { allowed, decidedBy: dedupe(decidedBy), reason };
  }

  /** One network's answer: the source endpoint towards a destination endpoint, or an outside address. */
  private evaluate(s: PolicyEndpointInfo, d: PolicyEndpointInfo | IpAddress, srcName: string, dstName: string, proto: PolicyProto, port: number, what: string): CheckResult {
    const net = `on "${s.networkName}"`;
    const outside = !('endpointId' in d);
    let srcIp: IpAddress | undefined;
    let dstIp: IpAddress | undefined;
    if (outside) {
      dstIp = d;
      srcIp = firstOfFamily(s.addresses, d.family);
    } else {
      // IPv4 when both have it: what a name lookup of the container prefers.
      for (const fam of [4, 6] as const) {
        srcIp = firstOfFamily(s.addresses, fam);
        dstIp = firstOfFamily(d.addresses, fam);
        if (srcIp && dstIp) break;
      }
    }
    if (!srcIp || !dstIp) {
      return { allowed: false, decidedBy: [], reason: `denied ${net}: "${srcName}" has no address of the family of "${dstName}"` };
    }
    const plan = this.plans.get(s.networkId);
    const sides: Array<{ dir: 'egress' | 'ingress'; who: string; ep: EndpointPolicy | undefined; peer: IpAddress; peerName: string }> = [
      { dir: 'egress', who: srcName, ep: plan?.endpoints.find((e) => e.endpointId === s.endpointId), peer: dstIp, peerName: dstName },
    ];
    if (!outside) sides.push({ dir: 'ingress', who: dstName, ep: plan?.endpoints.find((e) => e.endpointId === d.endpointId), peer: srcIp, peerName: srcName });
    const decidedAllow: CheckDecider[] = [];
    const decidedDeny: CheckDecider[] = [];
    const allowText: string[] = [];
    const denyText: string[] = [];
    for (const side of sides) {
      const rules = side.ep?.[side.dir];
      if (rules === undefined) {
        allowText.push(`${side.dir} of "${side.who}" is not isolated`);
        continue;
      }
      const matching = rules.filter((r) => peersContain(r.peers, side.peer) && portsContain(r.ports, proto, port));
      if (matching.length > 0) {
        for (const r of matching) decidedAllow.push({ policy: r.policy, direction: side.dir, rule: r.index });
        allowText.push(`${side.dir} of "${side.who}" allowed by ${matching.map((r) => `${r.policy} ${side.dir}[${r.index}]`).join(', ')}`);
        continue;
      }
      const isolating = side.ep!.isolatedBy?.[side.dir] ?? [];
      for (const p of isolating) decidedDeny.push({ policy: p, direction: side.dir });
      const peerText = side.peerName === formatIp(side.peer) ? side.peerName : `"${side.peerName}" (${formatIp(side.peer)})`;
      // dns peers stand for addresses learnt from DNS answers at run time, which the model does not know.
      const dns = rules.some((r) => r.peers !== 'any' && r.peers.dns?.length && portsContain(r.ports, proto, port));
      const note = dns ? ' (not counting dns peers, whose addresses are learnt from DNS answers at run time)' : '';
      denyText.push(`${side.dir} of "${side.who}" is isolated by ${isolating.join(', ')} and no rule allows ${what} ${side.dir === 'egress' ? 'to' : 'from'} ${peerText}${note}`);
    }
    if (denyText.length > 0) return { allowed: false, decidedBy: decidedDeny, reason: `denied ${net}: ${denyText.join('; ')}` };
    return { allowed: true, decidedBy: decidedAllow, reason: `allowed ${net}: ${allowText.join('; ')}` };
  }

  /** The container's endpoints, by id, unique id prefix or name. */
  private container(ref: string): PolicyEndpointInfo[] {
    const name = ref.replace(/^\//, '');
    let eps = this.world.endpoints.filter((e) => e.containerId === ref || e.containerName === name);
    if (eps.length === 0 && ref.length > 0) {
      eps = this.world.endpoints.filter((e) => e.containerId.startsWith(ref));
      const ids = new Set(eps.map((e) => e.containerId));
      if (ids.size > 1) throw new InvalidParameter(`multiple IDs found with provided prefix: ${ref}`);
    }
    if (eps.length === 0) throw new NotFound(`No such container: ${ref} (or it is on no network: not running)`);
    const id = eps.find((e) => e.containerId === ref)?.containerId ?? eps[0]!.containerId;
    return eps.filter((e) => e.containerId === id).sort((a, b) => (a.networkName < b.networkName ? -1 : a.networkName > b.networkName ? 1 : 0));
  }
}

/** Whether a compiled rule's peers take the address. */
export function peersContain(peers: CompiledPeers, ip: IpAddress): boolean {
  if (peers === 'any') return true;
  const list = ip.family === 4 ? peers.addrs4 : peers.addrs6;
  if (list.some((a) => sameIp(a, ip))) return true;
  return peers.cidrs.some((c) => {
    const p = Prefix.parse(c.cidr);
    return !!p && p.contains(ip) && !c.except.some((e) => Prefix.parse(e)?.contains(ip));
  });
}

/** Whether a compiled rule's ports take the protocol and port. */
export function portsContain(ports: 'any' | PortRange[], proto: PolicyProto, port: number): boolean {
  return ports === 'any' || ports.some((r) => r.proto === proto && port >= r.from && port <= r.to);
}

function sameIp(s: string, ip: IpAddress): boolean {
  const a = parseIp(s);
  return !!a && a.family === ip.family && a.value === ip.value;
}

function firstOfFamily(addrs: string[], family: 4 | 6): IpAddress | undefined {
  for (const s of addrs) {
    const a = parseIp(s);
    if (a && a.family === family) return a;
  }
  return undefined;
}

function nets(eps: PolicyEndpointInfo[]): string {
  return eps.map((e) => `"${e.networkName}"`).join(', ');
}

function dedupe(ds: CheckDecider[]): CheckDecider[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const k = `${d.policy}\0${d.direction}\0${d.rule ?? ''}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
