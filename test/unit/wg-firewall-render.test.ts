/**
 * The hidden namespace's ruleset of a wireguard endpoint, as text: golden files
 * test/golden/wg-hidden-*.nft (regenerate with
 * `UPDATE_GOLDEN=1 node --test dist/test/unit/wg-firewall-render.test.js` and review the diff;
 * test/kernel/wg-firewall.test.ts loads them into a kernel), the properties the protection
 * relies on, and the counter bookkeeping across reloads (nft faked).
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidParameter } from '../../src/errors.js';
import {
  GUARD_COUNTERS,
  hiddenNsPolicies,
  HiddenNsCounters,
  renderHiddenNsRuleset,
  type HiddenNsFirewallSpec,
} from '../../src/network/drivers/wireguard/wg-firewall.js';
import { policyCounterNames, renderPolicies } from '../../src/network/firewall/nftables/nft-policy.js';
import type { EndpointPolicy, NetworkPolicyPlan } from '../../src/network/policies/policy-types.js';
import { setRunner } from '../../src/sys/runner.js';
import { setNative } from '../../src/sys/native.js';

const GOLDEN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'test', 'golden');

const NET = '77aa00000000000000000000000000000000000000000000000000000000beef';
const EP = 'e0a1000000000000000000000000000000000000000000000000000000000001';

const base: HiddenNsFirewallSpec = {
  networkId: NET,
  innerIf: 'c0',
  underlayIf: 'u0',
  underlayPool: ['169.254.192.0/18'],
  wgIf: `wg${EP.slice(0, 12)}`,
  listenPort: 51820,
  underlay: '169.254.192.7',
  gateways: ['10.77.0.1'],
};

/** The endpoint 10.77.0.2: serves tcp/8080 to 10.77.0.3 only, may call 10.77.0.3 on any port and the outside on 443. */
const web: EndpointPolicy = {
  endpointId: EP,
  containerId: 'c-web',
  addresses: ['10.77.0.2'],
  policies: ['web-in', 'web-out'],
  isolatedBy: { ingress: ['web-in'], egress: ['web-out'] },
  ingress: [{ policy: 'web-in', index: 0, peers: { addrs4: ['10.77.0.3'], addrs6: [], cidrs: [] }, ports: [{ proto: 'tcp', from: 8080, to: 8080 }] }],
  egress: [
    { policy: 'web-out', index: 0, peers: { addrs4: ['10.77.0.3'], addrs6: [], cidrs: [] }, ports: 'any' },
    { policy: 'web-out', index: 1, peers: { addrs4: [], addrs6: [], cidrs: [{ cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }] }, ports: [{ proto: 'tcp', from: 443, to: 443 }] },
  ],
};
const plan: NetworkPolicyPlan = { networkId: NET, policies: ['idle', 'web-in', 'web-out'], endpoints: [web] };

const SPECS: Record<string, HiddenNsFirewallSpec> = {
  bare: base,
  policies: { ...base, plan },
  'policies-logged': { ...base, plan, logDrops: true },
};

describe('hidden namespace ruleset golden files', () => {
  for (const [name, spec] of Object.entries(SPECS)) {
    it(`renders ${name}`, () => {
      const text = renderHiddenNsRuleset(spec);
      const file = join(GOLDEN, `wg-hidden-${name}.nft`);
      if (process.env.UPDATE_GOLDEN) writeFileSync(file, text);
      assert.equal(text, readFileSync(file, 'utf8'));
    });
  }
});

describe('hidden namespace ruleset', () => {
  it('replaces the table in one script: create, delete, define', () => {
    const lines = renderHiddenNsRuleset(base).split('\n');
    assert.deepEqual(lines.slice(1, 4), ['table inet arca_wg {}', 'delete table inet arca_wg', 'table inet arca_wg {']);
  });

  it('guards the control plane whatever the plan, and names its counters', () => {
    for (const spec of Object.values(SPECS)) {
      const text = renderHiddenNsRuleset(spec);
      for (const n of Object.values(GUARD_COUNTERS)) {
        assert.ok(text.includes(`\tcounter ${n} {}`), n);
        assert.ok(text.includes(`counter name "${n}" drop`), n);
      }
      assert.match(text, /iifname \{ "c0", "wge0a100000000" \} counter name "guard_input_drop" drop/);
      // New connections only: the host's connections from the underlay get their answers.
      assert.match(text, /iifname "c0" ip daddr @underlay4 ct state new,invalid,untracked counter name "guard_underlay_drop" drop/);
      assert.match(text, /iifname "u0" udp dport 51820 accept/);
      // Sources the container may not use, both families, before conntrack sees them.
      assert.match(text, /hook prerouting priority raw;[^}]*iifname "c0" fib saddr \. iif oif missing counter name "guard_spoof_drop" drop/);
      // Ahead of the policy chains (filter - 1).
      assert.equal((text.match(/priority filter - 2;/g) ?? []).length, 2);
    }
  });

  it('crossing handshakes: the lower address keeps whose initiation came first, one map entry per peer; the higher ignores marked ones', () => {
    const text = renderHiddenNsRuleset(base);
    assert.ok(text.includes('\tmap first { type ipv4_addr : mark; flags dynamic, timeout; timeout 1000ms; }'));
    const pre = text.slice(text.indexOf('chain guard_prerouting {'), text.indexOf('chain guard_raw_output {'));
    const out = text.slice(text.indexOf('chain guard_raw_output {'), text.indexOf('chain guard_input {'));
    const init = 'udp length 156 @th,64,32 0x01000000';
    const resp = 'udp length 100 @th,64,32 0x02000000';
    const lines = (chain: string): string[] => chain.split('\n').map((l) => l.trim().replace(/ comment .*$/, ''));
    const tieBreak = (chain: string): string[] => lines(chain).filter((l) => l.includes(init) || l.includes(resp));
    const inP = 'iifname "u0" udp dport 51820';
    const outP = 'oifname "u0" udp sport 51820';
    // Both sides claim the same entry (an existing claim is kept) and act on the one it holds;
    // the mark that carries it is cleared; the entry ends with the winner's answer. All ahead of
    // the notrack rule.
    assert.deepEqual(tieBreak(pre), [
      `${inP} ${init} ip saddr > 169.254.192.7 add @first { ip saddr : 0x2 } meta mark set ip saddr map @first`,
      `${inP} ${init} ip saddr > 169.254.192.7 meta mark 0x1 counter name "guard_handshake_yield" drop`,
      `${inP} ${init} ip saddr > 169.254.192.7 meta mark set 0`,
      `${inP} ${init} ip saddr < 169.254.192.7 ip dscp cs1 counter name "guard_handshake_yield" drop`,
      `${inP} ${resp} ip saddr > 169.254.192.7 delete @first { ip saddr : 0 }`,
    ]);
    assert.ok(pre.indexOf('delete @first') < pre.indexOf('notrack'));
    assert.deepEqual(tieBreak(out), [
      `${outP} ${resp} ip daddr > 169.254.192.7 delete @first { ip daddr : 0 }`,
      `${outP} ${init} ip daddr > 169.254.192.7 add @first { ip daddr : 0x1 } meta mark set ip daddr map @first`,
      `${outP} ${init} ip daddr > 169.254.192.7 meta mark 0x2 ip dscp set cs1`,
      `${outP} ${init} ip daddr > 169.254.192.7 meta mark set 0`,
    ]);
    assert.ok(out.indexOf('meta mark set 0') < out.indexOf('notrack'));
    // Without its own address the namespace has no tie-break.
    const { underlay: _u, ...without } = base;
    const plain = renderHiddenNsRuleset(without);
    assert.ok(!plain.includes('@first') && !plain.includes('meta mark') && !plain.includes('dscp'));
    assert.throws(() => renderHiddenNsRuleset({ ...base, underlay: '169.254.192.7; drop' }), InvalidParameter);
  });

  it('no plan, or a plan that governs nothing: the guard only', () => {
    const bare = renderHiddenNsRuleset(base);
    assert.ok(!bare.includes('policy_'));
    assert.equal(renderHiddenNsRuleset({ ...base, plan: { networkId: NET, policies: ['idle'], endpoints: [] } }), bare);
  });

  it('the policy part is the bridge renderer\'s filter part, verbatim, without its bridge table', () => {
    const text = renderHiddenNsRuleset(SPECS.policies!);
    const nets = new Map([[NET, { id: NET, tag: 'comment "arca:net:77aa00000000"', gateways: ['10.77.0.1'] }]]);
    const pol = renderPolicies([plan], nets, null, { exemptClients: ['169.254.192.0/18'] });
    assert.ok(text.includes(pol.filter.join('\n') + '\n}\n'));
    assert.ok(pol.bridge.length > 0);
    assert.ok(!text.includes('pol_own4'));
    // Judged by forward (to peers, the outside, from published ports) and input/output (the namespace itself).
    for (const c of ['policy_forward', 'policy_input', 'policy_output']) assert.ok(text.includes(`chain ${c} {`), c);
    // No DNS exception: the embedded DNS answers inside the container.
    assert.ok(!/th dport \d+ return/.test(text));
    for (const p of ['idle', 'web-in', 'web-out']) assert.ok(text.includes(`counter ${policyCounterNames(p).dropped} {}`), p);
  });

  it('exempts the underlay as a client (the host) from the policy chains, as a bridge never judges the host', () => {
    const text = renderHiddenNsRuleset(SPECS.policies!);
    assert.match(text, /set pol_exempt4 \{ type ipv4_addr; flags interval; elements = \{ 169\.254\.192\.0\/18 \} \}/);
    const fwd = text.slice(text.indexOf('chain policy_forward {'));
    assert.ok(fwd.indexOf('ct original ip saddr @pol_exempt4 return') < fwd.indexOf('vmap @pol_in4'));
    assert.ok(!text.slice(text.indexOf('chain policy_input {')).includes('pol_exempt'));
    // Without the option the bridge renders as before (its golden files pin that).
    const nets = new Map([[NET, { id: NET, tag: 'x', gateways: [] }]]);
    assert.ok(!renderPolicies([plan], nets, null).filter.join('\n').includes('exempt'));
    assert.throws(() => renderPolicies([plan], nets, null, { exemptClients: ['nope'] }), InvalidParameter);
    const v6 = renderPolicies([plan], nets, null, { exemptClients: ['fd00::/64', '10.0.0.0/9', '10.128.0.0/9'] }).filter.join('\n');
    assert.match(v6, /set pol_exempt4 \{ type ipv4_addr; flags interval; elements = \{ 10\.0\.0\.0\/8 \} \}/);
    assert.match(v6, /ct original ip6 saddr @pol_exempt6 return/);
  });

  it('logDrops adds the drop sets and log rules', () => {
    const text = renderHiddenNsRuleset(SPECS['policies-logged']!);
    assert.ok(text.includes('set pol_drops_out4'));
    assert.ok(text.includes('log prefix "arca policy drop e0a100000000 in: "'));
    assert.ok(!renderHiddenNsRuleset(SPECS.policies!).includes('log prefix'));
  });

  it('refuses what it cannot hold', () => {
    const bad: Array<Partial<HiddenNsFirewallSpec>> = [
      { innerIf: 'c0"; flush ruleset' },
      { wgIf: 'wg-name-far-too-long' },
      { underlayPool: ['169.254.192.0/33'] },
      { underlayPool: ['nonsense'] },
      { listenPort: 0 },
      { gateways: ['10.77.0.300'] },
      { networkId: 'x y' },
      { plan: { ...plan, endpoints: [web, { ...web, endpointId: 'e0a2000000000000', addresses: ['10.77.0.4'] }] } },
      { plan: { ...plan, networkId: 'other' } },
    ];
    for (const b of bad) assert.throws(() => renderHiddenNsRuleset({ ...base, ...b }), InvalidParameter, JSON.stringify(b));
  });

  it('an IPv6 underlay pool gets its own set', () => {
    const text = renderHiddenNsRuleset({ ...base, underlayPool: ['169.254.192.0/18', 'fd00:77::/64'] });
    assert.match(text, /set underlay6 \{ type ipv6_addr; flags interval; elements = \{ fd00:77::\/64 \} \}/);
    assert.match(text, /iifname "c0" ip6 daddr @underlay6 ct state new,invalid,untracked counter name "guard_underlay_drop" drop/);
  });

  it('names the policies whose counters the table holds', () => {
    assert.deepEqual(hiddenNsPolicies(base), []);
    assert.deepEqual(hiddenNsPolicies({ plan }), ['idle', 'web-in', 'web-out']);
  });
});

describe('hidden namespace policy counters', () => {
  let calls: Array<{ argv: readonly string[]; input?: string }>;
  /** The named counters of each namespace's table: name → [packets, bytes]. */
  let kernel: Map<string, Map<string, [number, number]>>;
  const ok = policyCounterNames('web-in').allowed;
  const drop = policyCounterNames('web-in').dropped;
  const ns = '/run/netns/hid-a';
  const ns2 = '/run/netns/hid-b';
  const count = (path: string, name: string, packets: number, bytes: number): void => void kernel.get(path)!.set(name, [packets, bytes]);

  beforeEach(() => {
    calls = [];
    kernel = new Map();
    setNative(null);
    setRunner(async (argv, opts) => {
      calls.push({ argv, input: opts?.input as string | undefined });
      const path = argv[1]!.replace('--net=', '');
      const table = kernel.get(path) ?? new Map<string, [number, number]>();
      kernel.set(path, table);
      const listing = [...table].map(([n, [p, b]]) => `\tcounter ${n} {\n\t\tpackets ${p} bytes ${b}\n\t}\n`).join('');
      // `reset counters` lists and zeroes; a load re-creates the counters at zero.
      for (const n of table.keys()) table.set(n, [0, 0]);
      return { code: 0, stdout: argv.includes('reset') ? `table inet arca_wg {\n${listing}}\n` : '', stderr: '' };
    });
  });
  afterEach(() => {
    setRunner(undefined);
    setNative(undefined);
  });

  it('keeps totals across reloads, per namespace, and after the namespace is forgotten', async () => {
    const c = new HiddenNsCounters();
    await c.load(ns, 'script 1', ['web-in']);
    // The first load has nothing to fold in.
    assert.deepEqual(calls.map((x) => x.argv), [['nsenter', `--net=${ns}`, 'nft', '-f', '-']]);
    assert.equal(calls[0]!.input, 'script 1');
    count(ns, ok, 3, 300);
    count(ns, drop, 1, 60);
    await c.load(ns, 'script 2', ['web-in']);
    assert.deepEqual(calls[1]!.argv, ['nsenter', `--net=${ns}`, 'nft', 'reset', 'counters', 'table', 'inet', 'arca_wg']);
    count(ns, ok, 2, 200);
    const want = { allowedPackets: 5, allowedBytes: 500, droppedPackets: 1, droppedBytes: 60 };
    assert.deepEqual(await c.read(ns), { 'web-in': want });
    // Reading moved the counts into the book: read again, same totals.
    assert.deepEqual(await c.read(ns), { 'web-in': want });
    assert.deepEqual(await c.read('/run/netns/unknown'), {});

    await c.load(ns2, 'script', ['web-in']);
    count(ns2, drop, 4, 240);
    assert.deepEqual(await c.totals(), { 'web-in': { ...want, droppedPackets: 5, droppedBytes: 300 } });
    c.forget(ns);
    c.forget(ns);
    assert.deepEqual(await c.totals(), { 'web-in': { ...want, droppedPackets: 5, droppedBytes: 300 } });
    assert.deepEqual(await c.read(ns), {});
  });
});
