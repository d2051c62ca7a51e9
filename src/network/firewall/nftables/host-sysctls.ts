/**
 * Kernel settings the nft ruleset depends on, per network namespace. The firewall writes them
 * after each apply (`NftFirewall`), so the bridge driver does not have to; they are exposed so a
 * driver or the doctor can show or check them.
 */
import { writeFile } from 'node:fs/promises';
import { SystemError } from '../../../errors.js';
import { native } from '../../../sys/native.js';
import { run } from '../../../sys/runner.js';
import type { FirewallState } from '../firewall.js';

/** One sysctl, with its key in /proc/sys path form (`net/ipv4/conf/arca0/route_localnet`). */
export interface Sysctl {
  key: string;
  value: string;
  /** A missing key is fine (e.g. `net/bridge/*` when br_netfilter is not loaded). */
  optional?: boolean;
}

/** The sysctls `state` needs, in a stable order. Pure. */
export function requiredSysctls(state: FirewallState): Sysctl[] {
  const open = state.networks.filter((n) => !n.internal);
  const out: Sysctl[] = [];
  if (open.length) out.push({ key: 'net/ipv4/ip_forward', value: '1' });
  if (open.some((n) => n.subnets6.length)) out.push({ key: 'net/ipv6/conf/all/forwarding', value: '1' });
  // Published ports on 127.0.0.1: after the output DNAT the packet leaves by the bridge with a
  // loopback source, which the kernel drops as martian unless route_localnet is on for that
  // interface. Per bridge, not `all`: `all` would accept 127.0.0.0/8 from the LAN too.
  for (const n of [...open].sort((a, b) => a.bridge.localeCompare(b.bridge))) {
    if (n.subnets4.length) out.push({ key: `net/ipv4/conf/${n.bridge}/route_localnet`, value: '1' });
  }
  // enable_icc=false works only if bridged frames cross the inet forward chain.
  if (state.networks.some((n) => !n.icc)) {
    out.push({ key: 'net/bridge/bridge-nf-call-iptables', value: '1', optional: true });
    if (state.networks.some((n) => !n.icc && n.subnets6.length)) {
      out.push({ key: 'net/bridge/bridge-nf-call-ip6tables', value: '1', optional: true });
    }
  }
  return out;
}

/**
 * Writes sysctls in the daemon's own network namespace (through /proc/sys, no exec), or in the
 * namespace at `netns` (one `nsenter … sysctl -w` for all). Throws one error naming every
 * required key that could not be written.
 */
export async function writeSysctls(list: readonly Sysctl[], netns?: string): Promise<void> {
  if (!list.length) return;
  const failed: string[] = [];
  const n = native();
  if (netns !== undefined && n) {
    for (const s of list) {
      try {
        await n.writeFileIn(netns, `/proc/sys/${s.key}`, s.value);
      } catch (err) {
        if (!s.optional || (err as NodeJS.ErrnoException).code !== 'ENOENT') failed.push(`${s.key}: ${(err as Error).message}`);
      }
    }
  } else if (netns === undefined) {
    for (const s of list) {
      try {
        await writeFile(`/proc/sys/${s.key}`, s.value);
      } catch (err) {
        if (!s.optional || (err as NodeJS.ErrnoException).code !== 'ENOENT') failed.push(`${s.key}: ${(err as Error).message}`);
      }
    }
  } else {
    // sysctl keeps going after a bad key and exits non-zero; check each required key after.
    const res = await run(['nsenter', `--net=${netns}`, 'sysctl', '-q', '-w', ...list.map((s) => `${s.key}=${s.value}`)], {
      allowFailure: true,
    });
    if (res.code !== 0) {
      for (const s of list) {
        if (s.optional) continue;
        const got = await run(['nsenter', `--net=${netns}`, 'cat', `/proc/sys/${s.key}`], { allowFailure: true });
        if (got.code !== 0 || got.stdout.trim() !== s.value) failed.push(`${s.key}: ${got.stderr.trim() || 'not set'}`);
      }
    }
  }
  if (failed.length) throw new SystemError(`cannot set sysctls: ${failed.join('; ')}`);
}
