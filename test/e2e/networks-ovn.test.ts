/**
 * The `ovn` driver beyond the compliance suite: OVN's own DHCP and DNS, a compose project, the
 * supervised stack surviving kill -9 of each of its processes, a daemon restart, and a wiped
 * northbound database. Inspection uses ovn-nbctl against the test daemon's own NB socket.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './containers-support.js';
import { COMPOSE, exec, skipWithoutCompose } from './docker-clients.js';
import { alive, daemonTag, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';

const skipWithoutOvn: false | string =
  spawnSync('which', ['ovsdb-server', 'ovn-northd', 'ovn-controller', 'ovs-vswitchd'], { encoding: 'utf8' }).status === 0
    ? false
    : 'OVN is not installed (Debian packages openvswitch-switch, ovn-central, ovn-host; scripts/setup.sh installs them)';

/** OVN processes of a test daemon's stack: binary name and, for ovsdb-server, the database it serves. */
function stackProcesses(d: TestDaemon): Array<{ pid: number; name: string }> {
  const out: Array<{ pid: number; name: string }> = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(ent)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${ent}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const bin = (argv[0] ?? '').split('/').pop() ?? '';
    if (!['ovsdb-server', 'ovn-northd', 'ovs-vswitchd', 'ovn-controller'].includes(bin) || !argv.some((a) => a.includes(d.root) || a.includes(d.execRoot))) continue;
    const db = bin === 'ovsdb-server' ? (argv.find((a) => a.endsWith('.db'))?.split('/').pop() ?? '?') : '';
    out.push({ pid: Number(ent), name: db ? `ovsdb-server(${db})` : bin });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

function nbSocket(d: TestDaemon): string {
  const dir = join(d.execRoot, 'ovn');
  const found = spawnSync('find', [dir, '-name', '*.sock'], { encoding: 'utf8' }).stdout.split('\n').find((p) => /nb[^/]*\.sock$/.test(p));
  if (!found) throw new Error(`no NB socket under ${dir}`);
  return found;
}

function nbctl(d: TestDaemon, ...args: string[]): string {
  const r = spawnSync('ovn-nbctl', [`--db=unix:${nbSocket(d)}`, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ovn-nbctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

async function ip(d: TestDaemon, c: string, net: string): Promise<string> {
  return d.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, c]);
}

async function pings(d: TestDaemon, from: string, to: string): Promise<boolean> {
  return (await d.docker(['exec', from, 'ping', '-c', '1', '-W', '1', to])).code === 0;
}

describe('ovn driver', { skip: skipWithoutOvn }, () => {
  let d: TestDaemon;
  const net = 'ovn-e2e';

  before(async () => {
    d = await startDaemon();
    await d.dockerOk(['network', 'create', '-d', 'ovn', '--subnet', '10.201.0.0/24', '-o', 'com.docker.network.driver.mtu=1400', net]);
    await d.dockerOk(['run', '-d', '--name', 'oa', '--network', net, TEST_IMAGE, 'sleep', '600']);
    await d.dockerOk(['run', '-d', '--name', 'ob', '--network', net, '--network-alias', 'bee', TEST_IMAGE, 'sleep', '600']);
  });

  after(async () => {
    await d?.cleanup();
  });

  it('the topology is in NB: a switch per network, a router port on the gateway, ports with port security', async () => {
    const id = await d.dockerOk(['network', 'inspect', '-f', '{{.Id}}', net]);
    const sw = `arca-${id.slice(0, 12)}`;
    assert.ok(nbctl(d, 'ls-list').includes(sw), 'logical switch');
    assert.match(nbctl(d, 'lrp-list', `arca-r-${id.slice(0, 12)}`), /arca-rg-/);
    const ipA = await ip(d, 'oa', net);
    const ports = nbctl(d, '--format=csv', '--columns=addresses,port_security', 'list', 'Logical_Switch_Port');
    assert.ok(ports.split('\n').some((l) => (l.match(new RegExp(`${ipA.replace(/\./g, '\\.')}\\b`, 'g')) ?? []).length === 2), ports);
    // OVN, not the host, answers the gateway.
    assert.ok(await pings(d, 'oa', '10.201.0.1'));
    assert.ok(await pings(d, 'oa', await ip(d, 'ob', net)));
  });

  it('OVN DHCP gives busybox udhcpc the address docker inspect shows, with router and MTU', async () => {
    const script = '#!/bin/sh\n[ "$1" = bound ] && env > /tmp/lease\nexit 0\n';
    await d.dockerOk(['exec', 'oa', 'sh', '-c', `printf '%s' '${script}' > /tmp/dhcp.sh && chmod +x /tmp/dhcp.sh`]);
    const r = await d.docker(['exec', 'oa', 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', '/tmp/dhcp.sh'], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lease = Object.fromEntries(
      (await d.dockerOk(['exec', 'oa', 'cat', '/tmp/lease'])).split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    assert.equal(lease['ip'], await ip(d, 'oa', net));
    assert.equal(lease['router'], '10.201.0.1');
    assert.equal(lease['mtu'], '1400');
    assert.equal(lease['subnet'], '255.255.255.0');
  });

  it('OVN answers DNS sent to the gateway for container names, aliases and name.network; 127.0.0.11 still serves', async () => {
    const ipB = await ip(d, 'ob', net);
    for (const name of ['ob', 'bee', `ob.${net}`]) {
      const out = await d.docker(['exec', 'oa', 'nslookup', '-type=a', name, '10.201.0.1']);
      assert.match(out.stdout, new RegExp(`Address: ${ipB.replace(/\./g, '\\.')}`), `${name}: ${out.stdout}${out.stderr}`);
    }
    const resolv = await d.dockerOk(['exec', 'oa', 'cat', '/etc/resolv.conf']);
    assert.match(resolv, /nameserver 127\.0\.0\.11/);
    const viaEmbedded = await d.dockerOk(['exec', 'oa', 'nslookup', 'bee']);
    assert.match(viaEmbedded, new RegExp(ipB.replace(/\./g, '\\.')));
  });

  it('unknown options are refused naming the key, and nothing is created', async () => {
    const r = await d.docker(['network', 'create', '-d', 'ovn', '-o', 'arca.nope=1', 'ovn-bad']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /arca\.nope/);
    assert.equal((await d.docker(['network', 'inspect', 'ovn-bad'])).code, 1);
  });

  it('a compose project on ovn networks comes up, talks, and goes down leaving nothing behind', { skip: skipWithoutCompose }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arca-ovn-compose-'));
    try {
      writeFileSync(
        join(dir, 'docker-compose.yml'),
        [
          'version: "2.4"',
          'services:',
          '  web:',
          `    image: ${TEST_IMAGE}`,
          '    command: ["sh", "-c", "echo hello-ovn > /tmp/index.html && httpd -f -p 80 -h /tmp"]',
          '    networks: [front]',
          '  client:',
          `    image: ${TEST_IMAGE}`,
          '    command: ["sleep", "600"]',
          '    networks: [front]',
          'networks:',
          '  front:',
          '    driver: ovn',
        ].join('\n') + '\n',
      );
      const before = nbctl(d, 'ls-list').split('\n').length;
      const compose = (...args: string[]) => exec(COMPOSE, ['-p', 'ovnproj', ...args], d.env, dir);
      const up = await compose('up', '-d');
      assert.equal(up.code, 0, up.stderr);
      const got = await eventually('web to answer', async () => {
        const r = await compose('exec', '-T', 'client', 'sh', '-c', 'timeout 3 wget -qO- http://web/index.html');
        return r.code === 0 ? r.stdout : undefined;
      }, 15_000);
      assert.match(got, /hello-ovn/);
      const down = await compose('down');
      assert.equal(down.code, 0, down.stderr);
      assert.equal(nbctl(d, 'ls-list').split('\n').length, before);
      const ls = await d.dockerOk(['network', 'ls', '--format', '{{.Name}}']);
      assert.ok(!ls.includes('ovnproj'), ls);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('kill -9 of each OVN process in turn: it comes back and traffic resumes', async () => {
    const ipB = await ip(d, 'ob', net);
    const names = stackProcesses(d).map((p) => p.name);
    assert.deepEqual(names, ['ovn-controller', 'ovn-northd', 'ovs-vswitchd', 'ovsdb-server(conf.db)', 'ovsdb-server(nb.db)', 'ovsdb-server(sb.db)']);
    for (const name of names) {
      const victim = stackProcesses(d).find((p) => p.name === name)!;
      process.kill(victim.pid, 'SIGKILL');
      const back = await eventually(`${name} to be restarted`, () => stackProcesses(d).find((p) => p.name === name && p.pid !== victim.pid), 5000);
      assert.ok(alive(back.pid));
      await eventually(`ping after ${name} was killed`, async () => ((await pings(d, 'oa', ipB)) ? true : undefined), 15_000);
    }
    // The stack still takes new ports.
    await d.dockerOk(['run', '-d', '--name', 'oc', '--network', net, TEST_IMAGE, 'sleep', '600']);
    assert.ok(await pings(d, 'oc', ipB));
    await d.dockerOk(['rm', '-f', 'oc']);
  });

  it('a daemon restart adopts the running stack; containers keep talking', async () => {
    const pids = stackProcesses(d).map((p) => p.pid).sort();
    await d.restart();
    assert.deepEqual(stackProcesses(d).map((p) => p.pid).sort(), pids, 'the same processes, adopted');
    assert.ok(await pings(d, 'oa', await ip(d, 'ob', net)));
    await d.dockerOk(['run', '-d', '--name', 'od', '--network', net, TEST_IMAGE, 'sleep', '600']);
    assert.ok(await pings(d, 'od', await ip(d, 'oa', net)));
    await d.dockerOk(['rm', '-f', 'od']);
  });

  it('what a crash left half-made (NB rows, switch ports, veths of no known network or endpoint) is swept at start-up', async () => {
    const ghost = 'ab'.repeat(32);
    const id = await d.dockerOk(['network', 'inspect', '-f', '{{.Id}}', net]);
    nbctl(d, 'ls-add', `arca-${ghost.slice(0, 12)}`, '--', 'set', 'Logical_Switch', `arca-${ghost.slice(0, 12)}`, `external_ids:arca-network=${ghost}`);
    nbctl(d, 'lsp-add', `arca-${id.slice(0, 12)}`, 'arca-ep-ghost', '--', 'set', 'Logical_Switch_Port', 'arca-ep-ghost', `external_ids:arca-endpoint=${ghost}`, `external_ids:arca-network=${id}`);
    const mine = `arca-${daemonTag(d.root)}-ovs`;
    assert.ok(existsSync(`/run/netns/${mine}`), `${mine} among ${readdirSync("/run/netns").join(" ")}`);
    assert.equal(spawnSync('ip', ['-n', mine, 'link', 'add', `ov${ghost.slice(0, 12)}`, 'type', 'veth', 'peer', 'name', 'ghostpeer']).status, 0);
    assert.equal(spawnSync('ip', ['-n', d.hostNs, 'link', 'add', `on${ghost.slice(0, 12)}`, 'type', 'veth', 'peer', 'name', 'ghostpeer2']).status, 0);
    await d.restart({ signal: 'SIGKILL' });
    await eventually('the sweep', () => (nbctl(d, 'ls-list').includes(ghost.slice(0, 12)) ? undefined : true), 10_000);
    assert.ok(!nbctl(d, 'lsp-list', `arca-${id.slice(0, 12)}`).includes('arca-ep-ghost'), 'orphan port removed');
    const links = (ns: string) => spawnSync('ip', ['-n', ns, '-o', 'link'], { encoding: 'utf8' }).stdout;
    assert.ok(!links(mine).includes(`ov${ghost.slice(0, 12)}`), 'orphan endpoint veth removed');
    assert.ok(!links(d.hostNs).includes(`on${ghost.slice(0, 12)}`), 'orphan transit veth removed');
    assert.ok(await pings(d, 'oa', await ip(d, 'ob', net)), 'known endpoints untouched');
  });

  it('a wiped NB database is rebuilt from arca state: ports, DHCP and DNS come back', async () => {
    const nb = stackProcesses(d).find((p) => p.name === 'ovsdb-server(nb.db)')!;
    const dbFile = spawnSync('find', [d.root, '-name', 'nb.db'], { encoding: 'utf8' }).stdout.trim();
    assert.ok(dbFile && existsSync(dbFile), 'nb.db under the daemon root');
    process.kill(nb.pid, 'SIGKILL');
    rmSync(dbFile);
    const ipB = await ip(d, 'ob', net);
    await eventually('NB rebuilt', () => (stackProcesses(d).some((p) => p.name === 'ovsdb-server(nb.db)') && nbctl(d, 'ls-list').includes('arca-') ? true : undefined), 10_000);
    await eventually('ping after the NB rebuild', async () => ((await pings(d, 'oa', ipB)) ? true : undefined), 15_000);
    await eventually('DNS at the gateway after the rebuild', async () => {
      const out = await d.docker(['exec', 'oa', 'nslookup', '-type=a', 'bee', '10.201.0.1']);
      return out.stdout.includes(`Address: ${ipB}`) ? true : undefined;
    }, 10_000);
  });
});
