/**
 * The embedded DNS server's answers, as pure functions of a snapshot and the asking container.
 *
 * {@link DnsIndex.build} turns a {@link DnsSnapshot} into lookup maps with every answer record
 * pre-encoded, once per swap; a query then costs a few map lookups and one copy. Docker's rules
 * (moby `libnetwork/resolver.go`, `sandbox_dns_unix.go`):
 * - names resolve only on networks the asking container is on; `<name>.<network>` also works;
 * - several endpoints sharing a name (an alias) give all their addresses, shuffled per query;
 * - a known name without a record of the asked type is NOERROR with no answers (NODATA);
 * - an unknown name is forwarded upstream (the asker's `--dns` servers if it has any, else the
 *   host's), unless every network of the asker is `--internal`:
 *   then moby skips the host's resolvers and, having tried none, answers SERVFAIL.
 */
import type { EgressDnsView } from '../egress/egress-dns.js';
import type { DnsSnapshot } from './dns-snapshot.js';
import {
  CLASSIC_UDP_SIZE,
  DnsClass,
  DnsRcode,
  DnsType,
  HEADER_SIZE,
  canonicalAddress,
  encodeAnswerForQuestion,
  reverseName,
  type ParsedQuery,
} from './dns-codec.js';

/** Docker's TTL for its own records (moby `respTTL`). */
export const LOCAL_TTL = 600;
/** The UDP payload size we advertise in our own OPT records (the DNS flag day 2020 value). */
export const SERVER_UDP_SIZE = 1232;

/** Pre-encoded answers for one name on one network. */
interface NameEntry {
  a: Buffer[];
  aaaa: Buffer[];
  ptr: Buffer[];
}

interface NetworkView {
  id: string;
  name: string;
  internal: boolean;
  /** Lower-case name (no trailing dot) → records: names, `<name>.<network>`, reverse names. */
  names: Map<string, NameEntry>;
}

/** Who is asking: a container and the networks it is on in this snapshot. */
export interface DnsAsker {
  containerId: string;
  networks: readonly NetworkView[];
  /** False when every network of the container is internal: never forward for it. */
  forward: boolean;
  /**
   * The container's own upstreams (`--dns`, at most three), used instead of the index's host
   * {@link DnsIndex.upstreams}; undefined when it has none.
   */
  upstreams?: readonly string[];
  /** This container's link aliases (its own `--link`s), looked up before the networks' names. */
  links?: ReadonlyMap<string, NameEntry>;
  /** Its deny networks' name rules: what its upstream answers teach the firewall. */
  egress?: readonly EgressDnsView[];
}

/**
 * The outcome of a lookup: `forward` (not ours), or an rcode with pre-encoded answer records
 * (owner pointer `0xC00C`), which may be empty (NODATA).
 */
export type DnsResolution =
  | { readonly kind: 'forward' }
  | { readonly kind: 'local'; readonly rcode: number; readonly answers: readonly Buffer[] };

const FORWARD: DnsResolution = { kind: 'forward' };
const NODATA: DnsResolution = { kind: 'local', rcode: DnsRcode.NOERROR, answers: [] };
const SERVFAIL: DnsResolution = { kind: 'local', rcode: DnsRcode.SERVFAIL, answers: [] };

function normaliseName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function shuffled<T>(items: readonly T[]): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

/** An immutable, precomputed view of a {@link DnsSnapshot}. */
export class DnsIndex {
  private constructor(
    /** Upstream resolvers, in order (at most three are used). */
    readonly upstreams: readonly string[],
    private readonly byAddress: ReadonlyMap<string, DnsAsker>,
    private readonly byContainer: ReadonlyMap<string, DnsAsker>,
  ) {}

  static readonly empty: DnsIndex = new DnsIndex([], new Map(), new Map());

  /**
   * Precomputes the lookup maps. Names are matched case-insensitively without a trailing dot;
   * an endpoint's `names[0]` is taken as the container name, which PTR answers give.
   */
  static build(snapshot: DnsSnapshot): DnsIndex {
    const containerNets = new Map<string, NetworkView[]>();
    const containerUpstreams = new Map<string, readonly string[]>();
    const addressOwner = new Map<string, string>();
    const linkNames = new Map<string, Map<string, NameEntry>>();
    for (const net of snapshot.networks) {
      // Each container's link aliases, resolved to the target's addresses on this network.
      const here = new Map(net.endpoints.map((e) => [e.containerId, e]));
      for (const ep of net.endpoints) {
        for (const l of ep.links ?? []) {
          const target = here.get(l.containerId);
          const alias = normaliseName(l.alias);
          if (!target || !alias) continue;
          let mine = linkNames.get(ep.containerId);
          if (!mine) linkNames.set(ep.containerId, (mine = new Map()));
          let entry = mine.get(alias);
          if (!entry) mine.set(alias, (entry = { a: [], aaaa: [], ptr: [] }));
          const v4 = target.ipv4 ? canonicalAddress(target.ipv4.split('/')[0]!) : undefined;
          const v6 = target.ipv6 ? canonicalAddress(target.ipv6.split('/')[0]!) : undefined;
          if (v4) entry.a.push(encodeAnswerForQuestion(DnsType.A, LOCAL_TTL, v4));
          if (v6) entry.aaaa.push(encodeAnswerForQuestion(DnsType.AAAA, LOCAL_TTL, v6));
        }
      }
    }
    const egressByNetwork = new Map(
      snapshot.networks.flatMap((n) =>
        n.egressNames?.length || n.policyDns?.length
          ? [[n.id, { names: n.egressNames ?? [], ...(n.policyDns?.length ? { peers: n.policyDns } : {}) }] as const]
          : [],
      ),
    );
    for (const net of snapshot.networks) {
      const view: NetworkView = { id: net.id, name: net.name, internal: net.internal, names: new Map() };
      const seen = new Map<string, Set<string>>();
      const add = (key: string, kind: keyof NameEntry, type: number, data: string): void => {
        if (!key) return;
        let entry = view.names.get(key);
        if (!entry) view.names.set(key, (entry = { a: [], aaaa: [], ptr: [] }));
        const dedup = `${kind} ${data}`;
        let s = seen.get(key);
        if (!s) seen.set(key, (s = new Set()));
        if (s.has(dedup)) return;
        s.add(dedup);
        entry[kind].push(encodeAnswerForQuestion(type, LOCAL_TTL, data));
      };
      const netName = normaliseName(net.name);
      for (const ep of net.endpoints) {
        const v4 = ep.ipv4 ? canonicalAddress(ep.ipv4.split('/')[0]!) : undefined;
        const v6 = ep.ipv6 ? canonicalAddress(ep.ipv6.split('/')[0]!) : undefined;
        const names = ep.names.map(normaliseName).filter((n) => n.length > 0);
        // Every known name gets an entry, so that a name without addresses is NODATA.
        for (const n of names) {
          for (const key of [n, `${n}.${netName}`]) {
            if (!view.names.has(key)) view.names.set(key, { a: [], aaaa: [], ptr: [] });
            if (v4) add(key, 'a', DnsType.A, v4);
            if (v6) add(key, 'aaaa', DnsType.AAAA, v6);
          }
        }
        const primary = names[0];
        for (const ip of [v4, v6]) {
          if (!ip) continue;
          addressOwner.set(ip, ep.containerId);
          if (primary) {
            const rev = reverseName(ip);
            add(rev, 'ptr', DnsType.PTR, `${primary}.${netName}`);
            add(rev, 'ptr', DnsType.PTR, primary);
          }
        }
        if (ep.upstreams?.length && !containerUpstreams.has(ep.containerId)) containerUpstreams.set(ep.containerId, ep.upstreams.slice(0, 3));
        let nets = containerNets.get(ep.containerId);
        if (!nets) containerNets.set(ep.containerId, (nets = []));
        if (!nets.includes(view)) nets.push(view);
      }
    }
    const byContainer = new Map<string, DnsAsker>();
    for (const [containerId, networks] of containerNets) {
      const asker: DnsAsker = { containerId, networks, forward: networks.some((n) => !n.internal) };
      const own = containerUpstreams.get(containerId);
      if (own) asker.upstreams = own;
      const links = linkNames.get(containerId);
      if (links) asker.links = links;
      const egress = networks.flatMap((n) => {
        const view = egressByNetwork.get(n.id);
        return view ? [{ networkId: n.id, ...view }] : [];
      });
      if (egress.length) asker.egress = egress;
      byContainer.set(containerId, asker);
    }
    for (const f of snapshot.forwardOnly ?? []) {
      if (byContainer.has(f.containerId)) continue;
      const asker: DnsAsker = { containerId: f.containerId, networks: [], forward: true };
      if (f.upstreams?.length) asker.upstreams = f.upstreams.slice(0, 3);
      byContainer.set(f.containerId, asker);
    }
    const byAddress = new Map<string, DnsAsker>();
    for (const [ip, containerId] of addressOwner) byAddress.set(ip, byContainer.get(containerId)!);
    return new DnsIndex(snapshot.upstreams.slice(0, 3), byAddress, byContainer);
  }

  /** The container whose endpoint has this source address (IPv4-mapped IPv6 is accepted). */
  askerByAddress(address: string): DnsAsker | undefined {
    const hit = this.byAddress.get(address);
    if (hit) return hit;
    const canonical = canonicalAddress(address);
    return canonical === undefined ? undefined : this.byAddress.get(canonical);
  }

  askerByContainer(containerId: string): DnsAsker | undefined {
    return this.byContainer.get(containerId);
  }

  /**
   * Answers one question for `asker`. `name` must already be lower case without a trailing dot
   * (as {@link ParsedQuery.name} is); other names are normalised first.
   */
  resolve(asker: DnsAsker, name: string, type: number, klass: number = DnsClass.IN): DnsResolution {
    if (klass !== DnsClass.IN && klass !== DnsClass.ANY) return asker.forward ? FORWARD : SERVFAIL;
    const nets = asker.networks;
    // A link alias of the asker's own hides any container name it shadows (Docker's links win).
    const linked = asker.links ? (asker.links.get(name) ?? asker.links.get(normaliseName(name))) : undefined;
    let found: NameEntry | undefined = linked;
    let more: NameEntry[] | undefined;
    for (let i = 0; i < nets.length && !linked; i++) {
      let e = nets[i]!.names.get(name);
      if (!e && (name.endsWith('.') || name !== name.toLowerCase())) e = nets[i]!.names.get(normaliseName(name));
      if (!e) continue;
      if (!found) found = e;
      else (more ??= []).push(e);
    }
    if (!found) return asker.forward ? FORWARD : SERVFAIL;
    let records: Buffer[];
    const pick = (e: NameEntry): Buffer[] =>
      type === DnsType.A ? e.a : type === DnsType.AAAA ? e.aaaa : type === DnsType.PTR ? e.ptr : type === DnsType.ANY ? [...e.a, ...e.aaaa, ...e.ptr] : [];
    records = pick(found);
    if (more) records = records.concat(...more.map(pick));
    if (records.length === 0) return NODATA;
    // Addresses are shuffled (moby `shuffleAddr`); PTR keeps `<name>.<network>` first for getnameinfo.
    const shuffle = records.length > 1 && type !== DnsType.PTR;
    return { kind: 'local', rcode: DnsRcode.NOERROR, answers: shuffle ? shuffled(records) : records };
  }
}

/** The largest response a client accepts over UDP: 512 bytes, or its EDNS size (RFC 6891 §6.2.5). */
export function udpLimit(query: ParsedQuery): number {
  const size = query.edns?.udpSize ?? 0;
  return size > CLASSIC_UDP_SIZE ? Math.min(size, 65535) : CLASSIC_UDP_SIZE;
}

const OPT_SIZE = 11;

function writeOpt(out: Buffer, pos: number, extendedRcode: number): void {
  out[pos] = 0; // root owner
  out.writeUInt16BE(DnsType.OPT, pos + 1);
  out.writeUInt16BE(SERVER_UDP_SIZE, pos + 3);
  out.writeUInt32BE((extendedRcode << 24) >>> 0, pos + 5);
  out.writeUInt16BE(0, pos + 9);
}

/**
 * Builds a response that echoes the query's header and first question with the given rcode and
 * answers, dropping answers that do not fit in `maxSize` and setting TC if any were dropped.
 * An OPT record is added when the query had one (RFC 6891 §6.1.1).
 */
export function buildResponse(query: Uint8Array, parsed: ParsedQuery, rcode: number, answers: readonly Buffer[], maxSize: number): Buffer {
  const qEnd = parsed.questionEnd;
  const withOpt = parsed.edns !== undefined;
  const fixed = qEnd + (withOpt ? OPT_SIZE : 0);
  let size = fixed;
  let count = 0;
  for (; count < answers.length; count++) {
    const next = size + answers[count]!.length;
    if (next > maxSize) break;
    size = next;
  }
  const truncated = count < answers.length;
  const out = Buffer.allocUnsafe(size);
  out.set(query.subarray(0, qEnd), 0);
  // QR, opcode and RD echoed; RA set; AA, TC (unless truncated), Z and rcode from us.
  const flags = 0x8000 | (parsed.flags & 0x7900) | 0x0080 | (truncated ? 0x0200 : 0) | (parsed.flags & 0x0010) | (rcode & 0xf);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(qEnd > HEADER_SIZE ? 1 : 0, 4);
  out.writeUInt16BE(count, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(withOpt ? 1 : 0, 10);
  let pos = qEnd;
  for (let i = 0; i < count; i++) {
    const a = answers[i]!;
    a.copy(out, pos);
    pos += a.length;
  }
  if (withOpt) writeOpt(out, pos, rcode >> 4);
  return out;
}

/**
 * Answers a parsed query from the index, or returns undefined when it must be forwarded.
 * Handles what is not a plain question: a non-QUERY opcode is NOTIMP, several questions FORMERR,
 * an EDNS version above 0 BADVERS (RFC 6891 §6.1.3).
 */
export function answerLocally(index: DnsIndex, asker: DnsAsker, query: Uint8Array, parsed: ParsedQuery, maxSize: number): Buffer | undefined {
  if (parsed.opcode !== 0) return buildResponse(query, parsed, DnsRcode.NOTIMP, [], maxSize);
  if (parsed.qdcount !== 1) return buildResponse(query, parsed, DnsRcode.FORMERR, [], maxSize);
  if (parsed.edns && parsed.edns.version > 0) return buildResponse(query, parsed, DnsRcode.BADVERS, [], maxSize);
  const res = index.resolve(asker, parsed.name, parsed.type, parsed.class);
  if (res.kind === 'forward') return undefined;
  return buildResponse(query, parsed, res.rcode, res.answers, maxSize);
}

/**
 * Shortens an upstream response to fit `maxSize` for a UDP client: header and question only,
 * TC set, so the client retries over TCP (RFC 2181 §9 forbids passing on a partial RRset).
 */
export function truncateResponse(response: Uint8Array, qEnd: number, maxSize: number): Buffer {
  if (response.length <= maxSize) return Buffer.from(response.buffer, response.byteOffset, response.length);
  const out = Buffer.from(response.subarray(0, qEnd));
  out[2] = out[2]! | 0x02;
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}
