/**
 * Docker's port vocabulary: container config (`ExposedPorts`, `HostConfig.PortBindings`,
 * `PublishAllPorts`) → validated requests → (after allocation) concrete published ports →
 * the shapes Docker shows (`NetworkSettings.Ports`, the `Ports` list of `GET /containers/json`).
 * Also the `-p` syntax, for callers that take it as text (compose files, tests).
 *
 * Messages follow Docker's so clients show the same thing: `invalid port specification: "x"` from
 * the daemon's own validation, `invalid containerPort: x` and friends from the `-p` parser.
 */
import { isIP, isIPv4 } from 'node:net';
import { InvalidParameter } from '../../errors.js';

export type PortProto = 'tcp' | 'udp' | 'sctp';

const PROTOS: readonly string[] = ['tcp', 'udp', 'sctp'];

/** `80/tcp` as data. */
export interface PortKey {
  port: number;
  proto: PortProto;
}

/** One `{HostIp, HostPort}` entry of `PortBindings` as sent by clients. */
export interface ApiPortBinding {
  HostIp?: string;
  HostPort?: string;
}

/** The port-related part of a container's config and host config. */
export interface ContainerPortConfig {
  ExposedPorts?: Record<string, unknown> | null;
  PortBindings?: Record<string, ApiPortBinding[] | null> | null;
  PublishAllPorts?: boolean;
}

/** What one binding asks for, before any host port is allocated. */
export interface PortRequest {
  proto: PortProto;
  containerPort: number;
  /** As asked ('' = the network's default host addresses), brackets removed. */
  hostIp: string;
  /** First acceptable host port; 0 = any port of the ephemeral range. */
  hostPort: number;
  /** Last acceptable host port (= hostPort for one fixed port; 0 with hostPort 0). */
  hostPortEnd: number;
}

/** A binding after allocation: one host address, one host port. */
export interface PublishedPort {
  proto: PortProto;
  containerPort: number;
  /** Concrete: '0.0.0.0', '::' or one address. */
  hostIp: string;
  hostPort: number;
}

/** Docker's `NetworkSettings.Ports`: every exposed port, `null` when it is not published. */
export type NetworkSettingsPorts = Record<string, { HostIp: string; HostPort: string }[] | null>;

/** One entry of the `Ports` list in `GET /containers/json`. */
export interface PsPort {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: PortProto;
}

function portNumber(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

/** Parses `8000` or `8000-8010` (0 allowed, as Go's ParsePortRange does). */
function portRange(text: string): [number, number] | undefined {
  const dash = text.indexOf('-');
  if (dash < 0) {
    const n = portNumber(text);
    return n === undefined ? undefined : [n, n];
  }
  const a = portNumber(text.slice(0, dash));
  const b = portNumber(text.slice(dash + 1));
  if (a === undefined || b === undefined || b < a) return undefined;
  return [a, b];
}

/** Parses an API port key (`80/tcp`, `53/udp`, `80` = tcp). */
export function parsePortKey(key: string): PortKey {
  const slash = key.indexOf('/');
  const portText = slash < 0 ? key : key.slice(0, slash);
  const proto = slash < 0 ? 'tcp' : key.slice(slash + 1).toLowerCase();
  const port = portNumber(portText);
  if (port === undefined || port === 0) throw new InvalidParameter(`invalid port specification: "${portText}"`);
  if (!PROTOS.includes(proto)) throw new InvalidParameter(`invalid proto: ${proto}`);
  return { port, proto: proto as PortProto };
}

export function formatPortKey(k: PortKey): string {
  return `${k.port}/${k.proto}`;
}

/** `[::1]` → `::1`; '' stays ''; anything that is not an address is refused. */
export function normalizeHostIp(ip: string | undefined): string {
  let s = (ip ?? '').trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (s !== '' && !isIP(s)) throw new InvalidParameter(`invalid IP address: ${ip}`);
  return s;
}

function byKey(a: PortKey, b: PortKey): number {
  return a.port - b.port || a.proto.localeCompare(b.proto);
}

/** Every exposed port: `ExposedPorts` plus the keys of `PortBindings` (Docker exposes those too). */
export function exposedPorts(cfg: ContainerPortConfig): PortKey[] {
  const seen = new Map<string, PortKey>();
  for (const key of [...Object.keys(cfg.ExposedPorts ?? {}), ...Object.keys(cfg.PortBindings ?? {})]) {
    const k = parsePortKey(key);
    seen.set(formatPortKey(k), k);
  }
  return [...seen.values()].sort(byKey);
}

/**
 * Validates the config and lists what must be published. With `PublishAllPorts`, every exposed
 * port without an explicit binding gets an ephemeral one on the default host addresses.
 */
export function portRequests(cfg: ContainerPortConfig): PortRequest[] {
  const out: PortRequest[] = [];
  const bound = new Set<string>();
  const bindings = cfg.PortBindings ?? {};
  for (const key of Object.keys(bindings).sort()) {
    const k = parsePortKey(key);
    for (const b of bindings[key] ?? []) {
      const hostIp = normalizeHostIp(b.HostIp);
      const text = b.HostPort ?? '';
      let range: [number, number] = [0, 0];
      if (text !== '') {
        const r = portRange(text);
        if (!r) throw new InvalidParameter(`invalid port specification: "${text}"`);
        range = r;
      }
      if (range[0] === 0 && range[1] !== 0) throw new InvalidParameter(`invalid port specification: "${text}"`);
      out.push({ proto: k.proto, containerPort: k.port, hostIp, hostPort: range[0], hostPortEnd: range[1] });
      bound.add(formatPortKey(k));
    }
  }
  if (cfg.PublishAllPorts) {
    for (const k of exposedPorts(cfg)) {
      if (bound.has(formatPortKey(k))) continue;
      out.push({ proto: k.proto, containerPort: k.port, hostIp: '', hostPort: 0, hostPortEnd: 0 });
    }
  }
  return out;
}

/** Options that decide what an empty HostIp means. */
export interface HostIpDefaults {
  /** `com.docker.network.bridge.host_binding_ipv4` (default 0.0.0.0). */
  hostBindingIpv4?: string;
  /** Whether the host has IPv6 (then '' also binds '::', as Docker ≥ 27 does). Default true. */
  ipv6?: boolean;
}

/** The concrete host addresses one request binds. */
export function hostIpsFor(hostIp: string, defaults: HostIpDefaults = {}): string[] {
  if (hostIp !== '') return [hostIp];
  const v4 = normalizeHostIp(defaults.hostBindingIpv4) || '0.0.0.0';
  if (v4 === '0.0.0.0' && defaults.ipv6 !== false) return ['0.0.0.0', '::'];
  return [v4];
}

/** `NetworkSettings.Ports` for a container. */
export function networkSettingsPorts(exposed: readonly PortKey[], published: readonly PublishedPort[]): NetworkSettingsPorts {
  const keys = new Map<string, PortKey>();
  for (const k of exposed) keys.set(formatPortKey(k), k);
  for (const p of published) keys.set(formatPortKey({ port: p.containerPort, proto: p.proto }), { port: p.containerPort, proto: p.proto });
  const out: NetworkSettingsPorts = {};
  for (const k of [...keys.values()].sort(byKey)) {
    const list = published
      .filter((p) => p.containerPort === k.port && p.proto === k.proto)
      .map((p) => ({ HostIp: p.hostIp, HostPort: String(p.hostPort) }));
    out[formatPortKey(k)] = list.length ? list : null;
  }
  return out;
}

/** Turns `NetworkSettings.Ports` back into published ports (e.g. from a stored record). */
export function publishedFromSettings(ports: NetworkSettingsPorts): PublishedPort[] {
  const out: PublishedPort[] = [];
  for (const [key, list] of Object.entries(ports)) {
    const k = parsePortKey(key);
    for (const b of list ?? []) {
      const hostPort = portNumber(b.HostPort);
      if (!hostPort) throw new InvalidParameter(`invalid port specification: "${b.HostPort}"`);
      out.push({ proto: k.proto, containerPort: k.port, hostIp: normalizeHostIp(b.HostIp), hostPort });
    }
  }
  return out;
}

/** The `Ports` list of `GET /containers/json`: published ports, then exposed-only ones. */
export function psPorts(exposed: readonly PortKey[], published: readonly PublishedPort[]): PsPort[] {
  const out: PsPort[] = published.map((p) => ({ IP: p.hostIp, PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.proto }));
  for (const k of exposed) {
    if (!published.some((p) => p.containerPort === k.port && p.proto === k.proto)) out.push({ PrivatePort: k.port, Type: k.proto });
  }
  const fam = (ip?: string): number => (ip === undefined ? 2 : isIPv4(ip) ? 0 : 1);
  return out.sort(
    (a, b) =>
      a.PrivatePort - b.PrivatePort || a.Type.localeCompare(b.Type) || fam(a.IP) - fam(b.IP) || (a.PublicPort ?? 0) - (b.PublicPort ?? 0),
  );
}

/** One `-p` argument as a client turns it into API data. */
export interface PublishSpecEntry {
  key: string;
  binding: { HostIp: string; HostPort: string };
}

/**
 * Parses `-p [ip:][hostPort[-end]:]containerPort[-end][/proto]` the way the docker CLI does,
 * with its messages. A host range with a single container port stays a range: the daemon picks
 * one free port in it.
 */
export function parsePublishSpec(raw: string): PublishSpecEntry[] {
  const parts = raw.split(':');
  const last = parts.length - 1;
  let ip = parts.length >= 3 ? parts.slice(0, last - 1).join(':') : '';
  const hostPort = parts.length >= 2 ? parts[last - 1]! : '';
  const withProto = parts[last]!;
  const slash = withProto.indexOf('/');
  const containerPort = slash < 0 ? withProto : withProto.slice(0, slash);
  const proto = slash < 0 ? 'tcp' : withProto.slice(slash + 1).toLowerCase();

  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  if (ip !== '' && !isIP(ip)) throw new InvalidParameter(`invalid IP address: ${ip}`);
  if (containerPort === '') throw new InvalidParameter(`no port specified: ${raw}<empty>`);
  const c = portRange(containerPort);
  if (!c || c[0] === 0) throw new InvalidParameter(`invalid containerPort: ${containerPort}`);
  let h: [number, number] | undefined;
  if (hostPort !== '') {
    h = portRange(hostPort);
    if (!h) throw new InvalidParameter(`invalid hostPort: ${hostPort}`);
    if (h[1] - h[0] !== c[1] - c[0] && c[0] !== c[1]) {
      throw new InvalidParameter(`invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`);
    }
  }
  if (!PROTOS.includes(proto)) throw new InvalidParameter(`invalid proto: ${proto}`);

  const out: PublishSpecEntry[] = [];
  const count = c[1] - c[0] + 1;
  for (let i = 0; i < count; i++) {
    let hp = '';
    if (h) hp = count === 1 && h[0] !== h[1] ? `${h[0]}-${h[1]}` : String(h[0] + i);
    out.push({ key: `${c[0] + i}/${proto}`, binding: { HostIp: ip, HostPort: hp } });
  }
  return out;
}

/** Groups `-p` entries into `PortBindings` (and the matching `ExposedPorts`). */
export function publishSpecsToConfig(specs: readonly string[]): Required<Pick<ContainerPortConfig, 'ExposedPorts' | 'PortBindings'>> {
  const ExposedPorts: Record<string, object> = {};
  const PortBindings: Record<string, ApiPortBinding[]> = {};
  for (const spec of specs) {
    for (const e of parsePublishSpec(spec)) {
      ExposedPorts[e.key] = {};
      (PortBindings[e.key] ??= []).push(e.binding);
    }
  }
  return { ExposedPorts, PortBindings };
}
