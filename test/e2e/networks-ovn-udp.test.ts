/**
 * UDP across OVN's userspace datapath: OVS 3.1 forwards a veth's partial UDP checksums
 * uncompleted, so without the driver's fix (udp-checksum.ts) every datagram from a container to
 * the outside, and every answer, is dropped by its receiver as a checksum error.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { OUTSIDE_ADDR, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';

const ovnInstalled = spawnSync('which', ['ovsdb-server', 'ovn-northd', 'ovn-controller', 'ovs-vswitchd']).status === 0;

function udpCounters(netnsPath: string): { in: number; csumErrors: number } {
  const out = spawnSync('nsenter', [`--net=${netnsPath}`, 'nstat', '-az', 'UdpInDatagrams', 'UdpInCsumErrors'], { encoding: 'utf8' }).stdout;
  const get = (k: string): number => Number(new RegExp(`${k}\\s+(\\d+)`).exec(out)?.[1] ?? NaN);
  return { in: get('UdpInDatagrams'), csumErrors: get('UdpInCsumErrors') };
}

describe('ovn: UDP to the outside and back', { skip: ovnInstalled ? undefined : 'OVN is not installed (scripts/setup.sh installs it)' }, () => {
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon({ outside: true });
  });
  after(async () => {
    await d?.cleanup();
  });

  it('a container’s DNS query reaches a server outside with a valid checksum, and the answer comes back', async () => {
    await d.dockerOk(['network', 'create', '-d', 'ovn', '--subnet', '10.91.0.0/24', 'ovudp']);
    await d.dockerOk(['run', '-d', '--name', 'ovudp-a', '--network', 'ovudp', TEST_IMAGE, 'sleep', '600']);
    const sandbox = (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', 'ovudp-a'])).trim();
    const outside = `/run/netns/${d.outsideNs}`;
    // Any answer will do: the point is that the datagrams survive both ways.
    const server = spawn('nsenter', [`--net=${outside}`, 'timeout', '20', 'socat', 'UDP4-RECVFROM:53,fork', 'SYSTEM:echo pong'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const o0 = udpCounters(outside);
      const c0 = udpCounters(sandbox);
      await d.docker(['exec', 'ovudp-a', 'sh', '-c', `timeout 3 nslookup foo.test ${OUTSIDE_ADDR}`], { timeoutMs: 10_000 });
      const o1 = udpCounters(outside);
      const c1 = udpCounters(sandbox);
      assert.equal(o1.csumErrors - o0.csumErrors, 0, 'the outside saw UDP checksum errors');
      assert.ok(o1.in - o0.in >= 1, 'the outside received no datagram');
      assert.equal(c1.csumErrors - c0.csumErrors, 0, 'the container saw UDP checksum errors');
      assert.ok(c1.in - c0.in >= 1, 'no answer reached the container');
    } finally {
      server.kill('SIGKILL');
      await d.docker(['rm', '-f', 'ovudp-a']);
      await d.docker(['network', 'rm', 'ovudp']);
    }
  });
});
