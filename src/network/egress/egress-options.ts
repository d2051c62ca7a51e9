/**
 * The egress allowlist options of a network (`-o arca.egress=deny -o arca.egress.allow=LIST`),
 * parsed once and strictly: every driver accepts them, and every mistake is a 400 naming the
 * entry, raised before anything is created.
 *
 * LIST is comma-separated entries:
 *   `CIDR` (or a bare address), `CIDR:PORT[/tcp|udp]`, `[IPv6CIDR]:PORT[/proto]`,
 *   `NAME`, `NAME:PORT[/proto]`, NAME a DNS name or `*.example.com`;
 *   PORT a number or a range `8000-8100`. No protocol means both TCP and UDP; no port means
 *   every protocol (ICMP included) to that destination.
 * A wildcard `*.example.com` matches one or more labels in front of `example.com`, never the
 * apex itself (as Calico and the Kubernetes admin policies do; Cilium's `*` is one label).
 */
import { InvalidParameter } from '../../errors.js';
import { formatAddress, parseCidr, type Family } from '../firewall/nftables/address-ranges.js';

export const OPT_EGRESS = 'arca.egress';
export const OPT_EGRESS_ALLOW = 'arca.egress.allow';
export const OPT_EGRESS_STRATEGY = 'arca.egress.strategy';
export const OPT_EGRESS_SAMPLE = 'arca.egress.sample';

/** The `-o` keys every driver accepts (drivers that refuse unknown keys let these through). */
export const GENERIC_NETWORK_OPTION_KEYS: readonly string[] = [OPT_EGRESS, OPT_EGRESS_ALLOW, OPT_EGRESS_STRATEGY, OPT_EGRESS_SAMPLE];

export type EgressStrategy = 'conntrack' | 'full' | 'sampled';
const STRATEGIES: readonly EgressStrategy[] = ['conntrack', 'full', 'sampled'];

/** Default N of `sampled`: an established flow is re-checked on one packet in N. */
export const DEFAULT_SAMPLE = 64;
export const MAX_SAMPLE = 1_000_000;

/** A port range, inclusive; `proto` undefined means TCP and UDP. */
export interface EgressPorts {
  proto?: 'tcp' | 'udp';
  from: number;
  to: number;
}

export interface EgressCidrRule {
  /** The entry as written (for messages and `arca network egress`). */
  entry: string;
  fam: Family;
  /** Normalised (host bits cleared). */
  cidr: string;
  ports?: EgressPorts;
}

export interface EgressNameRule {
  entry: string;
  /** Lower case, no trailing dot; for a wildcard, the suffix after `*.`. */
  name: string;
  wildcard: boolean;
  ports?: EgressPorts;
}

export interface EgressPolicy {
  strategy: EgressStrategy;
  /** N of `sampled` (absent for the other strategies). */
  sample?: number;
  cidrs: EgressCidrRule[];
  names: EgressNameRule[];
}

function bad(entry: string, why: string): InvalidParameter {
  return new InvalidParameter(`invalid ${OPT_EGRESS_ALLOW} entry "${entry}": ${why}`);
}

function parsePortNumber(text: string, entry: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) throw bad(entry, `"${text}" is not a port number`);
  const n = Number(text);
  if (n < 1 || n > 65535) throw bad(entry, `port ${n} is out of range (1-65535)`);
  return n;
}

function parsePorts(text: string, entry: string): EgressPorts {
  const slash = text.split('/');
  if (slash.length > 2) throw bad(entry, 'more than one "/" in the port part');
  const [range, proto] = slash as [string, string | undefined];
  if (proto !== undefined && proto !== 'tcp' && proto !== 'udp') throw bad(entry, `unknown protocol "${proto}" (tcp or udp)`);
  const dash = range.split('-');
  if (dash.length > 2 || range === '') throw bad(entry, `"${range}" is not a port or a range`);
  const from = parsePortNumber(dash[0]!, entry);
  const to = dash.length === 2 ? parsePortNumber(dash[1]!, entry) : from;
  if (to < from) throw bad(entry, `port range ${from}-${to} is reversed`);
  return { ...(proto ? { proto } : {}), from, to };
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

function parseName(text: string, entry: string): { name: string; wildcard: boolean } {
  return parseNamePattern(text, (why) => {
    throw bad(entry, why);
  });
}

/**
 * A DNS name or `*.suffix` wildcard, as allowlist entries and policies' `dns` peers write it:
 * lower-cased, without a trailing dot, the wildcard's suffix in `name`. `fail` gets the reason.
 */
export function parseNamePattern(text: string, fail: (why: string) => never): { name: string; wildcard: boolean } {
  let name = text.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  let wildcard = false;
  if (name.startsWith('*.')) {
    wildcard = true;
    name = name.slice(2);
  }
  if (name.includes('*')) fail('a wildcard is allowed only as the whole first label ("*.example.com")');
  if (!name || name.length > 253) fail('not a DNS name');
  const labels = name.split('.');
  for (const l of labels) {
    if (!LABEL.test(l)) fail(`"${l}" is not a valid DNS label`);
  }
  // `*.com` would open a whole top-level domain: almost surely a mistake.
  if (wildcard && labels.length < 2) fail('a wildcard needs at least two labels after "*." (e.g. "*.example.com")');
  if (/^[0-9.]+$/.test(name)) fail('not an address nor a DNS name');
  return { name, wildcard };
}

function parseCidrText(text: string, entry: string): { fam: Family; cidr: string } {
  const [addr, len] = text.split('/');
  try {
    const { fam, range } = parseCidr(text);
    const bits = len === undefined ? (fam === 4 ? 32 : 128) : Number(len);
    return { fam, cidr: `${formatAddress(fam, range.from)}/${bits}` };
  } catch {
    throw bad(entry, `"${addr ?? text}${len === undefined ? '' : '/' + len}" is not a CIDR`);
  }
}

/** One entry of the list. Throws InvalidParameter naming it. */
export function parseEgressEntry(raw: string): { cidr?: EgressCidrRule; name?: EgressNameRule } {
  const entry = raw.trim();
  if (!entry) throw new InvalidParameter(`invalid ${OPT_EGRESS_ALLOW}: empty entry (two commas, or a comma at an end)`);
  // [v6]:port
  if (entry.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(.+))?$/.exec(entry);
    if (!m) throw bad(entry, 'expected "[IPv6CIDR]:PORT"');
    const c = parseCidrText(m[1]!, entry);
    if (c.fam !== 6) throw bad(entry, 'brackets are for IPv6 only');
    return { cidr: { entry, ...c, ...(m[2] !== undefined ? { ports: parsePorts(m[2], entry) } : {}) } };
  }
  const colons = entry.split(':').length - 1;
  if (colons >= 2) {
    // An IPv6 CIDR without a port (a port needs the brackets).
    const c = parseCidrText(entry, entry);
    return { cidr: { entry, ...c } };
  }
  const [host, portText] = colons === 1 ? (entry.split(':') as [string, string]) : [entry, undefined];
  if (portText === '') throw bad(entry, 'empty port');
  const ports = portText === undefined ? undefined : parsePorts(portText, entry);
  const extra = ports ? { ports } : {};
  if (/^[0-9.]+(\/.*)?$/.test(host) || host.includes('/')) {
    return { cidr: { entry, ...parseCidrText(host, entry), ...extra } };
  }
  return { name: { entry, ...parseName(host, entry), ...extra } };
}

/**
 * The egress policy in a network's options, or undefined when it has none (`arca.egress`
 * absent or `allow`). Throws InvalidParameter on any inconsistency.
 */
export function parseEgressOptions(options: Readonly<Record<string, string>>): EgressPolicy | undefined {
  const mode = options[OPT_EGRESS];
  const allow = options[OPT_EGRESS_ALLOW];
  const strategyText = options[OPT_EGRESS_STRATEGY];
  const sampleText = options[OPT_EGRESS_SAMPLE];
  if (mode !== undefined && mode !== 'deny' && mode !== 'allow') {
    throw new InvalidParameter(`invalid value for ${OPT_EGRESS}: "${mode}" (deny or allow)`);
  }
  if (mode !== 'deny') {
    for (const [k, v] of [[OPT_EGRESS_ALLOW, allow], [OPT_EGRESS_STRATEGY, strategyText], [OPT_EGRESS_SAMPLE, sampleText]] as const) {
      if (v !== undefined) throw new InvalidParameter(`${k} needs ${OPT_EGRESS}=deny`);
    }
    return undefined;
  }
  const strategy = (strategyText ?? 'conntrack') as EgressStrategy;
  if (!STRATEGIES.includes(strategy)) {
    throw new InvalidParameter(`invalid value for ${OPT_EGRESS_STRATEGY}: "${strategyText}" (${STRATEGIES.join(', ')})`);
  }
  let sample: number | undefined;
  if (strategy === 'sampled') {
    sample = DEFAULT_SAMPLE;
    if (sampleText !== undefined) {
      if (!/^[0-9]{1,7}$/.test(sampleText) || Number(sampleText) < 2 || Number(sampleText) > MAX_SAMPLE) {
        throw new InvalidParameter(`invalid value for ${OPT_EGRESS_SAMPLE}: "${sampleText}" (an integer from 2 to ${MAX_SAMPLE})`);
      }
      sample = Number(sampleText);
    }
  } else if (sampleText !== undefined) {
    throw new InvalidParameter(`${OPT_EGRESS_SAMPLE} needs ${OPT_EGRESS_STRATEGY}=sampled`);
  }
  const cidrs: EgressCidrRule[] = [];
  const names: EgressNameRule[] = [];
  // An empty list is a valid policy: nothing outside the network at all.
  if (allow !== undefined && allow.trim() !== '') {
    for (const raw of allow.split(',')) {
      const r = parseEgressEntry(raw);
      if (r.cidr) cidrs.push(r.cidr);
      if (r.name) names.push(r.name);
    }
  }
  return { strategy, ...(sample !== undefined ? { sample } : {}), cidrs, names };
}

/** Whether a queried name (any case, trailing dot or not) is covered by a name rule. */
export function nameMatches(rule: Pick<EgressNameRule, 'name' | 'wildcard'>, qname: string): boolean {
  let q = qname.toLowerCase();
  if (q.endsWith('.')) q = q.slice(0, -1);
  if (!rule.wildcard) return q === rule.name;
  return q.length > rule.name.length + 1 && q.endsWith(`.${rule.name}`);
}
