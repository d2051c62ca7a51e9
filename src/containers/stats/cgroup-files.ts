import { JsonInteger } from '../../json-integer.js';

/**
 * Parsers for the kernel files a container's stats come from. Pure functions of the file text,
 * so they are tested without a kernel.
 */

/** One `/proc/<pid>/cgroup` line: hierarchy id, controllers (empty for cgroup v2), path. */
export interface ProcCgroupEntry {
  hierarchy: number;
  controllers: string[];
  path: string;
}

export function parseProcCgroup(text: string): ProcCgroupEntry[] {
  const out: ProcCgroupEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    out.push({ hierarchy: Number(m[1]), controllers: m[2] ? m[2].split(',') : [], path: m[3]! });
  }
  return out;
}

/** A cgroup filesystem mount: v1 with its controllers, or the v2 hierarchy (no controllers listed). */
export interface CgroupMount {
  version: 1 | 2;
  /** The hierarchy folder that is mounted (`/` unless the mount is of a sub-tree). */
  root: string;
  mountPoint: string;
  controllers: string[];
}

/** Super options of a v1 cgroup mount that are not controller names. */
const NOT_CONTROLLERS = new Set(['rw', 'ro', 'xattr', 'noprefix', 'clone_children', 'cpuset_v2_mode', 'favordynmods', 'none']);

/**
 * Cgroup mounts from `/proc/self/mountinfo` (fields: id parent dev root mountpoint opts ... - fstype
 * source superopts). A named v1 hierarchy (`name=systemd`) keeps its name among the controllers, as
 * `/proc/<pid>/cgroup` lists it; other `key=value` options (`release_agent=`) are left out.
 */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    const [fstype, , superOpts = ''] = post.split(' ');
    const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (fstype === 'cgroup2') out.push({ version: 2, root: unescape(f[3]!), mountPoint: unescape(f[4]!), controllers: [] });
    else if (fstype === 'cgroup') {
      const controllers = superOpts.split(',').filter((o) => !NOT_CONTROLLERS.has(o) && (!o.includes('=') || o.startsWith('name=')));
      out.push({ version: 1, root: unescape(f[3]!), mountPoint: unescape(f[4]!), controllers });
    }
  }
  return out;
}

/** Where a process's cgroup for one controller lives: the v1 hierarchy holding it, else the v2 one. */
export interface CgroupDirs {
  /** v1 controller name → folder. */
  v1: Map<string, string>;
  /** The v2 folder, and the controllers enabled there (read from cgroup.controllers by the caller). */
  v2?: string;
}

export function cgroupDirs(entries: ProcCgroupEntry[], mounts: CgroupMount[]): CgroupDirs {
  const dirs: CgroupDirs = { v1: new Map() };
  const under = (m: CgroupMount, path: string): string => {
    const rel = m.root !== '/' && path.startsWith(m.root) ? path.slice(m.root.length) : path;
    return (m.mountPoint + '/' + rel).replace(/\/+/g, '/').replace(/\/$/, '');
  };
  for (const e of entries) {
    if (e.hierarchy === 0 && e.controllers.length === 0) {
      const m = mounts.find((x) => x.version === 2);
      if (m) dirs.v2 = under(m, e.path);
      continue;
    }
    for (const ctl of e.controllers) {
      const m = mounts.find((x) => x.version === 1 && x.controllers.includes(ctl));
      if (m) dirs.v1.set(ctl, under(m, e.path));
    }
  }
  return dirs;
}

/** `key value` lines (cpu.stat, cpuacct.stat) as numbers. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/**
 * memory.stat as Docker sends it: every figure exact, so v1's "unlimited" limits
 * (`hierarchical_memory_limit` 9223372036854771712, above 2^53) keep their digits.
 */
export function parseMemoryStat(text: string): Record<string, number | JsonInteger> {
  const out: Record<string, number | JsonInteger> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = JsonInteger.parse(v);
  }
  return out;
}

/** A single number, or undefined for `max` (v2's "no limit") and anything unreadable. */
export function parseSingle(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : undefined;
}

/** 2^64 - 1: how containerd reads a cgroup v2 "max" (no limit) for Docker's uint64 fields. */
export const MAX_UINT64 = new JsonInteger(18446744073709551615n);

/**
 * `pids_stats.limit` from `pids.max`, as dockerd reports it: v2's "max" is 2^64-1 (containerd's
 * cgroups v2 reader), v1's "max" is no limit at all (0, left out: omitempty).
 */
export function parsePidsLimit(text: string | undefined, version: 1 | 2): number | JsonInteger | undefined {
  if (version === 2 && text?.trim() === 'max') return MAX_UINT64;
  return parseSingle(text) || undefined;
}

/** One of Docker's `blkio_stats` entries. */
export interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

/**
 * v1 `blkio.*_recursive` files: `8:0 Read 4096` lines (`8:0 4096` for time and sectors, whose op
 * is empty); the lone `Total N` line is the sum of the others and is skipped.
 */
export function parseBlkioV1(text: string): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):(\d+)(?: (\S+))? (\d+)$/.exec(line.trim());
    if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3] ?? '', value: Number(m[4]) });
  }
  return out;
}

/** v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...`, as Docker maps it: bytes and ios, op `read`/`write`. */
export function parseIoStatV2(text: string): { bytes: BlkioEntry[]; ios: BlkioEntry[] } {
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of text.split('\n')) {
    const [dev, ...kv] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    const major = Number(m[1]);
    const minor = Number(m[2]);
    const f: Record<string, number> = {};
    for (const p of kv) {
      const [k, v] = p.split('=');
      if (k && v && /^\d+$/.test(v)) f[k] = Number(v);
    }
    bytes.push({ major, minor, op: 'read', value: f['rbytes'] ?? 0 }, { major, minor, op: 'write', value: f['wbytes'] ?? 0 });
    ios.push({ major, minor, op: 'read', value: f['rios'] ?? 0 }, { major, minor, op: 'write', value: f['wios'] ?? 0 });
  }
  return { bytes, ios };
}

/** Per-CPU usage from v1 `cpuacct.usage_percpu` (space-separated nanoseconds). */
export function parsePercpu(text: string): number[] {
  return text.trim().split(/\s+/).filter((x) => /^\d+$/.test(x)).map(Number);
}

/** USER_HZ: the unit of /proc/stat and cpuacct.stat (100 on every Linux architecture Docker runs on). */
export const CLOCK_TICKS = 100;

/**
 * The machine's CPU time in nanoseconds from the first line of /proc/stat, summed as moby's
 * `getSystemCPUUsage` does (user nice system idle iowait irq softirq steal).
 */
export function parseSystemCpuUsage(procStat: string): number {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return 0;
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  return ticks * (1e9 / CLOCK_TICKS);
}
