/**
 * The network driver compliance suite: the behaviours every driver must show through the docker
 * CLI, whatever it builds underneath. A driver's test file calls {@link runDriverCompliance} with
 * its name; later drivers (ovn, wireguard, egress-filtered) pass the same suite.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { eventually } from './containers-support.js';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';

export interface ComplianceOptions {
  /** Extra `docker network create` arguments (driver options, subnets). */
  createArgs?: string[];
  /** Daemon flags (e.g. a driver that must be enabled). */
  daemonArgs?: string[];
  /** Names of host-netns links the driver makes for a network (to prove cleanup); default: none checked. */
  hostLinksOf?: (networkId: string) => string[];
  /** Skip reason, when the driver cannot run on this machine. */
  skip?: string;
}

function hostLinkNames(d: TestDaemon): string[] {
  const r = spawnSync('nsenter', [`--net=/run/netns/${d.hostNs}`, '--', 'ip', '-j', 'link', 'show'], { encoding: 'utf8' });
  return (JSON.parse(r.stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
}

/** Interfaces inside a container with their addresses: `{eth0: ['10.1.0.2/24']}` (lo and link-local left out). */
export async function interfaces(d: TestDaemon, c: string): Promise<Record<string, string[]>> {
  const out = await d.dockerOk(['exec', c, 'ip', '-o', 'addr', 'show']);
  const res: Record<string, string[]> = {};
  for (const line of out.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet6?\s+(\S+)/.exec(line);
    if (!m || m[1] === 'lo' || /scope link/.test(line)) continue;
    (res[m[1]!] ??= []).push(m[2]!);
  }
  return res;
}

export function runDriverCompliance(driver: string, opts: ComplianceOptions = {}): void {
  describe(`driver compliance: ${driver}`, { skip: opts.skip }, () => {
    let d: TestDaemon;
    const net = `cmp-${driver}`;
    const net2 = `cmp-${driver}-2`;
    let netId = '';
    let baseline = new Set<string>();

    before(async () => {
      d = await startDaemon({ daemonArgs: opts.daemonArgs });
      baseline = new Set(hostLinkNames(d));
    });

    after(async () => {
      await d?.cleanup();
    });

    it('creates a network with the driver, shown by ls and inspect', async () => {
      netId = await d.dockerOk(['network', 'create', '-d', driver, ...(opts.createArgs ?? []), net]);
      assert.match(netId, /^[0-9a-f]{64}$/);
      const ins = JSON.parse(await d.dockerOk(['network', 'inspect', net]))[0];
      assert.equal(ins.Driver, driver);
      assert.equal(ins.Scope, 'local');
      assert.ok(ins.IPAM.Config.length >= 1, 'IPAM chose a subnet');
      const ls = await d.dockerOk(['network', 'ls', '--filter', `driver=${driver}`, '--format', '{{.Name}}']);
      assert.ok(ls.split('\n').includes(net));
      for (const l of opts.hostLinksOf?.(netId) ?? []) assert.ok(hostLinkNames(d).includes(l), `host link ${l}`);
    });

    it('an endpoint appears in the container with the address inspect reports; peers reach it', async () => {
      await d.dockerOk(['run', '-d', '--name', 'cmp-a', '--network', net, TEST_IMAGE, 'sleep', '300']);
      await d.dockerOk(['run', '-d', '--name', 'cmp-b', '--network', net, TEST_IMAGE, 'sleep', '300']);
      const ipA = await d.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, 'cmp-a']);
      const ipB = await d.dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, 'cmp-b']);
      assert.notEqual(ipA, ipB);
      const ifs = await interfaces(d, 'cmp-a');
      assert.ok(ifs['eth0']?.some((a) => a.startsWith(`${ipA}/`)), JSON.stringify(ifs));
      const ping = await d.docker(['exec', 'cmp-a', 'ping', '-c', '1', '-W', '2', ipB]);
      assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    });

    it('live connect and disconnect of a running container', async () => {
      await d.dockerOk(['network', 'create', '-d', driver, net2]);
      await d.dockerOk(['network', 'connect', net2, 'cmp-a']);
      assert.deepEqual(Object.keys(await interfaces(d, 'cmp-a')).sort(), ['eth0', 'eth1']);
      const ins = JSON.parse(await d.dockerOk(['network', 'inspect', net2]))[0];
      assert.equal(Object.keys(ins.Containers).length, 1);
      await d.dockerOk(['network', 'disconnect', net2, 'cmp-a']);
      assert.deepEqual(Object.keys(await interfaces(d, 'cmp-a')), ['eth0']);
      const after = JSON.parse(await d.dockerOk(['network', 'inspect', net2]))[0];
      assert.deepEqual(after.Containers, {});
    });

    it('a network in use cannot be removed; cleanup leaves nothing behind', async () => {
      const busy = await d.docker(['network', 'rm', net]);
      assert.notEqual(busy.code, 0);
      assert.match(busy.stderr, /has active endpoints/);
      await d.dockerOk(['rm', '-f', 'cmp-a', 'cmp-b']);
      await d.dockerOk(['network', 'rm', net, net2]);
      // Interfaces out of service at once may be deleted by the kernel just after the answer.
      await eventually('host links to go', () => (hostLinkNames(d).some((l) => !baseline.has(l)) ? undefined : true), 5000).catch(() => undefined);
      const left = hostLinkNames(d).filter((l) => !baseline.has(l));
      assert.deepEqual(left, []);
      for (const l of opts.hostLinksOf?.(netId) ?? []) assert.ok(!hostLinkNames(d).includes(l), `host link ${l} removed`);
      const ls = (await d.dockerOk(['network', 'ls', '--format', '{{.Name}}'])).split('\n').sort();
      assert.deepEqual(ls, ['bridge', 'host', 'none']);
    });
  });
}
