import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { FilteredNatEngine } from '../../src/filterednat/filtered-nat-engine.js';
import { dhcpIn, droppedTotal } from '../../src/filterednat/engine-stats.js';
import { FrameStreamDecoder } from '../../src/filterednat/frame-stream-decoder.js';
import {
  GUEST,
  GUEST_MAC,
  GW,
  arpRequest,
  checksum,
  dhclientDiscover,
  dhclientRelease,
  dhclientRequest,
  eth,
  framed,
  gatewayMac,
  guestUdp,
  ip4,
  ipv4,
  udhcpcDiscover,
  udhcpcRequest,
  udp,
} from './filterednat-fixtures.js';

/**
 * Random and mutated frames, bounded in time. The seed makes the sequence reproducible
 * (FNAT_FUZZ_SEED=N to replay one; how far it gets depends on the machine's speed).
 */
const SEED = Number(process.env['FNAT_FUZZ_SEED'] ?? 0x5eed1234) >>> 0;
const BUDGET_MS = Number(process.env['FNAT_FUZZ_MS'] ?? 2500);

function xorshift(seed: number): () => number {
  let s = seed || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** An oracle of its own: what a forwarded frame must be, checked without the engine's parser. */
function assertForwardable(f: Buffer, allowedPort: number): void {
  assert.equal(f.subarray(0, 6).toString('hex'), gatewayMac().toString('hex'), 'to the gateway MAC');
  assert.equal(f[6]! & 1, 0, 'unicast source');
  assert.equal(f.readUInt16BE(12), 0x0800);
  const ip = f.subarray(14);
  assert.equal(ip[0], 0x45, 'IPv4 without options');
  assert.equal(checksum(ip.subarray(0, 20)), 0, 'header checksum');
  assert.equal(ip.readUInt16BE(6) & 0xbfff, 0, 'not a fragment');
  assert.equal(ip[9], 17);
  const total = ip.readUInt16BE(2);
  assert.ok(total === ip.length || (f.length <= 60 && total < ip.length), 'total length');
  assert.deepEqual([...ip.subarray(12, 16)], [...ip4(GUEST)]);
  assert.deepEqual([...ip.subarray(16, 20)], [...ip4(GW)]);
  const u = ip.subarray(20, total);
  assert.equal(u.readUInt16BE(2), allowedPort, 'an allowlisted port');
  assert.equal(u.readUInt16BE(4), u.length);
  if (u.readUInt16BE(6) !== 0) {
    const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 17, u.length >> 8, u.length & 255])]);
    assert.equal(checksum(Buffer.concat([pseudo, u])), 0, 'UDP checksum');
  }
}

describe('FilteredNAT fuzz', () => {
  let sink: dgram.Socket;
  let port: number;
  let received = 0;
  before(async () => {
    sink = dgram.createSocket('udp4');
    sink.on('message', (m, r) => {
      received++;
      // Some answers, so the reply path runs too.
      if (received % 8 === 0) sink.send(m, r.port, r.address);
    });
    sink.bind(0, '127.0.0.1');
    await once(sink, 'listening');
    port = sink.address().port;
  });
  after(() => sink.close());

  it(`survives ${BUDGET_MS} ms of random and mutated frames (seed ${SEED.toString(16)}) and lets through only allowlisted UDP`, async () => {
    const rnd = xorshift(SEED);
    const pick = <T>(a: readonly T[]): T => a[rnd() % a.length]!;
    const forwarded: Buffer[] = [];
    const e = new FilteredNatEngine({
      allow: [`127.0.0.1:${port}/udp`],
      maxFlows: 16,
      onForward: (b, o, l, idx) => {
        assert.equal(idx, 0);
        forwarded.push(Buffer.from(b.subarray(o, o + l)));
      },
    });
    let outFrames = 0;
    const outDecoder = new FrameStreamDecoder({
      frame: (b, o, l) => {
        outFrames++;
        assert.ok(l >= 42 && l <= 1514, `output frame of ${l} bytes`);
      },
      oversize: () => assert.fail('the engine wrote an oversized frame'),
    });
    e.attach({ write: (b) => outDecoder.push(b) });
    const templates: Array<() => Buffer> = [
      () => arpRequest(GW),
      () => udhcpcDiscover(rnd()),
      () => udhcpcRequest(rnd()),
      () => dhclientDiscover(rnd()),
      () => dhclientRequest(rnd()),
      () => dhclientRelease(rnd()),
      () => guestUdp(GW, port, Buffer.alloc(rnd() % 200, rnd() & 255), 1024 + (rnd() % 8)),
      () => eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 2000 + (rnd() % 4), GW, port, Buffer.from('zero-sum'), { zeroChecksum: true }) })),
      () => guestUdp(GW, port + 1, Buffer.from('other port')),
      () => guestUdp('192.0.2.1', port, Buffer.from('other host')),
      () => eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 6, payload: Buffer.alloc(20) })),
      () => eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 1, payload: Buffer.alloc(16) })),
      () => eth(Buffer.from('333300000016', 'hex'), GUEST_MAC, 0x86dd, Buffer.alloc(76)),
      () => eth(gatewayMac(), GUEST_MAC, 0x8100, Buffer.alloc(60)),
      () => eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 1, GW, port, Buffer.alloc(40)), flagsFrag: 0x2000 })),
      () => eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 1, GW, port, Buffer.alloc(8)), options: Buffer.from([1, 1, 1, 0]) })),
    ];
    const mutate = (f: Buffer): Buffer => {
      switch (rnd() % 6) {
        case 0: {
          for (let k = 1 + (rnd() % 4); k > 0; k--) f[rnd() % f.length]! ^= 1 << (rnd() % 8);
          return f;
        }
        case 1:
          return f.subarray(0, rnd() % (f.length + 1));
        case 2:
          return Buffer.concat([f, Buffer.alloc(rnd() % 64, rnd() & 255)]);
        case 3: {
          // A header byte set at random: lengths, IHL, flags, protocol.
          const at = 14 + (rnd() % 30);
          if (at < f.length) f[at] = rnd() & 255;
          return f;
        }
        case 4: {
          const r = Buffer.alloc(rnd() % 1600);
          for (let i = 0; i < r.length; i++) r[i] = rnd() & 255;
          return r;
        }
        default:
          return f;
      }
    };
    const start = Date.now();
    let frames = 0;
    let junkPrefixes = 0;
    while (Date.now() - start < BUDGET_MS) {
      // Batches through the stream decoder, in random chunks, now and then a length prefix of any size.
      const batch: Buffer[] = [];
      for (let i = 0; i < 64; i++) {
        if (rnd() % 500 === 0) {
          const p = Buffer.alloc(4);
          p.writeUInt32BE(1523 + (rnd() % 100000), 0);
          batch.push(p, Buffer.alloc(p.readUInt32BE(0)));
          junkPrefixes++;
        } else batch.push(framed(mutate(pick(templates)())));
        frames++;
      }
      const stream = Buffer.concat(batch);
      for (let i = 0; i < stream.length; ) {
        const n = 1 + (rnd() % 2000);
        e.receive(stream.subarray(i, i + n));
        i += n;
      }
      await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 200));
    const s = e.stats;
    assert.equal(s.internalErrors, 0);
    assert.equal(s.framesIn, frames);
    assert.equal(s.forwarded + s.arpReplies + dhcpIn(s.dhcp) + droppedTotal(s), s.framesIn, 'every frame has one outcome');
    assert.equal(forwarded.length, s.forwarded);
    for (const f of forwarded) assertForwardable(f, port);
    assert.ok(received <= s.forwarded, 'nothing reached the host that the engine did not forward');
    assert.equal(outFrames, s.framesOut);
    assert.ok(s.dropped.oversize >= junkPrefixes);
    for (const r of ['ip_options', 'bad_checksum', 'truncated', 'udp_not_allowed', 'tcp', 'icmp', 'ipv6', 'vlan', 'fragment'] as const) assert.ok(s.dropped[r] > 0, r);
    assert.ok(s.forwarded > 0 && s.arpReplies > 0 && s.dhcp.ack > 0);
    process.stderr.write(`fuzz: seed ${SEED.toString(16)}: ${frames} frames in ${Date.now() - start} ms; ${s.forwarded} forwarded, ${received} received, dropped ${JSON.stringify(s.dropped)}\n`);
    e.close();
  });
});
