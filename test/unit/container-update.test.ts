import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { applyUpdate, parseCpuset, parseUpdateRequest } from '../../src/containers/container-update.js';
import { ociResources, resourceLimits, updateArgs } from '../../src/runtime/resources.js';
import { Conflict, InvalidParameter } from '../../src/errors.js';
import type { HostConfig } from '../../src/containers/container-record.js';

const MiB = 1024 * 1024;
const hc = (o: Partial<HostConfig> = {}): HostConfig =>
  ({ Memory: 0, MemorySwap: 0, NanoCpus: 0, CpuShares: 0, CpuQuota: 0, CpuPeriod: 0, PidsLimit: null, AutoRemove: false, RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, ...o }) as HostConfig;

describe('parseUpdateRequest', () => {
  it('keeps what is sent, zero meaning unchanged', () => {
    const r = parseUpdateRequest({ Memory: 128 * MiB, CpuShares: 0, PidsLimit: 5, RestartPolicy: { Name: '' } }, 2);
    assert.equal(r.Memory, 128 * MiB);
    assert.equal(r.PidsLimit, 5);
    assert.equal(r.RestartPolicy, undefined);
    assert.equal(parseUpdateRequest({}, 2).PidsLimit, undefined);
  });
  it("refuses with Docker's words", () => {
    const bad = (body: Record<string, unknown>, msg: string): void =>
      assert.throws(() => parseUpdateRequest(body, 2), (e: unknown) => e instanceof InvalidParameter && e.message === msg);
    bad({ Memory: MiB }, 'Minimum memory limit allowed is 6MB');
    bad({ Memory: 64 * MiB, MemorySwap: 32 * MiB }, 'Minimum memoryswap limit should be larger than memory limit, see usage');
    bad({ NanoCpus: 1e9, CpuPeriod: 100000 }, 'Conflicting options: Nano CPUs and CPU Period cannot both be set');
    bad({ NanoCpus: 3e9 }, 'Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available');
    bad({ CpuPeriod: 10 }, 'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
    bad({ CpuQuota: 10 }, 'CPU cfs quota can not be less than 1ms (i.e. 1000)');
    bad({ CpusetCpus: 'a-b' }, 'Invalid value a-b for cpuset cpus');
    bad({ RestartPolicy: { Name: 'sometimes' } }, "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'");
    bad({ RestartPolicy: { Name: 'always', MaximumRetryCount: 2 } }, "invalid restart policy: maximum retry count can only be used with 'on-failure'");
  });
  it('reads cpuset lists', () => {
    assert.deepEqual([...parseCpuset('0-2,5')!], [0, 1, 2, 5]);
    assert.equal(parseCpuset('2-1'), undefined);
    assert.equal(parseCpuset(''), undefined);
  });
});

describe('applyUpdate', () => {
  it('merges into a copy', () => {
    const cur = hc({ Memory: 64 * MiB });
    const next = applyUpdate('id1', cur, parseUpdateRequest({ Memory: 128 * MiB, PidsLimit: -1, RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 } }, 2));
    assert.equal(cur.Memory, 64 * MiB);
    assert.equal(next.Memory, 128 * MiB);
    assert.equal(next.PidsLimit, 0);
    assert.deepEqual(next.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
  });
  it('refuses what moby refuses, with 409', () => {
    const bad = (cur: HostConfig, body: Record<string, unknown>, msg: string): void =>
      assert.throws(() => applyUpdate('id1', cur, parseUpdateRequest(body, 2)), (e: unknown) => e instanceof Conflict && e.message === `Cannot update container id1: ${msg}`);
    bad(hc({ Memory: 64 * MiB, MemorySwap: 128 * MiB }), { Memory: 256 * MiB }, 'Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
    bad(hc({ NanoCpus: 1e9 }), { CpuQuota: 20000 }, 'Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
    bad(hc({ CpuPeriod: 50000 }), { NanoCpus: 1e9 }, 'Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set');
    bad(hc({ AutoRemove: true }), { RestartPolicy: { Name: 'always' } }, 'Restart policy cannot be updated because AutoRemove is enabled for the container');
  });
});

describe('resource limits', () => {
  it('render the same limits for the OCI spec and runc update', () => {
    const h = hc({ Memory: 64 * MiB, MemorySwap: 128 * MiB, NanoCpus: 5e8, CpuShares: 512, PidsLimit: 30, CpusetCpus: '0' });
    assert.deepEqual(ociResources(h), { memory: { limit: 64 * MiB, swap: 128 * MiB }, cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0' }, pids: { limit: 30 } });
    assert.deepEqual(updateArgs(resourceLimits(h)), [
      '--memory', String(64 * MiB), '--memory-swap', String(128 * MiB), '--cpu-share', '512', '--cpu-period', '100000', '--cpu-quota', '50000', '--cpuset-cpus', '0', '--pids-limit', '30',
    ]);
  });
  it('no limits: an empty OCI section, and runc update lifts the pids limit', () => {
    assert.deepEqual(ociResources(hc()), {});
    assert.deepEqual(updateArgs(resourceLimits(hc())), ['--pids-limit', '-1']);
  });
});
