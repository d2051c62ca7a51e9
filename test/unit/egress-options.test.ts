/**
 * The egress allowlist: option parsing (every mistake a 400 naming the entry), name matching,
 * the learnt book's clamping, and the rendered ruleset (golden files test/golden/firewall-egress-*.nft;
 * regenerate with `UPDATE_GOLDEN=1 node --test dist/test/unit/egress-options.test.js`).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidParameter } from '../../src/errors.js';
import { nameMatches, parseEgressEntry, parseEgressOptions } from '../../src/network/egress/egress-options.js';
import { EgressBook, EGRESS_TTL_CEILING_S, EGRESS_TTL_FLOOR_S } from '../../src/network/egress/egress-book.js';
import type { FirewallNetwork, FirewallState } from '../../src/network/firewall/firewall.js';
import { renderRuleset } from '../../src/network/firewall/nftables/nft-ruleset.js';
import { parseOvnOptions } from '../../src/network/drivers/ovn/ovn-options.js';
import { parseWgOptions } from '../../src/network/drivers/wireguard/wg-options.js';

const GOLDEN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'test', 'golden');

function rejects(options: Record<string, string>, pattern: RegExp): void {
  assert.throws(
    () => parseEgressOptions(options),
    (e: unknown) => e instanceof InvalidParameter && pattern.test(e.message),
  );
}

describe('egress options', () => {
  it('parses every entry form', () => {
    const p = parseEgressOptions({
      'arca.egress': 'deny',
      'arca.egress.allow':
        '10.1.2.3/8, 192.0.2.7, 198.51.100.0/24:443, 203.0.113.0/24:8000-8100/udp, 2001:db8::/32, [2001:db8:1::/48]:53/tcp, pypi.org, *.Example.COM.:443/tcp, registry.local:5000',
    })!;
    assert.equal(p.strategy, 'conntrack');
    assert.deepEqual(
      p.cidrs.map((c) => [c.cidr, c.fam, c.ports]),
      [
        ['10.0.0.0/8', 4, undefined],
        ['192.0.2.7/32', 4, undefined],
        ['198.51.100.0/24', 4, { from: 443, to: 443 }],
        ['203.0.113.0/24', 4, { proto: 'udp', from: 8000, to: 8100 }],
        ['2001:db8::/32', 6, undefined],
        ['2001:db8:1::/48', 6, { proto: 'tcp', from: 53, to: 53 }],
      ],
    );
    assert.deepEqual(
      p.names.map((n) => [n.name, n.wildcard, n.ports]),
      [
        ['pypi.org', false, undefined],
        ['example.com', true, { proto: 'tcp', from: 443, to: 443 }],
        ['registry.local', false, { from: 5000, to: 5000 }],
      ],
    );
  });

  it('has no policy without arca.egress=deny, and refuses the other keys then', () => {
    assert.equal(parseEgressOptions({}), undefined);
    assert.equal(parseEgressOptions({ 'arca.egress': 'allow' }), undefined);
    rejects({ 'arca.egress.allow': '10.0.0.0/8' }, /arca\.egress\.allow needs arca\.egress=deny/);
    rejects({ 'arca.egress': 'allow', 'arca.egress.strategy': 'full' }, /needs arca\.egress=deny/);
    rejects({ 'arca.egress': 'block' }, /invalid value for arca\.egress: "block"/);
  });

  it('accepts an empty list (nothing outside) and the strategies', () => {
    assert.deepEqual(parseEgressOptions({ 'arca.egress': 'deny' }), { strategy: 'conntrack', cidrs: [], names: [] });
    assert.equal(parseEgressOptions({ 'arca.egress': 'deny', 'arca.egress.strategy': 'full' })!.strategy, 'full');
    const s = parseEgressOptions({ 'arca.egress': 'deny', 'arca.egress.strategy': 'sampled' })!;
    assert.equal(s.sample, 64);
    assert.equal(parseEgressOptions({ 'arca.egress': 'deny', 'arca.egress.strategy': 'sampled', 'arca.egress.sample': '10' })!.sample, 10);
  });

  it('refuses bad strategies and samples', () => {
    rejects({ 'arca.egress': 'deny', 'arca.egress.strategy': 'fast' }, /invalid value for arca\.egress\.strategy: "fast"/);
    rejects({ 'arca.egress': 'deny', 'arca.egress.strategy': 'sampled', 'arca.egress.sample': '1' }, /arca\.egress\.sample: "1"/);
    rejects({ 'arca.egress': 'deny', 'arca.egress.strategy': 'sampled', 'arca.egress.sample': 'x' }, /arca\.egress\.sample: "x"/);
    rejects({ 'arca.egress': 'deny', 'arca.egress.sample': '10' }, /needs arca\.egress\.strategy=sampled/);
  });

  it('names the bad entry', () => {
    const cases: Array<[string, RegExp]> = [
      ['a.*.example.com', /"a\.\*\.example\.com": a wildcard is allowed only as the whole first label/],
      ['*example.com', /"\*example\.com": a wildcard/],
      ['*.com', /"\*\.com": a wildcard needs at least two labels/],
      ['10.0.0.0/8:0', /"10\.0\.0\.0\/8:0": port 0 is out of range/],
      ['10.0.0.0/8:65536', /port 65536 is out of range/],
      ['10.0.0.0/8:100-90', /port range 100-90 is reversed/],
      ['10.0.0.0/33', /"10\.0\.0\.0\/33": .* is not a CIDR/],
      ['300.1.1.1', /"300\.1\.1\.1": .* is not a CIDR/],
      ['example.com:443/icmp', /unknown protocol "icmp"/],
      ['example.com:', /empty port/],
      ['exa mple.com', /not a valid DNS label/],
      ['-bad.com', /"-bad" is not a valid DNS label/],
      ['[10.0.0.0/8]:80', /brackets are for IPv6 only/],
    ];
    for (const [entry, re] of cases) {
      rejects({ 'arca.egress': 'deny', 'arca.egress.allow': `1.1.1.1,${entry}` }, re);
    }
    rejects({ 'arca.egress': 'deny', 'arca.egress.allow': '1.1.1.1,,2.2.2.2' }, /empty entry/);
  });

  it('matches names: exact, and wildcards over one or more labels but not the apex', () => {
    const exact = parseEgressEntry('pypi.org').name!;
    const wild = parseEgressEntry('*.example.com').name!;
    assert.ok(nameMatches(exact, 'PyPI.org.'));
    assert.ok(!nameMatches(exact, 'files.pypi.org'));
    assert.ok(nameMatches(wild, 'a.example.com'));
    assert.ok(nameMatches(wild, 'a.b.example.com.'));
    assert.ok(!nameMatches(wild, 'example.com'));
    assert.ok(!nameMatches(wild, 'badexample.com'));
  });

  it('ovn and wireguard accept the generic egress keys and still refuse others', () => {
    const options = { 'arca.egress': 'deny', 'arca.egress.allow': '10.0.0.0/8' };
    parseOvnOptions({ options });
    parseWgOptions({ id: 'x', name: 'x', options, internal: false, enableIPv4: true, enableIPv6: false, subnets: [], predefined: false });
    assert.throws(() => parseOvnOptions({ options: { 'arca.egres': 'deny' } }), /unknown option "arca\.egres"/);
  });
});

describe('egress learnt book', () => {
  const it1 = (ttl: number, addr = '192.0.2.1') => ({ networkId: 'n1', rule: 0, addresses: [{ addr, fam: 4 as const, ttl }] });
  it('clamps TTLs to the floor and the ceiling and never shortens an element', () => {
    const b = new EgressBook();
    assert.equal(b.timeouts(it1(0), 0)[0]!.timeoutS, EGRESS_TTL_FLOOR_S);
    assert.equal(b.timeouts(it1(86400), 0)[0]!.timeoutS, EGRESS_TTL_CEILING_S);
    b.record('n1', 0, b.timeouts(it1(600), 0), 0);
    assert.equal(b.timeouts(it1(60), 100_000)[0]!.timeoutS, 500);
    assert.deepEqual(b.status('n1', 100_000), { 0: [{ addr: '192.0.2.1', expiresInS: 500 }] });
    assert.deepEqual(b.status('n1', 600_000), {});
  });
  it('forgets networks that are no longer deny networks', () => {
    const b = new EgressBook();
    b.record('n1', 0, b.timeouts(it1(600), 0), 0);
    b.retain(new Map());
    assert.equal(b.elements(0).size, 0);
  });
});

// ---- rendering

const denyNet: FirewallNetwork = {
  id: 'eeee00000000000000000000000000000000000000000000000000000000e001',
  bridge: 'br-eeee00000000',
  subnets4: ['172.30.0.0/16'],
  subnets6: ['fd00:30::/64'],
  gateways: ['172.30.0.1', 'fd00:30::1'],
  internal: false,
  icc: true,
  masquerade: true,
  egress: parseEgressOptions({
    'arca.egress': 'deny',
    'arca.egress.allow': '10.0.0.0/8,10.1.0.0/16,192.0.2.0/24:443/tcp,192.0.2.128/25:443/tcp,[2001:db8::/32]:53/udp,pypi.org,*.example.com:443/tcp',
  })!,
};
const sampledNet: FirewallNetwork = {
  ...denyNet,
  id: 'eeee0000e0020000000000000000000000000000000000000000000000000000',
  bridge: 'on-eeee0000e002',
  subnets4: ['172.31.0.0/16'],
  subnets6: [],
  gateways: [],
  egress: parseEgressOptions({ 'arca.egress': 'deny', 'arca.egress.strategy': 'sampled', 'arca.egress.sample': '16', 'arca.egress.allow': '198.51.100.10:8000-8100' })!,
};
const fullNet: FirewallNetwork = {
  ...denyNet,
  id: 'eeee0000e0030000000000000000000000000000000000000000000000000000',
  bridge: 'wbeeee0000e003',
  subnets4: ['172.29.0.0/16'],
  subnets6: [],
  gateways: ['172.29.0.1'],
  protectHost: true,
  egress: parseEgressOptions({ 'arca.egress': 'deny', 'arca.egress.strategy': 'full' })!,
};

const STATES: Record<string, FirewallState> = {
  'egress-strategies': { networks: [denyNet, sampledNet, fullNet], ports: [] },
  'egress-gateway-dns': { networks: [denyNet], ports: [], dnsPort: 5353 },
};

describe('egress ruleset', () => {
  for (const [name, state] of Object.entries(STATES)) {
    it(`renders ${name}`, () => {
      const text = renderRuleset(state, 'arca');
      const file = join(GOLDEN, `firewall-${name}.nft`);
      if (process.env.UPDATE_GOLDEN) writeFileSync(file, text);
      assert.equal(text, readFileSync(file, 'utf8'));
    });
  }

  const text = renderRuleset(STATES['egress-strategies']!, 'arca');
  const lines = text.split('\n').map((l) => l.trim());

  it('checks a deny network before any other forward rule can accept', () => {
    const fwd = text.slice(text.indexOf('chain forward {'), text.indexOf('}', text.indexOf('chain forward {')));
    const rules = fwd.split('\n').map((l) => l.trim()).filter((l) => /^(iif|oif)name/.test(l));
    assert.ok(rules.slice(0, 3).every((l) => /jump e_/.test(l)), rules.join('\n'));
  });

  it('never lets a new flow skip the check: fast paths match only established packets or replies', () => {
    for (const l of lines.filter((x) => /^ct .* return/.test(x))) {
      assert.match(l, /^ct (direction reply|state established,related|state established numgen random mod 16 != 0) return/);
    }
    assert.ok(lines.includes('ct state established numgen random mod 16 != 0 return comment "arca:net:eeee0000e002"'));
  });

  it('merges overlapping CIDRs into one element', () => {
    assert.ok(lines.some((l) => l.startsWith('set e_eeee00000000_c4_0 ') && l.includes('elements = { 10.0.0.0/8 }')));
    assert.ok(lines.some((l) => l.startsWith('set e_eeee00000000_c4_1 ') && l.includes('elements = { 192.0.2.0/24 }')));
  });

  it('drops DNS and DoT before the any-port destinations', () => {
    const chk = text.slice(text.indexOf('chain e_eeee00000000_chk {'));
    const body = chk.slice(0, chk.indexOf('}\n'));
    const dns = body.indexOf('th dport { 53, 853 }');
    assert.ok(dns > body.indexOf('@e_eeee00000000_c4_1 meta l4proto tcp th dport 443'));
    assert.ok(dns > body.indexOf('@e_eeee00000000_n1_4 meta l4proto tcp th dport 443'));
    assert.ok(dns < body.indexOf('@e_eeee00000000_c4_0 return'));
    assert.ok(dns < body.indexOf('@e_eeee00000000_n0_4 return'));
  });

  it('re-creates learnt elements with their remaining timeouts', () => {
    const learnt = new Map([[denyNet.id, new Map([[1, [{ addr: '192.0.2.77', fam: 4 as const, timeoutS: 42 }]]])]]);
    const t = renderRuleset({ networks: [denyNet], ports: [] }, 'arca', { egressLearnt: learnt });
    assert.match(t, /set e_eeee00000000_n1_4 \{ type ipv4_addr; flags timeout; elements = \{ 192\.0\.2\.77 timeout 42s \}/);
  });
});

describe('learnt set read-back', () => {
  it("parses nft's list set output with its expiry times", async () => {
    const { parseLearntSet } = await import('../../src/network/firewall/nftables/nft-egress.js');
    const text = `table inet arca {
	set e_x_n0_4 {
		type ipv4_addr
		flags timeout
		elements = { 1.2.3.4 timeout 30s expires 29s928ms,
			     5.6.7.8 timeout 1h expires 59m58s10ms, 9.9.9.9 timeout 30s expires 500ms }
	}
}`;
    assert.deepEqual(parseLearntSet(text, 4), [
      { addr: '1.2.3.4', fam: 4, timeoutS: 29 },
      { addr: '5.6.7.8', fam: 4, timeoutS: 3598 },
    ]);
    assert.deepEqual(parseLearntSet('set x { type ipv4_addr; }', 4), []);
  });
});
