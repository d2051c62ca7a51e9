import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { locateCgroup, readCgroupStats, zeroCpu, EMPTY_BLKIO, type CgroupBlkio, type CgroupCpu, type CgroupLocation, type CgroupMemory } from './cgroup-stats.js';
import { parseSystemCpuUsage } from './cgroup-files.js';
import type { JsonInteger } from '../../json-integer.js';
import { readNetStats, type InterfaceStats } from './net-stats.js';

/** Docker's `cpu_stats` / `precpu_stats`. */
export interface CpuStats extends CgroupCpu {
  system_cpu_usage?: number;
  online_cpus?: number;
}

/** One frame of `GET /containers/{id}/stats`, in Docker's field order (moby `StatsResponse`). */
export interface StatsFrame {
  read: string;
  preread: string;
  pids_stats: { current?: number; limit?: number | JsonInteger };
  blkio_stats: CgroupBlkio;
  num_procs: number;
  storage_stats: Record<string, never>;
  cpu_stats: CpuStats;
  precpu_stats: CpuStats;
  memory_stats: CgroupMemory;
  name: string;
  id: string;
  networks?: Record<string, InterfaceStats>;
}

/** What the collector needs of a container record. */
export interface StatsSubject {
  Id: string;
  Name: string;
  State: { Status: string; Pid: number };
  HostConfig: { NetworkMode: string };
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

/** A stopped (or restarting) container's frame: name and id, the rest zero, as moby publishes it. */
export function emptyFrame(c: StatsSubject): StatsFrame {
  return {
    read: ZERO_TIME,
    preread: ZERO_TIME,
    pids_stats: {},
    blkio_stats: { ...EMPTY_BLKIO },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: zeroCpu(),
    precpu_stats: zeroCpu(),
    memory_stats: {},
    name: `/${c.Name}`,
    id: c.Id,
  };
}

/**
 * Samples containers' resource use from the kernel: the cgroup files and the network namespace
 * counters of the container's init, read directly (no exec, no runtime call), so a sample costs a
 * few file reads and many containers are sampled at once.
 */
export class StatsCollector {
  private readonly machineMemory = os.totalmem();
  // os.cpus() reads /proc/cpuinfo and every CPU's cpufreq files: once, like the memory size.
  private readonly onlineCpus = os.cpus().length;

  /**
   * One sample of a container, with empty `precpu_stats`; a container not running gives
   * {@link emptyFrame}. `locate` finds its init's cgroup (a stream passes one that remembers it).
   */
  async sample(c: StatsSubject, locate: (pid: number) => Promise<CgroupLocation | undefined> = locateCgroup): Promise<StatsFrame> {
    const running = c.State.Status === 'running' || c.State.Status === 'paused';
    if (!running || c.State.Pid <= 0) return emptyFrame(c);
    const pid = c.State.Pid;
    const [cg, procStat, nets] = await Promise.all([
      locate(pid).then((at) => at && readCgroupStats(at)),
      readFile('/proc/stat', 'utf8').catch(() => ''),
      c.HostConfig.NetworkMode === 'host' ? Promise.resolve(undefined) : readNetStats(pid),
    ]);
    if (!cg) return emptyFrame(c);
    const memory = { ...cg.memory };
    // An unlimited cgroup shows the machine's memory as its limit (moby caps it the same way).
    if (memory.limit === undefined || memory.limit > this.machineMemory) memory.limit = this.machineMemory;
    const frame: StatsFrame = {
      read: new Date().toISOString(),
      preread: ZERO_TIME,
      pids_stats: cg.pids,
      blkio_stats: cg.blkio,
      num_procs: 0,
      storage_stats: {},
      cpu_stats: { ...cg.cpu, system_cpu_usage: parseSystemCpuUsage(procStat), online_cpus: this.onlineCpus },
      precpu_stats: zeroCpu(),
      memory_stats: memory,
      name: `/${c.Name}`,
      id: c.Id,
    };
    if (nets && Object.keys(nets).length) frame.networks = nets;
    return frame;
  }

  /**
   * Frames as `GET /containers/{id}/stats` sends them (moby `ContainerStats`): each frame's
   * `precpu_stats` and `preread` are the previous frame's. `oneShot` answers one sample at once;
   * `stream` false answers the second of two samples so CPU usage has a delta (Docker takes them
   * a collector tick apart; arca {@link PRIME_MS}, which is enough for the kernel's counters);
   * `stream` sends a frame every {@link INTERVAL_MS} until `stop()` says the client left.
   * `current` re-reads the record each time: a container that stops mid-stream gives empty frames.
   */
  async run(current: () => StatsSubject, opts: { stream: boolean; oneShot: boolean }, send: (f: StatsFrame) => void, stopped: () => boolean): Promise<void> {
    let prev: StatsFrame | undefined;
    const locate = lastPidLocator();
    const next = async (): Promise<StatsFrame> => {
      const f = await this.sample(current(), locate);
      if (prev) {
        f.precpu_stats = prev.cpu_stats;
        f.preread = prev.read;
      }
      prev = f;
      return f;
    };
    if (opts.oneShot) return send(await next());
    if (!opts.stream) {
      const c = current();
      if (c.State.Status !== 'running' && c.State.Status !== 'paused') return send(emptyFrame(c));
      await next();
      await sleep(PRIME_MS);
      return send(await next());
    }
    while (!stopped()) {
      const t0 = Date.now();
      send(await next());
      await sleep(Math.max(0, INTERVAL_MS - (Date.now() - t0)));
    }
  }
}

/**
 * {@link locateCgroup} remembered for the last pid asked: a stream samples one container, whose
 * init (and so its cgroup) changes only when it restarts, so each second costs no cgroup lookup.
 */
function lastPidLocator(): (pid: number) => Promise<CgroupLocation | undefined> {
  let last: { pid: number; at: Promise<CgroupLocation | undefined> } | undefined;
  return (pid) => {
    if (last?.pid !== pid) last = { pid, at: locateCgroup(pid) };
    return last.at;
  };
}

/** Between the two samples of a `stream=false` answer. */
export const PRIME_MS = 100;
/** Between streamed frames (Docker's collector ticks every second). */
export const INTERVAL_MS = 1000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
