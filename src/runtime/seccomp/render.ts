import type { SeccompArg, SeccompFilter, SeccompProfile } from './profile.js';

/** The OCI `linux.seccomp` section runc and crun read. */
export interface LinuxSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls: { names: string[]; action: string; errnoRet?: number; args?: SeccompArg[] }[];
}

/** What a profile's conditions are evaluated against for one container. */
export interface SeccompTarget {
  /** The container's capabilities (its bounding set), `CAP_` names. */
  caps: readonly string[];
  /** Go's architecture name (`amd64`, `arm64`), the names profiles' `arches` use. */
  arch: string;
  /** The running kernel's release (`uname -r`). */
  kernel: string;
  /**
   * libseccomp architectures the kernel has no ABI for (`SCMP_ARCH_X32` without
   * CONFIG_X86_X32_ABI). Each one in a filter costs the runtime a compile at every start; a call
   * made in such an ABI is refused (bad architecture) rather than failing with ENOSYS.
   */
  missingArches?: readonly string[];
}

/** Go architecture → libseccomp's name for the native one (moby `nativeToSeccomp`). */
const NATIVE_TO_SECCOMP: Record<string, string> = {
  '386': 'SCMP_ARCH_X86',
  amd64: 'SCMP_ARCH_X86_64',
  arm: 'SCMP_ARCH_ARM',
  arm64: 'SCMP_ARCH_AARCH64',
  loong64: 'SCMP_ARCH_LOONGARCH64',
  mips64: 'SCMP_ARCH_MIPS64',
  mips64n32: 'SCMP_ARCH_MIPS64N32',
  mipsel64: 'SCMP_ARCH_MIPSEL64',
  mips64le: 'SCMP_ARCH_MIPSEL64',
  mipsel64n32: 'SCMP_ARCH_MIPSEL64N32',
  ppc64le: 'SCMP_ARCH_PPC64LE',
  riscv64: 'SCMP_ARCH_RISCV64',
  s390x: 'SCMP_ARCH_S390X',
};

/** Node's `process.arch` in Go's words. */
export function goArch(nodeArch: string = process.arch): string {
  const map: Record<string, string> = { x64: 'amd64', ia32: '386', ppc64: 'ppc64le', mips64el: 'mips64le', loong64: 'loong64' };
  return map[nodeArch] ?? nodeArch;
}

/** `major.minor` of a kernel release, compared as numbers; `6.18.44-fc` ≥ `4.8`. */
export function kernelAtLeast(release: string, min: string): boolean {
  const [kMaj = 0, kMin = 0] = (/^(\d+)\.(\d+)/.exec(release) ?? []).slice(1).map(Number);
  const [mMaj = 0, mMin = 0] = min.split('.').map(Number);
  return kMaj > mMaj || (kMaj === mMaj && kMin >= mMin);
}

function matches(f: SeccompFilter, t: SeccompTarget, mode: 'includes' | 'excludes'): boolean {
  // An include rule applies when every condition holds; an exclude rule drops the call when any does.
  if (mode === 'excludes') {
    if (f.arches?.length && f.arches.includes(t.arch)) return true;
    if (f.caps?.length && f.caps.some((c) => t.caps.includes(c))) return true;
    if (f.minKernel && kernelAtLeast(t.kernel, f.minKernel)) return true;
    return false;
  }
  if (f.arches?.length && !f.arches.includes(t.arch)) return false;
  if (f.caps?.length && !f.caps.every((c) => t.caps.includes(c))) return false;
  if (f.minKernel && !kernelAtLeast(t.kernel, f.minKernel)) return false;
  return true;
}

/**
 * Renders a profile for one container as Docker's `setupSeccomp` does: the native architecture
 * with its sub-architectures from `archMap`, and only the rules whose `includes` hold and whose
 * `excludes` do not, for this container's capabilities, this architecture and this kernel.
 * A profile with neither a default action nor rules means no filter (undefined).
 */
export function renderSeccomp(p: SeccompProfile, t: SeccompTarget): LinuxSeccomp | undefined {
  if (!p.defaultAction && !p.syscalls.length) return undefined;
  const architectures = [...(p.architectures ?? [])];
  const native = NATIVE_TO_SECCOMP[t.arch];
  for (const a of p.archMap ?? []) {
    if (a.architecture === native) architectures.push(a.architecture, ...a.subArchitectures);
  }
  const missing = t.missingArches ?? [];
  const usable = architectures.filter((a) => a === native || !missing.includes(a));
  const syscalls: LinuxSeccomp['syscalls'] = [];
  for (const r of p.syscalls) {
    if (r.excludes && matches(r.excludes, t, 'excludes')) continue;
    if (r.includes && !matches(r.includes, t, 'includes')) continue;
    syscalls.push({
      names: r.names,
      action: r.action,
      ...(r.errnoRet !== undefined ? { errnoRet: r.errnoRet } : {}),
      ...(r.args?.length ? { args: r.args } : {}),
    });
  }
  return {
    defaultAction: p.defaultAction,
    ...(p.defaultErrnoRet !== undefined ? { defaultErrnoRet: p.defaultErrnoRet } : {}),
    ...(usable.length ? { architectures: usable } : {}),
    ...(p.flags?.length ? { flags: p.flags } : {}),
    ...(p.listenerPath ? { listenerPath: p.listenerPath } : {}),
    ...(p.listenerMetadata ? { listenerMetadata: p.listenerMetadata } : {}),
    syscalls,
  };
}
