/**
 * The network driver compliance suite: the behaviours every driver must show through the docker
 * CLI, whatever it builds underneath. A driver's test file calls {@link runDriverCompliance} with
 * its name; later drivers (ovn, wireguard, egress-filtered) pass the same suite unchanged.
 *
 * One daemon (with an "outside" netns) serves the whole suite. Each test makes its own networks and
 * containers and removes them when it ends, pass or fail, so a failure names the behaviour that
 * broke; the last test proves that removing everything left nothing behind. Every container runs
 * busybox `httpd` on port 80 serving /etc, so any of them answers `GET /hostname` with its own
 * hostname (its short id): a TCP target that says who answered.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, leftovers } from './containers-support.js';
import { OUTSIDE_ADDR, OUTSIDE_HOST_ADDR, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { endpointOf, hostLinkNames, inHost, inNetns, inspectNet, interfaces } from './networks-support.js';

export interface ComplianceOptions {
  /**
   * Extra `docker network create` arguments for every network the suite makes (driver options).
   * No `--subnet`: the suite picks its own subnets where a test needs known addresses.
   */
  createArgs?: string[];
  /** Daemon flags (e.g. a driver that must be enabled). */
  daemonArgs?: string[];
  /** Names of host-netns links the driver makes for a network (to prove cleanup); default: none checked. */
  hostLinksOf?: (networkId: string) => string[];
  /**
   * What the driver still holds, outside the host netns, for networks that are gone (switch
   * objects, processes' state...): descriptions of leftovers, empty when clean. Called by the
   * cleanup test with the ids of every network the suite made.
   */
  leftoversOf?: (d: TestDaemon, networkIds: string[]) => string[] | Promise<string[]>;
  /** Skip reason, when the driver cannot run on this machine. */
  skip?: string;
}

/** Every container serves its /etc over HTTP: `GET /hostname` names the one that answered. */
const SERVE = ['httpd', '-f', '-p', '80', '-h', '/etc'];
/** Where the outside netns listens (peer-address-server: answers with the client's address). */
const OUTSIDE_PORT = 18581;
const PEER_ADDRESS_SERVER = join(dirname(fileURLToPath(import.meta.url)), 'peer-address-server.js');

const re = (s: string): RegExp => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
const url = (ip: string, path = '/hostname'): string => `http://${ip.includes(':') ? `[${ip}]` : ip}${path}`;

export function runDriverCompliance(driver: string, opts: ComplianceOptions = {}): void {
  describe(`driver compliance: ${driver}`, { skip: opts.skip }, () => {
    let d: TestDaemon;
    let baseline = new Set<string>();
    let outsideServer: ChildProcess | undefined;
    /** Ids of every network the suite made, for the leftovers check at the end. */
    const made: string[] = [];

    before(async () => {
      d = await startDaemon({ daemonArgs: opts.daemonArgs, outside: true });
      baseline = new Set(hostLinkNames(d));
      const srv = spawn('nsenter', [`--net=/run/netns/${d.outsideNs}`, '--', process.execPath, PEER_ADDRESS_SERVER, OUTSIDE_ADDR, String(OUTSIDE_PORT)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      outsideServer = srv;
      await new Promise<void>((res, rej) => {
        srv.stdout!.once('data', () => res());
        srv.once('exit', (code) => rej(new Error(`peer-address-server exited (${code})`)));
      });
    });

    after(async () => {
      outsideServer?.kill('SIGKILL');
      await d?.cleanup();
    });

    /** What one test made: removed when the test ends, whatever its outcome. */
    class Scope {
      readonly containers: string[] = [];
      readonly networks: string[] = [];

      /** `docker network create -d <driver> <createArgs> <extra> NAME`; returns the id. */
      async net(name: string, extra: string[] = []): Promise<string> {
        const id = await d.dockerOk(['network', 'create', '-d', driver, ...(opts.createArgs ?? []), ...extra, name]);
        this.networks.push(name);
        made.push(id);
        return id;
      }

      /** `docker run -d` of a serving container on the given networks (`--network` each); returns its short id. */
      async run(name: string, nets: string | string[], extra: string[] = []): Promise<string> {
        this.containers.push(name);
        const netArgs = (Array.isArray(nets) ? nets : [nets]).flatMap((n) => ['--network', n]);
        const id = await d.dockerOk(['run', '-d', '--name', name, ...netArgs, ...extra, TEST_IMAGE, ...SERVE]);
        return id.slice(0, 12);
      }

      async dispose(): Promise<void> {
        if (this.containers.length) await d.docker(['rm', '-f', ...this.containers]);
        if (this.networks.length) await d.docker(['network', 'rm', ...this.networks]);
      }
    }

    /** A test with its own {@link Scope}. */
    const test = (title: string, fn: (s: Scope) => Promise<void>): void => {
      it(title, async () => {
        const s = new Scope();
        try {
          await fn(s);
        } finally {
          await s.dispose();
        }
      });
    };

    const ping = async (c: string, ip: string, waitS = 2): Promise<{ ok: boolean; out: string }> => {
      const r = await d.docker(['exec', c, 'ping', ...(ip.includes(':') ? ['-6'] : []), '-c', '1', '-W', String(waitS), ip]);
      return { ok: r.code === 0, out: r.stdout + r.stderr };
    };
    const assertReaches = async (c: string, ip: string, what: string): Promise<void> => {
      const r = await ping(c, ip);
      assert.ok(r.ok, `${what}: ${c} pings ${ip}\n${r.out}`);
    };
    const assertNoPing = async (c: string, ip: string, what: string): Promise<void> => {
      assert.ok(!(await ping(c, ip, 1)).ok, `${what}: ${c} must not reach ${ip}`);
    };
    /** An HTTP GET from inside a container (busybox wget under `timeout`: its own -T is broken here). */
    const get = async (c: string, target: string, timeoutS = 5): Promise<{ ok: boolean; body: string; err: string }> => {
      const r = await d.docker(['exec', c, 'timeout', String(timeoutS), 'wget', '-q', '-O', '-', target]);
      return { ok: r.code === 0, body: r.stdout.trim(), err: r.stderr.trim() };
    };
    /** A TCP connection from `c` reaches the server at `target` and gets `expected` (servers may be starting: retried briefly). */
    const assertGets = async (c: string, target: string, expected: string, what: string): Promise<void> => {
      let last = { ok: false, body: '', err: '' };
      const body = await eventually(
        `${what}: ${c} GET ${target}`,
        async () => {
          last = await get(c, target);
          return last.ok ? last.body : undefined;
        },
        5000,
      ).catch(() => assert.fail(`${what}: ${c} GET ${target} failed: ${last.err}`));
      assert.equal(body, expected, `${what}: ${c} GET ${target}`);
    };
    const assertNoGet = async (c: string, target: string, what: string): Promise<void> => {
      const r = await get(c, target, 2);
      assert.ok(!r.ok, `${what}: ${c} must not get ${target} (got "${r.body}")`);
    };
    /** `nslookup` through the container's resolver: which server answered and the addresses of the answer. */
    const lookup = async (c: string, name: string, type?: 'A' | 'AAAA', timeoutS = 10): Promise<{ ok: boolean; server: string; addresses: string[]; out: string }> => {
      const r = await d.docker(['exec', c, 'timeout', String(timeoutS), 'nslookup', ...(type ? [`-type=${type}`] : []), name]);
      const out = r.stdout + r.stderr;
      const lines = out.split('\n');
      const server = /^Server:\s*(\S+)/m.exec(out)?.[1] ?? '';
      const first = lines.findIndex((l) => /^Name:/.test(l));
      const addresses = first < 0 ? [] : lines.slice(first).flatMap((l) => /^Address:\s*(\S+)\s*$/.exec(l)?.[1] ?? []);
      return { ok: r.code === 0 && addresses.length > 0, server, addresses, out };
    };
    const assertResolves = async (c: string, name: string, ip: string, what: string): Promise<void> => {
      const r = await lookup(c, name, ip.includes(':') ? 'AAAA' : undefined);
      assert.ok(r.ok, `${what}: ${c} resolves ${name}\n${r.out}`);
      assert.equal(r.server, '127.0.0.11', `${what}: answered by the embedded DNS\n${r.out}`);
      assert.deepEqual(r.addresses, [ip], `${what}: ${c} resolves ${name}\n${r.out}`);
    };
    /**
     * A name the embedded DNS does not know goes to the upstream servers, which here never answer
     * (no packets leave the machine): as with dockerd, that is a timeout, not an NXDOMAIN. Two
     * seconds without an address is the answer.
     */
    const assertNoName = async (c: string, name: string, what: string): Promise<void> => {
      const r = await lookup(c, name, undefined, 2);
      assert.ok(!r.ok, `${what}: ${c} must not resolve ${name}\n${r.out}`);
    };
    /** The container's default routes (busybox `ip route show default` lists every route: filtered here). */
    const defaultRoute = async (c: string, v6 = false): Promise<string> =>
      (await d.dockerOk(['exec', c, 'ip', ...(v6 ? ['-6'] : []), 'route', 'show']))
        .split('\n')
        .filter((l) => l.startsWith('default'))
        .join('\n');
    /** HTTP GET from a test netns (the daemon's host, or the outside) with curl. */
    const curlFrom = (ns: string, target: string): { ok: boolean; body: string; err: string } => {
      const r = inNetns(ns, ['curl', '-sS', '--max-time', '3', target]);
      return { ok: r.code === 0, body: r.stdout.trim(), err: r.stderr.trim() };
    };
    const assertCurl = async (ns: string, target: string, expected: string, what: string): Promise<void> => {
      let last = { ok: false, body: '', err: '' };
      const body = await eventually(
        `${what}: GET ${target}`,
        () => {
          last = curlFrom(ns, target);
          return last.ok ? last.body : undefined;
        },
        5000,
      ).catch(() => assert.fail(`${what}: GET ${target} from netns ${ns} failed: ${last.err}`));
      assert.equal(body, expected, `${what}: GET ${target}`);
    };

    it('creates a network with the driver, shown by ls and inspect in Docker\'s shape', async () => {
      const name = `cmp-${driver}`;
      const id = await d.dockerOk(['network', 'create', '-d', driver, ...(opts.createArgs ?? []), '--label', 'cmp=1', name]);
      made.push(id);
      try {
        assert.match(id, /^[0-9a-f]{64}$/);
        const ins = await inspectNet(d, name);
        assert.equal(ins['Name'], name);
        assert.equal(ins['Id'], id);
        assert.equal(ins['Driver'], driver);
        assert.equal(ins['Scope'], 'local');
        assert.ok(!Number.isNaN(Date.parse(ins['Created'])), `Created: ${ins['Created']}`);
        assert.equal(ins['Internal'], false);
        assert.equal(ins['EnableIPv4'], true);
        assert.equal(ins['EnableIPv6'], false);
        assert.equal(ins['Attachable'], false);
        assert.equal(ins['Ingress'], false);
        assert.equal(ins['ConfigOnly'], false);
        assert.deepEqual(ins['ConfigFrom'], { Network: '' });
        assert.deepEqual(ins['Labels'], { cmp: '1' });
        assert.equal(typeof ins['Options'], 'object');
        assert.deepEqual(ins['Containers'], {});
        assert.equal(ins['IPAM'].Driver, 'default');
        assert.ok(ins['IPAM'].Config.length >= 1, 'IPAM chose a subnet');
        assert.match(ins['IPAM'].Config[0].Subnet, /^\d+\.\d+\.\d+\.\d+\/\d+$/);
        assert.match(ins['IPAM'].Config[0].Gateway, /^\d+\.\d+\.\d+\.\d+$/);
        const ls = await d.dockerOk(['network', 'ls', '--filter', `driver=${driver}`, '--format', '{{.Name}}']);
        assert.ok(ls.split('\n').includes(name));
        for (const l of opts.hostLinksOf?.(id) ?? []) assert.ok(hostLinkNames(d).includes(l), `host link ${l}`);
      } finally {
        await d.docker(['network', 'rm', name]);
      }
    });

    test('an endpoint appears in the container with the address, MAC and default route inspect reports; peers and the gateway answer', async (s) => {
      await s.net('cmp-ep');
      await s.run('ep-a', 'cmp-ep');
      const hostB = await s.run('ep-b', 'cmp-ep');
      const a = await endpointOf(d, 'ep-a', 'cmp-ep');
      const b = await endpointOf(d, 'ep-b', 'cmp-ep');
      assert.notEqual(a.IPAddress, b.IPAddress);
      assert.deepEqual(await interfaces(d, 'ep-a'), { eth0: [`${a.IPAddress}/${a.IPPrefixLen}`] });
      assert.equal(await d.dockerOk(['exec', 'ep-a', 'cat', '/sys/class/net/eth0/address']), a.MacAddress);
      assert.match(await defaultRoute('ep-a'), re(`default via ${a.Gateway} dev eth0`));
      await assertReaches('ep-a', b.IPAddress, 'a peer on the same network');
      await assertReaches('ep-a', a.Gateway, 'the network\'s gateway');
      await assertGets('ep-a', url(b.IPAddress), hostB, 'TCP to a peer');
      const net = await inspectNet(d, 'cmp-ep');
      const listed = net['Containers'] as Record<string, { Name: string; EndpointID: string; IPv4Address: string; IPv6Address: string; MacAddress: string }>;
      assert.deepEqual(Object.values(listed).map((c) => c.Name).sort(), ['ep-a', 'ep-b']);
      const full = await d.dockerOk(['inspect', '-f', '{{.Id}}', 'ep-a']);
      assert.deepEqual(listed[full], { Name: 'ep-a', EndpointID: a.EndpointID, MacAddress: a.MacAddress, IPv4Address: `${a.IPAddress}/${a.IPPrefixLen}`, IPv6Address: '' });
      assert.match(a.EndpointID, /^[0-9a-f]{64}$/);
      assert.equal(a.NetworkID, net['Id']);
    });

    test('names through 127.0.0.11: container name, --network-alias, short id, name.network', async (s) => {
      await s.net('cmp-dns');
      const id = await s.run('dns-srv', 'cmp-dns', ['--network-alias', 'cmp-db']);
      await s.run('dns-cli', 'cmp-dns');
      const ip = (await endpointOf(d, 'dns-srv', 'cmp-dns')).IPAddress;
      const resolv = await d.dockerOk(['exec', 'dns-cli', 'cat', '/etc/resolv.conf']);
      assert.deepEqual(resolv.split('\n').filter((l) => /^nameserver\s/.test(l)), ['nameserver 127.0.0.11'], resolv);
      assert.deepEqual((await endpointOf(d, 'dns-srv', 'cmp-dns')).DNSNames?.sort(), ['cmp-db', 'dns-srv', id].sort(), 'inspect DNSNames');
      for (const name of ['dns-srv', 'cmp-db', id, 'dns-srv.cmp-dns']) await assertResolves('dns-cli', name, ip, 'a name on the network');
      // The other way round, and a name used for traffic: resolver and data path together.
      await assertResolves('dns-srv', 'dns-cli', (await endpointOf(d, 'dns-cli', 'cmp-dns')).IPAddress, 'the client\'s name');
      const byName = await d.docker(['exec', 'dns-cli', 'ping', '-c', '1', '-W', '2', 'cmp-db']);
      assert.equal(byName.code, 0, byName.stdout + byName.stderr);
      await assertGets('dns-cli', 'http://cmp-db/hostname', id, 'TCP to an alias');
    });

    test('rename: the new name resolves at once and the old one no longer; inspect\'s DNSNames follow', async (s) => {
      await s.net('cmp-ren');
      const id = await s.run('ren-old', 'cmp-ren', ['--network-alias', 'cmp-ren-alias']);
      await s.run('ren-cli', 'cmp-ren');
      const ip = (await endpointOf(d, 'ren-old', 'cmp-ren')).IPAddress;
      await assertResolves('ren-cli', 'ren-old', ip, 'before the rename');
      await d.dockerOk(['rename', 'ren-old', 'ren-new']);
      s.containers.splice(s.containers.indexOf('ren-old'), 1, 'ren-new');
      assert.deepEqual((await endpointOf(d, 'ren-new', 'cmp-ren')).DNSNames?.sort(), ['cmp-ren-alias', id.slice(0, 12), 'ren-new'].sort(), 'inspect DNSNames');
      for (const name of ['ren-new', 'ren-new.cmp-ren', 'cmp-ren-alias']) await assertResolves('ren-cli', name, ip, 'after the rename');
      await assertNoName('ren-cli', 'ren-old', 'after the rename, the old name');
    });

    test('DNS round-robin: two containers with the same alias, both addresses answered; a removed one drops out', async (s) => {
      await s.net('cmp-rr');
      await s.run('rr-1', 'cmp-rr', ['--network-alias', 'cmp-pool']);
      await s.run('rr-2', 'cmp-rr', ['--network-alias', 'cmp-pool']);
      await s.run('rr-cli', 'cmp-rr');
      const ip1 = (await endpointOf(d, 'rr-1', 'cmp-rr')).IPAddress;
      const ip2 = (await endpointOf(d, 'rr-2', 'cmp-rr')).IPAddress;
      const both = await lookup('rr-cli', 'cmp-pool');
      assert.ok(both.ok, both.out);
      assert.deepEqual(both.addresses.sort(), [ip1, ip2].sort(), both.out);
      await d.dockerOk(['rm', '-f', 'rr-1']);
      const one = await lookup('rr-cli', 'cmp-pool');
      assert.deepEqual(one.addresses, [ip2], one.out);
    });

    test('live connect and disconnect: ethN appears with its address, reaches peers and names there, and vanishes', async (s) => {
      await s.net('cmp-live-a');
      await s.net('cmp-live-b');
      await s.run('live-c', 'cmp-live-a');
      const peerHost = await s.run('live-peer', 'cmp-live-b');
      const peer = await endpointOf(d, 'live-peer', 'cmp-live-b');
      assert.deepEqual(Object.keys(await interfaces(d, 'live-c')), ['eth0']);
      await assertNoPing('live-c', peer.IPAddress, 'before connect');

      await d.dockerOk(['network', 'connect', '--alias', 'cmp-late', 'cmp-live-b', 'live-c']);
      const ep = await endpointOf(d, 'live-c', 'cmp-live-b');
      const ifs = await interfaces(d, 'live-c');
      assert.deepEqual(Object.keys(ifs).sort(), ['eth0', 'eth1']);
      assert.deepEqual(ifs['eth1'], [`${ep.IPAddress}/${ep.IPPrefixLen}`]);
      await assertReaches('live-c', peer.IPAddress, 'after connect, a peer on the new network');
      await assertGets('live-c', url(peer.IPAddress), peerHost, 'after connect, TCP to the peer');
      await assertResolves('live-c', 'live-peer', peer.IPAddress, 'after connect, the peer\'s name');
      await assertResolves('live-peer', 'live-c', ep.IPAddress, 'after connect, the peer resolves the newcomer');
      await assertResolves('live-peer', 'cmp-late', ep.IPAddress, 'the alias given at connect');
      await assertReaches('live-peer', ep.IPAddress, 'the peer reaches the newcomer');
      const names = Object.values((await inspectNet(d, 'cmp-live-b'))['Containers'] as Record<string, { Name: string }>).map((c) => c.Name);
      assert.deepEqual(names.sort(), ['live-c', 'live-peer']);

      await d.dockerOk(['network', 'disconnect', 'cmp-live-b', 'live-c']);
      assert.deepEqual(Object.keys(await interfaces(d, 'live-c')), ['eth0']);
      await assertNoPing('live-c', peer.IPAddress, 'after disconnect');
      await assertNoName('live-peer', 'live-c', 'after disconnect');
      const left = Object.values((await inspectNet(d, 'cmp-live-b'))['Containers'] as Record<string, { Name: string }>).map((c) => c.Name);
      assert.deepEqual(left, ['live-peer']);

      // Again: an endpoint made anew on a network the container has left works as the first.
      await d.dockerOk(['network', 'connect', 'cmp-live-b', 'live-c']);
      assert.deepEqual(Object.keys(await interfaces(d, 'live-c')).sort(), ['eth0', 'eth1']);
      await assertReaches('live-c', peer.IPAddress, 'after connecting again');
    });

    test('multi-network containers: run on two networks, or run on one and connect the other; peers on both reach them, the networks stay apart', async (s) => {
      await s.net('cmp-multi-a');
      await s.net('cmp-multi-b');
      await s.run('multi-pa', 'cmp-multi-a');
      await s.run('multi-pb', 'cmp-multi-b');
      await s.run('multi-1', ['cmp-multi-a', 'cmp-multi-b']);
      await s.run('multi-2', 'cmp-multi-a');
      await d.dockerOk(['network', 'connect', 'cmp-multi-b', 'multi-2']);
      const pa = (await endpointOf(d, 'multi-pa', 'cmp-multi-a')).IPAddress;
      const pb = (await endpointOf(d, 'multi-pb', 'cmp-multi-b')).IPAddress;
      for (const c of ['multi-1', 'multi-2']) {
        const a = await endpointOf(d, c, 'cmp-multi-a');
        const b = await endpointOf(d, c, 'cmp-multi-b');
        const ifs = await interfaces(d, c);
        assert.deepEqual(Object.keys(ifs).sort(), ['eth0', 'eth1'], c);
        const addrs = Object.values(ifs).flat().sort();
        assert.deepEqual(addrs, [`${a.IPAddress}/${a.IPPrefixLen}`, `${b.IPAddress}/${b.IPPrefixLen}`].sort(), c);
        await assertReaches(c, pa, 'a peer on the first network');
        await assertReaches(c, pb, 'a peer on the second network');
        await assertReaches('multi-pa', a.IPAddress, 'from the first network');
        await assertReaches('multi-pb', b.IPAddress, 'from the second network');
        await assertResolves(c, 'multi-pa', pa, 'a name on the first network');
        await assertResolves(c, 'multi-pb', pb, 'a name on the second network');
      }
      // A container on both does not join them.
      await assertNoPing('multi-pa', pb, 'networks stay isolated');
    });

    test('gateway priority: the default route follows the highest --gw-priority, at run and at connect', async (s) => {
      await s.net('cmp-gw-a');
      await s.net('cmp-gw-b');
      await s.run('gw-run', ['cmp-gw-a', 'name=cmp-gw-b,gw-priority=10']);
      const onB = await endpointOf(d, 'gw-run', 'cmp-gw-b');
      const gwB = onB.Gateway;
      const ifB = Object.entries(await interfaces(d, 'gw-run')).find(([, a]) => a.some((x) => x.startsWith(`${onB.IPAddress}/`)))?.[0];
      assert.ok(ifB, 'the interface on cmp-gw-b');
      assert.match(await defaultRoute('gw-run'), re(`default via ${gwB} dev ${ifB}`), 'run --network name=...,gw-priority=10');

      await s.run('gw-conn', 'cmp-gw-a');
      const gwA = (await endpointOf(d, 'gw-conn', 'cmp-gw-a')).Gateway;
      assert.match(await defaultRoute('gw-conn'), re(`default via ${gwA} dev eth0`));
      await d.dockerOk(['network', 'connect', '--gw-priority', '10', 'cmp-gw-b', 'gw-conn']);
      assert.match(await defaultRoute('gw-conn'), re(`default via ${gwB} dev eth1`), 'connect --gw-priority 10');
      // Traffic out takes that way, and the way works.
      const route = await d.dockerOk(['exec', 'gw-conn', 'ip', 'route', 'get', OUTSIDE_ADDR]);
      assert.match(route, / dev eth1 /, route);
      await assertGets('gw-conn', `http://${OUTSIDE_ADDR}:${OUTSIDE_PORT}/`, OUTSIDE_HOST_ADDR, 'out through the higher-priority network');
      await d.dockerOk(['network', 'disconnect', 'cmp-gw-b', 'gw-conn']);
      assert.match(await defaultRoute('gw-conn'), re(`default via ${gwA} dev eth0`), 'back to the remaining network');
      // A negative priority loses to the default 0.
      await d.dockerOk(['network', 'connect', '--gw-priority', '-5', 'cmp-gw-b', 'gw-conn']);
      assert.match(await defaultRoute('gw-conn'), re(`default via ${gwA} dev eth0`), 'connect --gw-priority -5');
    });

    test('static --ip and --ip6 on a network with --subnet and --ipv6 --subnet; --ip at connect; a taken address is refused', async (s) => {
      await s.net('cmp-static', ['--subnet', '10.231.8.0/24', '--ipv6', '--subnet', 'fd31:c0de:8::/64']);
      await s.net('cmp-static-2', ['--subnet', '10.231.9.0/24']);
      const host1 = await s.run('st-1', 'cmp-static', ['--ip', '10.231.8.10', '--ip6', 'fd31:c0de:8::10']);
      await s.run('st-2', 'cmp-static');
      const e1 = await endpointOf(d, 'st-1', 'cmp-static');
      assert.equal(e1.IPAddress, '10.231.8.10');
      assert.equal(e1.IPPrefixLen, 24);
      assert.equal(e1.GlobalIPv6Address, 'fd31:c0de:8::10');
      assert.equal(e1.GlobalIPv6PrefixLen, 64);
      assert.deepEqual((await interfaces(d, 'st-1'))['eth0']?.sort(), ['10.231.8.10/24', 'fd31:c0de:8::10/64']);
      const e2 = await endpointOf(d, 'st-2', 'cmp-static');
      assert.match(e2.GlobalIPv6Address, /^fd31:c0de:8::/);
      assert.match(await defaultRoute('st-2', true), re(`default via ${e2.IPv6Gateway} dev eth0`));
      await assertReaches('st-2', '10.231.8.10', 'the static IPv4 address');
      await assertReaches('st-2', 'fd31:c0de:8::10', 'the static IPv6 address');
      await assertGets('st-2', url('fd31:c0de:8::10'), host1, 'TCP over IPv6');
      await assertResolves('st-2', 'st-1', 'fd31:c0de:8::10', 'AAAA of a peer');
      const taken = await d.docker(['run', '-d', '--name', 'st-3', '--network', 'cmp-static', '--ip', '10.231.8.10', TEST_IMAGE, ...SERVE]);
      s.containers.push('st-3');
      assert.notEqual(taken.code, 0);
      assert.match(taken.stderr, /Address already in use/);
      await d.dockerOk(['network', 'connect', '--ip', '10.231.9.20', 'cmp-static-2', 'st-2']);
      assert.deepEqual((await interfaces(d, 'st-2'))['eth1'], ['10.231.9.20/24']);
      await s.run('st-4', 'cmp-static-2');
      await assertReaches('st-4', '10.231.9.20', 'the address given at connect');
    });

    test('IPAM flags: --gateway, --ip-range and --aux-address shape the addresses; the gateway answers', async (s) => {
      await s.net('cmp-ipam', ['--subnet', '10.231.12.0/24', '--gateway', '10.231.12.254', '--ip-range', '10.231.12.128/25', '--aux-address', 'reserved=10.231.12.128']);
      const cfg = (await inspectNet(d, 'cmp-ipam'))['IPAM'].Config[0];
      assert.deepEqual(cfg, { Subnet: '10.231.12.0/24', IPRange: '10.231.12.128/25', Gateway: '10.231.12.254', AuxiliaryAddresses: { reserved: '10.231.12.128' } });
      await s.run('ipam-1', 'cmp-ipam');
      const e = await endpointOf(d, 'ipam-1', 'cmp-ipam');
      assert.equal(e.IPAddress, '10.231.12.129');
      assert.equal(e.Gateway, '10.231.12.254');
      assert.match(await defaultRoute('ipam-1'), /default via 10\.231\.12\.254 dev eth0/);
      await assertReaches('ipam-1', '10.231.12.254', 'the --gateway address');
    });

    test('-o com.docker.network.driver.mtu sets the MTU of the container\'s interface', async (s) => {
      await s.net('cmp-mtu', ['-o', 'com.docker.network.driver.mtu=1400']);
      await s.run('mtu-1', 'cmp-mtu');
      await s.run('mtu-2', 'cmp-mtu');
      assert.equal(await d.dockerOk(['exec', 'mtu-1', 'cat', '/sys/class/net/eth0/mtu']), '1400');
      await assertReaches('mtu-1', (await endpointOf(d, 'mtu-2', 'cmp-mtu')).IPAddress, 'a peer at MTU 1400');
    });

    test('published ports from the host (127.0.0.1 and its own address) and from outside', async (s) => {
      await s.net('cmp-pub');
      const host = await s.run('pub-web', 'cmp-pub', ['-p', '18480:80']);
      assert.match(await d.dockerOk(['port', 'pub-web', '80/tcp']), /^0\.0\.0\.0:18480$/m);
      await assertCurl(d.hostNs, 'http://127.0.0.1:18480/hostname', host, 'from the host on 127.0.0.1');
      await assertCurl(d.hostNs, `http://${OUTSIDE_HOST_ADDR}:18480/hostname`, host, 'from the host on its own address');
      await assertCurl(d.outsideNs!, `http://${OUTSIDE_HOST_ADDR}:18480/hostname`, host, 'from outside');
      // Once the container is gone, so is the port.
      await d.dockerOk(['rm', '-f', 'pub-web']);
      const gone = curlFrom(d.outsideNs!, `http://${OUTSIDE_HOST_ADDR}:18480/hostname`);
      assert.ok(!gone.ok, `the port closes with its container (got "${gone.body}")`);
    });

    test('published ports from containers through the host\'s address: the same network (hairpin) and another one', async (s) => {
      await s.net('cmp-hp');
      await s.net('cmp-hp-other');
      const host = await s.run('hp-web', 'cmp-hp', ['-p', '18481:80']);
      await s.run('hp-same', 'cmp-hp');
      await s.run('hp-other', 'cmp-hp-other');
      await assertGets('hp-same', `http://${OUTSIDE_HOST_ADDR}:18481/hostname`, host, 'hairpin on the same network');
      await assertGets('hp-other', `http://${OUTSIDE_HOST_ADDR}:18481/hostname`, host, 'from another network');
    });

    test('masquerade: containers reach the outside, which sees the host\'s address', async (s) => {
      await s.net('cmp-out');
      await s.run('out-1', 'cmp-out');
      // The outside netns has no route back to container subnets: any answer proves the NAT.
      await assertReaches('out-1', OUTSIDE_ADDR, 'ICMP to the outside');
      await assertGets('out-1', `http://${OUTSIDE_ADDR}:${OUTSIDE_PORT}/`, OUTSIDE_HOST_ADDR, 'TCP to the outside, seen from the host\'s address');
    });

    test('isolation: containers on two networks of the driver neither reach nor resolve each other', async (s) => {
      await s.net('cmp-iso-a');
      await s.net('cmp-iso-b');
      await s.run('iso-a', 'cmp-iso-a');
      const hostB = await s.run('iso-b', 'cmp-iso-b');
      await s.run('iso-b2', 'cmp-iso-b');
      const a = (await endpointOf(d, 'iso-a', 'cmp-iso-a')).IPAddress;
      const b = (await endpointOf(d, 'iso-b', 'cmp-iso-b')).IPAddress;
      // Controls: the target serves, on its own network.
      await assertGets('iso-b2', url(b), hostB, 'control: iso-b serves its network');
      await assertNoPing('iso-a', b, 'A to B');
      await assertNoPing('iso-b', a, 'B to A');
      await assertNoGet('iso-a', url(b), 'TCP from A to B');
      await assertNoName('iso-a', 'iso-b', 'names of another network');
      // Nor with the default bridge, in either direction.
      await s.run('iso-dflt', 'bridge');
      const dflt = (await endpointOf(d, 'iso-dflt', 'bridge')).IPAddress;
      await assertNoPing('iso-a', dflt, 'to the default bridge');
      await assertNoPing('iso-dflt', a, 'from the default bridge');
    });

    test('stop and start, restart: the container comes back with its address, reaches its peers, its names resolve', async (s) => {
      await s.net('cmp-cycle');
      await s.run('cyc-1', 'cmp-cycle', ['--network-alias', 'cmp-cyc']);
      const host2 = await s.run('cyc-2', 'cmp-cycle');
      const ip1 = (await endpointOf(d, 'cyc-1', 'cmp-cycle')).IPAddress;
      const ip2 = (await endpointOf(d, 'cyc-2', 'cmp-cycle')).IPAddress;
      await d.dockerOk(['stop', '-t', '1', 'cyc-1']);
      assert.deepEqual(Object.values((await inspectNet(d, 'cmp-cycle'))['Containers'] as Record<string, { Name: string }>).map((c) => c.Name), ['cyc-2'], 'a stopped container has no endpoint');
      await assertNoName('cyc-2', 'cmp-cyc', 'a stopped container\'s alias');
      await d.dockerOk(['start', 'cyc-1']);
      assert.equal((await endpointOf(d, 'cyc-1', 'cmp-cycle')).IPAddress, ip1, 'the same address after start');
      await assertReaches('cyc-1', ip2, 'after start');
      await assertResolves('cyc-2', 'cmp-cyc', ip1, 'the alias after start');
      await d.dockerOk(['restart', '-t', '1', 'cyc-1']);
      assert.equal((await endpointOf(d, 'cyc-1', 'cmp-cycle')).IPAddress, ip1, 'the same address after restart');
      assert.deepEqual(await interfaces(d, 'cyc-1'), { eth0: [`${ip1}/${(await endpointOf(d, 'cyc-1', 'cmp-cycle')).IPPrefixLen}`] });
      await assertGets('cyc-1', url(ip2), host2, 'after restart');
      await assertResolves('cyc-1', 'cyc-2', ip2, 'names from the restarted container');
    });

    test('daemon restart (SIGTERM, then kill -9): running containers keep their network; new ones join it', async (s) => {
      await s.net('cmp-dmn');
      const host1 = await s.run('dmn-1', 'cmp-dmn', ['-p', '18482:80']);
      await s.run('dmn-2', 'cmp-dmn');
      const ip1 = (await endpointOf(d, 'dmn-1', 'cmp-dmn')).IPAddress;
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        await d.restart({ signal });
        const after = `after a daemon restart (${signal})`;
        await assertGets('dmn-2', url(ip1), host1, `${after}, a peer`);
        await assertResolves('dmn-2', 'dmn-1', ip1, `${after}, a name`);
        await assertGets('dmn-2', `http://${OUTSIDE_ADDR}:${OUTSIDE_PORT}/`, OUTSIDE_HOST_ADDR, `${after}, the outside`);
        await assertCurl(d.outsideNs!, `http://${OUTSIDE_HOST_ADDR}:18482/hostname`, host1, `${after}, the published port`);
      }
      await s.run('dmn-3', 'cmp-dmn');
      await assertReaches('dmn-3', ip1, 'a container started after the restarts');
      await assertResolves('dmn-1', 'dmn-3', (await endpointOf(d, 'dmn-3', 'cmp-dmn')).IPAddress, 'its name');
    });

    test('--internal: no default route, no way out, peers on the network still reach and resolve each other', async (s) => {
      await s.net('cmp-int', ['--internal']);
      assert.equal((await inspectNet(d, 'cmp-int'))['Internal'], true);
      await s.run('int-1', 'cmp-int');
      const host2 = await s.run('int-2', 'cmp-int');
      const ip2 = (await endpointOf(d, 'int-2', 'cmp-int')).IPAddress;
      assert.equal(await defaultRoute('int-1'), '', 'no default route');
      await assertNoPing('int-1', OUTSIDE_ADDR, 'ICMP out of an internal network');
      await assertNoGet('int-1', `http://${OUTSIDE_ADDR}:${OUTSIDE_PORT}/`, 'TCP out of an internal network');
      await assertReaches('int-1', ip2, 'a peer on the internal network');
      await assertGets('int-1', url(ip2), host2, 'TCP to a peer on the internal network');
      await assertResolves('int-1', 'int-2', ip2, 'a peer\'s name on the internal network');
    });

    it('a network in use cannot be removed; removing everything leaves nothing behind', async () => {
      const id = await d.dockerOk(['network', 'create', '-d', driver, ...(opts.createArgs ?? []), 'cmp-last']);
      made.push(id);
      await d.dockerOk(['run', '-d', '--name', 'last-1', '--network', 'cmp-last', TEST_IMAGE, ...SERVE]);
      const busy = await d.docker(['network', 'rm', 'cmp-last']);
      assert.notEqual(busy.code, 0);
      assert.match(busy.stderr, /has active endpoints/);
      await d.dockerOk(['rm', '-f', 'last-1']);
      await d.dockerOk(['network', 'rm', 'cmp-last']);
      const ls = (await d.dockerOk(['network', 'ls', '--format', '{{.Name}}'])).split('\n').sort();
      assert.deepEqual(ls, ['bridge', 'host', 'none']);
      assert.equal(await d.dockerOk(['ps', '-aq']), '', 'every test removed its containers');
      // Interfaces out of service at once may be deleted by the kernel just after the answer.
      const extra = (): string[] => hostLinkNames(d).filter((l) => !baseline.has(l));
      await eventually('host links to go', () => (extra().length ? undefined : true), 5000).catch(() => undefined);
      assert.deepEqual(extra(), []);
      for (const net of made) for (const l of opts.hostLinksOf?.(net) ?? []) assert.ok(!hostLinkNames(d).includes(l), `host link ${l} removed`);
      const ruleset = inHost(d, ['nft', 'list', 'ruleset']).stdout;
      for (const net of made) assert.doesNotMatch(ruleset, re(`arca:net:${net.slice(0, 12)}`), `firewall rules of network ${net.slice(0, 12)}`);
      assert.doesNotMatch(ruleset, /arca:ep:/, 'firewall rules of endpoints');
      // The namespaces the daemon makes for containers (`arca-<tag>-<id12>`); a driver's own ones
      // (ovn's switch, `arca-<tag>-ovs`, outlives its networks) are for leftoversOf to judge.
      const left = leftovers(d);
      assert.deepEqual(left.netns.filter((n) => /^arca-[0-9a-f]{6}-[0-9a-f]{12}$/.test(n)), [], 'container namespaces');
      assert.deepEqual(left.mounts, [], 'mounts under the daemon\'s folders');
      assert.deepEqual(await opts.leftoversOf?.(d, made) ?? [], [], `what the ${driver} driver holds`);
    });
  });
}
