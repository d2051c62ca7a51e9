/**
 * `docker update` on running and stopped containers: the new limits reach the container's cgroup
 * files (read here directly), inspect shows them, a restart keeps them; Docker's refusals.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { dockerPy, skipWithoutDockerPy } from './docker-clients.js';
import { cgroupValue, rawRequest } from './containers-support.js';

const MiB = 1024 * 1024;

describe('containers: update', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  const pidOf = async (name: string): Promise<number> => Number(await d.dockerOk(['inspect', '-f', '{{.State.Pid}}', name]));
  const hostConfig = async (name: string): Promise<Record<string, unknown>> =>
    JSON.parse(await d.dockerOk(['inspect', '-f', '{{json .HostConfig}}', name])) as Record<string, unknown>;
  /** The limits as the kernel holds them, v1 or v2. */
  const limits = (pid: number): Record<string, string> => {
    const out: Record<string, string> = {
      memory: cgroupValue(pid, 'memory', 'memory.limit_in_bytes', 'memory.max'),
      shares: cgroupValue(pid, 'cpu', 'cpu.shares', 'cpu.weight'),
      quota: cgroupValue(pid, 'cpu', 'cpu.cfs_quota_us', 'cpu.max'),
      cpus: cgroupValue(pid, 'cpuset', 'cpuset.cpus', 'cpuset.cpus'),
      pids: cgroupValue(pid, 'pids', 'pids.max', 'pids.max'),
    };
    return out;
  };
  const v1 = existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes');

  it('changes a running container in its cgroup, and inspect and a restart keep it', async () => {
    await d.dockerOk(['run', '-d', '--name', 'up1', '--memory', '64m', TEST_IMAGE, 'sleep', '600']);
    const out = await d.dockerOk(['update', '--memory', '128m', '--memory-swap', '256m', '--cpus', '0.5', '--cpu-shares', '512', '--cpuset-cpus', '0', '--pids-limit', '30', '--restart', 'on-failure:3', 'up1']);
    assert.equal(out, 'up1');
    const want = v1
      ? { memory: String(128 * MiB), shares: '512', quota: '50000', cpus: '0', pids: '30' }
      : { memory: String(128 * MiB), shares: '20', quota: '50000 100000', cpus: '0', pids: '30' };
    assert.deepEqual(limits(await pidOf('up1')), want);
    const hc = await hostConfig('up1');
    assert.equal(hc['Memory'], 128 * MiB);
    assert.equal(hc['MemorySwap'], 256 * MiB);
    assert.equal(hc['NanoCpus'], 5e8);
    assert.equal(hc['CpuShares'], 512);
    assert.equal(hc['CpusetCpus'], '0');
    assert.equal(hc['PidsLimit'], 30);
    assert.deepEqual(hc['RestartPolicy'], { Name: 'on-failure', MaximumRetryCount: 3 });
    await d.dockerOk(['restart', '-t', '0', 'up1']);
    assert.deepEqual(limits(await pidOf('up1')), want, 'a restart applies the updated limits');
    // --pids-limit 0 (or -1) lifts the limit.
    await d.dockerOk(['update', '--pids-limit', '-1', 'up1']);
    assert.equal(limits(await pidOf('up1')).pids, 'max');
  });

  it('a stopped container takes the update at its next start', async () => {
    await d.dockerOk(['create', '--name', 'up2', TEST_IMAGE, 'sleep', '600']);
    const r = await rawRequest(d.socket, 'POST', '/v1.51/containers/up2/update', JSON.stringify({ Memory: 100 * MiB, CpuShares: 256 }));
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { Warnings: [] });
    await d.dockerOk(['start', 'up2']);
    const l = limits(await pidOf('up2'));
    assert.equal(l.memory, String(100 * MiB));
    if (v1) assert.equal(l.shares, '256');
  });

  it("refuses as Docker does, and changes nothing then", async () => {
    const id = await d.dockerOk(['run', '-d', '--name', 'up3', '--memory', '64m', '--memory-swap', '128m', TEST_IMAGE, 'sleep', '600']);
    let r = await d.docker(['update', '--memory', '256m', 'up3']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), `Error response from daemon: Cannot update container ${id}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time`);
    assert.equal(limits(await pidOf('up3')).memory, String(64 * MiB));
    assert.equal((await hostConfig('up3'))['Memory'], 64 * MiB);

    r = await d.docker(['update', '--memory', '1m', 'up3']);
    assert.match(r.stderr, /Minimum memory limit allowed is 6MB/);

    await d.dockerOk(['update', '--cpus', '1', 'up3']);
    r = await d.docker(['update', '--cpu-quota', '20000', 'up3']);
    assert.equal(r.stderr.trim(), `Error response from daemon: Cannot update container ${id}: Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set`);
    r = await d.docker(['update', '--cpuset-cpus', '0-63', 'up3']);
    assert.match(r.stderr, /Requested CPUs are not available - requested 0-63, available: /);

    const rm = await d.dockerOk(['run', '-d', '--rm', '--name', 'up4', TEST_IMAGE, 'sleep', '600']);
    r = await d.docker(['update', '--restart', 'always', 'up4']);
    assert.equal(r.stderr.trim(), `Error response from daemon: Cannot update container ${rm}: Restart policy cannot be updated because AutoRemove is enabled for the container`);
    const api = await rawRequest(d.socket, 'POST', '/v1.51/containers/up4/update', JSON.stringify({ RestartPolicy: { Name: 'always' } }));
    assert.equal(api.status, 409);
    r = await d.docker(['update', '--memory', '64m', 'nope']);
    assert.match(r.stderr, /No such container: nope/);
  });

  it('a limit below what the container uses fails with the kernel refusal, and the record keeps the old one', { skip: v1 ? false : 'the v1 memory controller refuses a limit below usage; v2 reclaims instead' }, async () => {
    const id = await d.dockerOk(['run', '-d', '--name', 'up5', '--memory', '64m', TEST_IMAGE, 'sh', '-c', 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=30 2>/dev/null; sleep 600']);
    const pid = await pidOf('up5');
    for (let i = 0; i < 50 && Number(cgroupValue(pid, 'memory', 'memory.usage_in_bytes', 'memory.current')) < 30 * MiB; i++) await new Promise((r) => setTimeout(r, 100));
    const r = await d.docker(['update', '--memory', '10m', '--memory-swap', '10m', 'up5']);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.startsWith(`Error response from daemon: Cannot update container ${id}: `), r.stderr);
    assert.equal((await hostConfig('up5'))['Memory'], 64 * MiB);
    assert.equal(limits(pid).memory, String(64 * MiB));
  });

  it('docker-py updates a container', { skip: skipWithoutDockerPy }, async () => {
    await d.dockerOk(['run', '-d', '--name', 'up6', TEST_IMAGE, 'sleep', '600']);
    const script = `
import docker, sys
c = docker.DockerClient(base_url=sys.argv[1]).containers.get("up6")
print(c.update(mem_limit="200m", memswap_limit="400m"))
c.reload()
print(c.attrs["HostConfig"]["Memory"])
`;
    const r = dockerPy(d, script);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ["{'Warnings': []}", String(200 * MiB)]);
    assert.equal(limits(await pidOf('up6')).memory, String(200 * MiB));
  });
});
