/**
 * DNS learning for deny networks: which answers teach what (CNAME chains, other owners, rules),
 * and the embedded server's promise that the container gets an answer only after the firewall
 * has its addresses.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { DnsServer } from '../../src/network/dns/dns-server.js';
import { DnsType, decodeMessage, encodeMessage, type DnsMessage, type DnsRecord } from '../../src/network/dns/dns-codec.js';
import { answerAddresses, learntFromAnswer } from '../../src/network/egress/egress-dns.js';
import type { EgressLearnt } from '../../src/network/firewall/firewall.js';

function message(name: string, answers: DnsRecord[], qr = true): DnsMessage {
  return {
    header: { id: 7, qr, opcode: 0, aa: false, tc: false, rd: true, ra: qr, ad: false, cd: false, rcode: 0 },
    questions: [{ name, type: DnsType.A, class: 1 }],
    answers,
    authorities: [],
    additionals: [],
  };
}
const rr = (name: string, type: number, data: string, ttl = 300): DnsRecord => ({ name, type, class: 1, ttl, data });

describe('egress learning from answers', () => {
  it('follows the CNAME chain from the question and ignores other owners', () => {
    const answer = encodeMessage(
      message('api.example.com', [
        rr('edge.cdn.net', DnsType.A, '192.0.2.10', 20),
        rr('api.example.com', DnsType.CNAME, 'edge.cdn.net'),
        rr('edge.cdn.net', DnsType.AAAA, '2001:db8::10'),
        rr('evil.example.org', DnsType.A, '203.0.113.66'),
      ]),
    );
    assert.deepEqual(answerAddresses(answer, 'API.example.com.'), [
      { addr: '192.0.2.10', fam: 4, ttl: 20 },
      { addr: '2001:db8::10', fam: 6, ttl: 300 },
    ]);
  });

  it('learns for every matching rule of every deny network of the asker, nothing otherwise', () => {
    const answer = encodeMessage(message('a.example.com', [rr('a.example.com', DnsType.A, '192.0.2.1')]));
    const views = [
      { networkId: 'n1', names: [{ name: 'pypi.org', wildcard: false }, { name: 'example.com', wildcard: true }] },
      { networkId: 'n2', names: [{ name: 'a.example.com', wildcard: false }] },
    ];
    assert.deepEqual(
      learntFromAnswer(views, 'a.example.com', answer).map((l) => [l.networkId, l.rule]),
      [
        ['n1', 1],
        ['n2', 0],
      ],
    );
    assert.deepEqual(learntFromAnswer(views, 'example.com', answer), []);
    assert.deepEqual(learntFromAnswer(views, 'a.example.com', Buffer.from([1, 2, 3])), []);
  });

  it('answers the container only once the learner has the addresses', async () => {
    // A stand-in upstream answering every A question with 192.0.2.55.
    const up = createSocket('udp4');
    up.on('message', (msg, from) => {
      const q = decodeMessage(msg);
      const a = encodeMessage({ ...q, header: { ...q.header, qr: true, ra: true }, answers: [rr(q.questions[0]!.name, DnsType.A, '192.0.2.55', 5)] });
      up.send(a, from.port, from.address);
    });
    await new Promise<void>((res) => up.bind(0, '127.0.0.1', res));
    const events: string[] = [];
    let release!: () => void;
    const learnt: EgressLearnt[][] = [];
    const server = await DnsServer.start({
      address: '127.0.0.1',
      port: 0,
      snapshot: {
        upstreams: [`127.0.0.1:${up.address().port}`],
        networks: [
          {
            id: 'deny',
            name: 'deny',
            internal: false,
            endpoints: [{ containerId: 'c', names: ['c'], ipv4: '127.0.4.1' }],
            egressNames: [{ name: 'allowed.test', wildcard: true }],
          },
        ],
      },
      learn: (items) => {
        learnt.push(items);
        events.push('learn');
        return new Promise<void>((res) => (release = () => (events.push('learnt'), res())));
      },
    });
    const client = createSocket('udp4');
    await new Promise<void>((res) => client.bind(0, '127.0.4.1', res));
    try {
      const got = new Promise<Buffer>((res) => client.once('message', (m) => (events.push('answer'), res(m))));
      client.send(encodeMessage(message('x.allowed.test', [], false)), server.port, '127.0.0.1');
      while (!release) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(events, ['learn'], 'no answer while the firewall is being told');
      release();
      const m = decodeMessage(await got);
      assert.equal(m.answers[0]?.data, '192.0.2.55');
      assert.deepEqual(events, ['learn', 'learnt', 'answer']);
      assert.deepEqual(learnt[0], [{ networkId: 'deny', rule: 0, addresses: [{ addr: '192.0.2.55', fam: 4, ttl: 5 }] }]);
      // A name no rule covers is passed on without waiting.
      const other = new Promise<Buffer>((res) => client.once('message', res));
      client.send(encodeMessage(message('example.org', [], false)), server.port, '127.0.0.1');
      await other;
      assert.equal(learnt.length, 1);
    } finally {
      client.close();
      up.close();
      await server.close();
    }
  });
});
