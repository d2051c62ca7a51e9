import { readFileSync } from 'node:fs';
import { release } from 'node:os';
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

  /** How `/info` names the default (`builtin`), or `unconfined` when there is no profile. */
  defaultName(): 'builtin' | 'unconfined' {
    return this.defaultProfile() ? 'builtin' : 'unconfined';
  }

  /** The `linux.seccomp` section for a container, or undefined for none (unconfined, privileged). */
  forContainer(sec: SecurityOptions, caps: readonly string[], privileged: boolean): LinuxSeccomp | undefined {
    // Docker: privileged containers run unconfined, whatever profile was asked for.
    if (sec.seccomp === 'unconfined' || privileged) return undefined;
    const target = { caps, arch: goArch(), kernel: release() };
    if (sec.seccomp !== 'default') return renderSeccomp(sec.seccomp, target);
    const key = [...caps].sort().join(',');
    if (!this.rendered.has(key)) {
      const p = this.defaultProfile();
      this.rendered.set(key, p ? renderSeccomp(p, target) : undefined);
    }
    return this.rendered.get(key);
  }
}

/** The daemon's policy, shared by container starts. */
export const seccompPolicy = new SeccompPolicy();
