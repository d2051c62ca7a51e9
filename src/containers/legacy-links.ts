/**
 * Docker's legacy links (`--link name:alias` on the default bridge): the environment a linking
 * container gets, the names they are known by (`/linker/alias`), and their removal.
 */
import { NotFound, SystemError } from '../errors.js';
import type { ContainerRecord } from './container-record.js';

/** One `HostConfig.Links` entry: `name:alias`, `/name:/linker/alias`, or `name`. */
export function parseLink(l: string): { name: string; alias: string } {
  const [rawName = '', rawAlias] = l.split(':');
  const name = rawName.replace(/^\//, '');
  const alias = rawAlias ? rawAlias.split('/').pop()! : name;
  return { name, alias };
}

interface Port {
  num: number;
  proto: string;
}

/** moby's order: TCP before other protocols, then by number. */
function byTcpFirst(a: Port, b: Port): number {
  if (a.proto === b.proto) return a.num - b.num;
  if (a.proto === 'tcp') return -1;
  if (b.proto === 'tcp') return 1;
  return a.proto < b.proto ? -1 : 1;
}

/**
 * The variables moby's links package gives the linking container for one link: `ALIAS_PORT` (the
 * first port: TCP first, lowest number), per exposed port `ALIAS_PORT_<n>_<PROTO>` with `_ADDR`,
 * `_PORT`, `_PROTO`, `_START`/`_END` pairs for runs of consecutive ports, `ALIAS_NAME`, and
 * `ALIAS_ENV_<var>` for the linked container's variables except HOME and PATH. ALIAS is the last
 * part of `linkName` upper-cased with `-` turned into `_`.
 *
 * @param linkName the link's full name, `/linker/alias`
 * @param childIp the linked container's address on the default bridge
 * @param childEnv the linked container's `Config.Env`
 * @param exposedPorts its `Config.ExposedPorts` keys (`80/tcp`, `53/udp`, `8080`)
 */
export function linkEnvironment(linkName: string, childIp: string, childEnv: readonly string[], exposedPorts: readonly string[]): string[] {
  const alias = linkName.slice(linkName.lastIndexOf('/') + 1).toUpperCase().replace(/-/g, '_');
  const ports: Port[] = exposedPorts
    .map((k) => {
      const [n = '', proto = 'tcp'] = k.split('/');
      return { num: Number(n), proto: proto.toLowerCase() };
    })
    .filter((p) => Number.isInteger(p.num) && p.num > 0)
    .sort(byTcpFirst);
  const env: string[] = [];
  const url = (p: Port): string => `${p.proto}://${childIp}:${p.num}`;
  const prefix = (p: Port): string => `${alias}_PORT_${p.num}_${p.proto.toUpperCase()}`;
  let start: Port | undefined;
  let end: Port | undefined;
  ports.forEach((p, i) => {
    if (i === 0) {
      start = end = p;
      env.push(`${alias}_PORT=${url(p)}`);
    }
    env.push(`${prefix(p)}=${url(p)}`, `${prefix(p)}_ADDR=${childIp}`, `${prefix(p)}_PORT=${p.num}`, `${prefix(p)}_PROTO=${p.proto}`);
    // A run of consecutive ports (same protocol) is announced once it ends, or at the last port.
    if (p.num === end!.num + 1 && p.proto === end!.proto) {
      end = p;
      if (i < ports.length - 1) return;
    }
    if (end !== start) {
      const pre = prefix(start!);
      env.push(`${pre}_START=${url(start!)}`, `${pre}_PORT_START=${start!.num}`, `${pre}_END=${url(end!)}`, `${pre}_PORT_END=${end!.num}`);
    }
    start = end = p;
  });
  env.push(`${alias}_NAME=${linkName}`);
  for (const v of childEnv) {
    const i = v.indexOf('=');
    if (i < 0) continue;
    const name = v.slice(0, i);
    // As moby: variables a build adds say nothing about the linked container.
    if (name === 'HOME' || name === 'PATH') continue;
    env.push(`${alias}_ENV_${name}=${v.slice(i + 1)}`);
  }
  return env;
}

/**
 * `HostConfig.Links` as inspect shows it: `/target:/linker/alias` (moby rebuilds them from its
 * link graph); links to containers that are gone are left out.
 */
export function linksView(c: ContainerRecord, find: (ref: string) => ContainerRecord | undefined): string[] | null {
  const out: string[] = [];
  for (const l of c.HostConfig.Links ?? []) {
    const { name, alias } = parseLink(l);
    const target = find(name);
    if (target) out.push(`/${target.Name}:/${c.Name}/${alias}`);
  }
  return out.length ? out : null;
}

/**
 * Finds the link `docker rm --link` names (`/linker/alias`) and returns the linking container
 * with its links without that one. Docker's errors: a plain container name is its "default link
 * name" (500), an unknown link is an unknown container (404).
 */
export function withoutLink(ref: string, find: (ref: string) => ContainerRecord | undefined): { parent: ContainerRecord; links: string[] } {
  const full = ref.startsWith('/') ? ref : `/${ref}`;
  const cut = full.lastIndexOf('/');
  const parentName = full.slice(0, cut);
  const alias = full.slice(cut + 1);
  if (!parentName) {
    if (!find(full)) throw new NotFound(`No such container: ${ref}`);
    throw new SystemError('Conflict, cannot remove the default link name of the container');
  }
  const parent = find(parentName);
  const links = parent?.HostConfig.Links ?? [];
  const hit = links.find((l) => parseLink(l).alias === alias && find(parseLink(l).name));
  if (!parent || !hit) throw new NotFound(`No such container: ${ref}`);
  return { parent, links: links.filter((l) => parseLink(l).alias !== alias) };
}
