import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DnsFormatError,
  DnsType,
  bytesToIpv6,
  canonicalAddress,
  decodeMessage,
  encodeMessage,
  ipv6ToBytes,
  parseQuery,
  readName,
  reverseName,
  type DnsMessage,
} from '../../src/network/dns/dns-codec.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** `example.com A` as a stub resolver sends it: RD and AD set, EDNS 4096 with an 8-byte cookie. */
const EXAMPLE_QUERY = hex(`
  1a2b 0120 0001 0000 0000 0001
  07 6578616d706c65 03 636f6d 00  0001 0001
  00 0029 1000 00000000 000c  000a 0008 0102030405060708
`);

/**
 * A response to it, compressed by hand: the answer owner is a pointer to the question (0xC00C),
 * a CNAME whose target is `www` + a pointer to `example.com`, then an A for that target.
 */
const EXAMPLE_RESPONSE = hex(`
  1a2b 8180 0001 0002 0000 0000
  07 6578616d706c65 03 636f6d 00  0001 0001
  c00c 0005 0001 00000258 0006  03 777777 c00c
  c029 0001 0001 0000003c 0004  5db8d822
`);

describe('DNS codec: decoding', () => {
  it('decodes a captured-style query for example.com A with EDNS', () => {
    const m = decodeMessage(EXAMPLE_QUERY);
    assert.deepEqual(m.header, { id: 0x1a2b, qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, ad: true, cd: false, rcode: 0 });
    assert.deepEqual(m.questions, [{ name: 'example.com', type: DnsType.A, class: 1 }]);
    assert.equal(m.answers.length + m.authorities.length + m.additionals.length, 0);
    assert.equal(m.edns?.udpSize, 4096);
    assert.equal(m.edns?.version, 0);
    assert.equal(m.edns?.dnssecOk, false);
    assert.deepEqual(m.edns?.options.map((o) => [o.code, Buffer.from(o.data).toString('hex')]), [[10, '0102030405060708']]);
  });

  it('parses the same query on the hot path', () => {
    const q = parseQuery(EXAMPLE_QUERY);
    assert.equal(q.id, 0x1a2b);
    assert.equal(q.name, 'example.com');
    assert.equal(q.type, DnsType.A);
    assert.equal(q.questionEnd, 12 + 13 + 4);
    assert.deepEqual(q.edns, { udpSize: 4096, version: 0, dnssecOk: false });
  });

  it('follows compression pointers in owners and in RDATA', () => {
    const m = decodeMessage(EXAMPLE_RESPONSE);
    assert.equal(m.header.qr, true);
    assert.equal(m.header.ra, true);
    assert.deepEqual(m.answers, [
      { name: 'example.com', type: DnsType.CNAME, class: 1, ttl: 600, data: 'www.example.com' },
      { name: 'www.example.com', type: DnsType.A, class: 1, ttl: 60, data: '93.184.216.34' },
    ]);
  });

  it('lower-cases on the hot path and keeps case in full decoding', () => {
    const q = Buffer.from(EXAMPLE_QUERY);
    q.write('ExAmPlE', 13, 'latin1');
    assert.equal(parseQuery(q).name, 'example.com');
    assert.equal(decodeMessage(q).questions[0]!.name, 'ExAmPlE.com');
  });

  it('rejects every truncation of a valid message with a DnsFormatError', () => {
    for (const msg of [EXAMPLE_QUERY, EXAMPLE_RESPONSE]) {
      for (let n = 0; n < msg.length; n++) {
        assert.throws(() => decodeMessage(msg.subarray(0, n)), DnsFormatError, `prefix of ${n} bytes`);
      }
    }
    for (let n = 0; n < 29; n++) assert.throws(() => parseQuery(EXAMPLE_QUERY.subarray(0, n)), DnsFormatError);
  });

  it('rejects pointer loops and forward pointers', () => {
    const header = '0001 0000 0001 0000 0000 0000';
    // A name that points at itself.
    assert.throws(() => decodeMessage(hex(`${header} c00c 0001 0001`)), /does not point backwards/);
    // Two labels then a pointer back to the first label: a loop through earlier bytes.
    assert.throws(() => decodeMessage(hex(`${header} 01 61 01 62 c00c 0001 0001`)), /does not point backwards/);
    // A pointer to a later offset.
    assert.throws(() => decodeMessage(hex(`${header} c010 0001 0001 00`)), DnsFormatError);
    // A pointer back to a pointer that points back again is fine; one back into a name's own labels is not.
    const chain = hex('0001 8000 0001 0002 0000 0000  01 61 00 0001 0001  c00c 0001 0001 00000000 0004 01020304  c013 0001 0001 00000000 0004 01020304');
    assert.deepEqual(decodeMessage(chain).answers.map((a) => a.name), ['a', 'a']);
    const loop = hex('0001 8000 0001 0001 0000 0000  01 61 00 0001 0001  01 62 c013 0001 0001 00000000 0004 01020304');
    assert.throws(() => decodeMessage(loop), /does not point backwards/);
  });

  it('rejects reserved label types, oversized names and misplaced OPT records', () => {
    assert.throws(() => decodeMessage(hex('0001 0000 0001 0000 0000 0000 41 00 0001 0001')), /label type/);
    const long = Buffer.concat([hex('0001 0000 0001 0000 0000 0000'), ...Array.from({ length: 5 }, () => Buffer.from([63, ...Buffer.alloc(63, 0x61)])), hex('00 0001 0001')]);
    assert.throws(() => decodeMessage(long), /longer than 255/);
    const optInAnswer = hex('0001 8000 0000 0001 0000 0000 00 0029 1000 00000000 0000');
    assert.throws(() => decodeMessage(optInAnswer), /OPT/);
    const twoOpts = hex('0001 0000 0000 0000 0000 0002 00 0029 1000 00000000 0000 00 0029 1000 00000000 0000');
    assert.throws(() => decodeMessage(twoOpts), /OPT/);
    assert.throws(() => decodeMessage(hex('0001 8000 0000 0001 0000 0000 00 0001 0001 00000000 0003 010203')), /A record/);
  });

  it('never throws anything but DnsFormatError on random input', () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >>> 16) & 0xff;
    for (let i = 0; i < 5000; i++) {
      const buf = Buffer.from(Array.from({ length: rnd() % 80 }, rnd));
      // Keep counts small so that some inputs get past the header.
      if (buf.length >= 12) for (const o of [4, 6, 8, 10]) buf[o] = 0;
      if (buf.length >= 12) buf[5] = rnd() % 3;
      if (buf.length >= 12) buf[7] = rnd() % 3;
      for (const f of [decodeMessage, parseQuery]) {
        try {
          f(buf);
        } catch (err) {
          assert.ok(err instanceof DnsFormatError, String(err));
        }
      }
    }
  });
});

describe('DNS codec: encoding', () => {
  it('re-encodes the captured query byte for byte', () => {
    assert.deepEqual(encodeMessage(decodeMessage(EXAMPLE_QUERY)), EXAMPLE_QUERY);
  });

  it('compresses names to the same bytes as the hand-made response', () => {
    const m = decodeMessage(EXAMPLE_RESPONSE);
    assert.equal(encodeMessage(m).toString('hex'), EXAMPLE_RESPONSE.toString('hex'));
  });

  it('compresses case-insensitively and round-trips AAAA, PTR and raw RDATA', () => {
    const msg: DnsMessage = {
      header: { id: 7, qr: true, opcode: 0, aa: true, tc: false, rd: true, ra: true, ad: false, cd: false, rcode: 0 },
      questions: [{ name: 'Web.Example.org', type: DnsType.AAAA, class: 1 }],
      answers: [
        { name: 'web.example.org', type: DnsType.AAAA, class: 1, ttl: 600, data: '2001:db8::1' },
        { name: '1.0.0.10.in-addr.arpa', type: DnsType.PTR, class: 1, ttl: 600, data: 'web.example.org' },
      ],
      authorities: [],
      additionals: [{ name: 'example.org', type: DnsType.TXT, class: 1, ttl: 5, data: Uint8Array.from([2, 0x68, 0x69]) }],
    };
    const wire = encodeMessage(msg);
    // The second owner is one pointer; the PTR target is one pointer to the question.
    assert.ok(wire.includes(hex('c00c 001c')));
    const back = decodeMessage(wire);
    // Compression is case-insensitive, so names read back with the case first written.
    assert.deepEqual(back.answers, [
      { ...msg.answers[0]!, name: 'Web.Example.org' },
      { ...msg.answers[1]!, data: 'Web.Example.org' },
    ]);
    assert.deepEqual(Buffer.from(back.additionals[0]!.data as Uint8Array), Buffer.from([2, 0x68, 0x69]));
    assert.equal(back.additionals[0]!.name, 'Example.org');
  });

  it('escapes odd label bytes and round-trips them', () => {
    const wire = hex('0001 0000 0001 0000 0000 0000 03 612e62 02 5c20 00 0001 0001');
    const m = decodeMessage(wire);
    assert.equal(m.questions[0]!.name, 'a\\046b.\\092\\032');
    assert.deepEqual(encodeMessage(m), wire);
    assert.equal(readName(wire, 12).end, 12 + 8);
  });

  it('refuses names it cannot encode', () => {
    const base: DnsMessage = {
      header: { id: 1, qr: false, opcode: 0, aa: false, tc: false, rd: false, ra: false, ad: false, cd: false, rcode: 0 },
      questions: [],
      answers: [],
      authorities: [],
      additionals: [],
    };
    for (const name of ['a..b', 'x'.repeat(64), Array(130).fill('ab').join('.'), 'é.com']) {
      assert.throws(() => encodeMessage({ ...base, questions: [{ name, type: 1, class: 1 }] }), DnsFormatError, name);
    }
  });
});

describe('DNS codec: addresses', () => {
  it('formats IPv6 per RFC 5952 and parses every text form', () => {
    for (const [text, canonical] of [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['fe80::1:0:0:1', 'fe80::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
      ['::ffff:10.1.2.3', '10.1.2.3'],
      ['fd00::10.1.2.3', 'fd00::a01:203'],
    ] as const) {
      assert.equal(canonicalAddress(text), canonical, text);
    }
    assert.equal(bytesToIpv6(ipv6ToBytes('2001:db8::8:800:200c:417a')), '2001:db8::8:800:200c:417a');
  });

  it('builds reverse names', () => {
    assert.equal(reverseName('172.18.0.2'), '2.0.18.172.in-addr.arpa');
    assert.equal(reverseName('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
  });
});
