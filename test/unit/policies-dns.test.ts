/**
 * Policies' `dns` peers: parsing (names and wildcards as the egress allowlist reads them, egress
 * `to` only), compilation (patterns kept per rule), rendering (one learnt set per network and
 * pattern, referenced by the rule, elements re-created on reload) and learning (the DNS views
 * carry the patterns; the firewall adds elements only to sets its ruleset has).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidParameter } from '../../src/errors.js';
import { encodeMessage, DnsType } from '../../src/network/dns/dns-codec.js';
import { learntFromAnswer } from '../../src/network/egress/egress-dns.js';
import { EgressBook } from '../../src/network/egress/egress-book.js';
import Database from 'better-sqlite3';
import type { DriverNetwork, NetworkDriver } from '../../src/network/driver.js';
import type { EgressLearner, Firewall, FirewallNetwork } from '../../src/network/firewall/firewall.js';
import type { NetworkRecord } from '../../src/network/network-record.js';
import { PolicyEnforcement } from '../../src/network/policies/policy-enforcement.js';
import { PolicyManager } from '../../src/network/policies/policy-manager.js';
import type { NetworkPolicyPlan, PolicyWorld } from '../../src/network/policies/policy-types.js';
import { NftFirewall } from '../../src/network/firewall/nftables/nft-firewall.js';
import { parsePolicyDnsSets, policyCounterNames, policyDnsSet } from '../../src/network/firewall/nftables/nft-policy.js';
import { parseAddress, parseCidr } from '../../src/network/firewall/nftables/address-ranges.js';
import { compilePlans } from '../../src/network/policies/policy-compile.js';
import { hostDnsPlan, planDnsSets, policyDnsPatterns, withHeldEndpoints } from '../../src/network/policies/policy-dns.js';
import { validatePolicy } from '../../src/network/policies/policy-parse.js';
import { checkConnection } from '../../src/network/policies/policy-check.js';
import { DNS_PLAN_EP, DNS_PLAN_NET, dnsPeerPlan, fixtureWorld } from './policies-fixtures.js';
import { EXT_DNS, EXT_EXPIRES, outwardMatch, parseExpires, policyRows, staysInOvn } from '../../src/network/drivers/ovn/ovn-policies.js';

const base = { name: 'p', network: 'back' };

function refused(doc: unknown, msg: string): void {
  assert.throws(
    () => validatePolicy(doc),
    (e: unknown) => e instanceof InvalidParameter && e.message === msg,
  );
}

describe('dns peers: parsing', () => {
  it('normalises names and wildcards', () => {
    const d = validatePolicy({ ...base, egress: [{ to: [{ dns: 'API.Example.com.' }, { dns: '*.cdn.example.net' }], ports: [{ port: 443 }] }] });
    assert.deepEqual(d.egress![0]!.to, [{ dns: 'api.example.com' }, { dns: '*.cdn.example.net' }]);
    assert.deepEqual(d.egress![0]!.ports, [{ proto: 'tcp', port: 443 }]);
  });

  it('refuses bad names, wildcards, ports in the name, other keys and ingress use, naming the field', () => {
    refused({ ...base, ingress: [{ from: [{ dns: 'a.example.com' }] }] }, 'policy "p": ingress[0].from[0].dns: a dns peer is a destination: only in an egress rule\'s "to"');
    refused({ ...base, egress: [{ to: [{ dns: 'a.*.example.com' }] }] }, 'policy "p": egress[0].to[0].dns: "a.*.example.com": a wildcard is allowed only as the whole first label ("*.example.com")');
    refused({ ...base, egress: [{ to: [{ dns: '*.com' }] }] }, 'policy "p": egress[0].to[0].dns: "*.com": a wildcard needs at least two labels after "*." (e.g. "*.example.com")');
    refused({ ...base, egress: [{ to: [{ dns: 'bad!.example.com' }] }] }, 'policy "p": egress[0].to[0].dns: "bad!.example.com": "bad!" is not a valid DNS label');
    refused({ ...base, egress: [{ to: [{ dns: '10.0.0.1' }] }] }, 'policy "p": egress[0].to[0].dns: "10.0.0.1": not an address nor a DNS name');
    refused({ ...base, egress: [{ to: [{ dns: 'api.example.com:443' }] }] }, 'policy "p": egress[0].to[0].dns: "api.example.com:443": a dns peer is a name only; give ports in the rule\'s "ports"');
    refused({ ...base, egress: [{ to: [{ dns: 7 }] }] }, 'policy "p": egress[0].to[0].dns: must be a DNS name like api.example.com or *.example.com, not number 7');
    refused({ ...base, egress: [{ to: [{ dns: 'a.example.com', cidr: '10.0.0.0/8' }] }] }, 'policy "p": egress[0].to[0]: dns cannot be combined with cidr in one peer (make them two peers)');
  });
});

const world = fixtureWorld(
  [
    { name: 'app', labels: { app: 'x' }, on: { back: '10.2.0.2' } },
    { name: 'other', labels: {}, on: { back: '10.2.0.3' } },
  ],
  ['back', 'front'],
);
const docs = [
  validatePolicy({
    name: 'api-out',
    network: 'back',
    select: { labels: { app: 'x' } },
    egress: [{ to: [{ dns: 'api.example.com' }, { dns: '*.example.org' }, { cidr: '192.0.2.0/24' }], ports: [{ port: 443 }] }],
  }),
];

describe('dns peers: compilation', () => {
  it('keeps the patterns, sorted, beside the other peers', () => {
    const plans = compilePlans(docs, world);
    const ep = plans[0]!.endpoints;
    assert.equal(ep.length, 1);
    assert.deepEqual(ep[0]!.egress![0]!.peers, { addrs4: [], addrs6: [], cidrs: [{ cidr: '192.0.2.0/24', except: [] }], dns: ['*.example.org', 'api.example.com'] });
    assert.deepEqual(planDnsSets(plans), [
      { networkId: plans[0]!.networkId, dns: '*.example.org' },
      { networkId: plans[0]!.networkId, dns: 'api.example.com' },
    ]);
    assert.deepEqual(policyDnsPatterns(docs, 'back'), ['*.example.org', 'api.example.com']);
    // The plan names them even before an endpoint is selected (what a restart reads back).
    assert.deepEqual(plans[0]!.dns, ['*.example.org', 'api.example.com']);
    assert.deepEqual(policyDnsPatterns(docs, 'front'), []);
  });
});

describe('dns peers: rendering and learning', () => {
  // Endpoint ids as the daemon makes them (the renderer names host veths after them).
  const plans = compilePlans(docs, world).map((p) => ({ ...p, endpoints: p.endpoints.map((e) => ({ ...e, endpointId: 'a1'.repeat(32) })) }));
  const netId = plans[0]!.networkId;
  const net: FirewallNetwork = {
    id: netId,
    bridge: 'br-back',
    subnets4: ['10.2.0.0/24'],
    subnets6: [],
    gateways: ['10.2.0.1'],
    internal: false,
    icc: true,
    masquerade: true,
  };
  const state = { networks: [net], ports: [], policies: plans };

  it('declares one timeout set per pattern and family, and the rule refers to it both ways', () => {
    const text = new NftFirewall({ tablePrefix: 'arca' }).render(state);
    const s4 = policyDnsSet(netId, 'api.example.com', 4);
    assert.match(text, new RegExp(`set ${s4} \\{ type ipv4_addr; flags timeout; comment "api.example.com"; \\}`));
    assert.match(text, new RegExp(`ct direction original ip daddr @${s4} meta l4proto \\. th dport @pol_r\\d+_p counter`));
    assert.match(text, new RegExp(`ct direction reply ip saddr @${s4} meta l4proto \\. th sport @pol_r\\d+_p counter`));
    assert.match(text, new RegExp(`set ${policyDnsSet(netId, '*.example.org', 6)} \\{ type ipv6_addr; flags timeout;`));
    assert.notEqual(policyDnsSet(netId, 'a.example.com', 4), policyDnsSet('f'.repeat(64), 'a.example.com', 4));
  });

  it('the embedded DNS view of a network matches its patterns (wildcards: one or more labels, not the apex)', () => {
    const answer = encodeMessage({
      header: { id: 1, qr: true, opcode: 0, aa: false, tc: false, rd: true, ra: true, ad: false, cd: false, rcode: 0 },
      questions: [{ name: 'a.b.example.org', type: DnsType.A, class: 1 }],
      answers: [{ name: 'a.b.example.org', type: DnsType.A, class: 1, ttl: 5, data: '198.51.100.7' }],
      authorities: [],
      additionals: [],
    });
    const views = [{ networkId: netId, names: [], peers: ['*.example.org', 'api.example.com'] }];
    assert.deepEqual(learntFromAnswer(views, 'a.b.example.org', answer), [{ networkId: netId, rule: -1, dns: '*.example.org', addresses: [{ addr: '198.51.100.7', fam: 4, ttl: 5 }] }]);
    assert.deepEqual(learntFromAnswer(views, 'example.org', answer), []);
  });

  it('a reload re-creates learnt elements with what they have left; ttls are clamped as for allowlists', () => {
    const book = new EgressBook<string>();
    const timed = book.timeouts({ networkId: netId, rule: -1, dns: 'api.example.com', addresses: [{ addr: '203.0.113.5', fam: 4, ttl: 1 }] }, 0);
    assert.deepEqual(timed, [{ addr: '203.0.113.5', fam: 4, timeoutS: 30 }]);
    book.record(netId, 'api.example.com', timed, 0);
    book.retainKeys((_id, k) => k === 'api.example.com');
    assert.equal(book.elements(10_000).get(netId)?.get('api.example.com')?.[0]?.timeoutS, 20);
    book.retainKeys(() => false);
    assert.equal(book.elements(10_000).size, 0);
  });
  it('a restarted daemon reads the learnt sets of a hidden namespace back from its table listing, by network and comment', () => {
    const s4 = policyDnsSet(netId, '*.example.com', 4);
    const listing = [
      'table inet arca {',
      `\tset ${s4} {`,
      '\t\ttype ipv4_addr',
      '\t\tflags timeout',
      '\t\tcomment "*.example.com"',
      '\t\telements = { 198.18.50.2 timeout 40s expires 39s992ms, 198.18.50.3 timeout 1m40s expires 1m39s992ms }',
      '\t}',
      '',
      `\tset ${policyDnsSet('f'.repeat(64), '*.example.com', 6)} {`,
      '\t\ttype ipv6_addr',
      '\t\tflags timeout',
      '\t\tcomment "*.example.com"',
      '\t}',
      '}',
    ].join('\n');
    assert.deepEqual(parsePolicyDnsSets(listing, [netId]), [
      {
        networkId: netId,
        dns: '*.example.com',
        elements: [
          { addr: '198.18.50.2', fam: 4, timeoutS: 39 },
          { addr: '198.18.50.3', fam: 4, timeoutS: 99 },
        ],
      },
    ]);
  });
});

describe('dns peers on ovn', () => {
  const NET = DNS_PLAN_NET;
  const EP = DNS_PLAN_EP;
  const plan = dnsPeerPlan('api.example.com');

  it('refers to one address set per family holding the learnt addresses, their expiry in external_ids', () => {
    const now = 1_800_000_000_000;
    const rows = policyRows(NET, plan, new Map([[EP, 'u-1']]), {
      now,
      dnsLearnt: new Map([['api.example.com', [{ addr: '203.0.113.5', fam: 4 as const, timeoutS: 95 }]]]),
    });
    const sets = rows.addressSets.filter((s) => s.ext[EXT_DNS] === 'api.example.com');
    assert.equal(sets.length, 2);
    const v4 = sets.find((s) => s.name.endsWith('_4'))!;
    const v6 = sets.find((s) => s.name.endsWith('_6'))!;
    assert.deepEqual(v4.addresses, ['203.0.113.5']);
    assert.deepEqual(v6.addresses, []);
    // Rounded down to 10 s: a restart never gives an address more time than it had.
    assert.equal(v4.ext[EXT_EXPIRES], '203.0.113.5=1800000090');
    const acl = rows.portGroups.flatMap((p) => p.acls).find((a) => a.name === 'arca:api-out:eg:0')!;
    assert.match(acl.match, new RegExp(`\\(ip4\\.dst == \\$${v4.name} \\|\\| ip6\\.dst == \\$${v6.name}\\) && tcp\\.dst == 443`));
    assert.deepEqual(parseExpires(v4.ext[EXT_EXPIRES], 4, now + 10_000), [{ addr: '203.0.113.5', fam: 4, timeoutS: 80 }]);
    assert.deepEqual(parseExpires(v4.ext[EXT_EXPIRES], 4, now + 90_000), []);
  });
});

describe('dns peers in arca policy check', () => {
  it('says the model leaves dns peers out when it denies', () => {
    const w = fixtureWorld([{ name: 'app', labels: { app: 'x' }, on: { back: '10.2.0.2' } }], ['back']);
    const r = checkConnection(docs, w, { fromContainer: 'app', to: { address: '203.0.113.5' }, proto: 'tcp', port: 443 });
    assert.equal(r.allowed, false);
    assert.match(r.reason, /no rule allows tcp\/443 to 203\.0\.113\.5 \(not counting dns peers, whose addresses are learnt from DNS answers at run time\)/);
    // Another port: the dns rule would not allow it either, so no note.
    const other = checkConnection(docs, w, { fromContainer: 'app', to: { address: '203.0.113.5' }, proto: 'tcp', port: 80 });
    assert.doesNotMatch(other.reason, /dns peers/);
  });
});

/** Whether `addr` lies in `cidr`. */
function parseCidrRange(cidr: string, addr: string): boolean {
  const c = parseCidr(cidr);
  const a = parseAddress(addr);
  return c.fam === a.fam && a.value >= c.range.from && a.value <= c.range.to;
}

describe('dns peers on ovn, judged by the host', () => {
  const NET = DNS_PLAN_NET;
  const EP = DNS_PLAN_EP;
  const OTHER = '2'.repeat(64);
  const base = dnsPeerPlan('api.example.com');
  // A second endpoint isolated by a policy without dns peers: OVN alone judges it exactly.
  const plan: NetworkPolicyPlan = {
    ...base,
    policies: ['api-out', 'db-only'],
    endpoints: [
      { ...base.endpoints[0]!, ingress: [] },
      { endpointId: OTHER, containerId: 'c2', addresses: ['10.0.0.3'], policies: ['db-only'], egress: [{ policy: 'db-only', index: 0, peers: { addrs4: ['10.0.0.9'], addrs6: [], cidrs: [] }, ports: 'any' }] },
    ],
  };

  it('the host judges the egress of endpoints with a dns rule, by all their egress rules, and no ingress', () => {
    const host = hostDnsPlan(plan)!;
    assert.deepEqual(host.endpoints.map((e) => e.endpointId), [EP]);
    assert.equal(host.endpoints[0]!.ingress, undefined);
    assert.deepEqual(host.endpoints[0]!.egress, base.endpoints[0]!.egress);
    assert.deepEqual(host.dns, ['api.example.com']);
    // The patterns stay named with nobody selected: their learnt sets are kept.
    assert.deepEqual(hostDnsPlan({ ...plan, endpoints: [] })?.endpoints, []);
    assert.equal(hostDnsPlan({ networkId: NET, policies: [], endpoints: [] }), undefined);
  });

  it('keeps judging endpoints the driver still lets out until it has the new plan, unless their address moved on', () => {
    const before = hostDnsPlan(plan)!;
    const none = hostDnsPlan({ ...plan, dns: [], endpoints: [] });
    assert.deepEqual(withHeldEndpoints(none, before)?.endpoints.map((e) => e.endpointId), [EP]);
    const reused = { ...before.endpoints[0]!, endpointId: OTHER };
    assert.deepEqual(withHeldEndpoints({ ...before, endpoints: [reused] }, before)?.endpoints.map((e) => e.endpointId), [OTHER]);
    assert.equal(withHeldEndpoints(before, before), before);
  });

  it('the OVN rule lets a dns rule out beyond the router, and the sets keep only what stays in OVN', () => {
    const rows = policyRows(NET, { ...plan, dnsOnHost: true }, new Map([[EP, 'u-1'], [OTHER, 'u-2']]), { subnets: ['10.0.0.0/24', 'fd00:1::/64'] });
    const acl = rows.portGroups.flatMap((p) => p.acls).find((a) => a.name === 'arca:api-out:eg:0')!;
    const outward = outwardMatch(['10.0.0.0/24', 'fd00:1::/64']);
    assert.ok(acl.match.endsWith(` || ${outward}) && tcp.dst == 443`), acl.match);
    // Prefixes covering exactly what is not local (no `!=`: OVN would expand it into a product of flows).
    const v4 = /ip4\.dst == \{([^}]*)\}/.exec(outward)![1]!.split(', ');
    assert.deepEqual(v4.slice(0, 4), ['0.0.0.0/5', '8.0.0.0/7', '10.0.1.0/24', '10.0.2.0/23']);
    assert.ok(!v4.includes('10.0.0.0/24') && v4.includes('11.0.0.0/8') && v4.includes('169.254.100.0/31') && v4.includes('169.254.100.3/32'));
    assert.ok(v4.includes('192.0.0.0/3') && !v4.some((c) => c.startsWith('224.')) && v4.at(-1) === '255.255.255.254/32');
    assert.doesNotMatch(outward, /!=/);
    const inOvn = staysInOvn(['10.0.0.0/24', 'fd00:1::/64']);
    const beyond = (a: string): boolean => [...(/ip4\.dst == \{([^}]*)\}/.exec(outward)![1]!.split(', '))].some((c) => parseCidrRange(c, a));
    for (const a of ['10.0.0.9', '10.0.1.1', '203.0.113.5', '169.254.100.1', '169.254.100.2', '223.255.255.255', '224.0.0.1', '255.255.255.255']) assert.equal(beyond(a), !inOvn(a), a);
    // The other policy's rule is untouched.
    const other = rows.portGroups.flatMap((p) => p.acls).find((a) => a.name === 'arca:db-only:eg:0')!;
    assert.doesNotMatch(other.match, /ip4\.dst == \{/);
    assert.deepEqual(['10.0.0.9', '203.0.113.5', '169.254.100.2', '169.254.100.1', 'fd00:1::5', '2001:db8::1', 'fe80::1', '239.1.2.3'].map(inOvn), [true, false, true, false, true, false, true, true]);
    // Without the flag, as before: no outward term.
    const old = policyRows(NET, plan, new Map([[EP, 'u-1']]), { subnets: ['10.0.0.0/24'] });
    assert.doesNotMatch(old.portGroups.flatMap((p) => p.acls).find((a) => a.name === 'arca:api-out:eg:0')!.match, /ip4\.dst == \{/);
  });

  it('the host ruleset dispatches by source on the transit link, counts only drops, and adds no anti-spoofing', () => {
    const transit: FirewallNetwork = { id: NET, bridge: `on${NET.slice(0, 12)}`, subnets4: ['10.0.0.0/24'], subnets6: [], gateways: [], internal: false, icc: true, masquerade: true, driverPolicies: true };
    const text = new NftFirewall({ tablePrefix: 'arca' }).render({ networks: [transit], ports: [], policies: [hostDnsPlan(plan)!] });
    const s4 = policyDnsSet(NET, 'api.example.com', 4);
    assert.match(text, new RegExp(`ct direction original ip daddr @${s4} meta l4proto \\. th dport @pol_r\\d+_p return comment`));
    assert.match(text, /ct original ip saddr vmap @pol_out4/);
    assert.match(text, /elements = \{ 10\.0\.0\.2 : jump pol_g1 \}/);
    assert.doesNotMatch(text, /pol_in4|10\.0\.0\.3/);
    assert.match(text, new RegExp(`counter name "${policyCounterNames('api-out').dropped}"`));
    assert.doesNotMatch(text, new RegExp(`counter name "${policyCounterNames('api-out').allowed}"`));
    assert.doesNotMatch(text, /^table bridge arca_br \{$/m);
  });
});

describe('policy enforcement: dns peers a driver leaves to the host', () => {
  it('the host gets its part first, the driver the flagged plan; the host lets go only once the driver has the new plan', async () => {
    const handed: NetworkPolicyPlan[] = [];
    const ovn = {
      name: 'ovn',
      dnsPeersOnHost: true,
      firewallNetwork: () => undefined,
      applyPolicies: async (_net: unknown, p: NetworkPolicyPlan) => {
        handed.push(p);
      },
      learnPolicyDns: async () => {},
    } as unknown as NetworkDriver;
    const firewall: Firewall & EgressLearner = { name: 'test', apply: async () => {}, teardown: async () => {}, learnEgress: async () => {}, egressStatus: async () => undefined };
    const world: PolicyWorld = {
      networks: [{ id: 'n-ovn', name: 'ov', driver: 'ovn' }],
      endpoints: [{ endpointId: 'e1', containerId: 'c1', containerName: 'c1', labels: { app: 'x' }, networkId: 'n-ovn', networkName: 'ov', addresses: ['10.1.0.2'] }],
    };
    const e = new PolicyEnforcement(new PolicyManager(new Database(':memory:')), { get: () => ovn }, firewall);
    e.attach({ policyWorld: () => world, find: (id) => ({ Id: id, Name: 'ov', Driver: 'ovn' } as NetworkRecord), driverNetwork: (n) => ({ id: n.Id, name: n.Name } as DriverNetwork), publish: async () => {} });
    await e.put({ name: 'api', network: 'ov', select: { labels: { app: 'x' } }, egress: [{ to: [{ dns: 'api.example.com' }], ports: [{ port: 443 }] }] });
    let r = e.compile(world);
    assert.deepEqual(r.firewall.map((p) => p.endpoints.map((x) => x.endpointId)), [['e1']]);
    assert.equal(await r.enforce(false), undefined);
    assert.equal(handed.at(-1)!.dnsOnHost, true);
    await e.put({ name: 'api', network: 'ov', select: { labels: { app: 'x' } }, egress: [{ to: [{ cidr: '192.0.2.0/24' }] }] });
    r = e.compile(world);
    // The driver still lets e1's dns rule out: the host keeps judging it until the driver has the new plan.
    assert.deepEqual(r.firewall.map((p) => p.endpoints.map((x) => x.endpointId)), [['e1']]);
    assert.deepEqual(await r.enforce(false), []);
    assert.deepEqual(e.compile(world).firewall, []);
  });
});
