/**
 * Network policies in the nft ruleset, as text: golden files test/golden/firewall-policies-*.nft
 * (regenerate with `UPDATE_GOLDEN=1 node --test dist/test/unit/firewall-policy-render.test.js`
 * and review the diff; test/kernel/firewall-golden.test.ts loads them into a kernel), plus the
 * properties the enforcement relies on.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidParameter } from '../../src/errors.js';
import type { FirewallNetwork, FirewallState } from '../../src/network/firewall/firewall.js';
import { NftFirewall } from '../../src/network/firewall/nftables/nft-firewall.js';
import { policyCounterNames, type PolicyDnsLearnt } from '../../src/network/firewall/nftables/nft-policy.js';
import { renderRuleset } from '../../src/network/firewall/nftables/nft-ruleset.js';
import { mergeRanges, parseCidr, rangeElements, subtractRanges } from '../../src/network/firewall/nftables/address-ranges.js';
import type { EndpointPolicy, NetworkPolicyPlan } from '../../src/network/policies/policy-types.js';

const GOLDEN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'test', 'golden');

const backend: FirewallNetwork = {
  id: 'beef00000000beef00000000beef00000000beef00000000beef00000000beef',
  bridge: 'br-beef00000000',
  subnets4: ['10.88.0.0/24'],
  subnets6: ['fd00:88::/64'],
  gateways: ['10.88.0.1', 'fd00:88::1'],
  internal: false,
  icc: true,
  masquerade: true,
};
const frontend: FirewallNetwork = {
  ...backend,
  id: 'f00d00000000f00d00000000f00d00000000f00d00000000f00d00000000f00d',
  bridge: 'br-f00d00000000',
  subnets4: ['10.89.0.0/24'],
  subnets6: [],
  gateways: ['10.89.0.1'],
};

const DB = 'db00000000000000000000000000000000000000000000000000000000000001';
const API = 'a900000000000000000000000000000000000000000000000000000000000002';
const WEB = 'eb00000000000000000000000000000000000000000000000000000000000003';
const FWEB = 'fe00000000000000000000000000000000000000000000000000000000000004';

const db: EndpointPolicy = {
  endpointId: DB,
  containerId: 'c-db',
  addresses: ['10.88.0.2', 'fd00:88::2'],
  policies: ['db-from-api'],
  isolatedBy: { ingress: ['db-from-api'] },
  ingress: [
    {
      policy: 'db-from-api',
      index: 0,
      peers: { addrs4: ['10.88.0.3', '10.89.0.3'], addrs6: ['fd00:88::3'], cidrs: [] },
      ports: [{ proto: 'tcp', from: 5432, to: 5432 }],
    },
  ],
};
const web: EndpointPolicy = {
  endpointId: WEB,
  containerId: 'c-web',
  addresses: ['10.88.0.4'],
  policies: ['lockdown', 'web-out'],
  isolatedBy: { ingress: ['lockdown'], egress: ['lockdown', 'web-out'] },
  ingress: [],
  egress: [
    {
      policy: 'web-out',
      index: 0,
      peers: { addrs4: [], addrs6: [], cidrs: [{ cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] }] },
      ports: [
        { proto: 'tcp', from: 443, to: 443 },
        { proto: 'udp', from: 8000, to: 8100 },
      ],
    },
    { policy: 'web-out', index: 1, peers: { addrs4: ['10.88.0.2'], addrs6: [], cidrs: [] }, ports: 'any' },
  ],
};
// Same rules as web on the other network: shares the rule sets, not the chain.
const fweb: EndpointPolicy = { ...web, endpointId: FWEB, containerId: 'c-fweb', addresses: ['10.89.0.4'], policies: ['lockdown-f'], isolatedBy: { ingress: ['lockdown-f'] }, egress: undefined };

const plans: NetworkPolicyPlan[] = [
  { networkId: frontend.id, policies: ['lockdown-f'], endpoints: [fweb] },
  { networkId: backend.id, policies: ['db-from-api', 'lockdown', 'web-out'], endpoints: [web, db] },
];

const apiOut: EndpointPolicy = {
  endpointId: API,
  containerId: 'c-api',
  addresses: ['10.88.0.3'],
  policies: ['api-out'],
  isolatedBy: { egress: ['api-out'] },
  egress: [
    {
      policy: 'api-out',
      index: 0,
      peers: { addrs4: [], addrs6: [], cidrs: [{ cidr: '192.0.2.0/24', except: [] }], dns: ['*.example.org', 'api.example.com'] },
      ports: [{ proto: 'tcp', from: 443, to: 443 }],
    },
  ],
};

const STATES: Record<string, { state: FirewallState; logDrops?: boolean; dnsLearnt?: PolicyDnsLearnt }> = {
  // One policy: db accepts tcp/5432 from api only.
  'policies-one': {
    state: {
      networks: [backend],
      ports: [{ endpointId: DB, networkId: backend.id, proto: 'tcp', hostIp: '', hostPort: 5432, containerIp: '10.88.0.2', containerPort: 5432 }],
      policies: [{ networkId: backend.id, policies: ['db-from-api'], endpoints: [db] }],
    },
  },
  // Several networks and policies, egress with cidr holes, a deny-all, DNS on the gateways, drop logging.
  'policies-many': { state: { dnsPort: 5353, networks: [frontend, backend], ports: [], policies: plans }, logDrops: true },
  // A dns peer beside a cidr on one rule, with learnt elements to re-create (a reload).
  'policies-dns': {
    state: {
      networks: [backend],
      ports: [],
      policies: [{ networkId: backend.id, policies: ['api-out'], dns: ['*.example.org', 'api.example.com'], endpoints: [apiOut] }],
    },
    dnsLearnt: new Map([[backend.id, new Map([['api.example.com', [{ addr: '203.0.113.5', fam: 4 as const, timeoutS: 95 }, { addr: '2001:db8::5', fam: 6 as const, timeoutS: 40 }]]])]]),
  },
  // A policy in force that selects nothing: counters only, nothing governed.
  'policies-idle': { state: { networks: [backend], ports: [], policies: [{ networkId: backend.id, policies: ['idle'], endpoints: [] }] } },
};

function render(name: string): string {
  const { state, logDrops, dnsLearnt } = STATES[name]!;
  if (dnsLearnt) return renderRuleset(state, 'arca', { logDrops: logDrops ?? false, dnsLearnt });
  return new NftFirewall({ tablePrefix: 'arca', logPolicyDrops: logDrops }).render(state);
}

describe('nft policy golden files', () => {
  for (const name of Object.keys(STATES)) {
    it(`renders ${name}`, () => {
      const text = render(name);
      const file = join(GOLDEN, `firewall-${name}.nft`);
      if (process.env.UPDATE_GOLDEN) writeFileSync(file, text);
      assert.equal(text, readFileSync(file, 'utf8'));
    });
  }
});

describe('nft policy rendering', () => {
  const many = render('policies-many');
  const lines = many.split('\n').map((l) => l.trim());

  it('leaves a ruleset without policies as it was, but for the bridge table it always replaces', () => {
    const without = new NftFirewall({ tablePrefix: 'arca' }).render({ networks: [backend], ports: [] });
    assert.doesNotMatch(without, /pol_|policy_/);
    assert.match(without, /\ntable bridge arca_br \{\}\ndelete table bridge arca_br\n$/);
  });

  it('never accepts in the policy chains: they drop or fall through to the rest of the ruleset', () => {
    const polLines = lines.filter((l) => /(^| )(return|drop|jump|vmap)( |$)/.test(l) && /pol_|arca:policies/.test(l));
    assert.ok(polLines.length > 10);
    for (const l of many.split('\n')) {
      if (/accept( |;|$)/.test(l) && !/policy accept;/.test(l)) assert.doesNotMatch(l, /pol_|arca:policies/, l);
    }
  });

  it('judges every packet by its connection: no established shortcut, only related passes', () => {
    const fwd = lines.slice(lines.indexOf('chain policy_forward {'), lines.indexOf('}', lines.indexOf('chain policy_forward {')));
    assert.deepEqual(
      fwd.filter((l) => l.startsWith('ct state')),
      [
        'ct state related return comment "arca:policies"',
        'ct state invalid ip saddr @pol_gov4 drop comment "arca:policies"',
        'ct state invalid ip daddr @pol_gov4 drop comment "arca:policies"',
        'ct state invalid ip6 saddr @pol_gov6 drop comment "arca:policies"',
        'ct state invalid ip6 daddr @pol_gov6 drop comment "arca:policies"',
      ],
    );
    assert.ok(fwd.includes('ct original ip saddr vmap @pol_out4 comment "arca:policies"'));
    assert.ok(fwd.includes('ct reply ip saddr vmap @pol_in4 comment "arca:policies"'));
    for (const l of lines.filter((x) => x.includes('established'))) assert.doesNotMatch(l, /pol_|arca:policies/, l);
  });

  it('isolates only the directions a policy lists', () => {
    // fweb: ingress only, so it is in the ingress map and not the egress one.
    const outMap = lines.find((l) => l.startsWith('map pol_out4'))!;
    const inMap = lines.find((l) => l.startsWith('map pol_in4'))!;
    assert.doesNotMatch(outMap, /10\.89\.0\.4/);
    assert.match(inMap, /10\.89\.0\.4 : jump pol_g\d+/);
    assert.match(outMap, /10\.88\.0\.4 : jump pol_g\d+/);
    assert.doesNotMatch(outMap, /10\.88\.0\.2/);
  });

  it('attributes a drop to every policy isolating the endpoint in that direction', () => {
    const chainOf = (addr: string, map: string): string[] => {
      const m = new RegExp(`${addr.replace(/\./g, '\\.')} : jump (pol_g\\d+)`).exec(lines.find((l) => l.startsWith(`map ${map}`))!)!;
      const start = lines.indexOf(`chain ${m[1]} {`);
      return lines.slice(start, lines.indexOf('}', start));
    };
    const webOut = chainOf('10.88.0.4', 'pol_out4');
    const drops = webOut.filter((l) => /^counter name "pol_.*_drop"/.test(l));
    assert.deepEqual(
      drops.map((l) => /"([^"]*)"/.exec(l)![1]),
      [policyCounterNames('lockdown').dropped, policyCounterNames('web-out').dropped],
    );
    assert.equal(webOut[webOut.length - 1], 'drop comment "arca:net:beef00000000"');
    // web's ingress: isolated by lockdown with no rules at all.
    const webIn = chainOf('10.88.0.4', 'pol_in4');
    assert.deepEqual(webIn.slice(1).filter((l) => !l.includes('limit rate')), [`counter name "${policyCounterNames('lockdown').dropped}" comment "arca:net:beef00000000"`, 'drop comment "arca:net:beef00000000"']);
  });

  it('binds governed addresses to their ports (anti-spoofing)', () => {
    assert.match(many, /set pol_own4 \{ type ifname \. ipv4_addr; elements = \{ "vxdb0000000000" \. 10\.88\.0\.2, "vxeb0000000000" \. 10\.88\.0\.4, "vxfe0000000000" \. 10\.89\.0\.4 \} \}/);
    assert.match(many, /meta protocol ip iifname @pol_ports iifname \. ip saddr != @pol_own4 counter drop/);
    assert.match(many, /meta protocol ip ip saddr @pol_gov4 iifname \. ip saddr != @pol_own4 counter drop/);
  });

  it('keeps the embedded DNS on the gateways reachable for egress-isolated endpoints', () => {
    assert.ok(lines.includes('ip daddr 10.88.0.1 meta l4proto { tcp, udp } th dport 5353 return comment "arca:policies"'));
    assert.ok(lines.includes('ip saddr 10.88.0.1 meta l4proto { tcp, udp } th sport 5353 return comment "arca:policies"'));
  });

  it('does not depend on the order of plans and endpoints', () => {
    const s = STATES['policies-many']!.state;
    const shuffled: FirewallState = { ...s, policies: [...s.policies!].reverse().map((p) => ({ ...p, endpoints: [...p.endpoints].reverse() })) };
    assert.equal(new NftFirewall({ tablePrefix: 'arca', logPolicyDrops: true }).render(shuffled), many);
  });

  it('takes a plan that governs nothing on a network it does not manage (counters only)', () => {
    const text = new NftFirewall({ tablePrefix: 'arca' }).render({ networks: [backend], ports: [], policies: [{ networkId: 'elsewhere', policies: ['idle'], endpoints: [] }] });
    assert.match(text, new RegExp(`counter ${policyCounterNames('idle').allowed} \\{\\}`));
    assert.doesNotMatch(text, /policy_forward/);
  });

  it('refuses plans it cannot hold', () => {
    const fw = new NftFirewall({ tablePrefix: 'arca' });
    const base = STATES['policies-one']!.state;
    const bad: FirewallState[] = [
      { ...base, policies: [{ networkId: 'nope', policies: ['x'], endpoints: [db] }] },
      { ...base, policies: [{ networkId: backend.id, policies: ['x'], endpoints: [{ ...db, addresses: ['10.88.0.300'] }] }] },
      { ...base, policies: [{ networkId: backend.id, policies: ['x'], endpoints: [{ ...db, ingress: [{ ...db.ingress![0]!, ports: [{ proto: 'tcp', from: 9, to: 70000 }] }] }] }] },
      { ...base, policies: [{ networkId: backend.id, policies: ['x'], endpoints: [{ ...db, ingress: [{ ...db.ingress![0]!, peers: { addrs4: [], addrs6: [], cidrs: [{ cidr: '10.0.0.0/40', except: [] }] } }] }] }] },
      // One address governed by two endpoints with different rules.
      { ...base, policies: [{ networkId: backend.id, policies: ['x'], endpoints: [db, { ...web, addresses: ['10.88.0.2'] }] }] },
    ];
    for (const s of bad) assert.throws(() => fw.render(s), InvalidParameter, JSON.stringify(s.policies));
  });
});

describe('address ranges for interval sets', () => {
  it('carves holes and writes prefixes where it can', () => {
    const all = parseCidr('0.0.0.0/0');
    const out = subtractRanges([all.range], [parseCidr('10.0.0.0/8').range, parseCidr('192.168.0.0/16').range]);
    assert.deepEqual(rangeElements(4, out), ['0.0.0.0-9.255.255.255', '11.0.0.0-192.167.255.255', '192.169.0.0-255.255.255.255']);
    assert.deepEqual(rangeElements(4, mergeRanges([parseCidr('10.0.0.0/25').range, parseCidr('10.0.0.128/25').range])), ['10.0.0.0/24']);
    const v6 = subtractRanges([parseCidr('fd00::/64').range], [parseCidr('fd00::/65').range]);
    assert.deepEqual(rangeElements(6, v6), ['fd00::8000:0:0:0/65']);
    assert.deepEqual(rangeElements(6, [parseCidr('::ffff:10.0.0.1').range]), ['::ffff:a00:1']);
  });
});
