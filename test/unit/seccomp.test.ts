import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseSeccompProfile } from '../../src/runtime/seccomp/profile.js';
import { goArch, kernelAtLeast, renderSeccomp } from '../../src/runtime/seccomp/render.js';
import { parseSecurityOptions } from '../../src/runtime/seccomp/security-options.js';
import { kernelConfigHasX32, SeccompPolicy } from '../../src/runtime/seccomp/seccomp-policy.js';
import { DEFAULT_CAPS } from '../../src/runtime/oci-spec.js';
import { InvalidParameter } from '../../src/errors.js';

/** A small profile with each kind of condition the Docker/Podman format has. */
const FIXTURE = {
  defaultAction: 'SCMP_ACT_ERRNO',
  defaultErrnoRet: 38,
  defaultErrno: 'ENOSYS',
  archMap: [
    { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
    { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
  ],
  syscalls: [
    { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW', comment: '', includes: {}, excludes: {} },
    { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64', 'x32'] } },
    { names: ['arm_fadvise64_64'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['arm', 'arm64'] } },
    { names: ['bpf'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['bpf'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, excludes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['newer'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '7.1' } },
    { names: ['older'], action: 'SCMP_ACT_ALLOW', excludes: { minKernel: '7.1' } },
    { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, valueTwo: 0, op: 'SCMP_CMP_EQ' }] },
  ],
};

const target = { caps: DEFAULT_CAPS, arch: 'amd64', kernel: '6.18.44-fc-v669' };
const names = (s: ReturnType<typeof renderSeccomp>): string[] => s!.syscalls.map((r) => `${r.names.join('+')}:${r.action}`);

describe('seccomp profile rendering', () => {
  const profile = parseSeccompProfile(JSON.stringify(FIXTURE));

  it('keeps the default action and errno, and the native architecture with its sub-architectures', () => {
    const s = renderSeccomp(profile, target)!;
    assert.equal(s.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(s.defaultErrnoRet, 38);
    assert.deepEqual(s.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    assert.deepEqual(renderSeccomp(profile, { ...target, arch: 'arm64' })!.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    assert.ok(!('defaultErrno' in s), 'Podman-only fields stay out of the OCI spec');
  });

  it('filters rules on architecture, capabilities and kernel version', () => {
    assert.deepEqual(names(renderSeccomp(profile, target)), [
      'read+write:SCMP_ACT_ALLOW',
      'arch_prctl:SCMP_ACT_ALLOW',
      'bpf:SCMP_ACT_ERRNO',
      'older:SCMP_ACT_ALLOW',
      'personality:SCMP_ACT_ALLOW',
    ]);
    const admin = renderSeccomp(profile, { caps: [...DEFAULT_CAPS, 'CAP_SYS_ADMIN'], arch: 'arm64', kernel: '7.2.0' });
    assert.deepEqual(names(admin), ['read+write:SCMP_ACT_ALLOW', 'arm_fadvise64_64:SCMP_ACT_ALLOW', 'bpf:SCMP_ACT_ALLOW', 'newer:SCMP_ACT_ALLOW', 'personality:SCMP_ACT_ALLOW']);
  });

  it('keeps errnoRet and args as the profile says', () => {
    const s = renderSeccomp(profile, target)!;
    assert.equal(s.syscalls.find((r) => r.names[0] === 'bpf')!.errnoRet, 1);
    assert.deepEqual(s.syscalls.find((r) => r.names[0] === 'personality')!.args, [{ index: 0, value: 8, valueTwo: 0, op: 'SCMP_CMP_EQ' }]);
  });

  it('leaves out sub-architectures the kernel has no ABI for, never the native one', () => {
    const s = renderSeccomp(profile, { ...target, missingArches: ['SCMP_ARCH_X32', 'SCMP_ARCH_X86_64'] })!;
    assert.deepEqual(s.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
  });

  it('an empty profile means no filter', () => {
    assert.equal(renderSeccomp(parseSeccompProfile('{}'), target), undefined);
  });

  it('compares kernel versions by major and minor', () => {
    assert.ok(kernelAtLeast('6.18.44-fc', '4.8'));
    assert.ok(kernelAtLeast('4.8.0', '4.8'));
    assert.ok(!kernelAtLeast('4.7.10', '4.8'));
    assert.ok(!kernelAtLeast('3.99', '4.0'));
    assert.equal(goArch('x64'), 'amd64');
    assert.equal(goArch('arm64'), 'arm64');
  });
});

describe('seccomp profile decoding', () => {
  const fails = (text: string, re: RegExp): void => {
    assert.throws(() => parseSeccompProfile(text), (e: Error) => e instanceof InvalidParameter && /^Decoding seccomp profile failed: /.test(e.message) && re.test(e.message));
  };
  it('refuses text that is not JSON or has the wrong types, in Go words', () => {
    fails('{not json', /./);
    fails('[]', /cannot unmarshal array into Go value of type seccomp.Seccomp/);
    fails('{"defaultAction": 5}', /json: cannot unmarshal number into Go struct field Seccomp.defaultAction of type specs.LinuxSeccompAction/);
    fails('{"syscalls": {}}', /cannot unmarshal object into Go struct field Seccomp.syscalls/);
    fails('{"syscalls": [{"names": "read"}]}', /cannot unmarshal string into Go struct field Seccomp.syscalls.names of type \[\]string/);
    fails('{"syscalls": [{"name": "a", "names": ["b"]}]}', /both 'name' and 'names'/);
    fails('{"architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}', /both 'architectures' and 'archMap'/);
  });
  it('reads the old single-name rules', () => {
    assert.deepEqual(parseSeccompProfile('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"mkdir","action":"SCMP_ACT_ERRNO"}]}').syscalls[0]!.names, ['mkdir']);
  });
});

describe('security options', () => {
  it("reads Docker's forms", () => {
    assert.deepEqual(parseSecurityOptions(null), { seccomp: 'default', noNewPrivileges: false });
    assert.equal(parseSecurityOptions(['seccomp=unconfined']).seccomp, 'unconfined');
    assert.equal(parseSecurityOptions(['seccomp:unconfined']).seccomp, 'unconfined');
    assert.equal(parseSecurityOptions(['seccomp=builtin']).seccomp, 'default');
    assert.equal(parseSecurityOptions(['no-new-privileges']).noNewPrivileges, true);
    assert.equal(parseSecurityOptions(['no-new-privileges=true']).noNewPrivileges, true);
    assert.equal(parseSecurityOptions(['no-new-privileges:false']).noNewPrivileges, false);
    assert.equal(parseSecurityOptions(['label=disable', 'apparmor=unconfined']).seccomp, 'default');
    const custom = parseSecurityOptions(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']).seccomp;
    assert.equal(typeof custom === 'object' && custom.defaultAction, 'SCMP_ACT_ALLOW');
  });
  it("refuses what Docker refuses, with its messages", () => {
    assert.throws(() => parseSecurityOptions(['bogus']), /^InvalidParameter: invalid --security-opt 1: "bogus"$/);
    assert.throws(() => parseSecurityOptions(['bogus=1']), /invalid --security-opt 2: "bogus=1"/);
    assert.throws(() => parseSecurityOptions(['no-new-privileges=maybe']), /invalid --security-opt 2: "no-new-privileges=maybe"/);
    assert.throws(() => parseSecurityOptions(['seccomp={']), /Decoding seccomp profile failed/);
  });
});

describe('seccomp policy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arca-seccomp-'));
  const path = join(dir, 'profile.json');
  writeFileSync(path, JSON.stringify(FIXTURE));
  const policy = new SeccompPolicy(path);
  const dflt = parseSecurityOptions(null);

  it('renders the default profile once per capability set', () => {
    const a = policy.forContainer(dflt, DEFAULT_CAPS, false);
    assert.equal(policy.forContainer(dflt, [...DEFAULT_CAPS].reverse(), false), a, 'same set, same object');
    assert.notEqual(policy.forContainer(dflt, [...DEFAULT_CAPS, 'CAP_SYS_ADMIN'], false), a);
    assert.equal(policy.defaultName(), 'builtin');
  });
  it('unconfined and privileged get no filter; a sent profile is used as it is', () => {
    assert.equal(policy.forContainer(parseSecurityOptions(['seccomp=unconfined']), DEFAULT_CAPS, false), undefined);
    assert.equal(policy.forContainer(dflt, DEFAULT_CAPS, true), undefined);
    const own = policy.forContainer(parseSecurityOptions(['seccomp={"defaultAction":"SCMP_ACT_LOG"}']), DEFAULT_CAPS, false);
    assert.equal(own?.defaultAction, 'SCMP_ACT_LOG');
  });
  it('drops x32 from the filters once the kernel is seen without it', { skip: goArch() === 'amd64' ? false : 'x32 is an x86-64 ABI' }, async () => {
    const p = new SeccompPolicy(path);
    const syms = join(dir, 'kallsyms');
    writeFileSync(syms, 'ffffffff816bb910 T __x64_sys_read\nffffffff816bb930 T __ia32_sys_read\n');
    assert.deepEqual(p.forContainer(dflt, DEFAULT_CAPS, false)!.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    await p.probeKernel(syms, join(dir, 'no-config.gz'));
    assert.deepEqual(p.forContainer(dflt, DEFAULT_CAPS, false)!.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
    const withX32 = new SeccompPolicy(path);
    writeFileSync(syms, 'ffffffff816bb910 T __x64_sys_read\nffffffff81000000 T __x32_compat_sys_ioctl\n');
    await withX32.probeKernel(syms, join(dir, 'no-config.gz'));
    assert.ok(withX32.forContainer(dflt, DEFAULT_CAPS, false)!.architectures!.includes('SCMP_ARCH_X32'));
    const unreadable = new SeccompPolicy(path);
    await unreadable.probeKernel(join(dir, 'nope'), join(dir, 'no-config.gz'));
    assert.ok(unreadable.forContainer(dflt, DEFAULT_CAPS, false)!.architectures!.includes('SCMP_ARCH_X32'));
  });

  it("the kernel's config answers before its symbol table, and without reading it", { skip: goArch() === 'amd64' ? false : 'x32 is an x86-64 ABI' }, async () => {
    const cfg = (name: string, text: string): string => (writeFileSync(join(dir, name), gzipSync(text)), join(dir, name));
    const without = cfg('without.gz', 'CONFIG_X86_64=y\n# CONFIG_X86_X32_ABI is not set\n');
    const withAbi = cfg('with.gz', 'CONFIG_X86_64=y\nCONFIG_X86_X32_ABI=y\n');
    const before518 = cfg('old.gz', 'CONFIG_X86_64=y\nCONFIG_X86_X32=y\n');
    assert.equal(kernelConfigHasX32(without), false);
    assert.equal(kernelConfigHasX32(withAbi), true);
    assert.equal(kernelConfigHasX32(before518), true);
    assert.equal(kernelConfigHasX32(join(dir, 'none.gz')), undefined);
    writeFileSync(join(dir, 'plain'), 'CONFIG_X86_X32_ABI=y\n');
    assert.equal(kernelConfigHasX32(join(dir, 'plain')), undefined, 'not gzip: no answer');
    // The symbol table says x32, the config says none: the config wins, the table is not read.
    const syms = join(dir, 'kallsyms-x32');
    writeFileSync(syms, 'ffffffff81000000 T __x32_compat_sys_ioctl\n');
    const p = new SeccompPolicy(path);
    const probing = p.probeKernel(syms, without);
    assert.deepEqual(p.forContainer(dflt, DEFAULT_CAPS, false)!.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'], 'known before the probe is awaited');
    await probing;
    const q = new SeccompPolicy(path);
    await q.probeKernel(join(dir, 'nope'), withAbi);
    assert.ok(q.forContainer(dflt, DEFAULT_CAPS, false)!.architectures!.includes('SCMP_ARCH_X32'));
  });

  it('without a readable profile, containers run unconfined and info says so', () => {
    const none = new SeccompPolicy(join(dir, 'missing.json'));
    assert.equal(none.forContainer(dflt, DEFAULT_CAPS, false), undefined);
    assert.equal(none.defaultName(), 'unconfined');
    rmSync(dir, { recursive: true, force: true });
  });
});
