/**
 * Networks end to end with the docker CLI: create/ls/inspect/rm/prune shapes and errors, containers
 * on user networks (addresses, interfaces, ping), static addresses and MACs, live connect and
 * disconnect, 50 concurrent runs, bad input leaving nothing behind, restart and kernel wipe.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'node:http';
import { OUTSIDE_ADDR, OUTSIDE_HOST_ADDR, startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { eventually, rawRequest } from './containers-support.js';
import { inHost, inspectNet, interfaces as addrsInside, ipOf } from './networks-support.js';

const IMG = TEST_IMAGE;

/** A raw Engine API call, to check status codes and texts the CLI would rewrite or pre-empt. */
function api(d: TestDaemon, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      { socketPath: d.socket, method, path: `/v1.51${path}`, headers: data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = text;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

interface LinkJson {
  mtu?: number;
  ifname: string;
  master?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string };
}

function hostLinks(d: TestDaemon): LinkJson[] {
  const r = inHost(d, ['ip', '-j', '-d', 'link', 'show']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as LinkJson[];
}

function bridges(d: TestDaemon): string[] {
  return hostLinks(d)
    .filter((l) => l.linkinfo?.info_kind === 'bridge')
    .map((l) => l.ifname)
    .sort();
}


/** Without the native addon the resolver is a DNAT to a gateway listener in the daemon's namespace. */
const NO_ADDON = process.env.ARCA_NATIVE === '0' ? 'the embedded DNS needs the native addon to listen inside containers (ARCA_NATIVE=0)' : false;

describe('networks', () => {
  let d: TestDaemon;

  before(async () => {
    d = await startDaemon({ outside: true });
  });

  after(async () => {
    await d?.cleanup();
  });

  it('predefined networks: bridge (172.17.0.0/16 on arca0), host, none; not removable', async () => {
    const ls = await d.dockerOk(['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}']);
    assert.deepEqual(ls.split('\n').sort(), ['bridge bridge local', 'host host local', 'none null local']);
    const b = await inspectNet(d, 'bridge');
    assert.match(b['Id'], /^[0-9a-f]{64}$/);
    assert.equal(b['IPAM'].Config[0].Subnet, '172.17.0.0/16');
    assert.equal(b['IPAM'].Config[0].Gateway, '172.17.0.1');
    assert.equal(b['Options']['com.docker.network.bridge.name'], 'arca0');
    assert.ok(bridges(d).includes('arca0'));
    assert.ok(!bridges(d).includes('docker0'));
    for (const n of ['bridge', 'host', 'none']) {
      const r = await d.docker(['network', 'rm', n]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`${n} is a pre-defined network and cannot be removed`));
    }
    const type = await d.dockerOk(['network', 'ls', '--filter', 'type=builtin', '--format', '{{.Name}}']);
    assert.deepEqual(type.split('\n').sort(), ['bridge', 'host', 'none']);
  });

  it('inspect before API 1.45 lists the short id among the aliases on user networks (compose 1.29 looks for it), not on bridge', async () => {
    await d.dockerOk(['network', 'create', 'n-alias']);
    const id = await d.dockerOk(['create', '--name', 'c-alias', '--network', 'n-alias', '--network-alias', 'web', TEST_IMAGE, 'true']);
    const onBridge = await d.dockerOk(['create', TEST_IMAGE, 'true']);
    try {
      type View = { NetworkSettings: { Networks: Record<string, { Aliases: string[] | null }> } };
      const view = async (v: string, c: string): Promise<View> => JSON.parse((await rawRequest(d.socket, 'GET', `/${v}/containers/${c}/json`)).body) as View;
      assert.deepEqual((await view('v1.41', id)).NetworkSettings.Networks['n-alias']!.Aliases, ['web', id.slice(0, 12)]);
      assert.deepEqual((await view('v1.44', id)).NetworkSettings.Networks['n-alias']!.Aliases, ['web', id.slice(0, 12)]);
      assert.deepEqual((await view('v1.45', id)).NetworkSettings.Networks['n-alias']!.Aliases, ['web']);
      assert.equal((await view('v1.41', onBridge)).NetworkSettings.Networks['bridge']!.Aliases, null);
      // A view for an old client changes nothing stored.
      assert.deepEqual((await view('v1.51', id)).NetworkSettings.Networks['n-alias']!.Aliases, ['web']);
    } finally {
      await d.docker(['rm', '-f', 'c-alias', onBridge]);
      await d.docker(['network', 'rm', 'n-alias']);
    }
  });

  it('create, inspect, ls filters, duplicate name, rm', async () => {
    const id = await d.dockerOk(['network', 'create', '--label', 'tier=front', '-o', 'com.docker.network.driver.mtu=1400', 'n-shape']);
    assert.match(id, /^[0-9a-f]{64}$/);
    const n = await inspectNet(d, 'n-shape');
    assert.equal(n['Name'], 'n-shape');
    assert.equal(n['Id'], id);
    assert.equal(n['Driver'], 'bridge');
    assert.equal(n['Scope'], 'local');
    assert.equal(n['EnableIPv4'], true);
    assert.equal(n['EnableIPv6'], false);
    assert.equal(n['Internal'], false);
    assert.equal(n['IPAM'].Driver, 'default');
    assert.match(n['IPAM'].Config[0].Subnet, /^172\.(1[89]|2[0-9]|3[01])\.0\.0\/16$/);
    assert.deepEqual(n['Labels'], { tier: 'front' });
    assert.deepEqual(n['Containers'], {});
    assert.ok(!Number.isNaN(Date.parse(n['Created'])));
    const br = hostLinks(d).find((l) => l.ifname === `br-${id.slice(0, 12)}`);
    assert.ok(br, 'bridge br-<id12> exists');
    assert.equal(br.mtu, 1400);
    // Lookups by id prefix.
    assert.equal((await inspectNet(d, id.slice(0, 10)))['Name'], 'n-shape');
    const dup = await d.docker(['network', 'create', 'n-shape']);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /network with name n-shape already exists/);
    assert.equal(await d.dockerOk(['network', 'ls', '-q', '--no-trunc', '--filter', 'label=tier=front']), id);
    assert.equal(await d.dockerOk(['network', 'ls', '--filter', 'name=n-sha', '--format', '{{.Name}}']), 'n-shape');
    assert.equal(await d.dockerOk(['network', 'ls', '--filter', 'type=custom', '--format', '{{.Name}}']), 'n-shape');
    assert.match(await d.dockerOk(['network', 'ls', '--filter', 'dangling=true', '--format', '{{.Name}}']), /n-shape/);
    const bad = await d.docker(['network', 'ls', '--filter', 'bogus=1']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid filter 'bogus'/);
    await d.dockerOk(['network', 'rm', 'n-shape']);
    // Set down at once, deleted by the kernel just after the answer.
    await eventually('the bridge to go', () => (bridges(d).includes(`br-${id.slice(0, 12)}`) ? undefined : true), 5000);
    const gone = await d.docker(['network', 'inspect', 'n-shape']);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /network n-shape not found/);
    const rmGone = await d.docker(['network', 'rm', 'n-shape']);
    assert.match(rmGone.stderr, /network n-shape not found/);
  });

  it('bad input: Docker\'s messages and nothing half-created', async () => {
    await d.dockerOk(['network', 'create', '--subnet', '10.77.0.0/16', 'n-base']);
    const before = bridges(d);
    const count = (await d.dockerOk(['network', 'ls', '-q'])).split('\n').length;
    const cases: Array<[string[], RegExp]> = [
      [['--subnet', '10.77.5.0/24', 'n-bad1'], /Pool overlaps with other one on this address space/],
      [['--subnet', '10.78.0.0/33', 'n-bad2'], /invalid subnet 10\.78\.0\.0\/33: invalid CIDR block notation/],
      [['-d', 'nosuchdriver', 'n-bad5'], /plugin "nosuchdriver" not found/],
      [['-o', 'com.docker.network.driver.mtu=abc', 'n-bad6'], /invalid MTU number/],
    ];
    for (const [args, re] of cases) {
      const r = await d.docker(['network', 'create', ...args]);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
    // What the CLI checks itself, straight to the API (status codes too).
    const apiCases: Array<[Record<string, unknown>, number, RegExp]> = [
      [{ Name: 'n-bad3', IPAM: { Config: [{ Subnet: '10.78.0.0/24', Gateway: '10.79.0.1' }] } }, 400, /invalid gateway 10\.79\.0\.1: parent subnet 10\.78\.0\.0\/24 doesn't contain this address/],
      [{ Name: 'n-bad4', IPAM: { Config: [{ Subnet: '10.78.0.0/24', IPRange: '10.79.0.0/25' }] } }, 400, /invalid ip-range 10\.79\.0\.0\/25: parent subnet 10\.78\.0\.0\/24 doesn't contain ip-range/],
      [{ Name: 'n-bad7', IPAM: { Config: [{ Subnet: '10.78.0.1/24' }] } }, 400, /invalid subnet 10\.78\.0\.1\/24: it should be 10\.78\.0\.0\/24/],
      [{ Name: 'n-bad8', IPAM: { Config: [{ Subnet: '10.77.0.0/24' }] } }, 403, /Pool overlaps/],
      [{ Name: 'n-base' }, 409, /network with name n-base already exists/],
      [{ Name: 'n-bad9', Driver: 'nope' }, 404, /plugin "nope" not found/],
    ];
    for (const [body, status, re] of apiCases) {
      const r = await api(d, 'POST', '/networks/create', body);
      assert.equal(r.status, status, JSON.stringify(body));
      assert.match(r.json.message, re);
    }
    assert.deepEqual(bridges(d), before);
    assert.equal((await d.dockerOk(['network', 'ls', '-q'])).split('\n').length, count);
    // The overlapping subnet is still free to take once its owner is gone.
    await d.dockerOk(['network', 'rm', 'n-base']);
    await d.dockerOk(['network', 'create', '--subnet', '10.77.5.0/24', 'n-bad1']);
    await d.dockerOk(['network', 'rm', 'n-bad1']);
  });

  it('containers on a user network: eth0 with its address, ping by IP, resolv.conf, hosts', async () => {
    await d.dockerOk(['network', 'create', '--subnet', '10.90.0.0/24', 'n-ping']);
    await d.dockerOk(['run', '-d', '--name', 'p1', '--network', 'n-ping', IMG, 'sleep', '300']);
    await d.dockerOk(['run', '-d', '--name', 'p2', '--network', 'n-ping', IMG, 'sleep', '300']);
    const ip1 = await ipOf(d, 'p1', 'n-ping');
    const ip2 = await ipOf(d, 'p2', 'n-ping');
    assert.equal(ip1, '10.90.0.2');
    assert.equal(ip2, '10.90.0.3');
    assert.deepEqual(await addrsInside(d, 'p1'), { eth0: ['10.90.0.2/24'] });
    const ping = await d.docker(['exec', 'p1', 'ping', '-c', '2', '-W', '2', ip2]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const route = await d.dockerOk(['exec', 'p1', 'ip', 'route', 'show', 'default']);
    assert.match(route, /default via 10\.90\.0\.1 dev eth0/);
    const mac = await d.dockerOk(['exec', 'p1', 'cat', '/sys/class/net/eth0/address']);
    assert.equal(mac, '02:42:0a:5a:00:02');
    const resolv = await d.dockerOk(['exec', 'p1', 'cat', '/etc/resolv.conf']);
    assert.match(resolv, /^nameserver 127\.0\.0\.11$/m);
    assert.match(resolv, /ndots:0/);
    const hosts = await d.dockerOk(['exec', 'p1', 'cat', '/etc/hosts']);
    assert.match(hosts, /^10\.90\.0\.2\t/m);
    const n = await inspectNet(d, 'n-ping');
    const ctrs = Object.values(n['Containers'] as Record<string, any>);
    assert.equal(ctrs.length, 2);
    const c1 = ctrs.find((x) => x.Name === 'p1');
    assert.equal(c1.IPv4Address, '10.90.0.2/24');
    assert.equal(c1.MacAddress, '02:42:0a:5a:00:02');
    assert.match(c1.EndpointID, /^[0-9a-f]{64}$/);
    const settings = JSON.parse(await d.dockerOk(['inspect', '-f', '{{json .NetworkSettings.Networks}}', 'p1'])) as Record<string, any>;
    assert.equal(settings['n-ping'].IPPrefixLen, 24);
    assert.equal(settings['n-ping'].Gateway, '10.90.0.1');
    assert.equal(settings['n-ping'].NetworkID, n['Id']);
    assert.ok(settings['n-ping'].DNSNames.includes('p1'));
    const inUse = await d.docker(['network', 'rm', 'n-ping']);
    assert.notEqual(inUse.code, 0);
    assert.match(inUse.stderr, /error while removing network: network n-ping id [0-9a-f]{64} has active endpoints/);
    // Stopping releases the endpoint; the configuration stays and comes back at start.
    await d.dockerOk(['stop', '-t', '1', 'p2']);
    assert.equal(Object.keys((await inspectNet(d, 'n-ping'))['Containers']).length, 1);
    await d.dockerOk(['start', 'p2']);
    assert.equal(await ipOf(d, 'p2', 'n-ping'), '10.90.0.3');
    await d.dockerOk(['rm', '-f', 'p1', 'p2']);
    await d.dockerOk(['network', 'rm', 'n-ping']);
  });

  it('embedded DNS on user networks: names, aliases, <name>.<network>, scoped, follows disconnect', async () => {
    await d.dockerOk(['network', 'create', 'n-dns']);
    await d.dockerOk(['network', 'create', '--internal', 'n-dns2']);
    await d.dockerOk(['run', '-d', '--name', 'd1', '--network', 'n-dns', '--network-alias', 'svc', IMG, 'sleep', '300']);
    await d.dockerOk(['run', '-d', '--name', 'd2', '--network', 'n-dns', IMG, 'sleep', '300']);
    await d.dockerOk(['run', '-d', '--name', 'd3', '--network', 'n-dns2', IMG, 'sleep', '300']);
    const ip1 = await ipOf(d, 'd1', 'n-dns');
    const look = async (c: string, name: string): Promise<{ code: number; out: string }> => {
      const r = await d.docker(['exec', c, 'nslookup', name]);
      return { code: r.code, out: r.stdout + r.stderr };
    };
    for (const name of ['d1', 'svc', 'd1.n-dns']) {
      const r = await look('d2', name);
      assert.equal(r.code, 0, `${name}: ${r.out}`);
      assert.match(r.out, new RegExp(`Address: ${ip1.replace(/\./g, '\\.')}`), name);
    }
    // d3 shares no network with d1: not resolvable there; d3 on an internal network still resolves peers.
    assert.notEqual((await look('d3', 'd1')).code, 0);
    assert.equal((await look('d3', 'd3')).code, 0);
    // Connect d3 to n-dns: now it sees d1; disconnect: it does not any more.
    await d.dockerOk(['network', 'connect', 'n-dns', 'd3']);
    assert.equal((await look('d3', 'd1')).code, 0);
    await d.dockerOk(['network', 'disconnect', 'n-dns', 'd3']);
    assert.notEqual((await look('d3', 'd1')).code, 0);
    await d.dockerOk(['rm', '-f', 'd2']);
    assert.notEqual((await look('d1', 'd2')).code, 0, 'a removed container no longer resolves');
    // A restart gives d1 a new namespace: its resolver is made again in there.
    await d.dockerOk(['restart', '-t', '1', 'd1']);
    assert.equal((await look('d1', 'svc')).code, 0, 'resolves after a restart');
    await d.dockerOk(['rm', '-f', 'd1', 'd3']);
    await d.dockerOk(['network', 'rm', 'n-dns', 'n-dns2']);
  });

  it('embedded DNS listens inside the container: IPv6-only networks resolve, no NAT in the container namespace', { skip: NO_ADDON }, async () => {
    await d.dockerOk(['network', 'create', '--ipv4=false', '--ipv6', '--subnet', 'fd00:dd::/64', 'n-v6only']);
    await d.dockerOk(['run', '-d', '--name', 'v6a', '--network', 'n-v6only', IMG, 'sleep', '300']);
    await d.dockerOk(['run', '-d', '--name', 'v6b', '--network', 'n-v6only', IMG, 'sleep', '300']);
    assert.match(await d.dockerOk(['exec', 'v6a', 'cat', '/etc/resolv.conf']), /^nameserver 127\.0\.0\.11$/m);
    const r = await d.docker(['exec', 'v6a', 'nslookup', '-type=AAAA', 'v6b']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Address: fd00:dd::3/);
    // Docker's resolver is a socket in the container's namespace: so is ours, and nothing is NATed there.
    const key = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', 'v6a']);
    const inside = (argv: string[]): string => spawnSync('nsenter', [`--net=${key}`, '--', ...argv], { encoding: 'utf8', timeout: 30_000 }).stdout;
    assert.equal(inside(['nft', 'list', 'tables']).trim(), '', 'no nft tables in the container namespace');
    const socks = inside(['ss', '-Hlnut', 'src', '127.0.0.11']);
    assert.equal(socks.trim().split('\n').filter((l) => /127\.0\.0\.11:53\b/.test(l)).length, 2, socks);
    await d.dockerOk(['rm', '-f', 'v6a', 'v6b']);
    await d.dockerOk(['network', 'rm', 'n-v6only']);
  });

  it('--link on a user network: the alias resolves through the embedded DNS, for the linking container only', async () => {
    await d.dockerOk(['network', 'create', 'n-link']);
    await d.dockerOk(['run', '-d', '--name', 'lk-db', '--network', 'n-link', IMG, 'sleep', '300']);
    await d.dockerOk(['run', '-d', '--name', 'lk-app', '--network', 'n-link', '--link', 'lk-db:database', IMG, 'sleep', '300']);
    await d.dockerOk(['run', '-d', '--name', 'lk-other', '--network', 'n-link', IMG, 'sleep', '300']);
    const ip = await ipOf(d, 'lk-db', 'n-link');
    const r = await d.docker(['exec', 'lk-app', 'nslookup', 'database']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`Address: ${ip.replace(/\./g, '\\.')}`));
    assert.notEqual((await d.docker(['exec', 'lk-other', 'nslookup', 'database'])).code, 0);
    // Not written into /etc/hosts on a user network (Docker neither).
    assert.doesNotMatch(await d.dockerOk(['exec', 'lk-app', 'cat', '/etc/hosts']), /database/);
    await d.dockerOk(['rm', '-f', 'lk-db', 'lk-app', 'lk-other']);
    await d.dockerOk(['network', 'rm', 'n-link']);
  });

  it('--dns, --dns-search, --dns-option on a user network: 127.0.0.11 stays, search and options as Docker', async () => {
    await d.dockerOk(['network', 'create', 'n-dnsopt']);
    await d.dockerOk(['run', '-d', '--name', 'o1', '--network', 'n-dnsopt', '--dns', '198.18.9.9', '--dns-search', 'corp.example', '--dns-option', 'ndots:2', IMG, 'sleep', '300']);
    const resolv = await d.dockerOk(['exec', 'o1', 'cat', '/etc/resolv.conf']);
    // The --dns server becomes the embedded server's upstream for o1, not a nameserver line
    // (reaching 198.18.9.9 is not tested: there is no such server here).
    assert.deepEqual(resolv.split('\n').filter((l) => /^nameserver\s/.test(l)), ['nameserver 127.0.0.11']);
    assert.match(resolv, /^search corp\.example$/m);
    // A user ndots replaces the embedded DNS default ndots:0.
    assert.match(resolv, /^options ndots:2$/m);
    assert.doesNotMatch(resolv, /ndots:0/);
    // Names on the network are still answered by the embedded server (a trailing dot skips the
    // search list, whose corp.example queries would go to the unreachable 198.18.9.9).
    const self = await d.docker(['exec', 'o1', 'nslookup', 'o1.']);
    assert.equal(self.code, 0, self.stdout + self.stderr);
    await d.dockerOk(['rm', '-f', 'o1']);
    if (NO_ADDON) {
      await d.dockerOk(['network', 'rm', 'n-dnsopt']);
      return;
    }
    // As moby, a container's own --dns servers are asked from its namespace: `--dns 127.0.0.1`
    // reaches a resolver on the container's loopback (a stand-in started in there).
    await d.dockerOk(['run', '-d', '--name', 'o2', '--network', 'n-dnsopt', '--dns', '127.0.0.1', IMG, 'sleep', '300']);
    const key = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', 'o2']);
    const fake = spawn('nsenter', [`--net=${key}`, '--', process.execPath, join(dirname(fileURLToPath(import.meta.url)), 'fake-dns-upstream.js'), '127.0.0.1', '53', '192.0.2.77'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((res, rej) => {
        fake.stdout.once('data', () => res());
        fake.once('exit', (code) => rej(new Error(`stand-in upstream exited (${code})`)));
      });
      const far = await d.docker(['exec', 'o2', 'nslookup', 'far.example.']);
      assert.equal(far.code, 0, far.stdout + far.stderr);
      assert.match(far.stdout, /Address: 192\.0\.2\.77/);
    } finally {
      fake.kill('SIGKILL');
    }
    await d.dockerOk(['rm', '-f', 'o2']);
    await d.dockerOk(['network', 'rm', 'n-dnsopt']);
  });

  it('firewall: masquerade out, --internal has no way out, networks isolated, enable_icc and enable_ip_masquerade', async () => {
    await d.dockerOk(['network', 'create', 'f-a']);
    await d.dockerOk(['network', 'create', 'f-b']);
    await d.dockerOk(['network', 'create', '--internal', 'f-int']);
    await d.dockerOk(['network', 'create', '-o', 'com.docker.network.bridge.enable_icc=false', 'f-noicc']);
    await d.dockerOk(['network', 'create', '-o', 'com.docker.network.bridge.enable_ip_masquerade=false', 'f-nomasq']);
    const run = (name: string, net: string): Promise<string> => d.dockerOk(['run', '-d', '--name', name, '--network', net, IMG, 'sleep', '300']);
    await Promise.all([run('fa1', 'f-a'), run('fa2', 'f-a'), run('fb1', 'f-b'), run('fi1', 'f-int'), run('fn1', 'f-noicc'), run('fn2', 'f-noicc'), run('fm1', 'f-nomasq'), run('dflt', 'bridge')]);
    const ping = async (c: string, ip: string): Promise<boolean> => (await d.docker(['exec', c, 'ping', '-c', '1', '-W', '1', ip])).code === 0;
    // The outside netns has no route back to container subnets: a reply proves the masquerade.
    assert.ok(await ping('fa1', OUTSIDE_ADDR), 'user network reaches outside');
    assert.ok(await ping('dflt', OUTSIDE_ADDR), 'default bridge reaches outside');
    assert.ok(!(await ping('fi1', OUTSIDE_ADDR)), '--internal has no way out');
    assert.ok(!(await ping('fm1', OUTSIDE_ADDR)), 'enable_ip_masquerade=false: no NAT');
    assert.ok(await ping('fa1', await ipOf(d, 'fa2', 'f-a')), 'same network');
    const fb1 = await ipOf(d, 'fb1', 'f-b');
    assert.ok(!(await ping('fa1', fb1)), 'networks are isolated');
    assert.ok(!(await ping('fb1', await ipOf(d, 'fa1', 'f-a'))), 'both ways');
    assert.ok(!(await ping('fn1', await ipOf(d, 'fn2', 'f-noicc'))), 'enable_icc=false');
    await d.dockerOk(['network', 'connect', 'f-b', 'fa1']);
    assert.ok(await ping('fa1', fb1), 'connected to both: reachable');
    await d.dockerOk(['rm', '-f', 'fa1', 'fa2', 'fb1', 'fi1', 'fn1', 'fn2', 'fm1', 'dflt']);
    await d.dockerOk(['network', 'rm', 'f-a', 'f-b', 'f-int', 'f-noicc', 'f-nomasq']);
  });

  it('IPv6: --ipv6 gets a ULA /64 (or the given subnet), containers get v6 addresses and reach each other', async () => {
    await d.dockerOk(['network', 'create', '--ipv6', 'n6']);
    await d.dockerOk(['network', 'create', '--ipv6', '--subnet', 'fd00:db8:1::/64', '--subnet', '10.96.0.0/24', 'n6b']);
    const n6 = await inspectNet(d, 'n6');
    assert.equal(n6['EnableIPv6'], true);
    const v6 = (n6['IPAM'].Config as Array<{ Subnet: string }>).find((c) => c.Subnet.includes(':'));
    assert.match(v6?.Subnet ?? '', /^fd[0-9a-f]{2}:[0-9a-f:]+\/64$/);
    await d.dockerOk(['run', '-d', '--name', 'v1', '--network', 'n6b', '--ip6', 'fd00:db8:1::10', IMG, 'sleep', '300']);
    await d.dockerOk(['run', '-d', '--name', 'v2', '--network', 'n6b', IMG, 'sleep', '300']);
    const g = JSON.parse(await d.dockerOk(['inspect', '-f', '{{json .NetworkSettings.Networks}}', 'v2']))['n6b'];
    assert.equal(g.GlobalIPv6Address, 'fd00:db8:1::2');
    assert.equal(g.GlobalIPv6PrefixLen, 64);
    assert.equal(g.IPv6Gateway, 'fd00:db8:1::1');
    assert.equal(g.IPAddress, '10.96.0.3');
    const inside = await addrsInside(d, 'v1');
    assert.ok(inside['eth0']?.includes('fd00:db8:1::10/64'), JSON.stringify(inside));
    const ping6 = await d.docker(['exec', 'v2', 'ping', '-6', '-c', '1', '-W', '2', 'fd00:db8:1::10']);
    assert.equal(ping6.code, 0, ping6.stdout + ping6.stderr);
    const route6 = await d.dockerOk(['exec', 'v2', 'ip', '-6', 'route', 'show', 'default']);
    assert.match(route6, /default via fd00:db8:1::1 dev eth0/);
    await d.dockerOk(['rm', '-f', 'v1', 'v2']);
    await d.dockerOk(['network', 'rm', 'n6', 'n6b']);
  });

  it('published ports: from the host (127.0.0.1), from outside, hairpin, docker port, ps, conflicts, -P', async () => {
    await d.dockerOk(['network', 'create', 'n-web']);
    const id = await d.dockerOk(['run', '-d', '--name', 'web', '--network', 'n-web', '-p', '18080:80', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    const hostname = id.slice(0, 12);
    const fetch = (argv: string[]): { code: number; stdout: string; stderr: string } => {
      const r = spawnSync('timeout', ['5', ...argv], { encoding: 'utf8' });
      return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    };
    let fromHost = { code: 1, stdout: '', stderr: '' };
    for (let i = 0; i < 20 && fromHost.code !== 0; i++) {
      fromHost = fetch(['nsenter', `--net=/run/netns/${d.hostNs}`, 'busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:18080/hostname']);
      if (fromHost.code !== 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(fromHost.stdout.trim(), hostname, 'from the host on 127.0.0.1: ' + fromHost.stderr);
    const fromOutside = fetch(['nsenter', `--net=/run/netns/${d.outsideNs}`, 'busybox', 'wget', '-q', '-O', '-', `http://${OUTSIDE_HOST_ADDR}:18080/hostname`]);
    assert.equal(fromOutside.stdout.trim(), hostname, 'from outside: ' + fromOutside.stderr);
    await d.dockerOk(['run', '-d', '--name', 'client', '--network', 'n-web', IMG, 'sleep', '300']);
    const hairpin = await d.docker(['exec', 'client', 'timeout', '5', 'wget', '-q', '-O', '-', `http://${OUTSIDE_HOST_ADDR}:18080/hostname`]);
    assert.equal(hairpin.stdout.trim(), hostname, 'hairpin through the host address: ' + hairpin.stderr);
    await d.dockerOk(['run', '-d', '--name', 'other', IMG, 'sleep', '300']);
    const crossNet = await d.docker(['exec', 'other', 'timeout', '5', 'wget', '-q', '-O', '-', `http://${OUTSIDE_HOST_ADDR}:18080/hostname`]);
    assert.equal(crossNet.stdout.trim(), hostname, 'another network through the published port: ' + crossNet.stderr);
    const port = await d.dockerOk(['port', 'web']);
    assert.match(port, /^80\/tcp -> 0\.0\.0\.0:18080$/m);
    const ps = await d.dockerOk(['ps', '--filter', 'name=web', '--format', '{{.Ports}}']);
    assert.match(ps, /0\.0\.0\.0:18080->80\/tcp/);
    const taken = await d.docker(['run', '-d', '--name', 'web2', '-p', '18080:80', IMG, 'sleep', '300']);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /port is already allocated/);
    const web2 = await d.dockerOk(['inspect', '-f', '{{.State.Status}}', 'web2']);
    assert.equal(web2, 'created');
    // -P: exposed ports get ephemeral host ports.
    await d.dockerOk(['run', '-d', '--name', 'pall', '--expose', '90', '-P', IMG, 'sleep', '300']);
    assert.match(await d.dockerOk(['port', 'pall', '90']), /^0\.0\.0\.0:\d{4,5}$/m);
    const bad = await api(d, 'POST', '/containers/create', { Image: IMG, Cmd: ['true'], HostConfig: { PortBindings: { 'abc/tcp': [{ HostPort: '1' }] } } });
    assert.equal(bad.status, 400);
    // Stopping frees the port for someone else.
    await d.dockerOk(['rm', '-f', 'web']);
    await d.dockerOk(['start', 'web2']);
    await d.dockerOk(['rm', '-f', 'web2', 'client', 'other', 'pall']);
    await d.dockerOk(['network', 'rm', 'n-web']);
  });

  it('default bridge: 172.17.0.x, top-level IPAddress, host resolv.conf, --link in /etc/hosts', async () => {
    await d.dockerOk(['run', '-d', '--name', 'b1', '--add-host', 'host.docker.internal:host-gateway', IMG, 'sleep', '300']);
    assert.match(await d.dockerOk(['exec', 'b1', 'cat', '/etc/hosts']), /^172\.17\.0\.1\thost\.docker\.internal$/m);
    await d.dockerOk(['run', '-d', '--name', 'b2', '--link', 'b1:buddy', IMG, 'sleep', '300']);
    const ip1 = await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'b1']);
    assert.match(ip1, /^172\.17\.0\.\d+$/);
    assert.equal(await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Gateway}}', 'b1']), '172.17.0.1');
    const hosts = await d.dockerOk(['exec', 'b2', 'cat', '/etc/hosts']);
    assert.match(hosts, new RegExp(`^${ip1.replace(/\./g, '\\.')}\\tbuddy\\b.*\\bb1\\b`, 'm'));
    const resolv = await d.dockerOk(['exec', 'b1', 'cat', '/etc/resolv.conf']);
    assert.doesNotMatch(resolv, /127\.0\.0\.11/);
    const ping = await d.docker(['exec', 'b2', 'ping', '-c', '1', '-W', '2', 'buddy']);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    await d.dockerOk(['rm', '-f', 'b1', 'b2']);
  });

  it('static --ip, --mac-address, several networks in one run (eth0, eth1), errors', async () => {
    await d.dockerOk(['network', 'create', '--subnet', '10.91.0.0/24', '--ip-range', '10.91.0.128/25', 'n-s1']);
    await d.dockerOk(['network', 'create', 'n-s2']);
    await d.dockerOk(['run', '-d', '--name', 's1', '--network', 'n-s1', '--ip', '10.91.0.10', '--mac-address', '02:aa:bb:cc:dd:ee', IMG, 'sleep', '300']);
    assert.equal(await ipOf(d, 's1', 'n-s1'), '10.91.0.10');
    assert.equal(await d.dockerOk(['exec', 's1', 'cat', '/sys/class/net/eth0/address']), '02:aa:bb:cc:dd:ee');
    await d.dockerOk(['run', '-d', '--name', 's2', '--network', 'n-s1', IMG, 'sleep', '300']);
    assert.equal(await ipOf(d, 's2', 'n-s1'), '10.91.0.128', 'dynamic addresses come from the ip-range');
    const taken = await d.docker(['run', '-d', '--name', 's3', '--network', 'n-s1', '--ip', '10.91.0.10', IMG, 'sleep', '300']);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /Address already in use/);
    await d.docker(['rm', '-f', 's3']);
    const noSubnet = await d.docker(['run', '-d', '--network', 'n-s2', '--ip', '172.30.0.9', IMG, 'true']);
    assert.notEqual(noSubnet.code, 0);
    assert.match(noSubnet.stderr, /user specified IP address is supported only when connecting to networks with user configured subnets/);
    const outside = await d.docker(['run', '-d', '--network', 'n-s1', '--ip', '10.92.0.9', IMG, 'true']);
    assert.notEqual(outside.code, 0);
    assert.match(outside.stderr, /no configured subnet or ip-range contain the IP address 10\.92\.0\.9/);
    // The CLI reads any 404 on create as "image missing" and tries a pull: check the daemon directly.
    const unknown = await api(d, 'POST', '/containers/create', { Image: IMG, Cmd: ['true'], HostConfig: { NetworkMode: 'n-nope' } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.message, 'network n-nope not found');

    await d.dockerOk(['run', '-d', '--name', 'multi', '--network', 'n-s1', '--network', 'n-s2', IMG, 'sleep', '300']);
    const inside = await addrsInside(d, 'multi');
    assert.deepEqual(Object.keys(inside).sort(), ['eth0', 'eth1']);
    const ipS2 = await ipOf(d, 'multi', 'n-s2');
    assert.ok(Object.values(inside).flat().some((a) => a.startsWith(`${ipS2}/`)));
    // Equal priorities: the default route goes through the network whose name sorts first.
    assert.match(await d.dockerOk(['exec', 'multi', 'ip', 'route', 'show', 'default']), /via 10\.91\.0\.1/);
    await d.dockerOk(['rm', '-f', 's1', 's2', 'multi']);
    await d.dockerOk(['network', 'rm', 'n-s1', 'n-s2']);
  });

  it('published ports follow the gateway endpoint across live connect and disconnect', async () => {
    await d.dockerOk(['network', 'create', '--subnet', '10.95.0.0/24', 'n-p1']);
    await d.dockerOk(['network', 'create', '--subnet', '10.96.0.0/24', 'n-p2']);
    await d.dockerOk(['run', '-d', '--name', 'pmove', '--network', 'n-p1', '-p', '18095:80', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    const get = async (): Promise<string | undefined> => {
      const r = spawnSync('timeout', ['5', 'nsenter', `--net=/run/netns/${d.hostNs}`, 'busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:18095/hostname'], { encoding: 'utf8' });
      return r.status === 0 ? r.stdout.trim() : undefined;
    };
    const hostname = (await d.dockerOk(['inspect', '-f', '{{.Config.Hostname}}', 'pmove'])).trim();
    assert.equal(await eventually('the port to answer', get, 5000), hostname);
    // n-p2 takes the default route; the port now leads to the n-p2 address, and survives n-p1 leaving.
    await d.dockerOk(['network', 'connect', '--gw-priority', '10', 'n-p2', 'pmove']);
    const routes = await d.dockerOk(['exec', 'pmove', 'ip', 'route', 'show', 'default']);
    assert.match(routes, /via 10\.96\.0\.1 dev eth1/);
    assert.equal(await get(), hostname);
    await d.dockerOk(['network', 'disconnect', 'n-p1', 'pmove']);
    assert.equal(await eventually('the port to answer through n-p2', get, 5000), hostname);
    assert.equal(await d.dockerOk(['port', 'pmove', '80/tcp']), '0.0.0.0:18095\n[::]:18095');
    // The host port is still held by this container.
    const taken = await d.docker(['run', '-d', '--name', 'pmove2', '-p', '18095:80', IMG, 'sleep', '5']);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /port is already allocated/);
    await d.docker(['rm', '-f', 'pmove2']);
    await d.dockerOk(['rm', '-f', 'pmove']);
    await d.dockerOk(['network', 'rm', 'n-p1', 'n-p2']);
  });

  it('live connect/disconnect of a running container: interface, routes, /etc/hosts; errors', async () => {
    await d.dockerOk(['network', 'create', '--subnet', '10.93.0.0/24', 'n-l1']);
    await d.dockerOk(['network', 'create', '--subnet', '10.94.0.0/24', 'n-l2']);
    await d.dockerOk(['run', '-d', '--name', 'l1', '--network', 'n-l1', IMG, 'sleep', '300']);
    await d.dockerOk(['run', '-d', '--name', 'peer', '--network', 'n-l2', IMG, 'sleep', '300']);
    const peerIp = await ipOf(d, 'peer', 'n-l2');
    await d.dockerOk(['network', 'connect', '--ip', '10.94.0.50', 'n-l2', 'l1']);
    assert.deepEqual(await addrsInside(d, 'l1'), { eth0: ['10.93.0.2/24'], eth1: ['10.94.0.50/24'] });
    const ping = await d.docker(['exec', 'l1', 'ping', '-c', '1', '-W', '2', peerIp]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.match(await d.dockerOk(['exec', 'l1', 'cat', '/etc/hosts']), /^10\.94\.0\.50\t/m);
    const twice = await d.docker(['network', 'connect', 'n-l2', 'l1']);
    assert.notEqual(twice.code, 0);
    assert.match(twice.stderr, /endpoint with name l1 already exists in network n-l2/);
    // A higher gateway priority takes the default route.
    await d.dockerOk(['network', 'disconnect', 'n-l2', 'l1']);
    await d.dockerOk(['network', 'connect', '--gw-priority', '10', 'n-l2', 'l1']);
    assert.match(await d.dockerOk(['exec', 'l1', 'ip', 'route', 'show', 'default']), /via 10\.94\.0\.1 dev eth1/);
    await d.dockerOk(['network', 'disconnect', 'n-l2', 'l1']);
    assert.deepEqual(Object.keys(await addrsInside(d, 'l1')), ['eth0']);
    assert.match(await d.dockerOk(['exec', 'l1', 'ip', 'route', 'show', 'default']), /via 10\.93\.0\.1 dev eth0/);
    assert.doesNotMatch(await d.dockerOk(['exec', 'l1', 'cat', '/etc/hosts']), /10\.94\.0\./);
    const notOn = await d.docker(['network', 'disconnect', 'n-l2', 'l1']);
    assert.notEqual(notOn.code, 0);
    assert.match(notOn.stderr, /is not connected to network n-l2/);
    const noNet = await d.docker(['network', 'connect', 'n-none-such', 'l1']);
    assert.match(noNet.stderr, /network n-none-such not found/);
    // A stopped container: connect only records it; the interface appears at start.
    await d.dockerOk(['stop', '-t', '1', 'l1']);
    await d.dockerOk(['network', 'connect', 'n-l2', 'l1']);
    await d.dockerOk(['start', 'l1']);
    assert.deepEqual(Object.keys(await addrsInside(d, 'l1')).sort(), ['eth0', 'eth1']);
    await d.dockerOk(['rm', '-f', 'l1', 'peer']);
    await d.dockerOk(['network', 'rm', 'n-l1', 'n-l2']);
    // The kernel removes the pairs with the containers' namespaces, just after the answer.
    await eventually('veths to go', () => (hostLinks(d).some((l) => /^vx/.test(l.ifname)) ? undefined : true), 5000).catch(() => undefined);
    const vethLeft = hostLinks(d).filter((l) => /^vx/.test(l.ifname));
    assert.deepEqual(vethLeft, []);
  });

  it('50 concurrent docker run -d on one network get 50 distinct addresses', async () => {
    await d.dockerOk(['network', 'create', 'n-many']);
    const runs = await Promise.all(
      Array.from({ length: 50 }, (_, i) => d.docker(['run', '-d', '--name', `m${i}`, '--network', 'n-many', IMG, 'sleep', '300'], { timeoutMs: 180_000 })),
    );
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const n = await inspectNet(d, 'n-many');
    const addrs = Object.values(n['Containers'] as Record<string, any>).map((c) => c.IPv4Address as string);
    assert.equal(addrs.length, 50);
    assert.equal(new Set(addrs).size, 50);
    await d.dockerOk(['rm', '-f', ...Array.from({ length: 50 }, (_, i) => `m${i}`)], { timeoutMs: 180_000 });
    await d.dockerOk(['network', 'rm', 'n-many']);
  });

  it('prune removes unused user networks, keeps predefined and in-use ones; label and until filters', async () => {
    await d.dockerOk(['network', 'create', '--label', 'keep=1', 'pr-keep']);
    await d.dockerOk(['network', 'create', 'pr-a']);
    await d.dockerOk(['network', 'create', 'pr-used']);
    await d.dockerOk(['run', '-d', '--name', 'pu', '--network', 'pr-used', IMG, 'sleep', '300']);
    const none = await d.dockerOk(['network', 'prune', '-f', '--filter', 'until=1h']);
    assert.doesNotMatch(none, /pr-a/);
    // Nothing pruned: moby's NetworksDeleted is null.
    const rawNone = await rawRequest(d.socket, 'POST', '/v1.51/networks/prune?filters=' + encodeURIComponent('{"until":["1h"]}'));
    assert.deepEqual(JSON.parse(rawNone.body), { NetworksDeleted: null });
    const out = await d.dockerOk(['network', 'prune', '-f', '--filter', 'label!=keep=1']);
    assert.match(out, /pr-a/);
    assert.doesNotMatch(out, /pr-keep|pr-used|bridge/);
    const names = (await d.dockerOk(['network', 'ls', '--format', '{{.Name}}'])).split('\n');
    for (const k of ['bridge', 'host', 'none', 'pr-keep', 'pr-used']) assert.ok(names.includes(k), k);
    assert.ok(!names.includes('pr-a'));
    await d.dockerOk(['rm', '-f', 'pu']);
    await d.dockerOk(['network', 'prune', '-f']);
    const after = (await d.dockerOk(['network', 'ls', '--format', '{{.Name}}'])).split('\n').sort();
    assert.deepEqual(after, ['bridge', 'host', 'none']);
  });

  it('daemon restart and kernel wipe: bridges and endpoints rebuilt from the database, strays removed', async () => {
    const id = await d.dockerOk(['network', 'create', '--subnet', '10.95.0.0/24', 'n-r']);
    await d.dockerOk(['run', '-d', '--name', 'r1', '--network', 'n-r', IMG, 'sleep', '600']);
    await d.dockerOk(['run', '-d', '--name', 'r2', '--network', 'n-r', IMG, 'sleep', '600']);
    const r3 = await d.dockerOk(['run', '-d', '--name', 'r3', '--network', 'n-r', '-p', '18090:80', IMG, 'httpd', '-f', '-p', '80', '-h', '/etc']);
    const ip2 = await ipOf(d, 'r2', 'n-r');
    await d.restart();
    assert.equal((await d.docker(['exec', 'r1', 'ping', '-c', '1', '-W', '2', ip2])).code, 0, 'after a plain restart');
    await d.restart({ signal: 'SIGKILL' });
    assert.equal((await d.docker(['exec', 'r1', 'ping', '-c', '1', '-W', '2', ip2])).code, 0, 'after kill -9');
    // Wipe: the bridges vanish (veths fall off them), nft is flushed, a stray bridge with our naming appears.
    inHost(d, ['ip', 'link', 'del', `br-${id.slice(0, 12)}`]);
    inHost(d, ['ip', 'link', 'del', 'arca0']);
    inHost(d, ['ip', 'link', 'add', 'br-0123456789ab', 'type', 'bridge']);
    inHost(d, ['nft', 'flush', 'ruleset']);
    await d.restart();
    const out = await d.docker(['exec', 'r1', 'ping', '-c', '1', '-W', '2', OUTSIDE_ADDR]);
    assert.equal(out.code, 0, 'masquerade restored after nft was flushed: ' + out.stdout + out.stderr);
    const names = bridges(d);
    assert.ok(names.includes(`br-${id.slice(0, 12)}`));
    assert.ok(names.includes('arca0'));
    assert.ok(!names.includes('br-0123456789ab'));
    const addr = JSON.parse(inHost(d, ['ip', '-j', 'addr', 'show', 'dev', `br-${id.slice(0, 12)}`]).stdout) as Array<{ addr_info: Array<{ local: string }> }>;
    assert.ok(addr[0]!.addr_info.some((a) => a.local === '10.95.0.1'));
    const ping = await d.docker(['exec', 'r1', 'ping', '-c', '1', '-W', '2', ip2]);
    assert.equal(ping.code, 0, 'after a kernel wipe: ' + ping.stdout + ping.stderr);
    const dns = await d.docker(['exec', 'r1', 'nslookup', 'r2']);
    assert.equal(dns.code, 0, 'names resolve after restarts: ' + dns.stdout + dns.stderr);
    const web = spawnSync('timeout', ['5', 'nsenter', `--net=/run/netns/${d.hostNs}`, 'busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:18090/hostname'], { encoding: 'utf8' });
    assert.equal((web.stdout ?? '').trim(), r3.slice(0, 12), 'published port served after restarts: ' + web.stderr);
    const again = await d.docker(['run', '-d', '--name', 'r4', '-p', '18090:80', IMG, 'sleep', '60']);
    assert.match(again.stderr, /port is already allocated/, 'the port is still reserved after restarts');
    await d.dockerOk(['rm', '-f', 'r1', 'r2', 'r3', 'r4']);
    await d.dockerOk(['network', 'rm', 'n-r']);
  });
});
