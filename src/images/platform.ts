import { InvalidParameter } from '../errors.js';

/** An OCI platform: `linux/amd64`, `linux/arm64/v8`. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const NODE_TO_GO_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The platform this daemon runs containers for. */
export function hostPlatform(): Platform {
  const architecture = NODE_TO_GO_ARCH[process.arch] ?? process.arch;
  return architecture === 'arm64' ? { os: 'linux', architecture, variant: 'v8' } : { os: 'linux', architecture };
}

/** Parses `os[/arch[/variant]]` the way containerd's `platforms.Parse` normalises it. */
export function parsePlatform(s: string): Platform {
  const parts = s.toLowerCase().split('/');
  if (parts.length > 3 || parts.some((p) => !/^[a-z0-9_-]+$/.test(p))) {
    throw new InvalidParameter(`"${s}": unknown operating system or architecture: invalid argument`);
  }
  const arches: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', i386: '386' };
  if (parts.length === 1) {
    // A lone word is an OS when it is one, else an architecture on the host OS.
    if (['linux', 'windows', 'darwin', 'freebsd'].includes(parts[0]!)) return { ...hostPlatform(), os: parts[0]! };
    return { os: 'linux', architecture: arches[parts[0]!] ?? parts[0]! };
  }
  const p: Platform = { os: parts[0]!, architecture: arches[parts[1]!] ?? parts[1]! };
  if (parts[2]) p.variant = parts[2];
  if (p.architecture === 'arm64' && !p.variant) p.variant = 'v8';
  return p;
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Does a manifest-list entry's platform fit the wanted one? (variant only when both say one) */
export function platformMatches(want: Platform, have: { os?: string; architecture?: string; variant?: string }): boolean {
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  if (want.variant && have.variant && want.variant !== have.variant) {
    // arm64 images often omit v8; tolerate only that.
    return false;
  }
  return true;
}
