/**
 * Policies' `dns` peers end to end on `bridge` and `wireguard` (and `ovn` when installed), with
 * the real docker CLI and a daemon in a throwaway host namespace whose default route leads to an
 * "outside" namespace the test owns:
 *
 *   outside: 198.18.50.1, 198.18.50.2 on lo (probe servers on TCP 8080 and 8081; a fake upstream
 *            DNS on 198.18.50.1:53 answering every A question with 198.18.50.2)
 *
 * The policy selects `sel` (label app=sel) and allows it api.allowed.test on tcp/8081 and its
 * --dns server on udp/53 (the embedded DNS forwards a container's --dns queries from the
 * container's namespace, so they are its own egress); `free` on the same network is not selected.
 *
 * On ovn the host judges a dns peer's outside destinations (policy-dns.ts): OVN lets the rule's
 * port out to any outside address, so every "not that address" check here is the host's drop.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startDaemon, TEST_IMAGE, type TestDaemon } from './harness.js';
import { apiJson } from './policies-support.js';
import { hiddenNamespaces, skipWithoutWireguardGo } from './wireguard-support.js';
import { OutsideServices, resolveThenConnect, tcpFrom } from './outside-services.js';

const IMG = TEST_IMAGE;
const P = '/arca/v1/policies';
/** On the outside's loopback (a container on ovn cannot reach its link address with UDP; see egress-drivers). */
const DNS_ADDR = '198.18.50.1';
const root = process.getuid?.() === 0;
/** A second upstream that gives every new name a new address of FRESH_BLOCK (the first contact test). */
const FRESH_DNS = '198.18.50.3';
const FRESH_BLOCK = '198.18.64.0/24';
/** A third upstream, answering with the address of a container on the policy's own network. */
const INNER_DNS = '198.18.50.4';
const ovnInstalled = spawnSync('which', ['ovsdb-server', 'ovn-northd', 'ovn-controller', 'ovs-vswitchd']).status === 0;
const DRIVERS: Array<{ driver: string; skip: string | false }> = [
  { driver: 'bridge', skip: root ? false : 'needs root' },
  { driver: 'wireguard', skip: !root ? 'needs root' : skipWithoutWireguardGo },
  { driver: 'ovn', skip: !root ? 'needs root' : ovnInstalled ? false : 'OVN is not installed' },
];

for (const { driver, skip } of DRIVERS) describe(`policy dns peers on ${driver}`, { skip, concurrency: false }, () => {
  let d: TestDaemon;
  const outside = new OutsideServices();


  /** What the server at host:port says to the container (`o <peer>`), or '' when nothing came back. */
  const tcp = (container: string, host: string, port: number): Promise<string> => tcpFrom(d, container, host, port);

  /** The `dns` peer sets where outside destinations are judged: the host ruleset (bridge, ovn), the hidden namespaces. */
  function learntInKernel(): string {
    const where = driver === 'wireguard' ? hiddenNamespaces(d) : [d.hostNs];
    return where
      .map((ns) => spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8' }).stdout)
      .flatMap((text) => text.split(/\n(?=\tset )/).filter((s) => /\tset pol_d_/.test(s)))
      .join('\n');
  }

  let lastLookup = 0;
  const LEARNT = /198\.18\.50\.2 timeout/;

  const policy = {
    name: 'api-out',
    network: 'pd',
    select: { labels: { app: 'sel' } },
    egress: [
      { to: [{ dns: 'api.allowed.test' }], ports: [{ port: 8081 }] },
      { to: [{ cidr: `${DNS_ADDR}/32` }], ports: [{ proto: 'udp', port: 53 }] },
    ],
  };

  before(async () => {
    d = await startDaemon({ loadTestImage: true, outside: true });
    await outside.start(d, [DNS_ADDR]);
    await outside.startFresh(d, FRESH_DNS, FRESH_BLOCK);
    await d.dockerOk(['network', 'create', '-d', driver, 'pd']);
    await d.dockerOk(['run', '-d', '--name', 'sel', '--label', 'app=sel', '--network', 'pd', '--dns', DNS_ADDR, IMG, 'sleep', '600']);
    await d.dockerOk(['run', '-d', '--name', 'sel2', '--label', 'app=sel', '--network', 'pd', '--dns', DNS_ADDR, IMG, 'sleep', '600']);
    await d.dockerOk(['run', '-d', '--name', 'free', '--network', 'pd', '--dns', DNS_ADDR, IMG, 'sleep', '600']);
  });

  after(async () => {
    outside.stop();
    await d?.cleanup();
  });

  it('refuses a dns peer in "from" and a bad wildcard with a 400 naming the field, storing nothing', async () => {
    const inFrom = await apiJson(d, 'PUT', `${P}/bad`, { name: 'bad', network: 'pd', ingress: [{ from: [{ dns: 'api.allowed.test' }] }] });
    assert.equal(inFrom.status, 400);
    assert.match(inFrom.body.message, /ingress\[0\]\.from\[0\]\.dns: a dns peer is a destination/);
    const wild = await apiJson(d, 'PUT', `${P}/bad`, { name: 'bad', network: 'pd', egress: [{ to: [{ dns: 'a.*.allowed.test' }] }] });
    assert.equal(wild.status, 400);
    assert.match(wild.body.message, /egress\[0\]\.to\[0\]\.dns: "a\.\*\.allowed\.test": a wildcard is allowed only as the whole first label/);
    assert.equal((await apiJson(d, 'GET', `${P}/bad`)).status, 404);
  });

  it('a selected container reaches the name\'s address on its port only once it resolved it', async () => {
    assert.equal((await apiJson(d, 'PUT', `${P}/api-out`, policy)).status, 201);
    assert.equal(await tcp('sel', '198.18.50.2', 8081), '');
    const r = await d.docker(['exec', 'sel', 'nslookup', 'api.allowed.test']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /198\.18\.50\.2/);
    assert.match(await tcp('sel', '198.18.50.2', 8081), /^o /);
    // Not another port of it, not another address.
    assert.equal(await tcp('sel', '198.18.50.2', 8080), '');
    assert.equal(await tcp('sel', '198.18.50.1', 8081), '');
    assert.match(learntInKernel(), LEARNT);
    // The addresses are the network's: another selected container (its own hidden namespace on
    // wireguard) reaches them without a lookup of its own.
    assert.match(await tcp('sel2', '198.18.50.2', 8081), /^o /);
    assert.equal(await tcp('sel2', '198.18.50.2', 8080), '');
  });

  it('a container the policy does not select is governed as before', async () => {
    assert.match(await tcp('free', '198.18.50.1', 8081), /^o /);
    assert.match(await tcp('free', '198.18.50.2', 8080), /^o /);
  });

  it('a restarted daemon keeps what was learnt', async () => {
    // A fresh lookup first (the fake upstream's TTL is 30 s): the restart must not outlast it.
    assert.equal((await d.docker(['exec', 'sel', 'nslookup', 'api.allowed.test'])).code, 0);
    lastLookup = Date.now();
    await d.restart();
    // Without resolving again.
    let out = '';
    for (let i = 0; i < 20 && !out; i++) {
      out = await tcp('sel', '198.18.50.2', 8081);
      if (!out) await new Promise((res) => setTimeout(res, 250));
    }
    assert.match(out, /^o /);
    assert.match(learntInKernel(), LEARNT);
    assert.equal(await tcp('sel', '198.18.50.1', 8081), '');
  });

  it('an address nobody looks up again closes once its time is up', async () => {
    // 30 s (the TTL, also the floor) after the last lookup; OVN's sets are emptied by the daemon.
    const deadline = lastLookup + 60_000;
    let out = 'o';
    while (out && Date.now() < deadline) {
      out = await tcp('sel', '198.18.50.2', 8081);
      if (out) await new Promise((res) => setTimeout(res, 2000));
    }
    assert.equal(out, '', 'still reachable a minute after the last lookup');
    assert.ok(Date.now() - lastLookup >= 19_000, `closed ${Date.now() - lastLookup} ms after the lookup`);
    assert.doesNotMatch(learntInKernel(), LEARNT);
  });

  // The answer waits for the learnt address to be enforced: the very first SYN to it, sent the
  // moment the answer is in, must pass (a dropped one is retried only after 1 s). Every name is
  // new, so every answer is a new address (on ovn: a new Address_Set element, through northd and
  // ovn-controller, before the answer goes back).
  it('the first packet to a newly learnt address, sent as soon as the answer is in, passes', async () => {
    const fresh = {
      name: 'fresh-out',
      network: 'pd',
      select: { labels: { app: 'fresh' } },
      egress: [
        { to: [{ dns: '*.fresh.test' }], ports: [{ port: 8081 }] },
        { to: [{ cidr: `${FRESH_DNS}/32` }], ports: [{ proto: 'udp', port: 53 }] },
      ],
    };
    assert.equal((await apiJson(d, 'PUT', `${P}/fresh-out`, fresh)).status, 201);
    await d.dockerOk(['run', '-d', '--name', 'fresh', '--label', 'app=fresh', '--network', 'pd', '--dns', FRESH_DNS, IMG, 'sleep', '600']);
    // Denied before any lookup (the block's first address is the first name's answer).
    assert.equal(await tcp('fresh', '198.18.64.1', 8081), '');
    const names = Array.from({ length: 8 }, (_, i) => `n${i}.fresh.test`);
    const got = await resolveThenConnect(d, 'fresh', names, 8081);
    for (const g of got) {
      assert.equal(g.error, undefined, `${g.name} (${g.addr}): ${g.error}`);
      assert.match(g.said ?? '', /^o /, `${g.name} (${g.addr}): the probe server did not answer`);
    }
    assert.equal(new Set(got.map((g) => g.addr)).size, names.length, 'each name a new address');
    // Not a port the rule does not name.
    assert.equal(await tcp('fresh', got[0]!.addr!, 8080), '');
    // Two containers asking for the same new names at the same moment: the second answer must
    // not go out merely because the first one already wrote the address.
    await d.dockerOk(['run', '-d', '--name', 'fresh2', '--label', 'app=fresh', '--network', 'pd', '--dns', FRESH_DNS, IMG, 'sleep', '600']);
    const same = Array.from({ length: 6 }, (_, i) => `s${i}.fresh.test`);
    const both = await Promise.all([resolveThenConnect(d, 'fresh', same, 8081), resolveThenConnect(d, 'fresh2', same, 8081)]);
    for (const g of both.flat()) assert.equal(g.error, undefined, `${g.name} (${g.addr}): ${g.error}`);
  });

  // A pattern's addresses are the network's, but open only to the endpoints whose rules name it:
  // on ovn, `fresh`'s rule lets tcp/8081 out of OVN to any outside address and the host's chain
  // of `fresh` drops what *.fresh.test did not give; `iso` has no dns rule, so OVN alone judges it.
  it('a learnt address opens only for the endpoints whose rules name its pattern', async () => {
    const iso = {
      name: 'iso-out',
      network: 'pd',
      select: { labels: { app: 'iso' } },
      egress: [{ to: [{ cidr: `${DNS_ADDR}/32` }], ports: [{ proto: 'udp', port: 53 }] }],
    };
    assert.equal((await apiJson(d, 'PUT', `${P}/iso-out`, iso)).status, 201);
    await d.dockerOk(['run', '-d', '--name', 'iso', '--label', 'app=iso', '--network', 'pd', '--dns', DNS_ADDR, IMG, 'sleep', '600']);
    assert.equal((await d.docker(['exec', 'iso', 'nslookup', 'api.allowed.test'])).code, 0);
    assert.match(learntInKernel(), LEARNT);
    assert.match(await tcp('sel', '198.18.50.2', 8081), /^o /);
    assert.equal(await tcp('iso', '198.18.50.2', 8081), '');
    assert.equal(await tcp('fresh', '198.18.50.2', 8081), '');
    // Not learnt: dropped for the selected one too.
    assert.equal(await tcp('sel', '198.18.50.1', 8081), '');
    assert.equal(await tcp('fresh', '198.18.50.1', 8081), '');
  });

  // Traffic to an address on the network itself never leaves it (on ovn it never reaches the
  // host): the network's own enforcer must hold such an answer (ovn: the pattern's address set).
  it('a name answered with an address on the network itself opens it, on the rule\'s port only', async () => {
    await d.dockerOk(['run', '-d', '--name', 'target', '--network', 'pd', IMG, 'sh', '-c', 'nc -ll -p 8081 -e echo ok & nc -ll -p 8080 -e echo ok & exec sleep 100000']);
    const addr = (await d.dockerOk(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'target'])).trim();
    await outside.startAnswering(d, INNER_DNS, addr);
    const inner = {
      name: 'inner-out',
      network: 'pd',
      select: { labels: { app: 'inner' } },
      egress: [
        { to: [{ dns: '*.inner.test' }], ports: [{ port: 8081 }] },
        { to: [{ cidr: `${INNER_DNS}/32` }], ports: [{ proto: 'udp', port: 53 }] },
      ],
    };
    assert.equal((await apiJson(d, 'PUT', `${P}/inner-out`, inner)).status, 201);
    await d.dockerOk(['run', '-d', '--name', 'inner', '--label', 'app=inner', '--network', 'pd', '--dns', INNER_DNS, IMG, 'sleep', '600']);
    assert.equal(await tcp('inner', addr, 8081), '');
    const r = await d.docker(['exec', 'inner', 'nslookup', 'a.inner.test']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(r.stdout.includes(addr), r.stdout);
    assert.equal(await tcp('inner', addr, 8081), 'ok');
    assert.equal(await tcp('inner', addr, 8080), '');
  });
});
