/**
 * A container's cgroup limits, rendered once from its HostConfig for both places they reach the
 * runtime: the OCI spec at create (`linux.resources`) and `runc update` on a running container.
 */

/**
 * The numeric HostConfig limits, named as in moby's `container.Resources`: the one list the
 * record, create and `docker update` share.
 */
export const NUMERIC_LIMITS = ['Memory', 'MemorySwap', 'NanoCpus', 'CpuShares', 'CpuQuota', 'CpuPeriod'] as const;

/** A field for each of {@link NUMERIC_LIMITS}; 0 is "not set". */
export type NumericLimits = Record<(typeof NUMERIC_LIMITS)[number], number>;

/** The HostConfig fields limits come from. */
export interface LimitFields extends NumericLimits {
  PidsLimit: number | null;
  CpusetCpus?: unknown;
  CpusetMems?: unknown;
}

/** Limits in the runtime's terms; an absent field is "no limit" at create and "unchanged" at update. */
export interface ResourceLimits {
  memory?: number;
  memorySwap?: number;
  cpuShares?: number;
  cpuPeriod?: number;
  cpuQuota?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  /** -1: no limit. */
  pidsLimit?: number;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

export function resourceLimits(hc: LimitFields): ResourceLimits {
  const r: ResourceLimits = {};
  if (hc.Memory > 0) r.memory = hc.Memory;
  if (hc.Memory > 0 && hc.MemorySwap) r.memorySwap = hc.MemorySwap;
  // `--cpus` is a quota over Docker's fixed 100 ms period.
  if (hc.NanoCpus > 0) {
    r.cpuPeriod = 100000;
    r.cpuQuota = Math.round((hc.NanoCpus / 1e9) * 100000);
  } else {
    if (hc.CpuQuota > 0) r.cpuQuota = hc.CpuQuota;
    if (hc.CpuPeriod > 0 || hc.CpuQuota > 0) r.cpuPeriod = hc.CpuPeriod || 100000;
  }
  if (hc.CpuShares > 0) r.cpuShares = hc.CpuShares;
  if (str(hc.CpusetCpus)) r.cpusetCpus = str(hc.CpusetCpus);
  if (str(hc.CpusetMems)) r.cpusetMems = str(hc.CpusetMems);
  r.pidsLimit = hc.PidsLimit && hc.PidsLimit > 0 ? hc.PidsLimit : -1;
  return r;
}

/** The OCI `linux.resources` limits (devices are the spec's own business). */
export function ociResources(hc: LimitFields): Record<string, unknown> {
  const r = resourceLimits(hc);
  const out: Record<string, unknown> = {};
  if (r.memory !== undefined) out['memory'] = { limit: r.memory, ...(r.memorySwap !== undefined ? { swap: r.memorySwap } : {}) };
  const cpu: Record<string, unknown> = {};
  if (r.cpuShares !== undefined) cpu['shares'] = r.cpuShares;
  if (r.cpuQuota !== undefined) cpu['quota'] = r.cpuQuota;
  if (r.cpuPeriod !== undefined) cpu['period'] = r.cpuPeriod;
  if (r.cpusetCpus !== undefined) cpu['cpus'] = r.cpusetCpus;
  if (r.cpusetMems !== undefined) cpu['mems'] = r.cpusetMems;
  if (Object.keys(cpu).length) out['cpu'] = cpu;
  if (r.pidsLimit !== undefined && r.pidsLimit > 0) out['pids'] = { limit: r.pidsLimit };
  return out;
}

/** `runc update` flags for the limits (the same flags crun takes). */
export function updateArgs(r: ResourceLimits): string[] {
  const a: string[] = [];
  const add = (flag: string, v: number | string | undefined): void => {
    if (v !== undefined) a.push(`--${flag}`, String(v));
  };
  add('memory', r.memory);
  add('memory-swap', r.memorySwap);
  add('cpu-share', r.cpuShares);
  add('cpu-period', r.cpuPeriod);
  add('cpu-quota', r.cpuQuota);
  add('cpuset-cpus', r.cpusetCpus);
  add('cpuset-mems', r.cpusetMems);
  add('pids-limit', r.pidsLimit);
  return a;
}
