import { InvalidParameter } from '../../errors.js';
import { parseSeccompProfile, type SeccompProfile } from './profile.js';

/** What `HostConfig.SecurityOpt` asks for, as far as arca can honour it. */
export interface SecurityOptions {
  /** `default` (the daemon's profile), `unconfined`, or a profile the client sent. */
  seccomp: 'default' | 'unconfined' | SeccompProfile;
  noNewPrivileges: boolean;
}

/**
 * Reads `HostConfig.SecurityOpt` as moby's `parseSecurityOpt` does. The docker CLI sends a
 * `seccomp=PATH` profile as the file's compacted JSON text (`seccomp={"defaultAction":...}`), so
 * the text is decoded here, at create, and a bad one refused before anything exists. Label and
 * AppArmor options are accepted and have no effect: this daemon runs neither.
 */
export function parseSecurityOptions(opts: readonly string[] | null | undefined): SecurityOptions {
  const out: SecurityOptions = { seccomp: 'default', noNewPrivileges: false };
  for (const opt of opts ?? []) {
    if (typeof opt !== 'string') throw new InvalidParameter(`invalid --security-opt: ${JSON.stringify(opt)}`);
    if (opt === 'no-new-privileges') {
      out.noNewPrivileges = true;
      continue;
    }
    if (opt === 'disable') continue;
    const sep = opt.includes('=') ? '=' : opt.includes(':') ? ':' : '';
    if (!sep) throw new InvalidParameter(`invalid --security-opt 1: ${JSON.stringify(opt)}`);
    const at = opt.indexOf(sep);
    const k = opt.slice(0, at);
    const v = opt.slice(at + 1);
    switch (k) {
      case 'label':
      case 'apparmor':
      case 'writable-cgroups':
        break;
      case 'seccomp':
        out.seccomp = v === 'unconfined' ? 'unconfined' : v === 'builtin' || v === '' ? 'default' : parseSeccompProfile(v);
        break;
      case 'no-new-privileges': {
        const b = parseGoBool(v);
        if (b === undefined) throw new InvalidParameter(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
        out.noNewPrivileges = b;
        break;
      }
      default:
        throw new InvalidParameter(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
    }
  }
  return out;
}

/** Go's strconv.ParseBool. */
function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}
