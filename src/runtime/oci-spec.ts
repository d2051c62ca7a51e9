import { readFileSync } from 'node:fs';
import type { ContainerRecord, ResolvedMount } from '../containers/container-record.js';
import { ociResources } from './resources.js';
import { seccompPolicy } from './seccomp/seccomp-policy.js';
import { parseSecurityOptions, type SecurityOptions } from './seccomp/security-options.js';

/** Kernel files a non-privileged container sees masked (moby's default spec); inspect shows them too. */
export const MASKED_PATHS: readonly string[] = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
/** Kernel folders a non-privileged container sees read-only (moby's default spec). */
export const READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Docker's default capability set (moby `oci/caps/defaults.go`), CAP_NET_RAW included. */
export const DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export const ALL_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT',
  'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN',
  'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** Normalises `net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN` to `CAP_NET_ADMIN`; `ALL` stays. */
export function normaliseCap(c: string): string {
  const u = c.toUpperCase();
  if (u === 'ALL') return u;
  return u.startsWith('CAP_') ? u : `CAP_${u}`;
}

let grantable: string[] | undefined;

/**
 * What `--privileged` and `--cap-add ALL` mean: every capability the daemon can hand out, i.e. in its
 * own bounding set (ALL_CAPS is in bit order). Asking runc for one outside it fails the start with
 * "unable to apply caps", which is what a daemon confined by a sandbox or a user namespace would hit.
 */
function grantableCaps(): string[] {
  if (!grantable) {
    let mask: bigint | undefined;
    try {
      const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
      if (m) mask = BigInt(`0x${m[1]}`);
    } catch {
      /* keep them all */
    }
    const bounding = mask;
    grantable = bounding === undefined ? [...ALL_CAPS] : ALL_CAPS.filter((_, bit) => ((bounding >> BigInt(bit)) & 1n) === 1n);
  }
  return grantable;
}

export function capabilitySet(add: string[] | null, drop: string[] | null, privileged: boolean): string[] {
  if (privileged) return [...grantableCaps()];
  const adds = (add ?? []).map(normaliseCap);
  const drops = (drop ?? []).map(normaliseCap);
  let caps = drops.includes('ALL') ? [] : [...DEFAULT_CAPS];
  caps = caps.filter((c) => !drops.includes(c));
  for (const c of adds.includes('ALL') ? grantableCaps() : adds) if (!caps.includes(c)) caps.push(c);
  return caps;
}

export interface ProcessUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

export interface SpecInput {
  c: ContainerRecord;
  rootfs: string;
  args: string[];
  env: string[];
  cwd: string;
  user: ProcessUser;
  /** Network namespace path; undefined shares the host's (`--network host`). */
  netnsPath?: string;
  /** Files the daemon manages: /etc/hosts, /etc/hostname, /etc/resolv.conf. */
  hostsPath: string;
  hostnamePath: string;
  resolvConfPath: string;
  cgroupsPath: string;
}

let nofileHard: number | undefined;

/**
 * Docker gives containers RLIMIT_NOFILE 1048576, but raising a hard limit needs
 * CAP_SYS_RESOURCE in the caller's user namespace: never ask for more than the daemon has.
 */
function nofileLimit(): number {
  if (nofileHard === undefined) {
    nofileHard = 1048576;
    try {
      const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
      const hard = line?.split(/\s{2,}/)[2];
      if (hard && /^\d+$/.test(hard)) nofileHard = Math.min(nofileHard, Number(hard));
    } catch {
      /* keep Docker's value */
    }
  }
  return nofileHard;
}

export function processSpec(
  args: string[],
  env: string[],
  cwd: string,
  user: ProcessUser,
  tty: boolean,
  caps: string[],
  consoleSize?: { height: number; width: number },
  noNewPrivileges = false,
): Record<string, unknown> {
  return {
    terminal: tty,
    ...(tty && consoleSize ? { consoleSize } : {}),
    user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
    args,
    env,
    cwd: cwd || '/',
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    rlimits: [{ type: 'RLIMIT_NOFILE', hard: nofileLimit(), soft: nofileLimit() }],
    noNewPrivileges,
  };
}

function mountFor(m: ResolvedMount): Record<string, unknown> {
  if (m.Type === 'tmpfs') {
    return { destination: m.Destination, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', ...(m.Options ?? [])] };
  }
  const opts = ['rbind', m.RW ? 'rw' : 'ro'];
  if (m.Propagation) opts.push(m.Propagation);
  return { destination: m.Destination, type: 'bind', source: m.Source, options: opts };
}

function consoleSize(size: unknown): { height: number; width: number } | undefined {
  if (!Array.isArray(size) || size.length !== 2) return undefined;
  const [height, width] = size as unknown[];
  if (typeof height !== 'number' || typeof width !== 'number' || height <= 0 || width <= 0) return undefined;
  return { height, width };
}

/** Parsed `HostConfig.SecurityOpt`, by the record's array: a profile sent inline is decoded once, not at every start and exec. */
const parsedSecurityOpt = new WeakMap<readonly string[], SecurityOptions>();

/** What a container's `HostConfig.SecurityOpt` asks for (create keeps it as sent, checked there). */
export function securityOptions(hc: ContainerRecord['HostConfig']): SecurityOptions {
  const v = hc['SecurityOpt'];
  if (!Array.isArray(v)) return parseSecurityOptions(null);
  let parsed = parsedSecurityOpt.get(v);
  if (!parsed) parsedSecurityOpt.set(v, (parsed = parseSecurityOptions(v as string[])));
  return parsed;
}

/** Renders the bundle's config.json for a container. */
export function containerSpec(i: SpecInput): Record<string, unknown> {
  const { c } = i;
  const hc = c.HostConfig;
  const caps = capabilitySet(hc.CapAdd, hc.CapDrop, hc.Privileged);
  const security = securityOptions(hc);
  const seccomp = seccompPolicy.forContainer(security, caps, hc.Privileged);
  const shmSize = hc.ShmSize > 0 ? hc.ShmSize : 64 * 1024 * 1024;
  const userMountDests = new Set(c.Mounts.map((m) => m.Destination));
  const managed = [
    { destination: '/etc/resolv.conf', source: i.resolvConfPath },
    { destination: '/etc/hostname', source: i.hostnamePath },
    { destination: '/etc/hosts', source: i.hostsPath },
  ]
    .filter((m) => !userMountDests.has(m.destination))
    .map((m) => ({ ...m, type: 'bind', options: ['rbind', 'rprivate', 'rw'] }));
  const namespaces: Record<string, unknown>[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (i.netnsPath) namespaces.push({ type: 'network', path: i.netnsPath });
  const resources: Record<string, unknown> = {
    devices: [{ allow: hc.Privileged, access: 'rwm' }],
  };
  Object.assign(resources, ociResources(hc));

  return {
    ociVersion: '1.0.2',
    // The client's terminal size from create (`HostConfig.ConsoleSize`, [height, width]): the
    // process must not start with a 0x0 terminal, the first resize comes only after start.
    process: processSpec(i.args, i.env, i.cwd, i.user, c.Config.Tty, caps, consoleSize(hc.ConsoleSize), security.noNewPrivileges),
    root: { path: i.rootfs, readonly: hc.ReadonlyRootfs },
    hostname: c.Config.Hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', hc.Privileged ? 'rw' : 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmSize}`] },
      ...managed,
      ...c.Mounts.map(mountFor),
    ],
    linux: {
      cgroupsPath: i.cgroupsPath,
      namespaces,
      resources,
      ...(hc.Sysctls && Object.keys(hc.Sysctls).length ? { sysctl: hc.Sysctls } : {}),
      ...(seccomp ? { seccomp } : {}),
      maskedPaths: hc.Privileged ? [] : [...MASKED_PATHS],
      readonlyPaths: hc.Privileged ? [] : [...READONLY_PATHS],
    },
  };
}
