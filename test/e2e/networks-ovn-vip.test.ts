/**
 * VIP load balancing on an ovn network (`-o arca.endpoint_mode=vip`): an alias resolves to one
 * virtual IP, OVN spreads connections over the containers carrying the alias, follows them as they
 * come and go, stops sending to a backend whose exposed port no longer answers, and lets a backend
 * reach its own VIP.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { eventually } from './containers-support.js';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';

const skipWithoutOvn: false | string =
  spawnSync('which', ['ovsdb-server', 'ovn-northd', 'ovn-controller', 'ovs-vswitchd']).status === 0
    ? false
    : 'OVN is not installed (Debian packages openvswitch-switch, ovn-central, ovn-host; scripts/setup.sh installs them)';

const NET = 'ovn-vip';

describe('ovn driver: VIP load balancing', { skip: skipWithoutOvn }, () => {
  let d: TestDaemon;

  const backend = (name: string): Promise<string> =>
    d.dockerOk([
      'run', '-d', '--name', name, '--hostname', name, '--network', NET, '--network-alias', 'api', '--expose', '80',
      TEST_IMAGE, 'sh', '-c', 'mkdir -p /www && hostname > /www/index.html && httpd -p 80 -h /www && exec sleep 600',
    ]);

  /** Hostnames answering `n` fresh connections to http://api/ from `from`; failures counted as ''. */
  async function answers(from: string, n: number): Promise<string[]> {
    const out = await d.dockerOk(['exec', from, 'sh', '-c', `for i in $(seq ${n}); do timeout 2 wget -qO- http://api/ || echo FAIL; done`], { timeoutMs: 120_000 });
    return out.split('\n').map((s) => s.trim()).filter(Boolean);
  }

  before(async () => {
    d = await startDaemon();
    await d.dockerOk(['network', 'create', '-d', 'ovn', '--subnet', '10.202.0.0/24', '-o', 'arca.endpoint_mode=vip', NET]);
    for (const b of ['api1', 'api2', 'api3']) await backend(b);
    await d.dockerOk(['run', '-d', '--name', 'client', '--network', NET, TEST_IMAGE, 'sleep', '600']);
  });

  after(async () => {
    await d?.cleanup();
  });

  it('the alias resolves to one VIP, from 127.0.0.11 and from OVN at the gateway, that no backend holds', async () => {
    const ips = await Promise.all(['api1', 'api2', 'api3'].map((c) => d.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").IPAddress}}`, c])));
    const embedded = await d.dockerOk(['exec', 'client', 'nslookup', 'api']);
    const vip = /Address: (10\.202\.0\.\d+)/.exec(embedded.split('Name:')[1] ?? '')?.[1];
    assert.ok(vip, embedded);
    assert.ok(!ips.includes(vip), `VIP ${vip} is not a backend address (${ips.join(', ')})`);
    assert.equal((embedded.match(/Address: 10\.202/g) ?? []).length, 1, 'one address, not round-robin');
    const atGateway = await d.docker(['exec', 'client', 'nslookup', '-type=a', 'api', '10.202.0.1']);
    assert.match(atGateway.stdout, new RegExp(`Address: ${vip.replace(/\./g, '\\.')}`));
    assert.equal((await d.docker(['exec', 'client', 'ping', '-c', '1', '-W', '2', vip])).code, 0, 'the port-less VIP answers ping');
  });

  it('connections spread over the three backends', async () => {
    const seen = new Set(await answers('client', 30));
    assert.ok(!seen.has('FAIL'), [...seen].join(','));
    assert.deepEqual([...seen].sort(), ['api1', 'api2', 'api3']);
  });

  it('a stopped backend stops receiving connections; a new one starts receiving them', async () => {
    await d.dockerOk(['stop', '-t', '1', 'api3']);
    const got = await answers('client', 20);
    assert.ok(!got.includes('api3') && !got.includes('FAIL'), got.join(','));
    await backend('api4');
    await eventually('api4 to receive connections', async () => ((await answers('client', 10)).includes('api4') ? true : undefined), 20_000);
  });

  it('a backend whose exposed port stops answering is taken out by the health check', async () => {
    // httpd is not the container's first process: killing it leaves the container running.
    await d.dockerOk(['exec', 'api2', 'killall', 'httpd']);
    assert.equal(await d.dockerOk(['inspect', '-f', '{{.State.Running}}', 'api2']), 'true');
    // OVN's own verdict first: a lucky round of connections (or an httpd still dying) proves nothing.
    const ip = await d.dockerOk(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'api2']);
    await eventually('OVN to mark api2 offline', async () => {
      const r = spawnSync('ovn-sbctl', [`--db=unix:${join(d.execRoot, 'ovn', 'ovnsb_db.sock')}`, '--bare', '--columns=status', 'find', 'Service_Monitor', `ip=${ip}`], { encoding: 'utf8' });
      const status = r.stdout.split('\n').filter(Boolean);
      return status.length > 0 && status.every((x) => x === 'offline') ? true : undefined;
    }, 30_000);
    await eventually('api2 to be marked offline', async () => {
      const got = await answers('client', 12);
      return got.every((h) => h === 'api1' || h === 'api4') ? true : undefined;
    }, 30_000);
    // Not a lucky round: 30 more connections all reach the healthy backends.
    const got = await answers('client', 30);
    assert.ok(got.every((h) => h === 'api1' || h === 'api4'), got.join(','));
  });

  it('a backend reaches its own VIP (hairpin)', async () => {
    const got = await answers('api1', 6);
    assert.ok(got.length === 6 && got.every((h) => h === 'api1' || h === 'api4'), got.join(','));
    assert.ok(got.includes('api1') || (await answers('api1', 10)).includes('api1'), 'api1 reached itself through the VIP');
  });
});
