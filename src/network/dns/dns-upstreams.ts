/**
 * The host's upstream resolvers, for forwarding names the embedded DNS server does not know.
 *
 * Loopback resolvers (systemd-resolved's 127.0.0.53, a local dnsmasq) are kept: the daemon sends
 * forwarded queries from the host's network namespace, where they are reachable (as moby does for
 * the host's resolvers; only `--dns` servers are queried from the container's namespace).
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';

/** Docker forwards to at most three upstreams (moby `maxExtDNS`), as glibc reads at most three. */
export const MAX_UPSTREAMS = 3;
export const DNS_PORT = 53;

/** An upstream resolver's socket address. */
export interface Upstream {
  host: string;
  port: number;
  family: 4 | 6;
}

/** The `nameserver` addresses of a resolv.conf text, in order, at most {@link MAX_UPSTREAMS}. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)$/.exec(line);
    if (!m) continue;
    const address = m[1]!;
    if (isIP(address.split('%')[0]!) === 0) continue;
    if (!out.includes(address)) out.push(address);
    if (out.length === MAX_UPSTREAMS) break;
  }
  return out;
}

/** Reads the host's upstream resolvers; a missing file means none. */
export async function readUpstreams(path = '/etc/resolv.conf'): Promise<string[]> {
  try {
    return parseResolvConf(await readFile(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Parses an upstream as written in a snapshot: `1.2.3.4`, `1.2.3.4:5353`, `2001:db8::1`,
 * `[2001:db8::1]:5353` or `fe80::1%eth0`. Returns undefined for anything else.
 */
export function parseUpstream(text: string): Upstream | undefined {
  let host = text.trim();
  let port = DNS_PORT;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(host);
  if (bracketed) {
    host = bracketed[1]!;
    if (bracketed[2]) port = Number(bracketed[2]);
  } else {
    const v4port = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(host);
    if (v4port) {
      host = v4port[1]!;
      port = Number(v4port[2]);
    }
  }
  const family = isIP(host.split('%')[0]!);
  if (family === 0 || !(port > 0 && port < 65536)) return undefined;
  return { host, port, family: family as 4 | 6 };
}
