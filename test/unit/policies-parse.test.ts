import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidParameter } from '../../src/errors.js';
import { parsePolicies, validatePolicy } from '../../src/network/policies/policy-parse.js';

function invalid(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidParameter, String(err));
    assert.equal((err as Error).message, message);
    return true;
  });
}

const ISSUE_EXAMPLE = `
name: db-from-api                 # unique
network: backend
select:
  labels: {app: db}
  names: [db]
ingress:
  - from:
      - labels: {app: api}
      - names: [web]
      - network: frontend
      - cidr: 198.18.0.0/15
    ports:
      - {proto: tcp, port: 5432}
      - {proto: udp, port: "8000-8100"}
egress:
  - to: [{cidr: 0.0.0.0/0}]
    ports: [{proto: tcp, port: 443}]
`;

describe('policy parsing', () => {
  it('reads the issue example (YAML), normalised', () => {
    assert.deepEqual(parsePolicies(ISSUE_EXAMPLE), [
      {
        name: 'db-from-api',
        network: 'backend',
        select: { labels: { app: 'db' }, names: ['db'] },
        ingress: [
          {
            from: [{ labels: { app: 'api' } }, { names: ['web'] }, { network: 'frontend' }, { cidr: '198.18.0.0/15' }],
            ports: [
              { proto: 'tcp', port: 5432 },
              { proto: 'udp', port: '8000-8100' },
            ],
          },
        ],
        egress: [{ to: [{ cidr: '0.0.0.0/0' }], ports: [{ proto: 'tcp', port: 443 }] }],
      },
    ]);
  });

  it('reads JSON, one object or an array', () => {
    const one = { name: 'a', network: 'n', ingress: [] };
    assert.deepEqual(parsePolicies(JSON.stringify(one)), [{ name: 'a', network: 'n', ingress: [] }]);
    const many = [one, { name: 'b', network: 'n', egress: [{}] }];
    assert.deepEqual(parsePolicies(JSON.stringify(many, null, 2)), [
      { name: 'a', network: 'n', ingress: [] },
      { name: 'b', network: 'n', egress: [{}] },
    ]);
  });

  it('reads YAML streams (---), skipping empty documents, and YAML lists', () => {
    const text = '---\nname: a\nnetwork: n\ningress:\n---\n---\nname: b\nnetwork: m\negress: []\n';
    assert.deepEqual(parsePolicies(text), [
      { name: 'a', network: 'n', ingress: [] },
      { name: 'b', network: 'm', egress: [] },
    ]);
    assert.deepEqual(parsePolicies('- {name: a, network: n}\n- {name: b, network: n}\n').map((d) => d.name), ['a', 'b']);
  });

  it('normalises: default proto, upper-case proto, numeric strings, cidr masking, bare addresses, IPv6, leading slash', () => {
    const [d] = parsePolicies(`
name: p
network: n
select: {names: [/db]}
ingress:
  - from: [{cidr: 10.1.2.3/8, except: [10.1.2.0/24]}, {cidr: 192.0.2.7}, {cidr: "2001:DB8:0:0::1/32"}]
    ports: [{port: "80"}, {proto: UDP}, {proto: tcp, port: " 1 - 1024 "}]
`);
    assert.deepEqual(d, {
      name: 'p',
      network: 'n',
      select: { names: ['db'] },
      ingress: [
        {
          from: [{ cidr: '10.0.0.0/8', except: ['10.1.2.0/24'] }, { cidr: '192.0.2.7/32' }, { cidr: '2001:db8::/32' }],
          ports: [{ proto: 'tcp', port: 80 }, { proto: 'udp' }, { proto: 'tcp', port: '1-1024' }],
        },
      ],
    });
  });

  it('maps a compose file\'s x-arca-policies to the project\'s networks and service labels', () => {
    const compose = `
services:
  api: {image: busybox, networks: [backend, frontend]}
  db: {image: busybox, networks: [backend]}
networks:
  backend: {}
  frontend: {name: shared-front}
  outside: {external: true}
x-arca-policies:
  - name: db-from-api
    network: backend
    select: {service: db}
    ingress:
      - from: [{service: api}, {network: frontend}, {network: outside}]
        ports: [{port: 5432}]
  - name: api-out
    network: default
    select: {labels: {role: x}}
    egress: []
`;
    const docs = parsePolicies(compose, { project: 'My.Shop' });
    assert.deepEqual(docs, [
      {
        name: 'db-from-api',
        network: 'myshop_backend',
        select: { service: 'db', labels: { 'com.docker.compose.project': 'myshop' } },
        ingress: [
          {
            from: [
              { service: 'api', labels: { 'com.docker.compose.project': 'myshop' } },
              { network: 'shared-front' },
              { network: 'outside' },
            ],
            ports: [{ proto: 'tcp', port: 5432 }],
          },
        ],
      },
      { name: 'api-out', network: 'myshop_default', select: { labels: { role: 'x' } }, egress: [] },
    ]);
  });

  it('takes the compose project from the file\'s name: when -p is not given, and -p wins over it', () => {
    const compose = 'name: shop\nservices: {db: {image: x}}\nx-arca-policies:\n  - {name: p, network: default, select: {service: db}, ingress: []}\n';
    assert.equal(parsePolicies(compose)[0]!.network, 'shop_default');
    assert.equal(parsePolicies(compose, { project: 'other' })[0]!.network, 'other_default');
  });

  it('refuses compose files without a project, without policies, or naming an unknown network', () => {
    invalid(
      () => parsePolicies('services: {db: {image: x}}\nx-arca-policies: [{name: p, network: default}]\n'),
      'document: a compose file\'s policies need the project name: give it with -p PROJECT (or a top-level name: in the file)',
    );
    invalid(() => parsePolicies('services: {db: {image: x}}\n', { project: 'p' }), 'document: a compose file without an x-arca-policies list');
    invalid(
      () => parsePolicies('services: {}\nx-arca-policies: {name: p}\n', { project: 'p' }),
      'document: x-arca-policies: must be a list of policies, not a mapping',
    );
    invalid(
      () => parsePolicies('services: {}\nnetworks: {backend: {}}\nx-arca-policies: [{name: p, network: backnd}]\n', { project: 'p' }),
      'policy "p": network: "backnd" is not a network of the compose file (its networks: default, backend)',
    );
    invalid(
      () =>
        parsePolicies('services: {}\nx-arca-policies: [{name: p, network: default, ingress: [{from: [{network: nope}]}]}]\n', {
          project: 'p',
        }),
      'policy "p": ingress[0].from[0].network: "nope" is not a network of the compose file (its networks: default)',
    );
    invalid(
      () => parsePolicies('services: {}\nx-arca-policies: [{name: p, netwrk: default}]\n', { project: 'p' }),
      'policy "p": unknown key "netwrk" (known: name, network, select, ingress, egress)',
    );
  });

  it('follows anchors and merge keys (compose files share fragments) but refuses alias bombs', () => {
    const compose = `
services: {db: {image: x}}
x-db-port: &db-port
  ports: [{port: 5432}]
x-arca-policies:
  - name: a
    network: default
    ingress:
      - <<: *db-port
        from: [{service: api}]
`;
    assert.deepEqual(parsePolicies(compose, { project: 'p' })[0]!.ingress, [
      { from: [{ service: 'api', labels: { 'com.docker.compose.project': 'p' } }], ports: [{ proto: 'tcp', port: 5432 }] },
    ]);
    let bomb = 'a: &a [x, x, x, x, x, x, x, x, x]\n';
    let prev = 'a';
    for (const n of 'bcdefghi') {
      bomb += `${n}: &${n} [${Array(9).fill(`*${prev}`).join(', ')}]\n`;
      prev = n;
    }
    invalid(() => parsePolicies(bomb), 'invalid policy file (document 1): Excessive alias count indicates a resource exhaustion attack');
  });

  it('refuses duplicate names in one input, naming both places', () => {
    invalid(
      () => parsePolicies('name: a\nnetwork: n\n---\nname: b\nnetwork: n\n---\nname: a\nnetwork: m\n'),
      'policy "a" is defined twice (document 1 and document 3)',
    );
    invalid(() => parsePolicies('[{"name":"a","network":"n"},{"name":"a","network":"n"}]'), 'policy "a" is defined twice (document[0] and document[1])');
  });

  it('refuses input that does not parse, or holds nothing', () => {
    invalid(() => parsePolicies(''), 'no policy document in the input');
    invalid(() => parsePolicies('# only a comment\n---\n'), 'no policy document in the input');
    assert.throws(() => parsePolicies('name: a\n  network: [\n'), (e: unknown) => e instanceof InvalidParameter && /^invalid policy file at line \d+, column \d+: /.test((e as Error).message));
    assert.throws(() => parsePolicies('name: a\nname: b\nnetwork: n\n'), (e: unknown) => e instanceof InvalidParameter && /unique/i.test((e as Error).message));
    invalid(() => parsePolicies('42'), 'document: a policy must be a mapping, not number 42');
  });
});

describe('policy validation: every error names its field', () => {
  const base = { name: 'p', network: 'n' };
  const cases: Array<[unknown, string]> = [
    [null, 'policy: a policy must be a mapping, not null'],
    [{ network: 'n' }, 'policy: name: required'],
    [{ name: 7, network: 'n' }, 'policy: name: must be a string, not number 7'],
    [{ name: '-x', network: 'n' }, 'policy: name: "-x" is not a valid name ([A-Za-z0-9][A-Za-z0-9_.-]*)'],
    [{ name: 'x'.repeat(129), network: 'n' }, 'policy: name: longer than 128 characters'],
    [{ name: 'p' }, 'policy "p": network: required'],
    [{ name: 'p', network: ['n'] }, 'policy "p": network: must be a network name, not a list'],
    [{ name: 'p', network: 'a b' }, 'policy "p": network: "a b" is not a valid network name'],
    [{ ...base, policyTypes: ['Ingress'], spec: {} }, 'policy "p": unknown keys "policyTypes", "spec" (known: name, network, select, ingress, egress)'],
    [{ ...base, select: [] }, 'policy "p": select: must be a mapping, not a list'],
    [{ ...base, select: { label: {} } }, 'policy "p": select: unknown key "label" (known: labels, names, service)'],
    [{ ...base, select: { labels: { tier: 1 } } }, 'policy "p": select.labels.tier: must be a string, not number 1 (quote it)'],
    [{ ...base, select: { labels: {} } }, 'policy "p": select.labels: an empty mapping; omit "labels" to match any labels'],
    [{ ...base, select: { labels: 'app=db' } }, 'policy "p": select.labels: must be a mapping of label to value, not "app=db"'],
    [{ ...base, select: { names: [] } }, 'policy "p": select.names: an empty list; omit "names" to match any name'],
    [{ ...base, select: { names: ['ok', 'b@d'] } }, 'policy "p": select.names[1]: "b@d" is not a container name'],
    [{ ...base, select: { service: '' } }, 'policy "p": select.service: must be a compose service name, not ""'],
    [{ ...base, ingress: {} }, 'policy "p": ingress: must be a list of rules, not a mapping'],
    [{ ...base, ingress: ['x'] }, 'policy "p": ingress[0]: a rule must be a mapping, not "x"'],
    [{ ...base, ingress: [{ to: [] }] }, 'policy "p": ingress[0]: unknown key "to" (known: from, ports)'],
    [{ ...base, egress: [{ from: [] }] }, 'policy "p": egress[0]: unknown key "from" (known: to, ports)'],
    [{ ...base, ingress: [{ from: [] }] }, 'policy "p": ingress[0].from: an empty list; omit "from" to allow any source'],
    [{ ...base, egress: [{ to: [] }] }, 'policy "p": egress[0].to: an empty list; omit "to" to allow any destination'],
    [{ ...base, egress: [{ to: {} }] }, 'policy "p": egress[0].to: must be a list of peers, not a mapping'],
    [{ ...base, ingress: [{ from: [{}] }] }, 'policy "p": ingress[0].from[0]: an empty peer: give labels, names, service, network, cidr or dns'],
    [{ ...base, ingress: [{ from: ['web'] }] }, 'policy "p": ingress[0].from[0]: a peer must be a mapping, not "web"'],
    [{ ...base, ingress: [{ from: [{ pod: 'x' }] }] }, 'policy "p": ingress[0].from[0]: unknown key "pod" (known: labels, names, service, network, cidr, except, dns)'],
    [{ ...base, ingress: [{ from: [{ cidr: '10.0.0.0/33' }] }] }, 'policy "p": ingress[0].from[0].cidr: "10.0.0.0/33" is not a CIDR'],
    [{ ...base, ingress: [{ from: [{ cidr: 10 }] }] }, 'policy "p": ingress[0].from[0].cidr: must be a CIDR like 10.0.0.0/8, not number 10'],
    [{ ...base, ingress: [{ from: [{ cidr: '10.0.0.0/8', names: ['a'] }] }] }, 'policy "p": ingress[0].from[0]: cidr cannot be combined with names in one peer (make them two peers)'],
    [{ ...base, ingress: [{ from: [{ except: ['10.0.0.0/8'] }] }] }, 'policy "p": ingress[0].from[0].except: only with cidr'],
    [{ ...base, ingress: [{ from: [{ cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] }] }] }, 'policy "p": ingress[0].from[0].except[0]: 10.1.0.0/24 is not inside 10.0.0.0/16'],
    [{ ...base, ingress: [{ from: [{ cidr: '10.0.0.0/16', except: ['10.0.0.0/8'] }] }] }, 'policy "p": ingress[0].from[0].except[0]: 10.0.0.0/8 is not inside 10.0.0.0/16'],
    [{ ...base, ingress: [{ from: [{ cidr: '10.0.0.0/16', except: ['::/0'] }] }] }, 'policy "p": ingress[0].from[0].except[0]: ::/0 is not inside 10.0.0.0/16'],
    [{ ...base, ingress: [{ from: [{ cidr: '10.0.0.0/16', except: '10.0.1.0/24' }] }] }, 'policy "p": ingress[0].from[0].except: must be a list of CIDRs, not "10.0.1.0/24"'],
    [{ ...base, ingress: [{ from: [{ network: 'a b' }] }] }, 'policy "p": ingress[0].from[0].network: "a b" is not a network name'],
    [{ ...base, ingress: [{ ports: [] }] }, 'policy "p": ingress[0].ports: an empty list; omit "ports" to allow every port and protocol'],
    [{ ...base, ingress: [{ ports: 80 }] }, 'policy "p": ingress[0].ports: must be a list of ports, not number 80'],
    [{ ...base, ingress: [{ ports: [80] }] }, 'policy "p": ingress[0].ports[0]: a port must be a mapping like {proto: tcp, port: 80}, not number 80'],
    [{ ...base, ingress: [{ ports: [{ port: 80, endPort: 90 }] }] }, 'policy "p": ingress[0].ports[0]: unknown key "endPort" (known: proto, port)'],
    [{ ...base, ingress: [{ ports: [{ proto: 'icmp' }] }] }, 'policy "p": ingress[0].ports[0].proto: "icmp" is not a protocol (tcp, udp, sctp)'],
    [{ ...base, ingress: [{ ports: [{ port: 80 }, { port: '80-70' }] }] }, 'policy "p": ingress[0].ports[1].port: "80-70" is not a port or range (1-65535, from ≤ to)'],
    [{ ...base, ingress: [{ ports: [{ port: 0 }] }] }, 'policy "p": ingress[0].ports[0].port: 0 is not a port or range (1-65535, from ≤ to)'],
    [{ ...base, ingress: [{ ports: [{ port: 65536 }] }] }, 'policy "p": ingress[0].ports[0].port: 65536 is not a port or range (1-65535, from ≤ to)'],
    [{ ...base, ingress: [{ ports: [{ port: 8.5 }] }] }, 'policy "p": ingress[0].ports[0].port: 8.5 is not a port or range (1-65535, from ≤ to)'],
    [{ ...base, egress: [{ ports: [{ port: 'http' }] }] }, 'policy "p": egress[0].ports[0].port: "http" is not a port or range (1-65535, from ≤ to)'],
  ];
  for (const [v, msg] of cases) {
    it(msg, () => invalid(() => validatePolicy(v), msg));
  }

  it('names the document by its place while its name is unknown', () => {
    invalid(() => parsePolicies('name: ok\nnetwork: n\n---\nnetwork: n\n'), 'document 2: name: required');
    invalid(() => parsePolicies('[{"name":"ok","network":"n"},{"network":"n"}]'), 'document[1]: name: required');
  });

  it('accepts the smallest policies: isolation without rules, a rule allowing everything', () => {
    assert.deepEqual(validatePolicy({ name: 'deny-all', network: 'n', select: {}, ingress: [], egress: [] }), {
      name: 'deny-all',
      network: 'n',
      select: {},
      ingress: [],
      egress: [],
    });
    assert.deepEqual(validatePolicy({ name: 'all', network: 'n', ingress: [{}] }), { name: 'all', network: 'n', ingress: [{}] });
  });

  it('drops what the daemon adds when showing a policy, so inspect output applies again', () => {
    const shown = [{ name: 'p', network: 'n', ingress: [], created: '2026-01-01T00:00:00.000Z', updated: '2026-01-01T00:00:00.000Z', Counters: { AllowedPackets: 0 } }];
    assert.deepEqual(parsePolicies(JSON.stringify(shown)), [{ name: 'p', network: 'n', ingress: [] }]);
  });

  it('is idempotent: a validated document validates to itself', () => {
    const [d] = parsePolicies(ISSUE_EXAMPLE);
    assert.deepEqual(validatePolicy(JSON.parse(JSON.stringify(d))), d);
  });
});
