import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatResult, parseCgroupLayout } from '../../src/cli/doctor.js';

const MAIN_JS = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'src', 'cli', 'main.js');

const HYBRID = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate`;
const V2 = `25 22 0:22 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot`;

describe('doctor', () => {
  it('tells hybrid, v1 and v2 cgroup layouts apart', () => {
    assert.deepEqual(parseCgroupLayout(HYBRID), {
      kind: 'hybrid',
      v1Controllers: ['cpu', 'cpuacct', 'memory'],
      v2Mount: '/sys/fs/cgroup/unified',
    });
    assert.equal(parseCgroupLayout(V2).kind, 'v2');
    assert.equal(parseCgroupLayout(V2).v2Mount, '/sys/fs/cgroup');
    assert.equal(parseCgroupLayout(HYBRID.split('\n').slice(0, 4).join('\n')).kind, 'v1');
    assert.equal(parseCgroupLayout('').kind, 'none');
  });

  it('prints a mark, the finding and the fix', () => {
    assert.equal(formatResult({ status: 'ok', text: 'runc 1.1.5' }), '✓ runc 1.1.5');
    assert.equal(
      formatResult({ status: 'fail', text: 'conmon: not found', fix: 'apt-get install conmon' }),
      '✗ conmon: not found\n    fix: apt-get install conmon',
    );
  });

  it('passes on this machine and reports runc', () => {
    const r = spawnSync(process.execPath, [MAIN_JS, 'doctor'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^✓ runc \S+ \(\/\S+\/runc\)$/m);
    assert.match(r.stdout, /^✓ cgroups (v1|v2|hybrid)/m);
    assert.match(r.stdout, /all required checks passed/);
  });
});
