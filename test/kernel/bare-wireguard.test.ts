/**
 * The bench's bare wireguard-go pair (bench/bare-wireguard.ts), built for real: its two netns
 * ping each other and carry TCP through the tunnel, only WireGuard's UDP crosses the veth, and
 * destroy() leaves no process, namespace, socket or folder behind.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { BareWireguard } from '../../bench/bare-wireguard.js';
import { firstReply } from '../../bench/data-path.js';
import { iperfClient, nsexec } from '../../bench/net-bench.js';
import { run, which } from '../../src/sys/runner.js';
import { uapiGet } from '../../src/network/drivers/wireguard/uapi.js';
import { uapiSocketPath } from '../../src/network/drivers/wireguard/wg-names.js';
import { alive } from '../e2e/harness.js';

const skip =
  process.getuid?.() !== 0 ? 'needs root' : !which('wireguard-go') ? 'needs wireguard-go' : !which('iperf3') ? 'needs iperf3' : false;
const tag = `bwt${randomBytes(3).toString('hex')}`;

async function netnsNames(): Promise<string[]> {
  const r = await run(['ip', '-j', 'netns', 'list'], { allowFailure: true });
  return r.stdout.trim() ? (JSON.parse(r.stdout) as Array<{ name: string }>).map((n) => n.name) : [];
}

describe('bench: bare wireguard-go pair', { skip }, () => {
  let bare: BareWireguard | undefined;
  after(async () => {
    await bare?.destroy();
  });

  it('builds two netns whose tunnel carries ping and TCP', async () => {
    bare = await BareWireguard.build(tag, () => {});
    assert.ok(bare.upMs !== undefined && bare.upMs > 0);
    assert.ok((await firstReply(bare.b.netns, bare.a.ip, 5)) !== undefined, 'b → a ping');
    const argv = nsexec(bare.b.netns, ['iperf3', '-s', '-1', '-B', bare.b.ip]);
    const server = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    try {
      const bps = await iperfClient((extra) => run(nsexec(bare!.a.netns, ['iperf3', '-c', bare!.b.ip, ...extra]), { allowFailure: true, timeoutMs: 30_000 }));
      assert.ok(bps > 1e6, `TCP a → b at ${bps} bit/s`);
    } finally {
      server.kill('SIGKILL');
    }
    // The overlay route is the tunnel's, and the peers have shaken hands.
    const route = await run(nsexec(bare.a.netns, ['ip', '-j', 'route', 'get', bare.b.ip]));
    assert.equal((JSON.parse(route.stdout) as Array<{ dev: string }>)[0]?.dev, bare.a.ifname);
    const st = await uapiGet(uapiSocketPath(bare.a.ifname));
    assert.equal(st.peers.length, 1);
    assert.ok(st.peers[0]!.lastHandshakeSec > 0, 'a handshake happened');
  });

  it('reports the RSS of both wireguard-go processes', () => {
    const rss = bare!.rssKb();
    assert.deepEqual(Object.keys(rss).sort(), [bare!.a.ifname, bare!.b.ifname].sort());
    for (const kb of Object.values(rss)) assert.ok(kb > 1000, `RSS ${kb} kB`);
  });

  it('destroy() leaves no process, netns, socket or folder', async () => {
    const procs = bare!.pids();
    assert.equal(procs.length, 2);
    assert.deepEqual(procs.filter((p) => !alive(p)), []);
    await bare!.destroy();
    assert.deepEqual(procs.filter(alive), []);
    assert.deepEqual((await netnsNames()).filter((n) => n.startsWith(tag)), []);
    assert.equal(existsSync(bare!.dir), false);
    for (const ep of [bare!.a, bare!.b]) assert.equal(existsSync(`/run/wireguard/${ep.ifname}.sock`), false);
  });
});
