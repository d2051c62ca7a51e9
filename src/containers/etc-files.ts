import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidParameter } from '../errors.js';
import type { ProcessUser } from '../runtime/oci-spec.js';

/** Docker's /etc/hosts header. */
export function renderHosts(selfEntries: string[], extraHosts: string[]): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::\tip6-localnet',
    'ff00::\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
  ];
  for (const e of extraHosts) {
    const i = e.indexOf(':');
    // `name:ip` with IPv6 addresses containing colons: split at the first colon (Docker does too).
    const name = e.slice(0, i);
    let ip = e.slice(i + 1);
    if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
    lines.push(`${ip}\t${name}`);
  }
  lines.push(...selfEntries);
  return lines.join('\n') + '\n';
}

/** The host's resolv.conf, or '' without one (then {@link renderResolvConf}'s defaults apply). */
export function hostResolvConf(): string {
  try {
    return readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    return '';
  }
}

/** What a resolv.conf says: its nameservers, search domains (`domain` is one) and options. */
interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

function parseResolvConf(text: string): ResolvConf {
  const lines = text.split('\n').map((l) => l.trim());
  const words = (re: RegExp): string[] => lines.filter((l) => re.test(l)).flatMap((l) => l.split(/\s+/).slice(1));
  return {
    nameservers: lines.filter((l) => /^nameserver\s/.test(l)).map((l) => l.split(/\s+/)[1]!),
    search: words(/^(search|domain)\s/),
    options: words(/^options\s/),
  };
}

/** Empty search and options are left out; comments and any other lines of the source are not kept. */
function formatResolvConf(r: ResolvConf): string {
  const out = r.nameservers.map((n) => `nameserver ${n}`);
  if (r.search.length) out.push(`search ${r.search.join(' ')}`);
  if (r.options.length) out.push(`options ${r.options.join(' ')}`);
  return out.join('\n') + '\n';
}

/**
 * The container's resolv.conf. From the host's file, loopback nameservers dropped (they mean
 * nothing inside another namespace); `--dns*` options replace the matching parts.
 */
export function renderResolvConf(
  hostText: string,
  opts: { dns: string[]; search: string[]; options: string[]; keepLoopback: boolean },
): string {
  let { nameservers: ns, search, options } = parseResolvConf(hostText);
  if (!opts.keepLoopback) ns = ns.filter((n) => !n.startsWith('127.') && n !== '::1');
  if (opts.dns.length) ns = opts.dns;
  if (!ns.length && !opts.keepLoopback) ns = ['8.8.8.8', '8.8.4.4'];
  if (opts.search.length) search = opts.search.filter((s) => s !== '.');
  if (opts.options.length) options = opts.options;
  return formatResolvConf({ nameservers: ns, search, options });
}

/** The embedded resolver's address, as containers' resolv.conf names it. */
const EMBEDDED_RESOLVER = '127.0.0.11';

/** True when a resolv.conf sends every query to the embedded resolver (its only nameserver). */
export function usesEmbeddedResolver(text: string): boolean {
  const ns = parseResolvConf(text).nameservers;
  return ns.length > 0 && ns.every((n) => n === EMBEDDED_RESOLVER);
}

/**
 * A running container's resolv.conf turned over to the embedded resolver, as moby's
 * `rebuildDNS` does when a container first joins a network that has one (`docker network
 * connect` of a default-bridge container): its nameservers give way to 127.0.0.11 (the embedded
 * server forwards to them), search domains and options stay, and `ndots:0` is added unless the
 * file sets ndots itself. Comments and other lines are dropped.
 */
export function forEmbeddedResolver(text: string): string {
  const { search, options } = parseResolvConf(text);
  // moby drops an ndots it cannot parse before adding its own.
  const kept = options.filter((o) => !o.startsWith('ndots:') || /^ndots:\d+$/.test(o));
  if (!kept.some((o) => o.startsWith('ndots:'))) kept.push('ndots:0');
  return formatResolvConf({ nameservers: [EMBEDDED_RESOLVER], search, options: kept });
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function readLines(path: string, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): string[][] {
  try {
    return read(path)
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

/**
 * Resolves Docker's `-u` forms (`name`, `uid`, `name:group`, `uid:gid`) against the image's
 * /etc/passwd and /etc/group, as runc would see them inside the rootfs. `read` replaces
 * readFileSync (callers that must resolve the files inside the container's root).
 */
export function resolveUser(rootfs: string, spec: string, read?: (path: string) => string): ProcessUser {
  const passwd: PasswdEntry[] = readLines(join(rootfs, 'etc/passwd'), read).map((f) => ({
    name: f[0] ?? '',
    uid: Number(f[2]),
    gid: Number(f[3]),
    home: f[5] ?? '/',
  }));
  const groups = readLines(join(rootfs, 'etc/group'), read).map((f) => ({
    name: f[0] ?? '',
    gid: Number(f[2]),
    members: (f[3] ?? '').split(',').filter(Boolean),
  }));
  const [userPart = '', groupPart] = (spec || '0').split(':');
  let uid: number;
  let gid: number;
  let home = '/';
  let name = '';
  if (/^\d+$/.test(userPart)) {
    uid = Number(userPart);
    const e = passwd.find((p) => p.uid === uid);
    gid = e?.gid ?? 0;
    home = e?.home ?? '/';
    name = e?.name ?? '';
  } else {
    const e = passwd.find((p) => p.name === userPart);
    if (!e) throw new InvalidParameter(`unable to find user ${userPart}: no matching entries in passwd file`);
    uid = e.uid;
    gid = e.gid;
    home = e.home;
    name = e.name;
  }
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw new InvalidParameter(`unable to find group ${groupPart}: no matching entries in group file`);
      gid = g.gid;
    }
  }
  const additionalGids = name ? groups.filter((g) => g.members.includes(name) && g.gid !== gid).map((g) => g.gid) : [];
  if (uid === 0 && home === '/' && !passwd.length) home = '/root';
  return { uid, gid, additionalGids, home };
}

/** Merges env lists; later entries win by key, order of first appearance kept. */
export function mergeEnv(...lists: string[][]): string[] {
  const map = new Map<string, string>();
  for (const list of lists) {
    for (const e of list) {
      const i = e.indexOf('=');
      const k = i < 0 ? e : e.slice(0, i);
      if (i < 0) continue;
      map.set(k, e);
    }
  }
  return [...map.values()];
}
