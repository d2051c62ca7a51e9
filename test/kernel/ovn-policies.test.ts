/**
 * Network policies on the ovn driver, against the real OVN stack (no daemon): the driver creates
 * a network and four endpoints in throwaway namespaces, plans are given as the compiler would
 * produce them, and real TCP/UDP probes check what passes. The driver's transit link lives in the
 * "daemon's" namespace, so the whole test runs in a throwaway one: the file re-runs itself there
 * (nothing of the host's addresses or routes is touched). Traffic from that namespace with a
 * client address stands for a published port (after the daemon's DNAT, the source is the client's).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OvnStack, stackOptionsFor } from '../../src/network/drivers/ovn/stack/ovn-stack.js';
import { OvnDriver } from '../../src/network/drivers/ovn/ovn-driver.js';
import { IpLinkOps } from '../../src/network/ip-link-ops.js';
import type { DriverEndpoint, DriverNetwork, Sandbox } from '../../src/network/driver.js';
import type { CompiledPeers, CompiledRule, EndpointPolicy, NetworkPolicyPlan, PortRange } from '../../src/network/policies/policy-types.js';
import { run, which } from '../../src/sys/runner.js';

const SELF = fileURLToPath(import.meta.url);
const PROBE = join(dirname(SELF), 'net-probe.js');
const INNER = process.env['ARCA_OVN_POLICY_INNER'] === '1';
const skip = process.getuid?.() !== 0 ? 'needs root' : (OvnStack.missing() ?? (!which('busybox') ? 'needs busybox' : false));

const hex = (n: number): string => randomBytes(n).toString('hex');
const inNs = (ns: string, argv: string[]): string[] => ['nsenter', `--net=/run/netns/${ns}`, '--', ...argv];

function nsList(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

if (!INNER) {
  describe('ovn policies', { skip }, () => {
    it('run in a throwaway namespace standing for the daemon’s', async () => {
      const ns = `apo${hex(3)}-d`;
      await run(['ip', 'netns', 'add', ns]);
      try {
        await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
        const echo = (b: Buffer): void => void process.stderr.write(b);
        // Run as a plain script (its own test runner), not as a nested `--test` child.
        const env: NodeJS.ProcessEnv = { ...process.env, ARCA_OVN_POLICY_INNER: '1' };
        delete env['NODE_TEST_CONTEXT'];
        const r = await run(inNs(ns, [process.execPath, SELF]), {
          env,
          allowFailure: true,
          timeoutMs: 8 * 60_000,
          onStdout: echo,
          onStderr: echo,
        });
        assert.equal(r.code, 0, 'the tests inside the namespace pass (their output is above)');
      } finally {
        await run(['ip', 'netns', 'delete', ns], { allowFailure: true });
      }
    });
  });
} else {
  innerTests();
}

/** The next `event`, or a timeout (the timer keeps the loop alive: the stack's watcher is unref'd). */
function waitFor(em: EventEmitter, event: string, ms: number): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      em.off(event, on);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const on = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args);
    };
    em.once(event, on);
  });
}

function innerTests(): void {
  const tag = `apo${hex(3)}`;
  const dir = mkdtempSync('/tmp/arca-ovnpol-');
  const opts = stackOptionsFor(join(dir, 'root'), join(dir, 'exec'));
  const NET: DriverNetwork = {
    id: hex(32),
    name: 'polnet',
    options: {},
    internal: false,
    enableIPv4: true,
    enableIPv6: false,
    subnets: [{ subnet: '10.98.0.0/24', gateway: '10.98.0.1' }],
    predefined: false,
  };
  /** A client address in the daemon's namespace (what a published port's DNAT leaves as source). */
  const CLIENT = '198.18.0.5';
  const OTHER = '198.18.0.6';

  interface Box {
    name: string;
    ns: string;
    ip: string;
    ep: DriverEndpoint;
    sb: Sandbox;
  }
  const boxes: Box[] = ['a', 'b', 'c', 'd'].map((name, i) => {
    const ip = `10.98.0.${10 + i}`;
    const containerId = hex(32);
    return {
      name,
      ns: `${tag}-${name}`,
      ip,
      ep: {
        id: hex(32),
        networkId: NET.id,
        containerId,
        ifname: 'eth0',
        mac: `02:42:0a:62:00:${(10 + i).toString(16).padStart(2, '0')}`,
        addresses: [`${ip}/24`],
        gateways: ['10.98.0.1'],
        options: {},
        dnsNames: [name],
        aliases: [],
        exposed: [],
      },
      sb: { containerId, netnsPath: `/run/netns/${tag}-${name}`, netnsName: `${tag}-${name}` },
    };
  });
  const [A, B, C, D] = boxes as [Box, Box, Box, Box];
  const children: ChildProcess[] = [];
  let stack: OvnStack;
  let driver: OvnDriver;

  const nbctl = (...a: string[]): Promise<string> => run(['ovn-nbctl', `--db=unix:${stack.nbSocket}`, ...a]).then((r) => r.stdout.trim());
  /** Names of a table's rows of a network, sorted. */
  const names = async (table: string, netId: string): Promise<string[]> =>
    (await nbctl('--bare', '--columns=name', 'find', table, `external_ids:arca-network=${netId}`)).split(/\s+/).filter(Boolean).sort();

  function start(argv: string[], ready: string): Promise<ChildProcess> {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(child);
    return new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`${argv.join(' ')}: no "${ready}" within 10 s: ${out}`)), 10_000);
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes(ready)) {
          clearTimeout(timer);
          resolve(child);
        }
      });
      child.on('exit', (code) => reject(new Error(`${argv.join(' ')} exited ${code}: ${out}`)));
    });
  }

  /** Whether a TCP (or UDP) exchange from namespace `from` (undefined: the daemon's) gets its answer. */
  async function reach(from: Box | undefined, host: string, port: number, o: { proto?: 'tcp' | 'udp'; source?: string; timeoutMs?: number } = {}): Promise<boolean> {
    const argv = [process.execPath, PROBE, 'connect', o.proto ?? 'tcp', host, String(port), String(o.timeoutMs ?? 1500), ...(o.source ? [o.source] : [])];
    const r = await run(from ? inNs(from.ns, argv) : argv, { allowFailure: true });
    return r.code === 0 && r.stdout.length > 0;
  }

  /** Asserts a list of [from, to, port, expected] at once (in parallel: blocked ones cost one timeout together). */
  async function expectReach(cases: Array<[string, Box | undefined, string, number, boolean, { proto?: 'tcp' | 'udp'; source?: string }?]>): Promise<void> {
    const got = await Promise.all(cases.map(([, from, host, port, , o]) => reach(from, host, port, o)));
    const wrong = cases.filter((c, i) => got[i] !== c[4]).map((c) => `${c[0]}: expected ${c[4] ? 'reached' : 'blocked'}`);
    assert.deepEqual(wrong, []);
  }

  const peers = (...bs: Box[]): CompiledPeers => ({ addrs4: bs.map((b) => b.ip), addrs6: [], cidrs: [] });
  const cidr = (c: string, except: string[] = []): CompiledPeers => ({ addrs4: [], addrs6: [], cidrs: [{ cidr: c, except }] });
  const tcp = (from: number, to = from): PortRange => ({ proto: 'tcp', from, to });
  const rule = (policy: string, index: number, p: CompiledPeers, ports: 'any' | PortRange[]): CompiledRule => ({ policy, index, peers: p, ports });
  const governed = (b: Box, policies: string[], dirs: { ingress?: CompiledRule[]; egress?: CompiledRule[] }): EndpointPolicy => ({
    endpointId: b.ep.id,
    containerId: b.ep.containerId,
    addresses: [b.ip],
    policies,
    ...dirs,
  });
  const plan = (endpoints: EndpointPolicy[]): NetworkPolicyPlan => ({
    networkId: NET.id,
    policies: [...new Set(endpoints.flatMap((e) => e.policies))].sort(),
    endpoints,
  });

  /** db: `a` takes tcp/80 from b (and c when asked) and from the client range, nothing else. */
  const dbRules = (alsoC: boolean, chat: boolean): CompiledRule[] => [
    rule('db', 0, alsoC ? peers(B, C) : peers(B), [tcp(80)]),
    rule('pub', 0, cidr('198.18.0.0/16'), [tcp(80)]),
    ...(chat ? [rule('db', 1, peers(B), [tcp(7000)])] : []),
  ];

  before(async () => {
    stack = new OvnStack(opts);
    driver = new OvnDriver({ linkOps: new IpLinkOps(), linkOpsIn: (ns) => new IpLinkOps(ns), stack });
    await driver.start({ stateDir: opts.stateDir, addresses: { take: () => '10.98.0.250', release: () => {} }, onFailure: () => {} });
    await run(['ip', 'addr', 'add', `${CLIENT}/32`, 'dev', 'lo']);
    await run(['ip', 'addr', 'add', `${OTHER}/32`, 'dev', 'lo']);
    await driver.createNetwork(NET);
    for (const b of boxes) {
      await run(['ip', 'netns', 'add', b.ns]);
      await run(['ip', '-n', b.ns, 'link', 'set', 'lo', 'up']);
      await driver.createEndpoint(NET, b.ep);
      await driver.join(NET, b.ep, b.sb);
    }
    await Promise.all([
      ...boxes.map((b) => start(inNs(b.ns, [process.execPath, PROBE, 'serve', b.name, '80,81', '81']), 'ready')),
      start([process.execPath, PROBE, 'serve', 'outside', '80', '-'], 'ready'),
      start(inNs(A.ns, [process.execPath, PROBE, 'echo', '7000']), 'ready'),
    ]);
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    const errors: unknown[] = [];
    await stack?.destroy().catch((e: unknown) => errors.push(e));
    for (const ns of nsList().filter((n) => n.startsWith(`${tag}-`) || n === opts.switchNetns)) await run(['ip', 'netns', 'delete', ns], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
    if (errors.length) throw new AggregateError(errors, 'teardown');
  });

  describe('OvnDriver.applyPolicies', () => {
    it('without a plan every endpoint reaches every other, and the outside', async () => {
      await expectReach([
        ['b→a:80', B, A.ip, 80, true],
        ['c→a:81', C, A.ip, 81, true],
        ['client→a:81', undefined, A.ip, 81, true, { source: CLIENT }],
        ['c→outside', C, CLIENT, 80, true],
      ]);
    });

    it('an endpoint isolated for egress with no rule at all still gets the replies of connections made to it', async () => {
      // No allow rule anywhere on the switch: only the isolation's own ACLs make it stateful.
      await driver.applyPolicies(NET, plan([governed(D, ['quiet'], { egress: [] })]));
      await expectReach([
        ['b→d:81', B, D.ip, 81, true],
        ['b→d:81/udp', B, D.ip, 81, true, { proto: 'udp' }],
        ['d→b:81', D, B.ip, 81, false],
        ['d→outside', D, CLIENT, 80, false],
        ['b→a:81', B, A.ip, 81, true],
      ]);
      await driver.applyPolicies(NET, plan([governed(D, ['quiet'], { ingress: [] })]));
      await expectReach([
        ['d→b:81 (ingress isolated only)', D, B.ip, 81, true],
        ['d→b:81/udp (ingress isolated only)', D, B.ip, 81, true, { proto: 'udp' }],
        ['b→d:81', B, D.ip, 81, false],
      ]);
      await driver.applyPolicies(NET, plan([]));
    });

    it('isolates ingress: the allowed peer and port pass, other ports and peers are dropped, replies pass, unlisted endpoints untouched', async () => {
      await driver.applyPolicies(NET, plan([governed(A, ['db', 'pub'], { ingress: dbRules(false, false) })]));
      await expectReach([
        ['b→a:80', B, A.ip, 80, true],
        ['b→a:81', B, A.ip, 81, false],
        ['b→a:81/udp', B, A.ip, 81, false, { proto: 'udp' }],
        ['c→a:80', C, A.ip, 80, false],
        ['d→a:80', D, A.ip, 80, false],
        // a's own connections: egress is not isolated, and the replies come back through a's ingress.
        ['a→b:81', A, B.ip, 81, true],
        ['a→b:81/udp', A, B.ip, 81, true, { proto: 'udp' }],
        ['a→outside', A, CLIENT, 80, true],
        // Unlisted endpoints keep talking to each other.
        ['d→b:81', D, B.ip, 81, true],
        ['b→d:81/udp', B, D.ip, 81, true, { proto: 'udp' }],
        ['c→d:80', C, D.ip, 80, true],
      ]);
    });

    it('judges traffic from the router (a published port: the client’s source) as ingress', async () => {
      await expectReach([
        ['client→a:80', undefined, A.ip, 80, true, { source: CLIENT }],
        ['client→a:81', undefined, A.ip, 81, false, { source: CLIENT }],
        // The transit address is no client the rule names.
        ['host→a:80', undefined, A.ip, 80, false],
      ]);
    });

    it('keeps ARP working for isolated endpoints', async () => {
      for (const b of [A, B]) await run(['ip', '-n', b.ns, 'neigh', 'flush', 'all']);
      await expectReach([['b→a:80 after a neighbour flush', B, A.ip, 80, true]]);
      const neigh = await run(['ip', '-n', B.ns, 'neigh', 'show', A.ip]);
      assert.match(neigh.stdout, /lladdr/);
    });

    it('isolates egress: both ends must allow, the outside only by a CIDR rule, except carves holes, DHCP still answers', async () => {
      const client = (outside: boolean): EndpointPolicy =>
        governed(C, ['client'], {
          egress: [rule('client', 0, peers(A), [tcp(80)]), ...(outside ? [rule('client', 1, cidr('198.18.0.0/16', [`${OTHER}/32`]), [tcp(80)])] : [])],
        });
      await driver.applyPolicies(NET, plan([governed(A, ['db', 'pub'], { ingress: dbRules(false, false) }), client(false)]));
      await expectReach([
        // c may open a:80, but a's ingress does not take c yet.
        ['c→a:80 (a refuses)', C, A.ip, 80, false],
        ['c→b:80', C, B.ip, 80, false],
        ['c→outside', C, CLIENT, 80, false],
        // c's ingress is not isolated: b's connection and its replies (c's egress) pass.
        ['b→c:81', B, C.ip, 81, true],
      ]);
      await driver.applyPolicies(NET, plan([governed(A, ['db', 'pub'], { ingress: dbRules(true, false) }), client(true)]));
      await expectReach([
        ['c→a:80', C, A.ip, 80, true],
        ['c→a:81', C, A.ip, 81, false],
        ['c→d:80', C, D.ip, 80, false],
        ['c→outside', C, CLIENT, 80, true],
        ['c→outside hole', C, OTHER, 80, false],
        ['b→c:81', B, C.ip, 81, true],
      ]);
      const dhcp = await run(inNs(C.ns, ['busybox', 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-s', '/bin/true', '-t', '3', '-T', '1']), { allowFailure: true, timeoutMs: 15_000 });
      assert.equal(dhcp.code, 0, `udhcpc: ${dhcp.stdout}${dhcp.stderr}`);
      assert.match(dhcp.stdout + dhcp.stderr, new RegExp(`lease of ${C.ip.replace(/\./g, '\\.')} obtained`, 'i'));
    });

    it('cuts a live connection on its next packet once no rule allows it', async () => {
      const keep = [governed(C, ['client'], { egress: [rule('client', 0, peers(A), [tcp(80)])] })];
      await driver.applyPolicies(NET, plan([governed(A, ['db', 'pub'], { ingress: dbRules(true, true) }), ...keep]));
      const chat = await start(inNs(B.ns, [process.execPath, PROBE, 'chat', A.ip, '7000']), 'connected');
      const said = (line: string, ms: number): Promise<boolean> =>
        new Promise((resolve) => {
          let out = '';
          const on = (b: Buffer): void => {
            out += b.toString();
            if (out.includes(line)) done(true);
          };
          const timer = setTimeout(() => done(false), ms);
          const done = (v: boolean): void => {
            clearTimeout(timer);
            chat.stdout!.off('data', on);
            resolve(v);
          };
          chat.stdout!.on('data', on);
          chat.stdin!.write(`${line}\n`);
        });
      assert.equal(await said('one', 3000), true, 'the allowed connection carries data');
      await driver.applyPolicies(NET, plan([governed(A, ['db', 'pub'], { ingress: dbRules(true, false) }), ...keep]));
      assert.equal(await said('two', 2500), false, 'the same connection is cut after the rule went');
      chat.kill('SIGKILL');
    });

    it('counts packets per policy: allowed and dropped', async () => {
      await expectReach([
        ['b→a:80', B, A.ip, 80, true],
        ['b→a:81', B, A.ip, 81, false],
      ]);
      const counters = await driver.policyCounters(NET);
      process.stderr.write(`# counters ${JSON.stringify(counters)}\n`);
      assert.deepEqual(Object.keys(counters).sort(), ['client', 'db', 'pub']);
      assert.ok(counters['db']!.allowedPackets > 0 && counters['db']!.allowedBytes > 0, 'db allowed b→a:80');
      assert.ok(counters['db']!.droppedPackets > 0, 'drops of a are blamed on db');
      assert.ok(counters['client']!.allowedPackets > 0, 'client allowed c→a:80 earlier');
    });

    it('keeps the plan across a rebuilt northbound database', async () => {
      const reset = waitFor(stack, 'nb-reset', 10_000);
      unlinkSync(join(opts.stateDir, 'nb.db'));
      process.kill(stack.status().processes[0]!.pid!, 'SIGKILL');
      await reset;
      const t0 = Date.now();
      // The replay runs on the event: wait for its port groups.
      while (!(await nbctl('--bare', '--columns=name', 'list', 'Port_Group').catch(() => ''))) {
        assert.ok(Date.now() - t0 < 15_000, 'the replay wrote the policy port groups again');
        await new Promise((r) => setTimeout(r, 100));
      }
      for (;;) {
        if (await reach(B, A.ip, 80)) break;
        assert.ok(Date.now() - t0 < 15_000, 'b→a:80 works again after the replay');
      }
      await expectReach([
        ['b→a:81', B, A.ip, 81, false],
        ['d→a:80', D, A.ip, 80, false],
        ['d→b:81', D, B.ip, 81, true],
      ]);
    });

    it('survives the start-up sweep: rows of known networks stay, rows of unknown networks go', async () => {
      const stray = hex(32);
      await nbctl('create', 'Port_Group', 'name=arca_stray', `external_ids:arca-network=${stray}`, 'external_ids:arca-policy=x');
      await nbctl('create', 'Address_Set', 'name=arca_stray_4', `external_ids:arca-network=${stray}`, 'external_ids:arca-policy=x');
      const before = await names('Port_Group', NET.id);
      await driver.sweep({ networks: [NET], endpoints: boxes.map((b) => b.ep) });
      assert.equal(await nbctl('--bare', '--columns=name', 'find', 'Port_Group', `external_ids:arca-network=${stray}`), '');
      assert.equal(await nbctl('--bare', '--columns=name', 'find', 'Address_Set', `external_ids:arca-network=${stray}`), '');
      assert.deepEqual(await names('Port_Group', NET.id), before);
      assert.ok(before.length >= 3, 'the policy and isolation groups are there');
    });

    it('applies the same plan again without a write', async () => {
      const p = plan([governed(A, ['db', 'pub'], { ingress: dbRules(true, false) })]);
      await driver.applyPolicies(NET, p);
      const acls = await nbctl('--bare', '--columns=_uuid', 'list', 'ACL');
      await driver.applyPolicies(NET, p);
      assert.equal(await nbctl('--bare', '--columns=_uuid', 'list', 'ACL'), acls, 'the rows are the same');
    });

    it('an empty plan removes every policy row, and everything passes again', async () => {
      await driver.applyPolicies(NET, { networkId: NET.id, policies: [], endpoints: [] });
      assert.equal(await nbctl('--bare', '--columns=name', 'list', 'Port_Group'), '');
      assert.equal(await nbctl('--bare', '--columns=name', 'list', 'Address_Set'), '');
      assert.equal(await nbctl('--bare', '--columns=name', 'list', 'ACL'), '');
      await expectReach([
        ['b→a:81', B, A.ip, 81, true],
        ['c→outside', C, OTHER, 80, true],
      ]);
    });

    it('applies a plan selecting 100 endpoints, enforced within the budget', async () => {
      const many: DriverEndpoint[] = [];
      for (let i = 0; i < 100; i++) {
        const ep: DriverEndpoint = { ...A.ep, id: hex(32), containerId: hex(32), mac: `02:42:0a:62:01:${i.toString(16).padStart(2, '0')}`, addresses: [`10.98.0.${100 + i}/24`], dnsNames: [`m${i}`] };
        await driver.createEndpoint(NET, ep);
        many.push(ep);
      }
      const ip = (e: DriverEndpoint): string => e.addresses[0]!.split('/')[0]!;
      const rules = (n: number): CompiledRule[] => [rule('bulk', 0, { addrs4: many.slice(0, n).map(ip), addrs6: [], cidrs: [] }, [tcp(80), tcp(8000, 8100)])];
      const bulk = (n: number, selected: DriverEndpoint[]): NetworkPolicyPlan => ({
        networkId: NET.id,
        policies: ['bulk'],
        endpoints: selected.map((e) => ({ endpointId: e.id, containerId: e.containerId, addresses: [ip(e)], policies: ['bulk'], ingress: rules(n), egress: rules(n) })),
      });
      const times: Record<string, number> = {};
      const time = async (what: string, p: NetworkPolicyPlan): Promise<void> => {
        const t0 = performance.now();
        await driver.applyPolicies(NET, p);
        times[what] = Math.round(performance.now() - t0);
      };
      await time('first: 100 selected, 50 peers', bulk(50, many));
      await time('one peer more', bulk(51, many));
      await time('one endpoint less', bulk(51, many.slice(1)));
      await time('removed', { networkId: NET.id, policies: [], endpoints: [] });
      await time('again: 100 selected, 100 peers', bulk(100, many));
      process.stderr.write(`# ovn policy apply until enforced (ms): ${JSON.stringify(times)}\n`);
      // The policy's group and the two isolated groups (ingress, egress), 100 ports each.
      const groups = (await nbctl('--bare', '--columns=ports', 'find', 'Port_Group', 'external_ids:arca-policy=bulk')).split(/\n\s*\n/);
      assert.deepEqual(groups.map((g) => g.trim().split(/\s+/).length), [100, 100, 100]);
      for (const [what, ms] of Object.entries(times)) assert.ok(ms < 3000, `${what}: ${ms} ms`);
      for (const ep of many) await driver.deleteEndpoint(NET, ep);
    });

    it('governs IPv6 too: address sets and CIDRs of v6 peers, neighbour discovery still works', async () => {
      const net6: DriverNetwork = {
        ...NET,
        id: hex(32),
        name: 'polnet6',
        internal: true,
        enableIPv6: true,
        subnets: [
          { subnet: '10.97.0.0/24', gateway: '10.97.0.1' },
          { subnet: 'fd97::/64', gateway: 'fd97::1' },
        ],
      };
      const six = ['e', 'f', 'g'].map((name, i) => {
        const containerId = hex(32);
        const ns = `${tag}-${name}`;
        const ep: DriverEndpoint = {
          ...A.ep,
          id: hex(32),
          networkId: net6.id,
          containerId,
          mac: `02:42:0a:61:00:${(10 + i).toString(16)}`,
          addresses: [`10.97.0.${10 + i}/24`, `fd97::${10 + i}/64`],
          gateways: [],
          dnsNames: [name],
        };
        return { name, ns, ip: `fd97::${10 + i}`, ep, sb: { containerId, netnsPath: `/run/netns/${ns}`, netnsName: ns } };
      });
      const [E, F, G] = six as [Box, Box, Box];
      await driver.createNetwork(net6);
      for (const b of six) {
        await run(['ip', 'netns', 'add', b.ns]);
        await run(['ip', '-n', b.ns, 'link', 'set', 'lo', 'up']);
        await driver.createEndpoint(net6, b.ep);
        await driver.join(net6, b.ep, b.sb);
      }
      await Promise.all(six.map((b) => start(inNs(b.ns, [process.execPath, PROBE, 'serve', b.name, '80,81', '81']), 'ready')));
      const rules: CompiledRule[] = [
        rule('v6', 0, { addrs4: [], addrs6: [F.ip], cidrs: [] }, [tcp(80)]),
        rule('v6', 1, { addrs4: [], addrs6: [], cidrs: [{ cidr: 'fd97::/64', except: [`${F.ip}/128`] }] }, [tcp(81)]),
      ];
      await driver.applyPolicies(net6, { networkId: net6.id, policies: ['v6'], endpoints: [{ ...governed(E, ['v6'], { ingress: rules }), addresses: [E.ip] }] });
      await expectReach([
        ['f→e:80 (v6)', F, E.ip, 80, true],
        ['f→e:81 (v6, the hole)', F, E.ip, 81, false],
        ['g→e:81 (v6 CIDR)', G, E.ip, 81, true],
        ['g→e:80 (v6)', G, E.ip, 80, false],
        ['e→f:81 (v6, replies)', E, F.ip, 81, true],
      ]);
      for (const b of [E, F]) await run(['ip', '-n', b.ns, 'neigh', 'flush', 'all']);
      await expectReach([['f→e:80 (v6) after a neighbour flush', F, E.ip, 80, true]]);
      for (const b of six) {
        await driver.leave(net6, b.ep, b.sb);
        await driver.deleteEndpoint(net6, b.ep);
      }
      await driver.deleteNetwork(net6);
      assert.deepEqual(await names('Port_Group', net6.id), []);
    });

    it('deleting the network removes its policy rows', async () => {
      await driver.applyPolicies(NET, plan([governed(A, ['db', 'pub'], { ingress: dbRules(false, false) })]));
      assert.notEqual(await nbctl('--bare', '--columns=name', 'list', 'Port_Group'), '');
      for (const b of boxes) {
        await driver.leave(NET, b.ep, b.sb);
        await driver.deleteEndpoint(NET, b.ep);
      }
      await driver.deleteNetwork(NET);
      assert.equal(await nbctl('--bare', '--columns=name', 'list', 'Port_Group'), '');
      assert.equal(await nbctl('--bare', '--columns=name', 'list', 'Address_Set'), '');
      assert.equal(await nbctl('--bare', '--columns=name', 'list', 'ACL'), '');
    });
  });
}

