import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type { JsonInteger } from '../../json-integer.js';
import {
  CLOCK_TICKS,
  cgroupDirs,
  parseBlkioV1,
  parseCgroupMounts,
  parseFlatKeyed,
  parseMemoryStat,
  parseIoStatV2,
  parsePercpu,
  parseProcCgroup,
  parsePidsLimit,
  parseSingle,
  type BlkioEntry,
  type CgroupDirs,
  type CgroupMount,
} from './cgroup-files.js';

/** Docker's `cpu_stats` without the machine-wide fields (`system_cpu_usage`, `online_cpus`). */
export interface CgroupCpu {
  cpu_usage: { total_usage: number; percpu_usage?: number[]; usage_in_kernelmode: number; usage_in_usermode: number };
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
}

export interface CgroupMemory {
  usage?: number;
  max_usage?: number;
  stats?: Record<string, number | JsonInteger>;
  failcnt?: number;
  limit?: number;
}

export interface CgroupBlkio {
  io_service_bytes_recursive: BlkioEntry[] | null;
  io_serviced_recursive: BlkioEntry[] | null;
  io_queue_recursive: BlkioEntry[] | null;
  io_service_time_recursive: BlkioEntry[] | null;
  io_wait_time_recursive: BlkioEntry[] | null;
  io_merged_recursive: BlkioEntry[] | null;
  io_time_recursive: BlkioEntry[] | null;
  sectors_recursive: BlkioEntry[] | null;
}

/** What one read of a container's cgroup gives, in Docker's field names. */
export interface CgroupSample {
  cpu: CgroupCpu;
  memory: CgroupMemory;
  pids: { current?: number; limit?: number | JsonInteger };
  blkio: CgroupBlkio;
}

export const EMPTY_BLKIO: CgroupBlkio = {
  io_service_bytes_recursive: null,
  io_serviced_recursive: null,
  io_queue_recursive: null,
  io_service_time_recursive: null,
  io_wait_time_recursive: null,
  io_merged_recursive: null,
  io_time_recursive: null,
  sectors_recursive: null,
};

/** CPU figures of a cgroup without a cpu controller, and of a frame without a cgroup (emptyFrame, precpu_stats). */
export const zeroCpu = (): CgroupCpu => ({
  cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 },
  throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
});

let mounts: CgroupMount[] | undefined;

/** The cgroup mounts, read once: they do not change under a running daemon. */
function cgroupMounts(): CgroupMount[] {
  mounts ??= parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  return mounts;
}

const read = (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined);

/** Where a container's figures live: each controller's hierarchy and folder. */
export interface CgroupLocation {
  dirs: CgroupDirs;
  /** The hierarchy that holds a controller, if any does. */
  on(ctl: string): 'v1' | 'v2' | undefined;
}

/**
 * Finds the cgroup of process `pid` (a container's init). On a hybrid machine the controllers
 * live in the v1 hierarchies and the v2 one has none: each figure comes from the hierarchy
 * that holds its controller. A process stays in its cgroup, so a stream finds it once.
 * Returns undefined when the process is gone.
 */
export async function locateCgroup(pid: number): Promise<CgroupLocation | undefined> {
  const self = await read(`/proc/${pid}/cgroup`);
  if (self === undefined) return undefined;
  const dirs = cgroupDirs(parseProcCgroup(self), cgroupMounts());
  const v2controllers = dirs.v2 ? ((await read(`${dirs.v2}/cgroup.controllers`)) ?? '').trim().split(/\s+/) : [];
  return { dirs, on: (ctl) => (dirs.v1.has(ctl) ? 'v1' : v2controllers.includes(ctl) ? 'v2' : undefined) };
}

/** Reads a container's cgroup found by {@link locateCgroup}. */
export async function readCgroupStats({ dirs, on }: CgroupLocation): Promise<CgroupSample> {
  const [cpu, memory, pids, blkio] = await Promise.all([
    readCpu(dirs, on('cpuacct') ?? (on('cpu') === 'v2' ? 'v2' : undefined)),
    readMemory(dirs, on('memory')),
    readPids(dirs, on('pids')),
    on('blkio') === 'v1' ? readBlkioV1(dirs.v1.get('blkio')!) : on('io') === 'v2' ? readIoV2(dirs.v2!) : Promise.resolve(EMPTY_BLKIO),
  ]);
  return { cpu, memory, pids, blkio };
}

async function readCpu(dirs: CgroupDirs, where: 'v1' | 'v2' | undefined): Promise<CgroupCpu> {
  if (where === 'v2') {
    const st = parseFlatKeyed((await read(`${dirs.v2}/cpu.stat`)) ?? '');
    return {
      cpu_usage: { total_usage: (st['usage_usec'] ?? 0) * 1000, usage_in_kernelmode: (st['system_usec'] ?? 0) * 1000, usage_in_usermode: (st['user_usec'] ?? 0) * 1000 },
      throttling_data: { periods: st['nr_periods'] ?? 0, throttled_periods: st['nr_throttled'] ?? 0, throttled_time: (st['throttled_usec'] ?? 0) * 1000 },
    };
  }
  if (where !== 'v1') return zeroCpu();
  const acct = dirs.v1.get('cpuacct')!;
  const cpuDir = dirs.v1.get('cpu');
  const [usage, percpu, stat, throttle] = await Promise.all([
    read(`${acct}/cpuacct.usage`),
    read(`${acct}/cpuacct.usage_percpu`),
    read(`${acct}/cpuacct.stat`),
    cpuDir ? read(`${cpuDir}/cpu.stat`) : Promise.resolve(undefined),
  ]);
  const st = parseFlatKeyed(stat ?? '');
  const th = parseFlatKeyed(throttle ?? '');
  const tick = 1e9 / CLOCK_TICKS;
  return {
    cpu_usage: {
      total_usage: parseSingle(usage) ?? 0,
      percpu_usage: parsePercpu(percpu ?? ''),
      usage_in_kernelmode: (st['system'] ?? 0) * tick,
      usage_in_usermode: (st['user'] ?? 0) * tick,
    },
    throttling_data: { periods: th['nr_periods'] ?? 0, throttled_periods: th['nr_throttled'] ?? 0, throttled_time: th['throttled_time'] ?? 0 },
  };
}

async function readMemory(dirs: CgroupDirs, where: 'v1' | 'v2' | undefined): Promise<CgroupMemory> {
  if (where === 'v1') {
    const d = dirs.v1.get('memory')!;
    const [usage, max, failcnt, limit, stat] = await Promise.all([
      read(`${d}/memory.usage_in_bytes`),
      read(`${d}/memory.max_usage_in_bytes`),
      read(`${d}/memory.failcnt`),
      read(`${d}/memory.limit_in_bytes`),
      read(`${d}/memory.stat`),
    ]);
    // Docker's `failcnt` is omitempty: a cgroup that never hit its limit has none.
    const fails = parseSingle(failcnt);
    return { usage: parseSingle(usage), max_usage: parseSingle(max), stats: parseMemoryStat(stat ?? ''), ...(fails ? { failcnt: fails } : {}), limit: parseSingle(limit) };
  }
  if (where === 'v2') {
    const [usage, limit, stat] = await Promise.all([read(`${dirs.v2}/memory.current`), read(`${dirs.v2}/memory.max`), read(`${dirs.v2}/memory.stat`)]);
    return { usage: parseSingle(usage), stats: parseMemoryStat(stat ?? ''), limit: parseSingle(limit) };
  }
  return {};
}

async function readPids(dirs: CgroupDirs, where: 'v1' | 'v2' | undefined): Promise<{ current?: number; limit?: number | JsonInteger }> {
  const d = where === 'v1' ? dirs.v1.get('pids') : where === 'v2' ? dirs.v2 : undefined;
  if (!d) return {};
  const [cur, max] = await Promise.all([read(`${d}/pids.current`), read(`${d}/pids.max`)]);
  const out: { current?: number; limit?: number | JsonInteger } = {};
  const c = parseSingle(cur);
  const l = parsePidsLimit(max, where === 'v2' ? 2 : 1);
  if (c) out.current = c;
  if (l) out.limit = l;
  return out;
}

async function readBlkioV1(d: string): Promise<CgroupBlkio> {
  // The throttle files count every device; the CFQ/BFQ ones only those schedulers see. Docker
  // (containerd) prefers the scheduler's when it has anything.
  const names = ['io_service_bytes', 'io_serviced', 'io_queued', 'io_service_time', 'io_wait_time', 'io_merged', 'time', 'sectors'];
  const texts = await Promise.all(names.map((n) => read(`${d}/blkio.${n}_recursive`)));
  const [tBytes, tServiced] = await Promise.all([read(`${d}/blkio.throttle.io_service_bytes_recursive`), read(`${d}/blkio.throttle.io_serviced_recursive`)]);
  const sched = texts.map((t) => parseBlkioV1(t ?? ''));
  const useSched = sched.some((e) => e.length > 0);
  return {
    io_service_bytes_recursive: useSched ? sched[0]! : parseBlkioV1(tBytes ?? ''),
    io_serviced_recursive: useSched ? sched[1]! : parseBlkioV1(tServiced ?? ''),
    io_queue_recursive: sched[2]!,
    io_service_time_recursive: sched[3]!,
    io_wait_time_recursive: sched[4]!,
    io_merged_recursive: sched[5]!,
    io_time_recursive: sched[6]!,
    sectors_recursive: sched[7]!,
  };
}

async function readIoV2(d: string): Promise<CgroupBlkio> {
  const { bytes, ios } = parseIoStatV2((await read(`${d}/io.stat`)) ?? '');
  return { ...EMPTY_BLKIO, io_service_bytes_recursive: bytes, io_serviced_recursive: ios };
}
