/**
 * A container started on the default bridge and then connected to a user-defined network: its
 * resolver becomes the embedded DNS at once (as dockerd's `rebuildDNS`), keeps working across
 * container and daemon restarts, and stays (forwarding only) after it leaves that network.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';

const IMG = TEST_IMAGE;
const NO_ADDON = process.env.ARCA_NATIVE === '0' ? 'the resolver outliving the last user network needs the native addon (ARCA_NATIVE=0)' : false;

describe('networks: connect turns the resolver over to the embedded DNS', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon();
  });

  after(async () => {
    await d?.cleanup();
  });

  const nameservers = async (c: string): Promise<string[]> =>
    (await d.dockerOk(['exec', c, 'cat', '/etc/resolv.conf'])).split('\n').filter((l) => /^nameserver\s/.test(l));

  it('docker network connect: the container resolves the network\'s names at once, and after restarts', async () => {
    await d.dockerOk(['network', 'create', 'frontend']);
    await d.dockerOk(['run', '-d', '--name', 'web', '--network', 'frontend', IMG, 'sleep', '600']);
    await d.dockerOk(['run', '-d', '--name', 'peer', IMG, 'sleep', '600']);
    await d.dockerOk(['run', '-d', '--name', 'monitor', '--dns-search', 'corp.example', '--dns-option', 'timeout:2', IMG, 'sleep', '600']);
    // On the default bridge: the host's servers, no names.
    assert.doesNotMatch((await nameservers('monitor')).join('\n'), /127\.0\.0\.11/);
    assert.notEqual((await d.docker(['exec', 'monitor', 'ping', '-c1', '-W1', 'web'])).code, 0);

    await d.dockerOk(['network', 'connect', 'frontend', 'monitor']);
    const resolv = await d.dockerOk(['exec', 'monitor', 'cat', '/etc/resolv.conf']);
    assert.deepEqual(await nameservers('monitor'), ['nameserver 127.0.0.11']);
    assert.match(resolv, /^search corp\.example$/m, resolv);
    assert.match(resolv, /^options timeout:2 ndots:0$/m, resolv);
    const webIp = await d.dockerOk(['inspect', '-f', '{{(index .NetworkSettings.Networks "frontend").IPAddress}}', 'web']);
    const ping = await d.docker(['exec', 'monitor', 'ping', '-c1', '-W2', 'web']);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.ok(ping.stdout.includes(webIp), ping.stdout);
    // Names on the default bridge still do not resolve (only --link makes them known there).
    assert.notEqual((await d.docker(['exec', 'monitor', 'nslookup', 'peer.'])).code, 0);
    // And the other side sees monitor by name too.
    assert.equal((await d.docker(['exec', 'web', 'nslookup', 'monitor'])).code, 0);

    await d.restart();
    assert.equal((await d.docker(['exec', 'monitor', 'ping', '-c1', '-W2', 'web'])).code, 0, 'after a daemon restart');
    await d.dockerOk(['restart', '-t', '1', 'monitor']);
    assert.deepEqual(await nameservers('monitor'), ['nameserver 127.0.0.11']);
    assert.equal((await d.docker(['exec', 'monitor', 'ping', '-c1', '-W2', 'web'])).code, 0, 'after a container restart');
    await d.dockerOk(['rm', '-f', 'web', 'peer', 'monitor']);
    await d.dockerOk(['network', 'rm', 'frontend']);
  });

  it('disconnect from the last user network: resolv.conf stays, the resolver stays and forwards (moby)', { skip: NO_ADDON }, async () => {
    await d.dockerOk(['network', 'create', 'backend']);
    await d.dockerOk(['run', '-d', '--name', 'db', '--network', 'backend', IMG, 'sleep', '600']);
    // --dns 127.0.0.1: a stand-in upstream on the container's own loopback shows where forwarding goes.
    await d.dockerOk(['run', '-d', '--name', 'fw', '--dns', '127.0.0.1', IMG, 'sleep', '600']);
    assert.deepEqual(await nameservers('fw'), ['nameserver 127.0.0.1']);
    const key = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', 'fw']);
    const fake = spawn('nsenter', [`--net=${key}`, '--', process.execPath, join(dirname(fileURLToPath(import.meta.url)), 'fake-dns-upstream.js'), '127.0.0.1', '53', '192.0.2.78'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((res, rej) => {
        fake.stdout.once('data', () => res());
        fake.once('exit', (code) => rej(new Error(`stand-in upstream exited (${code})`)));
      });
      await d.dockerOk(['network', 'connect', 'backend', 'fw']);
      assert.deepEqual(await nameservers('fw'), ['nameserver 127.0.0.11']);
      const dbIp = await d.dockerOk(['inspect', '-f', '{{(index .NetworkSettings.Networks "backend").IPAddress}}', 'db']);
      assert.ok((await d.dockerOk(['exec', 'fw', 'nslookup', 'db'])).includes(dbIp));
      const far = async (): Promise<string> => {
        const r = await d.docker(['exec', 'fw', 'nslookup', 'far.example.']);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        return r.stdout;
      };
      assert.match(await far(), /Address: 192\.0\.2\.78/, 'the --dns server is the embedded DNS upstream');

      await d.dockerOk(['network', 'disconnect', 'backend', 'fw']);
      assert.deepEqual(await nameservers('fw'), ['nameserver 127.0.0.11'], 'resolv.conf is left as it is');
      // (The stand-in answers every name, so `db` now comes back with its address, not db's.)
      const db = await d.docker(['exec', 'fw', 'nslookup', 'db']);
      assert.ok(!db.stdout.includes(dbIp) && db.stdout.includes('192.0.2.78'), 'names of the network left are gone: ' + db.stdout);
      assert.match(await far(), /Address: 192\.0\.2\.78/, 'the resolver still forwards');
      const socks = spawnSync('nsenter', [`--net=${key}`, '--', 'ss', '-Hlnut', 'src', '127.0.0.11'], { encoding: 'utf8' }).stdout;
      assert.equal(socks.trim().split('\n').filter((l) => /127\.0\.0\.11:53\b/.test(l)).length, 2, socks);

      await d.restart();
      assert.match(await far(), /Address: 192\.0\.2\.78/, 'and still after a daemon restart');
    } finally {
      fake.kill('SIGKILL');
    }
    // A new run starts from the host-derived file again.
    await d.dockerOk(['restart', '-t', '1', 'fw']);
    assert.deepEqual(await nameservers('fw'), ['nameserver 127.0.0.1']);
    await d.dockerOk(['rm', '-f', 'db', 'fw']);
    await d.dockerOk(['network', 'rm', 'backend']);
  });
});
