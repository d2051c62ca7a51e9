import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  cgroupDirs,
  parseBlkioV1,
  parseCgroupMounts,
  parseFlatKeyed,
  parseMemoryStat,
  parseIoStatV2,
  parsePercpu,
  parseProcCgroup,
  parsePidsLimit,
  parseSingle,
  parseSystemCpuUsage,
} from '../../src/containers/stats/cgroup-files.js';
import { parseNetDev } from '../../src/containers/stats/net-stats.js';
import { stringifyJson } from '../../src/json-integer.js';

const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd,release_agent=/x
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
`;
const PROC_CGROUP = `9:name=systemd:/arca/abc
8:pids:/arca/abc
7:blkio:/arca/abc
4:memory:/arca/abc
2:cpuacct:/arca/abc
1:cpu:/arca/abc
0::/arca/abc
`;

describe('cgroup layout', () => {
  it('finds each controller in its v1 hierarchy and the v2 folder on a hybrid machine', () => {
    const dirs = cgroupDirs(parseProcCgroup(PROC_CGROUP), parseCgroupMounts(HYBRID_MOUNTINFO));
    assert.equal(dirs.v1.get('memory'), '/sys/fs/cgroup/memory/arca/abc');
    assert.equal(dirs.v1.get('cpuacct'), '/sys/fs/cgroup/cpuacct/arca/abc');
    assert.equal(dirs.v1.get('blkio'), '/sys/fs/cgroup/blkio/arca/abc');
    assert.equal(dirs.v1.get('name=systemd'), '/sys/fs/cgroup/systemd/arca/abc');
    assert.equal(dirs.v2, '/sys/fs/cgroup/unified/arca/abc');
  });

  it('reads a pure v2 machine and a joined cpu,cpuacct hierarchy', () => {
    const v2 = cgroupDirs(parseProcCgroup('0::/arca/x\n'), parseCgroupMounts('25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n'));
    assert.equal(v2.v2, '/sys/fs/cgroup/arca/x');
    assert.equal(v2.v1.size, 0);
    const joined = cgroupDirs(parseProcCgroup('3:cpu,cpuacct:/arca/y\n'), parseCgroupMounts('30 1 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n'));
    assert.equal(joined.v1.get('cpuacct'), '/sys/fs/cgroup/cpu,cpuacct/arca/y');
  });

  it('strips the mount root of a sub-tree mount', () => {
    const dirs = cgroupDirs(parseProcCgroup('4:memory:/outer/arca/z\n'), parseCgroupMounts('35 31 0:32 /outer /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n'));
    assert.equal(dirs.v1.get('memory'), '/sys/fs/cgroup/memory/arca/z');
  });
});

describe('cgroup file parsers', () => {
  it('flat keyed files and single values (max is no limit)', () => {
    assert.deepEqual(parseFlatKeyed('cache 4096\nrss 61440\nbogus x\n'), { cache: 4096, rss: 61440 });
    const mem = parseMemoryStat('cache 4096\nhierarchical_memory_limit 9223372036854771712\n');
    assert.equal(stringifyJson(mem), '{"cache":4096,"hierarchical_memory_limit":9223372036854771712}');
    // pids.max: v2's "max" is containerd's 2^64-1; v1's is no limit (left out).
    assert.equal(stringifyJson({ limit: parsePidsLimit('max\n', 2) }), '{"limit":18446744073709551615}');
    assert.equal(parsePidsLimit('max\n', 1), undefined);
    assert.equal(parsePidsLimit('50\n', 2), 50);
    assert.equal(parsePidsLimit('0\n', 1), undefined);
    assert.equal(parseSingle('67108864\n'), 67108864);
    assert.equal(parseSingle('max\n'), undefined);
    assert.equal(parseSingle(undefined), undefined);
    assert.deepEqual(parsePercpu('621876436 822885976 \n'), [621876436, 822885976]);
  });

  it('v1 blkio with ops, time/sectors without, Total skipped', () => {
    assert.deepEqual(parseBlkioV1('8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n'), [
      { major: 8, minor: 0, op: 'Read', value: 4096 },
      { major: 8, minor: 0, op: 'Write', value: 8192 },
      { major: 8, minor: 0, op: 'Total', value: 12288 },
    ]);
    assert.deepEqual(parseBlkioV1('8:16 77\n'), [{ major: 8, minor: 16, op: '', value: 77 }]);
  });

  it('v2 io.stat as Docker maps it', () => {
    const { bytes, ios } = parseIoStatV2('259:0 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0\n');
    assert.deepEqual(bytes, [
      { major: 259, minor: 0, op: 'read', value: 1024 },
      { major: 259, minor: 0, op: 'write', value: 2048 },
    ]);
    assert.deepEqual(ios.map((e) => e.value), [3, 4]);
  });

  it('system CPU usage from /proc/stat in nanoseconds (8 fields, guest time left out)', () => {
    assert.equal(parseSystemCpuUsage('cpu  100 0 50 1000 10 0 5 0 7 0\ncpu0 1 2 3\n'), 1165 * 1e7);
    assert.equal(parseSystemCpuUsage(''), 0);
  });
});

describe('parseNetDev', () => {
  it("reads each interface's counters and leaves loopback out", () => {
    const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1702      19    1    2    0     0          0         0      266       3    4    5    0     0       0          0
`;
    assert.deepEqual(parseNetDev(text), {
      eth0: { rx_bytes: 1702, rx_packets: 19, rx_errors: 1, rx_dropped: 2, tx_bytes: 266, tx_packets: 3, tx_errors: 4, tx_dropped: 5 },
    });
  });
});
