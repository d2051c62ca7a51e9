/**
 * The bench's bare OVN switch (bench/bare-ovn.ts), built for real: it carries TCP between its two
 * netns (the userspace-TSO trap would drop it while ping still works), grows by idle ports, and
 * leaves no process, namespace or folder behind.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { BareOvn } from '../../bench/bare-ovn.js';
import { firstReply } from '../../bench/data-path.js';
import { iperfClient, nsexec } from '../../bench/net-bench.js';
import { run } from '../../src/sys/runner.js';
import { OvnStack } from '../../src/network/drivers/ovn/stack/ovn-stack.js';
import { alive } from '../e2e/harness.js';

const skip = process.getuid?.() !== 0 ? 'needs root' : (OvnStack.missing() ?? (existsSync('/usr/bin/iperf3') ? false : 'needs iperf3'));
const tag = `obt${randomBytes(3).toString('hex')}`;

async function netnsNames(): Promise<string[]> {
  const r = await run(['ip', '-j', 'netns', 'list'], { allowFailure: true });
  return r.stdout.trim() ? (JSON.parse(r.stdout) as Array<{ name: string }>).map((n) => n.name) : [];
}

describe('bench: bare OVN switch', { skip }, () => {
  let bare: BareOvn | undefined;
  after(async () => {
    await bare?.destroy();
  });

  it('builds a switch whose two netns ping each other and carry TCP', async () => {
    bare = await BareOvn.build(tag, () => {});
    const t = bare.timeline!;
    assert.ok(t.central_up_ms <= t.stack_ready_ms && t.stack_ready_ms <= t.plugged_ms && t.plugged_ms <= t.first_ping_ms, JSON.stringify(t));
    assert.ok((await firstReply(bare.b.netns, bare.a.ip, 5)) !== undefined, 'b → a ping');
    const argv = nsexec(bare.b.netns, ['iperf3', '-s', '-1', '-B', bare.b.ip]);
    const server = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    try {
      const bps = await iperfClient((extra) => run(nsexec(bare!.a.netns, ['iperf3', '-c', bare!.b.ip, ...extra]), { allowFailure: true, timeoutMs: 30_000 }));
      assert.ok(bps > 1e8, `TCP a → b at ${bps} bit/s`);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('grows by idle ports and still forwards', async () => {
    await bare!.addIdlePorts(20);
    const r = await run(['ovs-vsctl', `--db=unix:${bare!.dir}/run/db.sock`, 'list-ports', 'br-int']);
    assert.equal(r.stdout.trim().split('\n').length, 22);
    assert.ok((await firstReply(bare!.a.netns, bare!.b.ip, 5)) !== undefined);
  });

  it('destroy() leaves no process, netns or folder', async () => {
    const procs = bare!.pids();
    assert.equal(procs.length, 6);
    assert.deepEqual(procs.filter((p) => !alive(p)), []);
    await bare!.destroy();
    assert.deepEqual(procs.filter(alive), []);
    assert.deepEqual((await netnsNames()).filter((n) => n.startsWith(tag)), []);
    assert.equal(existsSync(bare!.dir), false);
  });
});
