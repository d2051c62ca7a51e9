import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DnsIndex, answerLocally, buildResponse, truncateResponse } from '../../src/network/dns/dns-resolver.js';
import { DnsRcode, DnsType, decodeMessage, encodeMessage, parseQuery, reverseName, type DnsMessage } from '../../src/network/dns/dns-codec.js';
import type { DnsSnapshot } from '../../src/network/dns/dns-snapshot.js';
import { parseResolvConf, parseUpstream } from '../../src/network/dns/dns-upstreams.js';

export const SNAPSHOT: DnsSnapshot = {
  upstreams: ['127.0.0.1:5301', '127.0.0.1:5302', '127.0.0.1:5303', '127.0.0.1:5304'],
  networks: [
    {
      id: 'n1id',
      name: 'front',
      internal: false,
      endpoints: [
        { containerId: 'c-web', names: ['web', 'svc', 'abc123'], ipv4: '172.18.0.2', ipv6: 'fd00:1::2' },
        { containerId: 'c-web2', names: ['web2', 'svc'], ipv4: '172.18.0.3' },
        { containerId: 'c-both', names: ['both'], ipv4: '172.18.0.4' },
      ],
    },
    {
      id: 'n2id',
      name: 'back',
      internal: false,
      endpoints: [
        { containerId: 'c-db', names: ['db'], ipv4: '172.19.0.2' },
        { containerId: 'c-both', names: ['both', 'api'], ipv4: '172.19.0.4' },
      ],
    },
    {
      id: 'n3id',
      name: 'secret',
      internal: true,
      endpoints: [{ containerId: 'c-vault', names: ['vault'], ipv4: '172.20.0.2' }],
    },
  ],
};

function query(name: string, type: number, edns?: number): Buffer {
  const m: DnsMessage = {
    header: { id: 4242, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: false, cd: false, rcode: 0 },
    questions: [{ name, type, class: 1 }],
    answers: [],
    authorities: [],
    additionals: [],
  };
  if (edns) m.edns = { udpSize: edns, extendedRcode: 0, version: 0, dnssecOk: false, options: [] };
  return encodeMessage(m);
}

/** Asks as the container with `from` as its address; undefined means "forward". */
function ask(index: DnsIndex, from: string, name: string, type: number = DnsType.A, maxSize = 512): DnsMessage | undefined {
  const asker = index.askerByAddress(from);
  assert.ok(asker, `no container has ${from}`);
  const q = query(name, type);
  const out = answerLocally(index, asker, q, parseQuery(q), maxSize);
  return out && decodeMessage(out);
}

const data = (m: DnsMessage | undefined): (string | Uint8Array)[] => m!.answers.map((a) => a.data);

describe('DNS resolver', () => {
  const index = DnsIndex.build(SNAPSHOT);

  it('answers A and AAAA for a peer, TTL 600, echoing the question', () => {
    const a = ask(index, '172.18.0.3', 'web')!;
    assert.equal(a.header.id, 4242);
    assert.equal(a.header.qr, true);
    assert.equal(a.header.rd, true);
    assert.equal(a.header.ra, true);
    assert.equal(a.header.rcode, DnsRcode.NOERROR);
    assert.deepEqual(a.questions, [{ name: 'web', type: DnsType.A, class: 1 }]);
    assert.deepEqual(a.answers, [{ name: 'web', type: DnsType.A, class: 1, ttl: 600, data: '172.18.0.2' }]);
    assert.deepEqual(data(ask(index, '172.18.0.3', 'web', DnsType.AAAA)), ['fd00:1::2']);
  });

  it('matches case-insensitively, ignores the trailing dot, and knows <name>.<network>', () => {
    assert.deepEqual(data(ask(index, '172.18.0.3', 'WeB.')), ['172.18.0.2']);
    assert.deepEqual(data(ask(index, '172.18.0.3', 'web.front')), ['172.18.0.2']);
    assert.deepEqual(data(ask(index, '172.18.0.3', 'Web.FRONT.')), ['172.18.0.2']);
    assert.deepEqual(data(ask(index, '172.18.0.3', 'abc123')), ['172.18.0.2']);
    // The network suffix must be the network the name is on.
    assert.equal(ask(index, '172.18.0.3', 'web.back'), undefined);
  });

  it('scopes names to the networks the asker shares', () => {
    assert.equal(ask(index, '172.18.0.2', 'db'), undefined, 'front cannot see back');
    assert.deepEqual(data(ask(index, '172.19.0.2', 'api')), ['172.19.0.4']);
    assert.equal(ask(index, '172.19.0.2', 'web'), undefined);
    // A container on both networks sees both, whichever of its addresses it asks from.
    assert.deepEqual(data(ask(index, '172.18.0.4', 'db')), ['172.19.0.2']);
    assert.deepEqual(data(ask(index, '172.19.0.4', 'web')), ['172.18.0.2']);
    // Its own name on two networks gives both addresses.
    assert.deepEqual(data(ask(index, '172.18.0.4', 'both')).sort(), ['172.18.0.4', '172.19.0.4']);
    assert.deepEqual(data(ask(index, '172.18.0.2', 'both')), ['172.18.0.4']);
  });

  it('returns every address of a shared alias, shuffled', () => {
    const orders = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const got = data(ask(index, '172.18.0.4', 'svc')) as string[];
      assert.deepEqual([...got].sort(), ['172.18.0.2', '172.18.0.3']);
      orders.add(got.join(','));
    }
    assert.equal(orders.size, 2);
  });

  it('answers NODATA for a known name without that record type, forwards unknown names', () => {
    const nodata = ask(index, '172.18.0.2', 'web2', DnsType.AAAA)!;
    assert.equal(nodata.header.rcode, DnsRcode.NOERROR);
    assert.equal(nodata.answers.length, 0);
    assert.equal(ask(index, '172.18.0.2', 'web2', DnsType.MX)!.answers.length, 0);
    assert.equal(ask(index, '172.18.0.2', 'example.com'), undefined);
  });

  it('answers SERVFAIL instead of forwarding for a container only on internal networks (as moby)', () => {
    const r = ask(index, '172.20.0.2', 'example.com')!;
    assert.equal(r.header.rcode, DnsRcode.SERVFAIL);
    assert.deepEqual(data(ask(index, '172.20.0.2', 'vault')), ['172.20.0.2']);
  });

  it('answers PTR for known endpoints with <name>.<network> first, scoped', () => {
    assert.deepEqual(data(ask(index, '172.18.0.3', reverseName('172.18.0.2'), DnsType.PTR)), ['web.front', 'web']);
    assert.deepEqual(data(ask(index, '172.18.0.3', reverseName('fd00:1::2'), DnsType.PTR)), ['web.front', 'web']);
    assert.equal(ask(index, '172.18.0.3', reverseName('172.19.0.2'), DnsType.PTR), undefined);
    assert.equal(ask(index, '172.18.0.3', reverseName('172.18.0.2'), DnsType.A)!.answers.length, 0);
  });

  it('identifies askers by any of their addresses, in any text form', () => {
    assert.equal(index.askerByAddress('::ffff:172.18.0.2')?.containerId, 'c-web');
    assert.equal(index.askerByAddress('fd00:1:0:0::2')?.containerId, 'c-web');
    assert.equal(index.askerByAddress('10.9.9.9'), undefined);
    assert.equal(index.askerByContainer('c-both')?.networks.length, 2);
    assert.deepEqual(index.upstreams, ['127.0.0.1:5301', '127.0.0.1:5302', '127.0.0.1:5303']);
  });

  it('truncates to the size limit with TC set, keeping whole records', () => {
    const many: DnsSnapshot = {
      upstreams: [],
      networks: [
        {
          id: 'x',
          name: 'x',
          internal: false,
          endpoints: Array.from({ length: 60 }, (_, i) => ({ containerId: `c${i}`, names: ['many'], ipv4: `10.0.${i >> 8}.${(i & 255) + 1}` })),
        },
      ],
    };
    const idx = DnsIndex.build(many);
    const small = ask(idx, '10.0.0.1', 'many', DnsType.A, 512)!;
    assert.equal(small.header.tc, true);
    assert.ok(small.answers.length > 0 && small.answers.length < 60);
    const big = ask(idx, '10.0.0.1', 'many', DnsType.A, 65535)!;
    assert.equal(big.header.tc, false);
    assert.equal(big.answers.length, 60);
  });

  it('adds an OPT record when the query had one, and answers BADVERS to EDNS versions above 0', () => {
    const asker = index.askerByAddress('172.18.0.3')!;
    const q = query('web', DnsType.A, 4096);
    const r = decodeMessage(answerLocally(index, asker, q, parseQuery(q), 4096)!);
    assert.equal(r.edns?.udpSize, 1232);
    assert.equal(r.answers.length, 1);
    const v1 = Buffer.from(q);
    v1[v1.length - 5] = 1; // the OPT TTL's version byte
    const bad = decodeMessage(answerLocally(index, asker, v1, parseQuery(v1), 4096)!);
    assert.equal(bad.header.rcode, 0);
    assert.equal(bad.edns?.extendedRcode, 1);
  });

  it('answers NOTIMP to other opcodes and strips an oversized upstream answer to a TC header', () => {
    const asker = index.askerByAddress('172.18.0.3')!;
    const q = query('web', DnsType.A);
    q[2] = q[2]! | (2 << 3); // STATUS
    assert.equal(decodeMessage(answerLocally(index, asker, q, parseQuery(q), 512)!).header.rcode, DnsRcode.NOTIMP);
    const plain = query('web', DnsType.A);
    const resp = buildResponse(plain, parseQuery(plain), 0, [Buffer.alloc(600)], 65535);
    const cut = decodeMessage(truncateResponse(resp, parseQuery(plain).questionEnd, 512));
    assert.equal(cut.header.tc, true);
    assert.equal(cut.answers.length, 0);
    assert.equal(cut.questions[0]!.name, 'web');
  });

  it('swaps by building a new index: the old one is untouched', () => {
    const smaller = DnsIndex.build({ ...SNAPSHOT, networks: [{ ...SNAPSHOT.networks[0]!, endpoints: SNAPSHOT.networks[0]!.endpoints.slice(1) }] });
    assert.equal(ask(smaller, '172.18.0.3', 'web'), undefined);
    assert.deepEqual(data(ask(index, '172.18.0.3', 'web')), ['172.18.0.2']);
  });
});

describe('DNS index: per-container upstreams (--dns)', () => {
  it('gives an asker its own upstreams, at most three, and leaves others on the host upstreams', () => {
    const own = ['127.0.0.1:6001', '127.0.0.1:6002', '127.0.0.1:6003', '127.0.0.1:6004'];
    const snap: DnsSnapshot = {
      ...SNAPSHOT,
      networks: SNAPSHOT.networks.map((n) => ({
        ...n,
        endpoints: n.endpoints.map((e) => (e.containerId === 'c-both' || e.containerId === 'c-vault' ? { ...e, upstreams: own } : e)),
      })),
    };
    const idx = DnsIndex.build(snap);
    assert.deepEqual(idx.askerByContainer('c-both')!.upstreams, own.slice(0, 3));
    assert.deepEqual(idx.askerByAddress('172.19.0.4')!.upstreams, own.slice(0, 3), 'same asker from either network');
    assert.equal(idx.askerByContainer('c-web')!.upstreams, undefined);
    assert.deepEqual(idx.upstreams, SNAPSHOT.upstreams.slice(0, 3));
    // --internal still never forwards, whatever the container's --dns says.
    const vault = idx.askerByContainer('c-vault')!;
    assert.equal(vault.forward, false);
    assert.equal(idx.resolve(vault, 'example.com', DnsType.A).kind, 'local');
  });

  it('treats an empty list as none', () => {
    const snap: DnsSnapshot = { upstreams: ['10.0.0.1'], networks: [{ id: 'n', name: 'n', internal: false, endpoints: [{ containerId: 'c', names: ['c'], ipv4: '10.9.0.2', upstreams: [] }] }] };
    assert.equal(DnsIndex.build(snap).askerByContainer('c')!.upstreams, undefined);
  });
});

describe('DNS index: resolvers kept with no user network left', () => {
  it('knows no names for them and forwards, to their own upstreams when they have some', () => {
    const idx = DnsIndex.build({ ...SNAPSHOT, forwardOnly: [{ containerId: 'c-gone' }, { containerId: 'c-own', upstreams: ['127.0.0.1'] }, { containerId: 'c-web' }] });
    const gone = idx.askerByContainer('c-gone')!;
    assert.equal(gone.forward, true);
    assert.deepEqual(gone.networks, []);
    assert.equal(idx.resolve(gone, 'web', DnsType.A).kind, 'forward');
    assert.deepEqual(idx.askerByContainer('c-own')!.upstreams, ['127.0.0.1']);
    // A container still on a network keeps its names: the network entry wins.
    assert.equal(idx.askerByContainer('c-web')!.networks.length, 1);
  });
});

describe('DNS upstreams', () => {
  it('reads up to three nameservers from resolv.conf, keeping loopback ones', () => {
    const text = '# generated\nsearch example.org\nnameserver 127.0.0.53\nnameserver  10.0.0.1 # office\n;nameserver 9.9.9.9\nnameserver bogus\nnameserver fe80::1%eth0\nnameserver 1.1.1.1\noptions edns0\n';
    assert.deepEqual(parseResolvConf(text), ['127.0.0.53', '10.0.0.1', 'fe80::1%eth0']);
  });

  it('parses upstream addresses with optional ports', () => {
    assert.deepEqual(parseUpstream('10.0.0.1'), { host: '10.0.0.1', port: 53, family: 4 });
    assert.deepEqual(parseUpstream('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353, family: 4 });
    assert.deepEqual(parseUpstream('[::1]:5353'), { host: '::1', port: 5353, family: 6 });
    assert.deepEqual(parseUpstream('2001:db8::53'), { host: '2001:db8::53', port: 53, family: 6 });
    assert.equal(parseUpstream('dns.example'), undefined);
    assert.equal(parseUpstream('1.2.3.4:0'), undefined);
  });
});

describe('DNS index: legacy links on user networks', () => {
  const snap: DnsSnapshot = {
    upstreams: [],
    networks: [
      {
        id: 'n1id',
        name: 'front',
        internal: false,
        endpoints: [
          { containerId: 'c-app', names: ['app'], ipv4: '172.18.0.2', links: [{ alias: 'database', containerId: 'c-db' }, { alias: 'Web', containerId: 'c-web' }] },
          { containerId: 'c-db', names: ['db'], ipv4: '172.18.0.3', ipv6: 'fd00::3' },
          { containerId: 'c-web', names: ['web'], ipv4: '172.18.0.4' },
          { containerId: 'c-other', names: ['other'], ipv4: '172.18.0.5' },
        ],
      },
    ],
  };
  const index = DnsIndex.build(snap);

  it('resolves a link alias for the linking container only', () => {
    assert.deepEqual(data(ask(index, '172.18.0.2', 'database')), ['172.18.0.3']);
    assert.deepEqual(data(ask(index, '172.18.0.2', 'DATABASE.', DnsType.AAAA)), ['fd00::3']);
    assert.equal(ask(index, '172.18.0.5', 'database'), undefined, 'another container forwards it');
    // The target's own names still work for everyone.
    assert.deepEqual(data(ask(index, '172.18.0.5', 'db')), ['172.18.0.3']);
  });

  it('a link alias that is also a name answers with the link target', () => {
    assert.deepEqual(data(ask(index, '172.18.0.2', 'web')), ['172.18.0.4']);
  });
});
