import os from 'node:os';
import { readFileSync } from 'node:fs';
import { Conflict, InvalidParameter, SystemError, errorMessage } from '../errors.js';
import type { ContainerRecord, HostConfig } from './container-record.js';
import type { Runtime } from '../runtime/runtime.js';
import { NUMERIC_LIMITS, resourceLimits, type NumericLimits } from '../runtime/resources.js';
import type { EventBus } from '../events/event-bus.js';

/** What `POST /containers/{id}/update` may change; a zero (or absent) field leaves the current value (moby). */
export interface UpdateRequest extends NumericLimits {
  CpusetCpus: string;
  CpusetMems: string;
  /** Absent: unchanged; 0 or less: no limit. */
  PidsLimit?: number;
  RestartPolicy?: { Name: string; MaximumRetryCount: number };
}

const RESTART_NAMES = ['no', 'always', 'on-failure', 'unless-stopped'];
const MIN_MEMORY = 6 * 1024 * 1024;

function num(body: Record<string, unknown>, k: string): number {
  const v = body[k];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidParameter(`json: cannot unmarshal ${typeof v} into Go struct field UpdateConfig.${k} of type int64`);
  return v;
}

function text(body: Record<string, unknown>, k: string): string {
  const v = body[k];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new InvalidParameter(`json: cannot unmarshal ${typeof v} into Go struct field UpdateConfig.${k} of type string`);
  return v;
}

/** A cpuset list (`0-2,4`) as numbers, or undefined when it does not parse (moby `parsers.ParseUintList`). */
export function parseCpuset(list: string): Set<number> | undefined {
  const out = new Set<number>();
  for (const part of list.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return undefined;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) return undefined;
    for (let i = a; i <= b; i++) out.add(i);
  }
  return out;
}

function available(file: string, fallback: string): string {
  for (const p of [`/sys/fs/cgroup/cpuset/${file}`, `/sys/fs/cgroup/${file}.effective`]) {
    try {
      const t = readFileSync(p, 'utf8').trim();
      if (t) return t;
    } catch {
      /* next */
    }
  }
  return fallback;
}

/**
 * Reads and checks an update body as moby's `verifyContainerSettings(update=true)` does; every
 * error here is 400 with Docker's words.
 */
export function parseUpdateRequest(body: Record<string, unknown>, ncpu = os.cpus().length): UpdateRequest {
  const r: UpdateRequest = {
    ...(Object.fromEntries(NUMERIC_LIMITS.map((k) => [k, num(body, k)])) as NumericLimits),
    CpusetCpus: text(body, 'CpusetCpus'),
    CpusetMems: text(body, 'CpusetMems'),
  };
  if (body['PidsLimit'] !== undefined && body['PidsLimit'] !== null) r.PidsLimit = num(body, 'PidsLimit');
  if (r.Memory !== 0 && r.Memory < MIN_MEMORY) throw new InvalidParameter('Minimum memory limit allowed is 6MB');
  if (r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory) {
    throw new InvalidParameter('Minimum memoryswap limit should be larger than memory limit, see usage');
  }
  if (r.NanoCpus > 0 && r.CpuPeriod > 0) throw new InvalidParameter('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (r.NanoCpus > 0 && r.CpuQuota > 0) throw new InvalidParameter('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  if (r.NanoCpus < 0 || r.NanoCpus > ncpu * 1e9) {
    throw new InvalidParameter(`Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`);
  }
  if (r.CpuPeriod !== 0 && (r.CpuPeriod < 1000 || r.CpuPeriod > 1000000)) {
    throw new InvalidParameter('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  }
  if (r.CpuQuota > 0 && r.CpuQuota < 1000) throw new InvalidParameter('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  for (const [value, kind, file, what] of [
    [r.CpusetCpus, 'cpus', 'cpuset.cpus', 'CPUs'],
    [r.CpusetMems, 'mems', 'cpuset.mems', 'memory nodes'],
  ] as const) {
    if (!value) continue;
    const wanted = parseCpuset(value);
    if (!wanted) throw new InvalidParameter(`Invalid value ${value} for cpuset ${kind}`);
    const avail = available(file, kind === 'cpus' ? `0-${ncpu - 1}` : '0');
    const have = parseCpuset(avail) ?? new Set<number>();
    if ([...wanted].some((n) => !have.has(n))) throw new InvalidParameter(`Requested ${what} are not available - requested ${value}, available: ${avail}`);
  }
  const rp = body['RestartPolicy'];
  if (rp && typeof rp === 'object' && typeof (rp as { Name?: unknown }).Name === 'string' && (rp as { Name: string }).Name !== '') {
    const name = (rp as { Name: string }).Name;
    const max = Number((rp as { MaximumRetryCount?: unknown }).MaximumRetryCount ?? 0);
    if (!RESTART_NAMES.includes(name)) {
      throw new InvalidParameter(`invalid restart policy: unknown policy '${name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`);
    }
    if (max && name !== 'on-failure') throw new InvalidParameter(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
    if (max < 0) throw new InvalidParameter('invalid restart policy: maximum retry count cannot be negative');
    r.RestartPolicy = { Name: name, MaximumRetryCount: max };
  }
  return r;
}

/**
 * The container's HostConfig with the update applied (a new object; the record is untouched),
 * refusing what moby's `UpdateContainer` refuses (409, `Cannot update container <id>: ...`).
 */
export function applyUpdate(id: string, hc: HostConfig, u: UpdateRequest): HostConfig {
  const conflict = (msg: string): never => {
    throw new Conflict(`Cannot update container ${id}: ${msg}`);
  };
  // --cpus sets period and quota: once one way is chosen, the other cannot be updated.
  if (u.NanoCpus > 0 && hc.CpuPeriod > 0) conflict('Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set');
  if (u.NanoCpus > 0 && hc.CpuQuota > 0) conflict('Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set');
  if (u.CpuPeriod > 0 && hc.NanoCpus > 0) conflict('Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set');
  if (u.CpuQuota > 0 && hc.NanoCpus > 0) conflict('Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
  const next: HostConfig = { ...hc, RestartPolicy: { ...hc.RestartPolicy } };
  if (u.CpuShares) next.CpuShares = u.CpuShares;
  if (u.NanoCpus) next.NanoCpus = u.NanoCpus;
  if (u.CpuPeriod) next.CpuPeriod = u.CpuPeriod;
  if (u.CpuQuota) next.CpuQuota = u.CpuQuota;
  if (u.CpusetCpus) next['CpusetCpus'] = u.CpusetCpus;
  if (u.CpusetMems) next['CpusetMems'] = u.CpusetMems;
  if (u.Memory) {
    if (hc.MemorySwap > 0 && u.Memory > hc.MemorySwap && !u.MemorySwap) {
      conflict('Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
    }
    next.Memory = u.Memory;
  }
  if (u.MemorySwap) next.MemorySwap = u.MemorySwap;
  if (u.PidsLimit !== undefined) next.PidsLimit = u.PidsLimit > 0 ? u.PidsLimit : 0;
  if (u.RestartPolicy) {
    if (u.RestartPolicy.Name !== 'no' && hc.AutoRemove) conflict('Restart policy cannot be updated because AutoRemove is enabled for the container');
    next.RestartPolicy = u.RestartPolicy;
  }
  return next;
}

/** What an update needs besides the record: the runtime, the record's save, the event bus. */
export interface UpdateDeps {
  runtime: Pick<Runtime, 'update'>;
  save(c: ContainerRecord): void;
  events: Pick<EventBus, 'container'>;
}

/**
 * Applies a checked update to a container, under its lock: the limits and restart policy go into
 * the record (inspect shows them, the next start applies them) and, on a running or paused
 * container, into its cgroup through the runtime first; a runtime refusal changes nothing.
 */
export async function updateContainer(c: ContainerRecord, req: UpdateRequest, deps: UpdateDeps): Promise<{ Warnings: string[] }> {
  if (c.State.Status === 'removing' || c.State.Status === 'dead') {
    throw new SystemError(`Cannot update container ${c.Id}: container is marked for removal and cannot be "update"`);
  }
  const next = applyUpdate(c.Id, c.HostConfig, req);
  if (c.State.Status === 'running' || c.State.Status === 'paused') {
    await deps.runtime.update(c.Id, resourceLimits(next)).catch((e: unknown) => {
      throw new SystemError(`Cannot update container ${c.Id}: ${errorMessage(e)}`, { cause: e });
    });
  }
  c.HostConfig = next;
  deps.save(c);
  deps.events.container('update', c);
  return { Warnings: [] };
}
