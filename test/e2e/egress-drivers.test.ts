/**
 * Egress allowlists on `ovn` and `wireguard`: the same host-side enforcement as on bridge (the
 * transit link, the underlay bridge), one allowed and a few denied destinations each, a name
 * learnt through the embedded DNS.
 * Same outside as egress-bridge.test.ts: 198.18.50.1 and .2 on the outside's loopback, probe
 * servers on TCP 8080 and 8081, a fake upstream DNS at 198.18.50.1:53 answering 198.18.50.2.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { skipWithoutWireguardGo } from './wireguard-support.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const PROBE = join(HERE, '..', 'kernel', 'net-probe.js');
const FAKE_DNS = join(HERE, 'fake-dns-upstream.js');
/**
 * The stand-in upstream: on the outside's loopback rather than its link address, which a
 * container on ovn cannot reach with UDP even without any allowlist (seen here; not an egress
 * matter, left for the ovn driver).
 */
const DNS_ADDR = '198.18.50.1';
const ovnInstalled = spawnSync('which', ['ovsdb-server', 'ovn-northd', 'ovn-controller', 'ovs-vswitchd']).status === 0;

const DRIVERS: Array<{ driver: string; skip: string | false }> = [
  { driver: 'ovn', skip: process.getuid?.() !== 0 ? 'needs root' : ovnInstalled ? false : 'OVN is not installed' },
  { driver: 'wireguard', skip: process.getuid?.() !== 0 ? 'needs root' : skipWithoutWireguardGo },
];

for (const { driver, skip } of DRIVERS) {
  describe(`egress allowlist on ${driver}`, { skip, concurrency: false }, () => {
    let d: TestDaemon;
    const children: ChildProcess[] = [];

    function startIn(ns: string, argv: string[]): Promise<void> {
      const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      return new Promise((res, rej) => {
        let out = '';
        child.stdout!.on('data', (b: Buffer) => {
          out += b.toString();
          if (out.includes('ready')) res();
        });
        child.once('exit', (code) => rej(new Error(`${argv.join(' ')} exited (${code})`)));
      });
    }

    async function tcp(container: string, host: string, port: number): Promise<string> {
      const r = await d.docker(['exec', container, 'timeout', '3', 'nc', host, String(port)], { input: '' });
      return r.stdout.trim();
    }

    before(async () => {
      d = await startDaemon({ loadTestImage: true, outside: true });
      const o = d.outsideNs!;
      for (const a of ['198.18.50.1/32', '198.18.50.2/32']) spawnSync('ip', ['-n', o, 'addr', 'add', a, 'dev', 'lo']);
      await Promise.all([
        startIn(o, [process.execPath, PROBE, 'serve', 'o', '8080,8081', '-']),
        startIn(o, [process.execPath, FAKE_DNS, DNS_ADDR, '53', '198.18.50.2']),
      ]);
      await d.dockerOk([
        'network', 'create', '-d', driver,
        '-o', 'arca.egress=deny',
        '-o', `arca.egress.allow=198.18.50.1:8080/tcp,${DNS_ADDR}:53/udp,api.allowed.test:8081`,
        'eg',
      ]);
      await d.dockerOk(['run', '-d', '--name', 'boxed', '--network', 'eg', '--dns', DNS_ADDR, TEST_IMAGE, 'sleep', '600']);
    });

    after(async () => {
      for (const c of children) c.kill('SIGKILL');
      await d?.cleanup();
    });

    it('refuses a bad entry with the driver too, and still refuses unknown keys', async () => {
      const r = await d.docker(['network', 'create', '-d', driver, '-o', 'arca.egress=deny', '-o', 'arca.egress.allow=*.com', 'bad1']);
      assert.match(r.stderr, /"\*\.com": a wildcard needs at least two labels/);
      const u = await d.docker(['network', 'create', '-d', driver, '-o', 'arca.egresss=deny', 'bad2']);
      assert.match(u.stderr, /unknown option "arca\.egresss"/);
    });

    it('reaches the allowed destination only', async () => {
      assert.match(await tcp('boxed', '198.18.50.1', 8080), /^o /);
      assert.equal(await tcp('boxed', '198.18.50.1', 8081), '');
      assert.equal(await tcp('boxed', '198.18.50.2', 8080), '');
    });

    // On ovn the embedded DNS's forward to a container's --dns server times out even on a network
    // without an allowlist (seen here with this same fake upstream): a driver matter, so the
    // learning path is proven on bridge and wireguard only.
    it('opens a name once resolved', async () => {
      assert.equal(await tcp('boxed', '198.18.50.2', 8081), '');
      const r = await d.docker(['exec', 'boxed', 'nslookup', 'api.allowed.test']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(await tcp('boxed', '198.18.50.2', 8081), /^o /);
    });
  });
}
