/**
 * Checks shared by the network end-to-end tests and the driver compliance suite: commands in a
 * test namespace, a container's interfaces and endpoint settings, a network's inspect view.
 */
import { spawnSync } from 'node:child_process';
import type { TestDaemon } from './harness.js';

export interface NsResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command in a named netns (`/run/netns/<ns>`); never throws. */
export function inNetns(ns: string, argv: string[], timeoutMs = 30_000): NsResult {
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

/** Runs a command in the daemon's "host" netns. */
export function inHost(d: TestDaemon, argv: string[]): NsResult {
  return inNetns(d.hostNs, argv);
}

/** Names of the links in the daemon's host netns. */
export function hostLinkNames(d: TestDaemon): string[] {
  const r = inHost(d, ['ip', '-j', 'link', 'show']);
  return (JSON.parse(r.stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
}

/** Interfaces inside a container with their addresses: `{eth0: ['10.1.0.2/24']}` (lo and link-local left out). */
export async function interfaces(d: TestDaemon, c: string): Promise<Record<string, string[]>> {
  const out = await d.dockerOk(['exec', c, 'ip', '-o', 'addr', 'show']);
  const res: Record<string, string[]> = {};
  for (const line of out.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet6?\s+(\S+)/.exec(line);
    if (!m || m[1] === 'lo' || /scope link/.test(line)) continue;
    (res[m[1]!] ??= []).push(m[2]!);
  }
  return res;
}

/** A container's IPv4 address on a network, from `docker inspect`. */
export async function ipOf(d: TestDaemon, c: string, net: string): Promise<string> {
  return d.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, c]);
}

/** What `docker inspect` says of a container's endpoint on a network. */
export interface EndpointView {
  NetworkID: string;
  EndpointID: string;
  MacAddress: string;
  IPAddress: string;
  IPPrefixLen: number;
  Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  IPv6Gateway: string;
  Aliases: string[] | null;
  DNSNames: string[] | null;
}

export async function endpointOf(d: TestDaemon, c: string, net: string): Promise<EndpointView> {
  const all = JSON.parse(await d.dockerOk(['inspect', '-f', '{{json .NetworkSettings.Networks}}', c])) as Record<string, EndpointView>;
  const ep = all[net];
  if (!ep) throw new Error(`container ${c} has no endpoint on ${net}: ${Object.keys(all).join(', ')}`);
  return ep;
}

export async function inspectNet(d: TestDaemon, name: string): Promise<Record<string, any>> {
  return (JSON.parse(await d.dockerOk(['network', 'inspect', name])) as Record<string, any>[])[0]!;
}
