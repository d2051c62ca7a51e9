/**
 * The default seccomp profile and its friends, proven from inside containers: the filter mode
 * the kernel reports, a system call the profile blocks, `seccomp=unconfined`, a profile file,
 * `--privileged`, `no-new-privileges`, and Docker's masked and read-only /proc and /sys paths.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { dockerPy, skipWithoutDockerPy } from './docker-clients.js';
import { rawRequest } from './containers-support.js';

const IMG = TEST_IMAGE;
const haveProfile = spawnSync('test', ['-f', '/usr/share/containers/seccomp.json']).status === 0;
const haveCrun = spawnSync('crun', ['--version']).status === 0;
/** crun's annotation for a precompiled filter, and the wrapper crun needs on hybrid cgroups. */
const BPF = 'run.oci.seccomp_bpf_data';
const CRUN = fileURLToPath(new URL('../../../libexec/crun-hybrid', import.meta.url));

/**
 * vmsplice(2) is harmless and works for anyone, but the default profile denies it with EPERM: a
 * filter that blocks it is the profile at work, not a missing capability. busybox cannot make the
 * call, so a tiny static program does (mounted read-only into the container).
 */
const PROBE_C = `
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
int main(void) {
  int p[2];
  char b[1] = {'x'};
  struct iovec v = { b, 1 };
  if (pipe(p)) return 2;
  if (vmsplice(p[1], &v, 1, 0) < 0) { printf("vmsplice: %s\\n", strerror(errno)); return 1; }
  printf("vmsplice: ok\\n");
  return 0;
}
`;

/** Built when the file loads: whether the probe exists decides a skip. */
const dir = mkdtempSync(join(tmpdir(), 'arca-sec-'));
writeFileSync(join(dir, 'probe.c'), PROBE_C);
const probe = spawnSync('cc', ['-static', '-O', '-o', join(dir, 'probe'), join(dir, 'probe.c')]).status === 0 ? join(dir, 'probe') : '';
after(() => rmSync(dir, { recursive: true, force: true }));

describe('security: seccomp, no-new-privileges, masked paths', { skip: haveProfile ? false : 'no /usr/share/containers/seccomp.json (apt-get install golang-github-containers-common)' }, () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  const status = async (args: string[], field: string): Promise<string> => {
    const out = await d.dockerOk(['run', '--rm', ...args, IMG, 'grep', `^${field}:`, '/proc/self/status']);
    return out.split(/\s+/)[1]!;
  };

  it('a container runs under a seccomp filter (mode 2), exec too', async () => {
    assert.equal(await status([], 'Seccomp'), '2');
    await d.dockerOk(['run', '-d', '--name', 'sec1', IMG, 'sleep', '1000']);
    const out = await d.dockerOk(['exec', 'sec1', 'grep', '^Seccomp:', '/proc/self/status']);
    assert.match(out, /^Seccomp:\s+2$/);
    await d.dockerOk(['rm', '-f', 'sec1']);
  });

  it('the profile blocks a system call with EPERM; unconfined lets it through', { skip: probe ? false : 'no C compiler with a static libc to build the probe' }, async () => {
    const confined = await d.docker(['run', '--rm', '-v', `${probe}:/probe:ro`, IMG, '/probe']);
    assert.equal(confined.code, 1, confined.stderr);
    assert.equal(confined.stdout.trim(), 'vmsplice: Operation not permitted');
    const free = await d.docker(['run', '--rm', '--security-opt', 'seccomp=unconfined', '-v', `${probe}:/probe:ro`, IMG, '/probe']);
    assert.equal(free.code, 0, free.stderr);
    assert.equal(free.stdout.trim(), 'vmsplice: ok');
  });

  it('a new network namespace is refused (Operation not permitted)', async () => {
    const r = await d.docker(['run', '--rm', IMG, 'unshare', '-n', 'true']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Operation not permitted/);
  });

  it('seccomp=unconfined and --privileged run without a filter', async () => {
    assert.equal(await status(['--security-opt', 'seccomp=unconfined'], 'Seccomp'), '0');
    assert.equal(await status(['--privileged'], 'Seccomp'), '0');
    const hc = JSON.parse(await d.dockerOk(['create', '--name', 'unc', '--security-opt', 'seccomp=unconfined', IMG, 'true']).then(() => d.dockerOk(['inspect', '-f', '{{json .HostConfig.SecurityOpt}}', 'unc']))) as string[];
    assert.deepEqual(hc, ['seccomp=unconfined']);
    await d.dockerOk(['rm', 'unc']);
  });

  it('--security-opt seccomp=PROFILE.json applies that profile', async () => {
    const profile = join(dir, 'no-mkdir.json');
    writeFileSync(
      profile,
      JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }, null, 2),
    );
    const r = await d.docker(['run', '--rm', '--security-opt', `seccomp=${profile}`, IMG, 'mkdir', '/x']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Operation not permitted/);
    assert.equal(await status(['--security-opt', `seccomp=${profile}`], 'Seccomp'), '2');
  });

  it('a profile that does not decode is 400 at create, and nothing is created', async () => {
    const profile = join(dir, 'bad.json');
    writeFileSync(profile, JSON.stringify({ defaultAction: 5, syscalls: [] }));
    const r = await d.docker(['create', '--name', 'badprof', '--security-opt', `seccomp=${profile}`, IMG, 'true']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Error response from daemon: Decoding seccomp profile failed: json: cannot unmarshal number into Go struct field Seccomp.defaultAction/);
    const raw = await rawRequest(d.socket, 'POST', '/containers/create?name=badprof', JSON.stringify({ Image: IMG, Cmd: ['true'], HostConfig: { SecurityOpt: ['seccomp={not json'] } }));
    assert.equal(raw.status, 400);
    assert.match(raw.body, /Decoding seccomp profile failed/);
    const bad = await rawRequest(d.socket, 'POST', '/containers/create?name=badprof', JSON.stringify({ Image: IMG, Cmd: ['true'], HostConfig: { SecurityOpt: ['bogus=1'] } }));
    assert.equal(bad.status, 400);
    assert.match(bad.body, /invalid --security-opt 2: \\"bogus=1\\"/);
    assert.equal(await d.dockerOk(['ps', '-aq']), '');
  });

  it('no-new-privileges sets NoNewPrivs, for exec too', async () => {
    assert.equal(await status([], 'NoNewPrivs'), '0');
    assert.equal(await status(['--security-opt', 'no-new-privileges'], 'NoNewPrivs'), '1');
    assert.equal(await status(['--security-opt', 'no-new-privileges=true'], 'NoNewPrivs'), '1');
    await d.dockerOk(['run', '-d', '--name', 'nnp', '--security-opt', 'no-new-privileges', IMG, 'sleep', '1000']);
    assert.match(await d.dockerOk(['exec', 'nnp', 'grep', '^NoNewPrivs:', '/proc/self/status']), /^NoNewPrivs:\s+1$/);
    await d.dockerOk(['rm', '-f', 'nnp']);
  });

  it("Docker's masked and read-only paths are in place, not for --privileged", async () => {
    // runc masks the paths this kernel has (some have no /proc/kcore): each one is a mount that reads empty.
    const masked = ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'];
    const script = `for p in ${masked.join(' ')}; do [ -e $p ] || continue; grep -q " $p " /proc/self/mounts && echo "$p $(cat $p 2>/dev/null | wc -c) $( [ -d $p ] && ls -A $p | wc -l || echo 0)" || echo "$p unmasked"; done`;
    const lines = (await d.dockerOk(['run', '--rm', IMG, 'sh', '-c', script])).split('\n');
    assert.ok(lines.some((l) => l.startsWith('/proc/timer_list ')), lines.join('\n'));
    for (const l of lines) assert.match(l, /^\S+ 0 0$/, l);
    assert.equal(await d.dockerOk(['run', '--rm', IMG, 'sh', '-c', 'ls /sys/firmware | wc -l']), '0');
    const w = await d.docker(['run', '--rm', IMG, 'sh', '-c', 'echo 1 > /proc/sys/kernel/ns_last_pid']);
    assert.notEqual(w.code, 0);
    assert.match(w.stderr, /Read-only file system/);
    const mounts = await d.dockerOk(['run', '--rm', IMG, 'sh', '-c', 'grep " /proc/sys " /proc/self/mounts']);
    assert.match(mounts, /\bro\b/);
    const priv = await d.dockerOk(['run', '--rm', '--privileged', IMG, 'sh', '-c', 'grep -c " /proc/timer_list " /proc/self/mounts || true']);
    assert.equal(priv, '0');
  });

  it('docker info lists seccomp with the builtin profile', async () => {
    const opts = JSON.parse(await d.dockerOk(['info', '-f', '{{json .SecurityOptions}}'])) as string[];
    assert.ok(opts.includes('name=seccomp,profile=builtin'), JSON.stringify(opts));
    const text = await d.dockerOk(['info']);
    assert.match(text, /Security Options:\n\s+seccomp\n\s+Profile: builtin/);
  });

  it('docker-py runs with security_opt', { skip: skipWithoutDockerPy }, async () => {
    const script = `
import docker, sys
c = docker.DockerClient(base_url=sys.argv[1])
for opts in ([], ["seccomp=unconfined"], ["no-new-privileges:true"]):
    out = c.containers.run(sys.argv[2], ["grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status"], remove=True, security_opt=opts)
    print(" ".join(l.split()[1] for l in out.decode().splitlines()))
`;
    const r = dockerPy(d, script, IMG);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['0 2', '0 0', '1 2']);
  });
});

describe('security: the same filter under crun', { skip: !haveProfile ? 'no seccomp profile' : haveCrun ? false : 'crun is not installed' }, () => {
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon({ daemonArgs: ['--runtime', 'crun'] });
  });
  after(async () => {
    await d?.cleanup();
  });

  it('crun applies the profile, unconfined and no-new-privileges', async () => {
    const grep = async (opts: string[]): Promise<string> =>
      (await d.dockerOk(['run', '--rm', ...opts, IMG, 'grep', '-E', '^(NoNewPrivs|Seccomp):', '/proc/self/status'])).split('\n').map((l) => l.split(/\s+/)[1]).join(' ');
    assert.equal(await grep([]), '0 2');
    assert.equal(await grep(['--security-opt', 'seccomp=unconfined']), '0 0');
    assert.equal(await grep(['--security-opt', 'no-new-privileges']), '1 2');
  });

  it('later containers load the program crun compiled once, the same crun compiles itself', async () => {
    // The first container with the default filter has it compiled in the background.
    await d.dockerOk(['run', '--rm', IMG, 'true']);
    let spec: { annotations?: Record<string, string>; linux: { seccomp: unknown } } | undefined;
    let id = '';
    for (let i = 0; i < 50 && !spec?.annotations?.[BPF]; i++) {
      if (id) await d.dockerOk(['rm', '-f', id]);
      await new Promise((r) => setTimeout(r, 100));
      id = (await d.dockerOk(['run', '-d', IMG, 'sleep', '100'])).trim();
      spec = JSON.parse(readFileSync(join(d.execRoot, 'crun', id, 'config.json'), 'utf8')) as typeof spec;
    }
    const data = spec?.annotations?.[BPF];
    assert.ok(data, 'no container got the precompiled filter');
    assert.match(await d.dockerOk(['exec', id, 'grep', '^Seccomp:', '/proc/self/status']), /^Seccomp:\s+2$/);
    await d.dockerOk(['rm', '-f', id]);

    // crun's own compile of that section, in a bundle of its own, is the same program.
    const work = mkdtempSync(join(tmpdir(), 'arca-bpf-'));
    try {
      mkdirSync(join(work, 'b', 'rootfs', 'dev'), { recursive: true });
      writeFileSync(join(work, 'b', 'rootfs', 'x'), '', { mode: 0o755 });
      const own = { ociVersion: '1.0.2', process: { args: ['/x'], cwd: '/', user: { uid: 0, gid: 0 } }, root: { path: 'rootfs' }, mounts: [], linux: { namespaces: [{ type: 'mount' }], seccomp: spec!.linux.seccomp } };
      writeFileSync(join(work, 'b', 'config.json'), JSON.stringify(own));
      const crun = [CRUN, `--root=${join(work, 'state')}`];
      // The created container keeps crun's stdio: a pipe would never close, a file does not matter.
      const errFile = join(work, 'stderr');
      const fd = openSync(errFile, 'w');
      const r = spawnSync(crun[0]!, [...crun.slice(1), 'create', '--bundle', join(work, 'b'), 'own'], { stdio: ['ignore', 'ignore', fd], timeout: 30_000 });
      closeSync(fd);
      assert.equal(r.status, 0, readFileSync(errFile, 'utf8'));
      try {
        assert.ok(readFileSync(join(work, 'state', 'own', 'seccomp.bpf')).equals(Buffer.from(data, 'base64')), 'not the program crun compiles');
      } finally {
        spawnSync(crun[0]!, [...crun.slice(1), 'delete', '--force', 'own'], { stdio: 'ignore' });
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('the precompiled filter blocks a system call with EPERM', { skip: probe ? false : 'no C compiler with a static libc to build the probe' }, async () => {
    const confined = await d.docker(['run', '--rm', '-v', `${probe}:/probe:ro`, IMG, '/probe']);
    assert.equal(confined.code, 1, confined.stderr);
    assert.equal(confined.stdout.trim(), 'vmsplice: Operation not permitted');
  });
});
