import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { release } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { errorMessage } from '../../errors.js';
import { logger } from '../../log.js';
import { parseSeccompProfile, type SeccompProfile } from './profile.js';
import { goArch, renderSeccomp, type LinuxSeccomp } from './render.js';
import type { SecurityOptions } from './security-options.js';

const log = logger('arca:seccomp');

/** The profile Debian ships for container engines (package golang-github-containers-common). */
export const DEFAULT_PROFILE_PATH = '/usr/share/containers/seccomp.json';

/**
 * Chooses and renders each container's seccomp filter. The default profile is read once and
 * rendered once per capability set: most containers share Docker's default capabilities, so
 * `docker run` pays for a cache lookup, not for filtering some 400 rules.
 */
export class SeccompPolicy {
  private profile: SeccompProfile | null | undefined;
  private readonly rendered = new Map<string, LinuxSeccomp | undefined>();
  private missingArches: string[] = [];

  constructor(private readonly path: string = DEFAULT_PROFILE_PATH) {}

  /** The default profile, or null when it cannot be read (then containers run unconfined). */
  private defaultProfile(): SeccompProfile | null {
    if (this.profile === undefined) {
      try {
        this.profile = parseSeccompProfile(readFileSync(this.path, 'utf8'));
      } catch (e) {
        log.warn('default seccomp profile unavailable: containers run without a filter', { path: this.path, error: errorMessage(e) });
        this.profile = null;
      }
    }
    return this.profile;
  }

  /**
   * Looks once for sub-architectures the kernel cannot run, so filters leave them out (the x32
   * one is a third of runc's seccomp set-up). The kernel's own config answers at once (~2 ms, so
   * before the first container); without one, the symbol table is read off the start path
   * (~150 ms of CPU), and until it answers filters keep them.
   */
  async probeKernel(kallsyms?: string, config = '/proc/config.gz'): Promise<void> {
    if (goArch() !== 'amd64') return;
    const x32 = kernelConfigHasX32(config) ?? (await kernelHasX32(kallsyms));
    if (x32 !== false) return;
    this.missingArches = ['SCMP_ARCH_X32'];
    this.rendered.clear();
    log.debug('no x32 ABI in this kernel: filters leave SCMP_ARCH_X32 out');
  }

  /** How `/info` names the default (`builtin`), or `unconfined` when there is no profile. */
  defaultName(): 'builtin' | 'unconfined' {
    return this.defaultProfile() ? 'builtin' : 'unconfined';
  }

  /** The `linux.seccomp` section for a container, or undefined for none (unconfined, privileged). */
  forContainer(sec: SecurityOptions, caps: readonly string[], privileged: boolean): LinuxSeccomp | undefined {
    // Docker: privileged containers run unconfined, whatever profile was asked for.
    if (sec.seccomp === 'unconfined' || privileged) return undefined;
    const target = { caps, arch: goArch(), kernel: release(), missingArches: this.missingArches };
    if (sec.seccomp !== 'default') return renderSeccomp(sec.seccomp, target);
    const key = [...caps].sort().join(',');
    if (!this.rendered.has(key)) {
      const p = this.defaultProfile();
      this.rendered.set(key, p ? renderSeccomp(p, target) : undefined);
    }
    return this.rendered.get(key);
  }
}

/**
 * Whether the kernel was built with the x32 ABI, from its config (`/proc/config.gz`, when built
 * with CONFIG_IKCONFIG_PROC); the option was CONFIG_X86_X32 before Linux 5.18. Undefined when
 * there is no config to read.
 */
export function kernelConfigHasX32(path: string): boolean | undefined {
  try {
    return /^CONFIG_X86_X32(?:_ABI)?=y$/m.test(gunzipSync(readFileSync(path)).toString('latin1'));
  } catch {
    return undefined;
  }
}

/**
 * Whether an x86-64 kernel has the x32 ABI (CONFIG_X86_X32_ABI, off in most distributions' kernels):
 * its compat entry points are in the symbol table. Undefined when that cannot be read.
 */
async function kernelHasX32(kallsyms = '/proc/kallsyms'): Promise<boolean | undefined> {
  try {
    const lines = createInterface({ input: createReadStream(kallsyms), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.includes(' __x32_compat_sys_') || line.endsWith(' x32_sys_call_table') || line.endsWith(' x32_sys_call')) {
        lines.close();
        return true;
      }
    }
    return false;
  } catch {
    return undefined;
  }
}

/** The daemon's policy, shared by container starts. */
export const seccompPolicy = new SeccompPolicy();
