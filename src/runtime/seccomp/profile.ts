import { InvalidParameter } from '../../errors.js';

/** One argument comparison of a rule, as in the OCI spec (`linux.seccomp.syscalls[].args[]`). */
export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

/** When a rule applies: Go architecture names, capabilities, a minimum kernel (`"4.8"`). */
export interface SeccompFilter {
  arches?: string[];
  caps?: string[];
  minKernel?: string;
}

/** A rule of a Docker/Podman profile, before it is filtered for one container. */
export interface SeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
  includes?: SeccompFilter;
  excludes?: SeccompFilter;
}

/**
 * A seccomp profile in the format Docker and Podman share (moby `profiles/seccomp`,
 * containers/common `pkg/seccomp`): the OCI section plus an `archMap` and per-rule conditions.
 */
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures: string[] }[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls: SeccompRule[];
}

type Kind = 'string' | 'number' | 'object' | 'array';

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Go's json.Unmarshal refuses a value of the wrong type, and so does Docker's profile loader. */
function check(v: unknown, kind: Kind, where: string, goType: string): void {
  if (v === undefined || v === null) return;
  if (kindOf(v) !== kind) throw new Error(`json: cannot unmarshal ${kindOf(v)} into Go struct field ${where} of type ${goType}`);
}

function stringList(v: unknown, where: string): string[] | undefined {
  check(v, 'array', where, '[]string');
  if (v == null) return undefined;
  (v as unknown[]).forEach((x) => check(x, 'string', where, 'string'));
  return v as string[];
}

function filter(v: unknown, where: string): SeccompFilter | undefined {
  check(v, 'object', where, 'seccomp.Filter');
  if (v == null) return undefined;
  const f = v as Record<string, unknown>;
  check(f['minKernel'], 'string', `${where}.minKernel`, 'seccomp.KernelVersion');
  const minKernel = f['minKernel'] as string | undefined;
  if (minKernel && !/^\d+\.\d+$/.test(minKernel)) throw new Error(`invalid kernel version: ${minKernel}`);
  return { arches: stringList(f['arches'], `${where}.arches`), caps: stringList(f['caps'], `${where}.caps`), ...(minKernel ? { minKernel } : {}) };
}

function rule(v: unknown): SeccompRule {
  const where = `Seccomp.syscalls`;
  check(v, 'object', where, 'seccomp.Syscall');
  const r = (v ?? {}) as Record<string, unknown>;
  check(r['name'], 'string', `${where}.name`, 'string');
  check(r['action'], 'string', `${where}.action`, 'specs.LinuxSeccompAction');
  check(r['errnoRet'], 'number', `${where}.errnoRet`, 'uint');
  check(r['args'], 'array', `${where}.args`, '[]*specs.LinuxSeccompArg');
  const names = stringList(r['names'], `${where}.names`) ?? [];
  if (r['name']) {
    if (names.length) throw new Error(`both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'`);
    names.push(r['name'] as string);
  }
  const args = ((r['args'] as unknown[] | undefined) ?? []).map((a) => {
    check(a, 'object', `${where}.args`, 'specs.LinuxSeccompArg');
    const o = (a ?? {}) as Record<string, unknown>;
    for (const k of ['index', 'value', 'valueTwo']) check(o[k], 'number', `LinuxSeccompArg.${k}`, 'uint64');
    check(o['op'], 'string', 'LinuxSeccompArg.op', 'specs.LinuxSeccompOperator');
    return { index: (o['index'] as number) ?? 0, value: (o['value'] as number) ?? 0, valueTwo: (o['valueTwo'] as number) ?? 0, op: (o['op'] as string) ?? '' };
  });
  return {
    names,
    action: (r['action'] as string) ?? '',
    ...(typeof r['errnoRet'] === 'number' ? { errnoRet: r['errnoRet'] } : {}),
    ...(args.length ? { args } : {}),
    includes: filter(r['includes'], `${where}.includes`),
    excludes: filter(r['excludes'], `${where}.excludes`),
  };
}

/**
 * Reads a profile's JSON text. Throws InvalidParameter with Docker's "Decoding seccomp profile
 * failed: ..." for text that is not JSON or has fields of the wrong type; unknown fields (Podman's
 * `defaultErrno`, `comment`) are ignored, as Go's decoder does.
 */
export function parseSeccompProfile(text: string): SeccompProfile {
  try {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new Error((e as Error).message);
    }
    if (kindOf(raw) !== 'object') throw new Error(`json: cannot unmarshal ${kindOf(raw)} into Go value of type seccomp.Seccomp`);
    const p = raw as Record<string, unknown>;
    check(p['defaultAction'], 'string', 'Seccomp.defaultAction', 'specs.LinuxSeccompAction');
    check(p['defaultErrnoRet'], 'number', 'Seccomp.defaultErrnoRet', 'uint');
    check(p['archMap'], 'array', 'Seccomp.archMap', '[]seccomp.Architecture');
    check(p['syscalls'], 'array', 'Seccomp.syscalls', '[]*seccomp.Syscall');
    check(p['listenerPath'], 'string', 'Seccomp.listenerPath', 'string');
    check(p['listenerMetadata'], 'string', 'Seccomp.listenerMetadata', 'string');
    const architectures = stringList(p['architectures'], 'Seccomp.architectures');
    const archMap = ((p['archMap'] as unknown[] | undefined) ?? []).map((a) => {
      check(a, 'object', 'Seccomp.archMap', 'seccomp.Architecture');
      const o = (a ?? {}) as Record<string, unknown>;
      check(o['architecture'], 'string', 'Architecture.architecture', 'specs.Arch');
      return { architecture: (o['architecture'] as string) ?? '', subArchitectures: stringList(o['subArchitectures'], 'Architecture.subArchitectures') ?? [] };
    });
    if (archMap.length && architectures?.length) {
      throw new Error(`both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'`);
    }
    const flags = stringList(p['flags'], 'Seccomp.flags');
    return {
      defaultAction: (p['defaultAction'] as string) ?? '',
      ...(typeof p['defaultErrnoRet'] === 'number' ? { defaultErrnoRet: p['defaultErrnoRet'] } : {}),
      ...(architectures ? { architectures } : {}),
      ...(archMap.length ? { archMap } : {}),
      ...(flags?.length ? { flags } : {}),
      ...(p['listenerPath'] ? { listenerPath: p['listenerPath'] as string } : {}),
      ...(p['listenerMetadata'] ? { listenerMetadata: p['listenerMetadata'] as string } : {}),
      syscalls: ((p['syscalls'] as unknown[] | undefined) ?? []).map(rule),
    };
  } catch (e) {
    throw new InvalidParameter(`Decoding seccomp profile failed: ${(e as Error).message}`);
  }
}
