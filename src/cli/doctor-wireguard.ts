/**
 * `arca doctor`'s checks for the `wireguard` driver: wireguard-go (the only WireGuard arca uses:
 * one userspace process per endpoint), the inotify limit that caps how many of them fit, and how
 * many processes of the daemon with this exec-root are running, read from their pidfiles (nothing
 * is started). All optional: without wireguard-go every other driver works.
 */
import { readdirSync } from 'node:fs';
import { readPidFile } from '../sys/proc-files.js';
import { join } from 'node:path';
import { inotifyUsage, isWireguardGo, wireguardGoMissing, wireguardGoVersion } from '../network/drivers/wireguard/wg-process.js';
import { run, which } from '../sys/runner.js';
import type { CheckResult } from './doctor.js';

const INSTALL = 'apt-get install wireguard-go (or run scripts/setup.sh)';
/** What the driver raises the limit to when it starts its first tunnel (see ensureInotifyInstances). */
const INOTIFY_FIX = 'sysctl -w fs.inotify.max_user_instances=8192 (the daemon does this itself when it can)';
/** Free instances below which the next tunnels (or other programs of this uid) may fail to start. */
const INOTIFY_HEADROOM = 16;

export interface WireguardFacts {
  /** Why wireguard-go cannot run (names the package); undefined when it can. */
  missing?: string;
  path?: string;
  version?: string;
  /** Whether the kernel has WireGuard links (`ip link add type wireguard`); undefined: could not tell. */
  kernel?: boolean;
  inotify?: { max: number; used: number };
  /** Pidfiles under `<execRoot>/wireguard`: naming a live wireguard-go of that interface, or not. */
  processes: { running: number; stale: number };
  execRoot: string;
}

/** The doctor lines for `facts` (pure: the facts are gathered by {@link wireguardFacts}). */
export function wireguardResults(f: WireguardFacts): CheckResult[] {
  if (f.missing) return [{ status: 'warn', text: `WireGuard (wireguard driver, optional): ${f.missing}`, fix: INSTALL }];
  const kernel =
    f.kernel === undefined ? 'kernel WireGuard not probed' : f.kernel ? 'the kernel module is available but not used' : 'no kernel WireGuard here';
  const out: CheckResult[] = [
    { status: 'ok', text: `${f.version ?? 'wireguard-go (version unknown)'} (${f.path ?? '?'}): WireGuard in userspace (wireguard-go); ${kernel}` },
  ];
  if (f.inotify) {
    const { max, used } = f.inotify;
    const text = `fs.inotify.max_user_instances = ${max}, ${used} in use by this uid (each wireguard-go holds one)`;
    out.push(max - used < INOTIFY_HEADROOM ? { status: 'warn', text: `${text}: new tunnels may fail with "too many open files"`, fix: INOTIFY_FIX } : { status: 'ok', text });
  }
  const { running, stale } = f.processes;
  const where = join(f.execRoot, 'wireguard');
  if (stale) {
    out.push({
      status: 'warn',
      text: `wireguard-go of ${f.execRoot}: ${running} running, ${stale} pidfile${stale > 1 ? 's' : ''} in ${where} naming no running process (those tunnels are down)`,
      fix: 'the daemon re-creates dead tunnels while it runs: start it',
    });
  } else {
    out.push({ status: 'ok', text: `wireguard-go of ${f.execRoot}: ${running} running` });
  }
  return out;
}

/** Live and dead pidfiles of the daemon's wireguard-go processes (`<ifname>.pid`, see runtimePaths). */
export function countProcesses(execRoot: string): { running: number; stale: number } {
  const dir = join(execRoot, 'wireguard');
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.pid'));
  } catch {
    return { running: 0, stale: 0 };
  }
  let running = 0;
  for (const n of names) {
    const pid = readPidFile(join(dir, n));
    if (pid !== undefined && isWireguardGo(pid, n.slice(0, -'.pid'.length))) running++;
  }
  return { running, stale: names.length - running };
}

/** A throwaway netns that dies with `unshare` tells whether the kernel makes WireGuard links. */
async function kernelWireguard(): Promise<boolean | undefined> {
  const unshare = which('unshare');
  const ip = which('ip');
  if (!unshare || !ip) return undefined;
  const r = await run([unshare, '--net', ip, 'link', 'add', 'doctor0', 'type', 'wireguard'], { allowFailure: true, timeoutMs: 5000 }).catch(
    () => undefined,
  );
  return r === undefined ? undefined : r.code === 0;
}

export async function wireguardFacts(execRoot: string): Promise<WireguardFacts> {
  const missing = wireguardGoMissing();
  const processes = countProcesses(execRoot);
  if (missing) return { missing, processes, execRoot };
  let inotify: WireguardFacts['inotify'];
  try {
    inotify = inotifyUsage();
  } catch {
    /* no /proc/sys/fs/inotify: left out */
  }
  return { path: which('wireguard-go'), version: wireguardGoVersion(), kernel: await kernelWireguard(), inotify, processes, execRoot };
}

export async function wireguardChecks(execRoot: string): Promise<CheckResult[]> {
  return wireguardResults(await wireguardFacts(execRoot));
}
