/**
 * Containers end to end with the stock docker CLI: `run` (output, exit codes, stdin), `ps` and its
 * filters, `inspect`, and what the create options do inside the container (user, env, mounts,
 * resources, capabilities, network modes).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { cgroupValue, inspect, rawRequest } from './containers-support.js';

const IMG = TEST_IMAGE;

/** Capability bit numbers (linux/capability.h). */
const CAP = { CHOWN: 0, NET_ADMIN: 12, NET_RAW: 13, SYS_ADMIN: 21 };

function capEff(status: string): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  assert.ok(m, `no CapEff in ${status}`);
  return BigInt(`0x${m[1]}`);
}

const hasCap = (mask: bigint, bit: number): boolean => ((mask >> BigInt(bit)) & 1n) === 1n;

describe('containers: run, ps, inspect, options', () => {
  let d: TestDaemon;
  let hostDir: string;

  before(async () => {
    d = await startDaemon({ outside: true });
    hostDir = mkdtempSync(join(tmpdir(), 'arca-bind-'));
  });

  after(async () => {
    await d?.cleanup();
    if (hostDir) rmSync(hostDir, { recursive: true, force: true });
  });

  const run = (args: string[], input?: string) => d.docker(['run', ...args], { input });
  const runOut = async (args: string[]): Promise<string> => d.dockerOk(['run', '--rm', ...args]);

  describe('run', () => {
    it('prints the output and exits 0, leaving nothing with --rm', async () => {
      const r = await run(['--rm', '--name', 'hi', IMG, 'echo', 'hi']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'hi\n');
      assert.equal(await d.dockerOk(['ps', '-aq', '--filter', 'name=^hi$']), '');
    });

    it("has Docker's init layer: /.dockerenv and /etc/mtab, in no diff and no commit", async () => {
      const out = await d.dockerOk(['run', '--name', 'initlayer', IMG, 'sh', '-c', 'test -f /.dockerenv && readlink /etc/mtab && touch /mark']);
      assert.equal(out, '/proc/mounts');
      assert.equal(await d.dockerOk(['diff', 'initlayer']), 'A /mark');
      await d.dockerOk(['commit', 'initlayer', 'arca-test/initlayer:1']);
      // The committed image holds /mark only; a container of it gets its own init layer.
      const layer = await d.dockerOk(['run', '--rm', 'arca-test/initlayer:1', 'sh', '-c', 'ls /mark /.dockerenv']);
      assert.deepEqual(layer.split('\n').sort(), ['/.dockerenv', '/mark']);
      const hist = await d.dockerOk(['history', '--format', '{{.Size}}', 'arca-test/initlayer:1']);
      assert.equal(hist.split('\n')[0], '0B');
      await d.dockerOk(['rm', 'initlayer']);
      await d.dockerOk(['rmi', 'arca-test/initlayer:1']);
    });

    it('returns the container exit code', async () => {
      const r = await run([IMG, 'sh', '-c', 'exit 3']);
      assert.equal(r.code, 3, r.stderr);
    });

    it('returns the exit code with --rm too', async () => {
      const r = await run(['--rm', IMG, 'sh', '-c', 'exit 3']);
      assert.equal(r.code, 3, r.stderr);
    });

    it('keeps stdout and stderr apart', async () => {
      const r = await run(['--rm', IMG, 'sh', '-c', 'echo to-out; echo to-err >&2']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'to-out\n');
      assert.equal(r.stderr, 'to-err\n');
    });

    it('pipes stdin with -i', async () => {
      const r = await run(['-i', '--rm', IMG, 'cat'], 'x\nsecond line\n');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'x\nsecond line\n');
    });

    it('closes stdin at EOF so the command ends (wc -l)', async () => {
      const r = await run(['-i', '--rm', IMG, 'wc', '-l'], 'a\nb\nc\n');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), '3');
    });
  });

  describe('ps and inspect', () => {
    let webId: string;

    before(async () => {
      webId = await d.dockerOk(['run', '-d', '--name', 'web', '-l', 'tier=front', '-l', 'team', IMG, 'sleep', '1000']);
      await d.dockerOk(['run', '--name', 'done0', IMG, 'true']);
      await d.docker(['run', '--name', 'done7', IMG, 'sh', '-c', 'exit 7']);
    });

    it('run -d prints the full id', () => {
      assert.match(webId, /^[0-9a-f]{64}$/);
    });

    it('ps lists running containers with their name and an Up status', async () => {
      const table = await d.dockerOk(['ps']);
      assert.match(table.split('\n')[0]!, /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
      const row = table.split('\n').find((l) => l.endsWith(' web'));
      assert.ok(row, table);
      assert.ok(row.startsWith(webId.slice(0, 12)), row);
      assert.match(row, /\bUp /);
      assert.doesNotMatch(table, /done0|done7/);
      assert.equal(await d.dockerOk(['ps', '--format', '{{.Names}}|{{.Image}}|{{.Command}}', '--filter', 'name=web']), `web|${IMG}|"sleep 1000"`);
    });

    it('ps -a --filter status=exited and exited=', async () => {
      const exited = (await d.dockerOk(['ps', '-a', '--filter', 'status=exited', '--format', '{{.Names}} {{.Status}}'])).split('\n');
      assert.ok(exited.some((l) => /^done0 Exited \(0\) /.test(l)), exited.join('\n'));
      assert.ok(exited.some((l) => /^done7 Exited \(7\) /.test(l)), exited.join('\n'));
      assert.ok(!exited.some((l) => l.startsWith('web ')));
      assert.equal(await d.dockerOk(['ps', '-a', '--filter', 'exited=7', '--format', '{{.Names}}']), 'done7');
    });

    it('ps --filter name= matches substrings, -q prints short ids, --no-trunc full ones', async () => {
      // 'eb' is in no word of the random-name lists (a random name like sweet_goldberg contains 'we').
      assert.equal(await d.dockerOk(['ps', '-a', '--filter', 'name=eb', '--format', '{{.Names}}']), 'web');
      assert.equal(await d.dockerOk(['ps', '-q', '--filter', 'name=web']), webId.slice(0, 12));
      assert.equal(await d.dockerOk(['ps', '-q', '--no-trunc', '--filter', 'name=web']), webId);
      const names = (await d.dockerOk(['ps', '-a', '--filter', 'name=done', '--format', '{{.Names}}'])).split('\n').sort();
      assert.deepEqual(names, ['done0', 'done7']);
    });

    it('ps -n / --last shows the newest containers, running or not', async () => {
      assert.equal(await d.dockerOk(['ps', '-n', '1', '--format', '{{.Names}}']), 'done7');
      assert.equal(await d.dockerOk(['ps', '--last', '2', '--format', '{{.Names}}']), 'done7\ndone0');
      assert.equal(await d.dockerOk(['ps', '-l', '--format', '{{.Names}}']), 'done7');
    });

    it('ps --filter label=', async () => {
      assert.equal(await d.dockerOk(['ps', '-a', '--filter', 'label=tier=front', '--format', '{{.Names}}']), 'web');
      assert.equal(await d.dockerOk(['ps', '-a', '--filter', 'label=team', '--format', '{{.Names}}']), 'web');
      assert.equal(await d.dockerOk(['ps', '-a', '--filter', 'label=tier=back', '-q']), '');
    });

    it('inspect shows state, name, hostname, restart policy and labels', async () => {
      const c = await inspect(d, 'web');
      assert.equal(c.Id, webId);
      assert.equal(c.Name, '/web');
      assert.equal(c.State.Status, 'running');
      assert.equal(c.State.Running, true);
      assert.ok(c.State.Pid > 0);
      assert.equal(c.State.ExitCode, 0);
      assert.equal(c.Config.Hostname, webId.slice(0, 12));
      assert.deepEqual(c.HostConfig.RestartPolicy, { Name: 'no', MaximumRetryCount: 0 });
      assert.deepEqual(c.Config.Labels, { tier: 'front', team: '' });
      assert.deepEqual(c.Mounts, []);
      // The pid is a real process on this machine.
      assert.match(readFileSync(`/proc/${c.State.Pid}/cmdline`, 'utf8'), /^sleep\0/);
      const stopped = await inspect(d, 'done7');
      assert.equal(stopped.State.Running, false);
      assert.equal(stopped.State.Pid, 0);
      assert.equal(stopped.State.ExitCode, 7);
      assert.equal(stopped.State.Status, 'exited');
      assert.equal(await d.dockerOk(['inspect', '-f', '{{.State.ExitCode}}', webId.slice(0, 8)]), '0');
    });

    it('inspect fills HostConfig defaults as dockerd does (compared with 20.10)', async () => {
      const raw = JSON.parse((await rawRequest(d.socket, 'GET', '/v1.51/containers/web/json')).body) as { HostConfig: Record<string, unknown>; ExecIDs: unknown; Config: Record<string, unknown> };
      const hc = raw.HostConfig;
      // No VOLUME in the image, no -v: null, not {}.
      assert.equal(raw.Config['Volumes'], null);
      assert.equal(hc['PidsLimit'], null);
      assert.equal(hc['MemorySwappiness'], null);
      assert.equal(hc['CgroupnsMode'], 'host');
      assert.equal(hc['Runtime'], 'runc');
      assert.ok(!('Init' in hc), 'Init is omitempty');
      assert.ok((hc['MaskedPaths'] as string[]).includes('/proc/kcore'));
      assert.ok((hc['ReadonlyPaths'] as string[]).includes('/proc/sys'));
      // Finished execs are not the container's any more; nor is one whose start failed.
      await d.dockerOk(['exec', 'web', 'true']);
      await d.docker(['exec', '-u', 'nobody-here', 'web', 'true']);
      await d.docker(['exec', '-d', '-u', 'nobody-here', 'web', 'true']);
      assert.equal(raw.ExecIDs, null);
      assert.equal(JSON.parse((await rawRequest(d.socket, 'GET', '/v1.51/containers/web/json')).body).ExecIDs, null);
      // Command: arguments with a space in single quotes, as moby's list.
      const id = await d.dockerOk(['create', IMG, 'sh', '-c', 'echo a b']);
      assert.equal(await d.dockerOk(['ps', '-a', '--no-trunc', '--filter', `id=${id}`, '--format', '{{.Command}}']), `"sh -c 'echo a b'"`);
      await d.dockerOk(['rm', id]);
    });

    it('the hostname inside is the short id, or --hostname', async () => {
      assert.equal(await d.dockerOk(['exec', 'web', 'hostname']), webId.slice(0, 12));
      const id = await d.dockerOk(['run', '-d', '--hostname', 'box1', IMG, 'sleep', '1000']);
      assert.equal(await d.dockerOk(['exec', id, 'hostname']), 'box1');
      assert.equal(await d.dockerOk(['inspect', '-f', '{{.Config.Hostname}}', id]), 'box1');
      assert.equal(await d.dockerOk(['exec', id, 'cat', '/etc/hostname']), 'box1');
      await d.dockerOk(['rm', '-f', id]);
    });
  });

  describe('process options', () => {
    it('-e sets the environment, next to the image PATH and HOSTNAME', async () => {
      const out = await runOut(['-e', 'FOO=bar baz', '-e', 'EMPTY=', IMG, 'env']);
      const env = out.split('\n');
      assert.ok(env.includes('FOO=bar baz'), out);
      assert.ok(env.includes('EMPTY='), out);
      assert.ok(env.some((e) => e.startsWith('PATH=')), out);
      assert.ok(env.some((e) => e.startsWith('HOSTNAME=')), out);
      assert.ok(env.includes('HOME=/root'), out);
    });

    it('-w sets the working directory, creating it', async () => {
      assert.equal(await runOut(['-w', '/tmp', IMG, 'pwd']), '/tmp');
      assert.equal(await runOut(['-w', '/new/dir', IMG, 'pwd']), '/new/dir');
    });

    it('-u takes a uid or a user name from the image', async () => {
      assert.equal(await runOut(['-u', '1000', IMG, 'id', '-u']), '1000');
      assert.equal(await runOut(['-u', 'app', IMG, 'id', '-u']), '1000');
      assert.equal(await runOut(['-u', 'app', IMG, 'sh', '-c', 'echo $HOME']), '/home/app');
      assert.equal(await runOut(['-u', '1000:1000', IMG, 'id', '-g']), '1000');
      assert.equal(await runOut([IMG, 'id', '-u']), '0');
      const bad = await run(['--rm', '-u', 'nobody-here', IMG, 'true']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /nobody-here/);
    });

    it('--entrypoint replaces the image entrypoint and drops its cmd', async () => {
      assert.equal(await runOut(['--entrypoint', 'echo', IMG, 'hello', 'there']), 'hello there');
      assert.equal(await runOut(['--entrypoint', 'hostname', '--hostname', 'ep', IMG]), 'ep');
    });
  });

  describe('mounts', () => {
    it('--tmpfs mounts a tmpfs', async () => {
      const line = await runOut(['--tmpfs', '/x', IMG, 'sh', '-c', 'grep " /x " /proc/mounts']);
      assert.match(line, /^tmpfs \/x tmpfs rw,/);
      const c = await d.dockerOk(['run', '-d', '--tmpfs', '/x', IMG, 'sleep', '1000']);
      assert.deepEqual(
        (await inspect(d, c)).Mounts.map((m) => [m.Type, m.Destination]),
        [['tmpfs', '/x']],
      );
      await d.dockerOk(['rm', '-f', c]);
    });

    it('-v /hostdir:/data binds a host folder both ways', async () => {
      await runOut(['-v', `${hostDir}:/data`, IMG, 'sh', '-c', 'echo written-inside > /data/f']);
      assert.equal(readFileSync(join(hostDir, 'f'), 'utf8'), 'written-inside\n');
      assert.equal(await runOut(['-v', `${hostDir}:/data:ro`, IMG, 'cat', '/data/f']), 'written-inside');
      const ro = await run(['--rm', '-v', `${hostDir}:/data:ro`, IMG, 'sh', '-c', 'echo x > /data/g']);
      assert.notEqual(ro.code, 0);
      assert.match(ro.stderr, /Read-only file system/);
    });

    it('-v named:/data keeps data across containers', async () => {
      await runOut(['-v', 'keep:/data', IMG, 'sh', '-c', 'echo persisted > /data/f']);
      assert.equal(await runOut(['-v', 'keep:/data', IMG, 'cat', '/data/f']), 'persisted');
      const id = await d.dockerOk(['create', '-v', 'keep:/data', IMG, 'true']);
      const m = (await inspect(d, id)).Mounts;
      assert.equal(m.length, 1);
      assert.equal(m[0]!.Type, 'volume');
      assert.equal(m[0]!.Name, 'keep');
      assert.equal(m[0]!.Destination, '/data');
      await d.dockerOk(['rm', id]);
      assert.equal(await d.dockerOk(['volume', 'ls', '-q', '--filter', 'name=^keep$']), 'keep');
    });

    it('--read-only makes the root file system read-only, but not its volumes', async () => {
      const r = await run(['--rm', '--read-only', IMG, 'touch', '/x']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Read-only file system/);
      assert.equal(await runOut(['--read-only', '--tmpfs', '/scratch', IMG, 'sh', '-c', 'touch /scratch/x && echo ok']), 'ok');
    });
  });

  describe('resources and privileges', () => {
    it('--memory 64m and --cpus 0.5 reach the cgroup', async () => {
      const id = await d.dockerOk(['run', '-d', '--memory', '64m', '--cpus', '0.5', IMG, 'sleep', '1000']);
      const c = await inspect(d, id);
      assert.equal(c.HostConfig.Memory, 64 * 1024 * 1024);
      assert.equal(c.HostConfig.NanoCpus, 500_000_000);
      const pid = c.State.Pid;
      assert.equal(cgroupValue(pid, 'memory', 'memory.limit_in_bytes', 'memory.max'), String(64 * 1024 * 1024));
      const quota = cgroupValue(pid, 'cpu', 'cpu.cfs_quota_us', 'cpu.max');
      if (quota.includes(' ')) assert.equal(quota, '50000 100000');
      else {
        assert.equal(quota, '50000');
        assert.equal(cgroupValue(pid, 'cpu', 'cpu.cfs_period_us', 'cpu.max'), '100000');
      }
      await d.dockerOk(['rm', '-f', id]);
    });

    it('OOMKilled tells whether the memory limit killed something', async () => {
      const r = await run(['--name', 'oom', '--memory', '16m', '--memory-swap', '16m', IMG, 'sh', '-c', 'head -c 300m /dev/zero | tail']);
      assert.notEqual(r.code, 0);
      assert.equal(await d.dockerOk(['inspect', '-f', '{{.State.OOMKilled}}', 'oom']), 'true');
      await d.dockerOk(['rm', 'oom']);
      const ok = await d.dockerOk(['run', '-d', '--memory', '16m', IMG, 'true']);
      await d.dockerOk(['wait', ok]);
      assert.equal(await d.dockerOk(['inspect', '-f', '{{.State.OOMKilled}}', ok]), 'false');
      await d.dockerOk(['rm', ok]);
    });

    it('has Docker default capabilities; --cap-add and --cap-drop change them', async () => {
      const plain = capEff(await runOut([IMG, 'cat', '/proc/self/status']));
      assert.ok(hasCap(plain, CAP.CHOWN) && hasCap(plain, CAP.NET_RAW));
      assert.ok(!hasCap(plain, CAP.NET_ADMIN) && !hasCap(plain, CAP.SYS_ADMIN));
      const changed = capEff(await runOut(['--cap-add', 'NET_ADMIN', '--cap-drop', 'chown', IMG, 'cat', '/proc/self/status']));
      assert.ok(hasCap(changed, CAP.NET_ADMIN));
      assert.ok(!hasCap(changed, CAP.CHOWN));
      const chown = await run(['--rm', '--cap-drop', 'CHOWN', IMG, 'chown', '1000', '/tmp']);
      assert.notEqual(chown.code, 0);
      assert.match(chown.stderr, /Operation not permitted/);
      const none = capEff(await runOut(['--cap-drop', 'ALL', IMG, 'cat', '/proc/self/status']));
      assert.equal(none, 0n);
    });

    it('--privileged has every capability the daemon has, and can mount', async () => {
      const daemonBounding = capEff(readFileSync('/proc/self/status', 'utf8').replace(/^CapEff:.*$/m, '').replace('CapBnd:', 'CapEff:'));
      const priv = capEff(await runOut(['--privileged', IMG, 'cat', '/proc/self/status']));
      assert.equal(priv, daemonBounding);
      assert.equal(await runOut(['--privileged', IMG, 'sh', '-c', 'mkdir -p /m && mount -t tmpfs t /m && echo mounted']), 'mounted');
      const all = capEff(await runOut(['--cap-add', 'ALL', IMG, 'cat', '/proc/self/status']));
      assert.equal(all, daemonBounding);
    });

    it('ping works inside (CAP_NET_RAW)', async () => {
      const out = await runOut([IMG, 'ping', '-c1', '-W2', '127.0.0.1']);
      assert.match(out, /1 packets received/);
    });
  });

  describe('network modes', () => {
    const links = async (args: string[]): Promise<string[]> =>
      (await runOut([...args, IMG, 'ip', '-o', 'link']))
        .split('\n')
        .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1])
        .filter((x): x is string => !!x)
        .sort();

    it('--network none has only lo', async () => {
      assert.deepEqual(await links(['--network', 'none']), ['lo']);
    });

    it('--network host sees the host namespace interfaces and hostname', async () => {
      const names = await links(['--network', 'host']);
      assert.ok(names.includes(`${d.name}-hv`), names.join(' '));
      const id = await d.dockerOk(['create', '--network', 'host', IMG, 'true']);
      assert.equal((await inspect(d, id)).HostConfig.NetworkMode, 'host');
      await d.dockerOk(['rm', id]);
    });

    it('--network container:<other> shares the other container netns', async () => {
      const other = await d.dockerOk(['run', '-d', '--name', 'netowner', IMG, 'sleep', '1000']);
      const inode = await d.dockerOk(['exec', other, 'readlink', '/proc/self/ns/net']);
      assert.equal(await runOut(['--network', 'container:netowner', IMG, 'readlink', '/proc/self/ns/net']), inode);
      assert.notEqual(await runOut([IMG, 'readlink', '/proc/self/ns/net']), inode);
      await d.dockerOk(['rm', '-f', other]);
    });
  });
});
