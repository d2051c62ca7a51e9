import { parseAllDocuments } from 'yaml';
import { InvalidParameter } from '../../errors.js';
import { formatIp, parseIp, Prefix } from '../ipam/ip-address.js';
import { parseNamePattern } from '../egress/egress-options.js';
import { dnsPattern } from './policy-dns.js';
import type { PolicyDoc, PolicyPeer, PolicyPortSpec, PolicyProto, PolicyRule, PolicySelector } from './policy-types.js';

/** Policy names: the same characters as Docker's object names. */
export const POLICY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Long enough for any sensible name, short enough for enforcers' identifiers and log lines. */
export const POLICY_NAME_MAX = 128;
const NETWORK_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const CONTAINER_NAME_RE = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** The labels docker-compose puts on every container it creates. */
export const COMPOSE_SERVICE_LABEL = 'com.docker.compose.service';
export const COMPOSE_PROJECT_LABEL = 'com.docker.compose.project';
const COMPOSE_KEY = 'x-arca-policies';

const DOC_KEYS = ['name', 'network', 'select', 'ingress', 'egress'];
/** What the daemon adds when it shows a policy: ignored on input, so `inspect` output applies as is. */
const READ_ONLY_KEYS = ['created', 'updated', 'Counters'];
const SELECTOR_KEYS = ['labels', 'names', 'service'];
const PEER_KEYS = ['labels', 'names', 'service', 'network', 'cidr', 'except', 'dns'];
const PORT_KEYS = ['proto', 'port'];
const PROTOS: readonly PolicyProto[] = ['tcp', 'udp', 'sctp'];

export interface ParseOptions {
  /**
   * Compose project name (`-p`): the prefix of a compose file's networks and the value of the
   * `com.docker.compose.project` label. Only used for compose files.
   */
  project?: string;
}

/**
 * Parses policy documents: YAML or JSON; one document, a YAML stream (`---`), a list of documents
 * (JSON array or YAML sequence), or a docker-compose file carrying them under a top-level
 * `x-arca-policies:` list. Every document is validated ({@link validatePolicy}); names must be
 * unique within the input.
 *
 * Compose files: a policy's `network: backend` (and a peer's) is the compose network of that key,
 * so `<project>_backend` unless the file gives it a `name:` (or marks it `external`); `service:`
 * selectors and peers also match the label `com.docker.compose.project=<project>`, added to their
 * `labels`, so another project's `db` is not selected. The project is `opts.project`, else the
 * file's top-level `name:`, normalised like docker-compose does (lower case, `[a-z0-9_-]` only).
 *
 * @throws InvalidParameter naming the document and the field.
 */
export function parsePolicies(text: string, opts: ParseOptions = {}): PolicyDoc[] {
  const values = parseDocuments(text);
  const out: Array<{ doc: PolicyDoc; where: string }> = [];
  values.forEach((value, i) => {
    const where = values.length > 1 ? `document ${i + 1}` : 'document';
    if (isObject(value) && (COMPOSE_KEY in value || 'services' in value)) {
      for (const d of composePolicies(value, opts, where)) out.push(d);
    } else if (Array.isArray(value)) {
      value.forEach((v, j) => out.push({ doc: validatePolicy(v, `${where}[${j}]`), where: `${where}[${j}]` }));
    } else {
      out.push({ doc: validatePolicy(value, where), where });
    }
  });
  if (out.length === 0) throw new InvalidParameter('no policy document in the input');
  const seen = new Map<string, string>();
  for (const { doc, where } of out) {
    const first = seen.get(doc.name);
    if (first !== undefined) throw new InvalidParameter(`policy "${doc.name}" is defined twice (${first} and ${where})`);
    seen.set(doc.name, where);
  }
  return out.map((d) => d.doc);
}

/** The plain values of every non-empty document; JSON is YAML 1.2, but JSON.parse's errors read better for JSON. */
function parseDocuments(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return [JSON.parse(trimmed) as unknown];
    } catch {
      // Flow-style YAML also starts with a brace: let the YAML parser have it and report.
    }
  }
  const docs = parseAllDocuments(text, { uniqueKeys: true, merge: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const values: unknown[] = [];
  for (const [i, doc] of list.entries()) {
    const err = doc.errors[0];
    if (err) {
      const pos = err.linePos?.[0];
      const at = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
      throw new InvalidParameter(`invalid policy file${at}: ${firstLine(err.message).replace(/ at line \d+, column \d+:?$/, '')}`);
    }
    let v: unknown;
    try {
      v = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw new InvalidParameter(`invalid policy file (document ${i + 1}): ${firstLine((e as Error).message)}`);
    }
    if (v !== null && v !== undefined) values.push(v);
  }
  return values;
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

/** docker-compose 1.29's normalize_name. */
export function normalizeProjectName(name: string): string {
  return name.toLowerCase().replace(/[^-_a-z0-9]/g, '');
}

function composePolicies(file: Record<string, unknown>, opts: ParseOptions, where: string): Array<{ doc: PolicyDoc; where: string }> {
  const list = file[COMPOSE_KEY];
  if (list === undefined) throw new InvalidParameter(`${where}: a compose file without an ${COMPOSE_KEY} list`);
  if (!Array.isArray(list)) throw new InvalidParameter(`${where}: ${COMPOSE_KEY}: must be a list of policies, not ${describe(list)}`);
  let project = opts.project;
  if (project === undefined && typeof file.name === 'string') project = file.name;
  if (project !== undefined) project = normalizeProjectName(project);
  if (!project) {
    throw new InvalidParameter(`${where}: a compose file's policies need the project name: give it with -p PROJECT (or a top-level name: in the file)`);
  }
  const networks = composeNetworks(file.networks, project);
  const mapNetwork = (key: string, field: string): string => {
    const full = networks.get(key);
    if (full === undefined) {
      const known = [...networks.keys()].join(', ');
      throw new InvalidParameter(`${field}: "${key}" is not a network of the compose file (its networks: ${known})`);
    }
    return full;
  };
  return list.map((entry, i) => {
    const at = `${COMPOSE_KEY}[${i}]`;
    const doc = validatePolicy(entry, at);
    const prefix = `policy "${doc.name}"`;
    doc.network = mapNetwork(doc.network, `${prefix}: network`);
    if (doc.select) doc.select = withProject(doc.select, project!);
    for (const dir of ['ingress', 'egress'] as const) {
      doc[dir]?.forEach((rule, r) => {
        const key = dir === 'ingress' ? 'from' : 'to';
        const peers = rule[key];
        if (!peers) return;
        rule[key] = peers.map((p, k) => {
          const q = withProject(p, project!);
          if (q.network !== undefined) q.network = mapNetwork(q.network, `${prefix}: ${dir}[${r}].${key}[${k}].network`);
          return q;
        });
      });
    }
    return { doc, where: at };
  });
}

/** Compose network keys → engine network names (compose 1.29: `custom_name` wins, else `<project>_<key>`). */
function composeNetworks(v: unknown, project: string): Map<string, string> {
  const out = new Map<string, string>([['default', `${project}_default`]]);
  if (!isObject(v)) return out;
  for (const [key, spec] of Object.entries(v)) {
    let name = `${project}_${key}`;
    if (isObject(spec)) {
      if (typeof spec.name === 'string' && spec.name !== '') name = spec.name;
      else if (spec.external === true) name = key;
      else if (isObject(spec.external) && typeof spec.external.name === 'string') name = spec.external.name;
    }
    out.set(key, name);
  }
  return out;
}

function withProject<T extends PolicySelector>(s: T, project: string): T {
  if (s.service === undefined) return s;
  return { ...s, labels: { ...s.labels, [COMPOSE_PROJECT_LABEL]: project } };
}

/**
 * Validates one policy document (the API's PUT body, or one document of a file) and returns it
 * normalised: protocols lower case and explicit (`tcp` by default), single ports as numbers,
 * CIDRs masked (a bare address is a /32 or /128), container names without a leading `/`. The
 * keys the daemon adds when showing a policy (`created`, `updated`, `Counters`) are dropped, so
 * what `arca policy inspect` prints can be edited and applied again.
 *
 * @param where how to name the document in messages while its name is not known yet.
 * @throws InvalidParameter `policy "NAME": FIELD.PATH: what is wrong`.
 */
export function validatePolicy(v: unknown, where = 'policy'): PolicyDoc {
  if (!isObject(v)) throw new InvalidParameter(`${where}: a policy must be a mapping, not ${describe(v)}`);
  let prefix = where;
  const name = v.name;
  if (typeof name === 'string' && POLICY_NAME_RE.test(name) && name.length <= POLICY_NAME_MAX) prefix = `policy "${name}"`;
  const fail = (field: string, msg: string): never => {
    throw new InvalidParameter(`${prefix}: ${field ? `${field}: ` : ''}${msg}`);
  };
  unknownKeys(v, DOC_KEYS, '', fail, READ_ONLY_KEYS);
  if (name === undefined) fail('name', 'required');
  if (typeof name !== 'string') return fail('name', `must be a string, not ${describe(name)}`);
  if (!POLICY_NAME_RE.test(name)) fail('name', `${JSON.stringify(name)} is not a valid name ([A-Za-z0-9][A-Za-z0-9_.-]*)`);
  if (name.length > POLICY_NAME_MAX) fail('name', `longer than ${POLICY_NAME_MAX} characters`);
  if (v.network === undefined) fail('network', 'required');
  if (typeof v.network !== 'string') return fail('network', `must be a network name, not ${describe(v.network)}`);
  if (!NETWORK_NAME_RE.test(v.network)) fail('network', `${JSON.stringify(v.network)} is not a valid network name`);
  const doc: PolicyDoc = { name, network: v.network };
  if (v.select !== undefined && v.select !== null) {
    if (!isObject(v.select)) fail('select', `must be a mapping, not ${describe(v.select)}`);
    unknownKeys(v.select as Record<string, unknown>, SELECTOR_KEYS, 'select', fail);
    doc.select = selector(v.select as Record<string, unknown>, 'select', fail);
  }
  for (const dir of ['ingress', 'egress'] as const) {
    const rules = v[dir];
    if (rules === undefined) continue;
    // `ingress:` with nothing after it is YAML null; it reads as "isolate, allow nothing", like [].
    if (rules === null) {
      doc[dir] = [];
      continue;
    }
    if (!Array.isArray(rules)) fail(dir, `must be a list of rules, not ${describe(rules)}`);
    doc[dir] = (rules as unknown[]).map((r, i) => rule(r, dir, `${dir}[${i}]`, fail));
  }
  return doc;
}

type Fail = (field: string, msg: string) => never;

function rule(v: unknown, dir: 'ingress' | 'egress', field: string, fail: Fail): PolicyRule {
  if (v === null) return {};
  if (!isObject(v)) return fail(field, `a rule must be a mapping, not ${describe(v)}`);
  const peersKey = dir === 'ingress' ? 'from' : 'to';
  unknownKeys(v, [peersKey, 'ports'], field, fail);
  const out: PolicyRule = {};
  const peers = v[peersKey];
  if (peers !== undefined) {
    const f = `${field}.${peersKey}`;
    if (!Array.isArray(peers)) fail(f, `must be a list of peers, not ${describe(peers)}`);
    // Kubernetes reads an empty list as "any": too easy to write by mistake for an allow-list.
    if ((peers as unknown[]).length === 0) fail(f, `an empty list; omit "${peersKey}" to allow any ${dir === 'ingress' ? 'source' : 'destination'}`);
    out[peersKey] = (peers as unknown[]).map((p, i) => peer(p, `${f}[${i}]`, fail, dir));
  }
  if (v.ports !== undefined) {
    const f = `${field}.ports`;
    if (!Array.isArray(v.ports)) fail(f, `must be a list of ports, not ${describe(v.ports)}`);
    if ((v.ports as unknown[]).length === 0) fail(f, 'an empty list; omit "ports" to allow every port and protocol');
    out.ports = (v.ports as unknown[]).map((p, i) => portSpec(p, `${f}[${i}]`, fail));
  }
  return out;
}

function selector(v: Record<string, unknown>, field: string, fail: Fail): PolicySelector {
  const out: PolicySelector = {};
  const at = (k: string): string => (field ? `${field}.${k}` : k);
  if (v.labels !== undefined) {
    if (!isObject(v.labels)) fail(at('labels'), `must be a mapping of label to value, not ${describe(v.labels)}`);
    const labels: Record<string, string> = {};
    for (const [k, val] of Object.entries(v.labels as Record<string, unknown>)) {
      if (k === '') fail(at('labels'), 'an empty label key');
      if (typeof val !== 'string') fail(at(`labels.${k}`), `must be a string, not ${describe(val)} (quote it)`);
      labels[k] = val as string;
    }
    if (Object.keys(labels).length === 0) fail(at('labels'), 'an empty mapping; omit "labels" to match any labels');
    out.labels = labels;
  }
  if (v.names !== undefined) {
    const names = typeof v.names === 'string' ? [v.names] : v.names;
    if (!Array.isArray(names)) return fail(at('names'), `must be a list of container names, not ${describe(v.names)}`);
    if (names.length === 0) fail(at('names'), 'an empty list; omit "names" to match any name');
    out.names = names.map((n: unknown, i: number) => {
      if (typeof n !== 'string' || !CONTAINER_NAME_RE.test(n)) fail(`${at('names')}[${i}]`, `${describe(n)} is not a container name`);
      return (n as string).replace(/^\//, '');
    });
  }
  if (v.service !== undefined) {
    if (typeof v.service !== 'string' || v.service === '') fail(at('service'), `must be a compose service name, not ${describe(v.service)}`);
    out.service = v.service as string;
  }
  return out;
}

function peer(v: unknown, field: string, fail: Fail, dir: 'ingress' | 'egress'): PolicyPeer {
  if (!isObject(v)) return fail(field, `a peer must be a mapping, not ${describe(v)}`);
  unknownKeys(v, PEER_KEYS, field, fail);
  const keys = Object.keys(v).filter((k) => v[k] !== undefined);
  if (keys.length === 0) fail(field, 'an empty peer: give labels, names, service, network, cidr or dns');
  if (v.dns !== undefined) {
    // Names are learnt from the answers the network's containers get: only destinations have them.
    if (dir !== 'egress') fail(`${field}.dns`, 'a dns peer is a destination: only in an egress rule\'s "to"');
    const other = keys.filter((k) => k !== 'dns');
    if (other.length > 0) fail(field, `dns cannot be combined with ${other.join(', ')} in one peer (make them two peers)`);
    return { dns: dnsPeer(v.dns, `${field}.dns`, fail) };
  }
  if (v.except !== undefined && v.cidr === undefined) fail(`${field}.except`, 'only with cidr');
  if (v.cidr !== undefined) {
    const other = keys.filter((k) => k !== 'cidr' && k !== 'except');
    if (other.length > 0) fail(field, `cidr cannot be combined with ${other.join(', ')} in one peer (make them two peers)`);
    const cidr = parseCidr(v.cidr, `${field}.cidr`, fail);
    const out: PolicyPeer = { cidr: cidr.toString() };
    if (v.except !== undefined) {
      const f = `${field}.except`;
      if (!Array.isArray(v.except)) fail(f, `must be a list of CIDRs, not ${describe(v.except)}`);
      out.except = (v.except as unknown[]).map((e, i) => {
        const p = parseCidr(e, `${f}[${i}]`, fail);
        if (p.family !== cidr.family || p.bits < cidr.bits || !cidr.contains(p.addr)) fail(`${f}[${i}]`, `${p.toString()} is not inside ${cidr.toString()}`);
        return p.toString();
      });
    }
    return out;
  }
  const out: PolicyPeer = selector(v, field, fail);
  if (v.network !== undefined) {
    if (typeof v.network !== 'string' || !NETWORK_NAME_RE.test(v.network)) fail(`${field}.network`, `${describe(v.network)} is not a network name`);
    out.network = v.network as string;
  }
  return out;
}

/** `api.example.com` or `*.example.com`, as the egress allowlist reads names; ports go in the rule's `ports`. */
function dnsPeer(v: unknown, field: string, fail: Fail): string {
  if (typeof v !== 'string') return fail(field, `must be a DNS name like api.example.com or *.example.com, not ${describe(v)}`);
  if (v.includes(':') || v.includes('/')) fail(field, `${JSON.stringify(v)}: a dns peer is a name only; give ports in the rule's "ports"`);
  const p = parseNamePattern(v.trim(), (why) => fail(field, `${JSON.stringify(v)}: ${why}`));
  return dnsPattern(p);
}

function parseCidr(v: unknown, field: string, fail: Fail): Prefix {
  if (typeof v !== 'string') return fail(field, `must be a CIDR like 10.0.0.0/8, not ${describe(v)}`);
  let p = Prefix.parse(v);
  if (!p && !v.includes('/')) {
    const a = parseIp(v);
    if (a) p = new Prefix(a, a.family === 4 ? 32 : 128);
  }
  if (!p) return fail(field, `${JSON.stringify(v)} is not a CIDR`);
  const m = p.masked();
  // Normalised text (RFC 5952 for IPv6) so equal prefixes compare equal.
  return Prefix.parse(`${formatIp(m.addr)}/${m.bits}`)!;
}

function portSpec(v: unknown, field: string, fail: Fail): PolicyPortSpec {
  if (!isObject(v)) return fail(field, `a port must be a mapping like {proto: tcp, port: 80}, not ${describe(v)}`);
  unknownKeys(v, PORT_KEYS, field, fail);
  let proto: PolicyProto = 'tcp';
  if (v.proto !== undefined) {
    const p = typeof v.proto === 'string' ? v.proto.toLowerCase() : undefined;
    if (!p || !PROTOS.includes(p as PolicyProto)) fail(`${field}.proto`, `${describe(v.proto)} is not a protocol (tcp, udp, sctp)`);
    proto = p as PolicyProto;
  }
  const out: PolicyPortSpec = { proto };
  if (v.port !== undefined) {
    const r = portRange(v.port);
    if (!r) return fail(`${field}.port`, `${JSON.stringify(v.port)} is not a port or range (1-65535, from ≤ to)`);
    out.port = r.from === r.to && (typeof v.port === 'number' || !String(v.port).includes('-')) ? r.from : `${r.from}-${r.to}`;
  }
  return out;
}

/** `80`, `"80"`, `"8000-8100"` → the inclusive range; undefined when not a valid port or range. */
export function portRange(v: unknown): { from: number; to: number } | undefined {
  const ok = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;
  if (typeof v === 'number') return ok(v) ? { from: v, to: v } : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*([0-9]{1,5})\s*(?:-\s*([0-9]{1,5})\s*)?$/.exec(v);
  if (!m) return undefined;
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  return ok(from) && ok(to) && from <= to ? { from, to } : undefined;
}

function unknownKeys(v: Record<string, unknown>, known: string[], field: string, fail: Fail, ignored: string[] = []): void {
  const extra = Object.keys(v).filter((k) => !known.includes(k) && !ignored.includes(k));
  if (extra.length === 0) return;
  const list = extra.map((k) => JSON.stringify(k)).join(', ');
  fail(field, `unknown key${extra.length > 1 ? 's' : ''} ${list} (known: ${known.join(', ')})`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return `${typeof v} ${String(v)}`;
}
