import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { FilteredNatEngine } from '../../src/filterednat/filtered-nat-engine.js';
import { dhcpIn, droppedTotal } from '../../src/filterednat/engine-stats.js';
import { FrameStreamDecoder } from '../../src/filterednat/frame-stream-decoder.js';
import { native, type FastPathHandle } from '../../src/sys/native.js';
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

/** Frames of every kind a guest sends, half of them mutated (bit flips, cuts, padding, a header byte, noise). */
/** Hands `stream` on in chunks of 1 to `max` bytes, sized by `rnd`: frames split anywhere. */
function inChunks(stream: Buffer, max: number, rnd: () => number, feed: (chunk: Buffer) => void): void {
  for (let i = 0; i < stream.length; ) {
    const n = 1 + (rnd() % max);
    feed(stream.subarray(i, i + n));
    i += n;
  }
}

function frameSource(rnd: () => number, port: number): { next: () => Buffer } {
  const pick = <T>(a: readonly T[]): T => a[rnd() % a.length]!;
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
  return { next: () => mutate(pick(templates)()) };
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
    const { next } = frameSource(rnd, port);
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
    try {
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
          } else batch.push(framed(next()));
          frames++;
        }
        inChunks(Buffer.concat(batch), 2000, rnd, (chunk) => e.receive(chunk));
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
    } finally {
      // A failure above must not leave the engine's flows open (they would keep the file's process alive).
      e.close();
    }
  });

  const threadSkip = typeof native()?.fastPathCreate === 'function' ? false : 'the native addon is not built with the forwarding thread';
  it(`through the forwarding thread: ${BUDGET_MS} ms of the same frames over a stream, and the thread forwards nothing the engine would not`, { skip: threadSkip }, async () => {
    const rnd = xorshift(SEED ^ 0x9e3779b9);
    const { next } = frameSource(rnd, port);
    const dir = mkdtempSync(join(os.tmpdir(), 'fnat-fuzz-'));
    const path = join(dir, 'net.sock');
    const server = net.createServer();
    server.listen(path);
    await once(server, 'listening');
    const e = new FilteredNatEngine({ allow: [`127.0.0.1:${port}/udp`], maxFlows: 16, fastPath: true });
    const n = native()!;
    const h = (e as unknown as { fp: FastPathHandle }).fp;
    let outFrames = 0;
    const outDecoder = new FrameStreamDecoder({
      frame: (b, o, l) => {
        outFrames++;
        assert.ok(l >= 42 && l <= 1514, `output frame of ${l} bytes`);
      },
      oversize: () => assert.fail('an oversized frame to the guest'),
    });
    const conn = once(server, 'connection');
    e.connectFastPath(path, () => {});
    const [c] = (await conn) as [net.Socket];
    c.on('data', (b) => outDecoder.push(b));
    const before = received;
    // Payloads of the frames that may be forwarded: anything at the sink must be one of them.
    const allowed = new Set<string>();
    let forwardable = 0;
    const isForwardable = (f: Buffer): boolean => {
      try {
        assertForwardable(f, port);
        return true;
      } catch {
        return false;
      }
    };
    const sinkSeen: Buffer[] = [];
    const onMsg = (m: Buffer): void => void sinkSeen.push(m);
    sink.on('message', onMsg);
    const start = Date.now();
    let frames = 0;
    let matched = 0;
    try {
      // A flow for the thread to match, from the guest's MAC: established before the noise.
      const first = guestUdp(GW, port, Buffer.from('first'), 1024);
      allowed.add(Buffer.from('first').toString('hex'));
      forwardable++;
      frames++;
      c.write(framed(first));
      while (e.stats.forwarded < 1 && Date.now() - start < 2000) await new Promise((r) => setTimeout(r, 5));
      while (Date.now() - start < BUDGET_MS) {
        const batch: Buffer[] = [];
        // Every other batch is the established flow's traffic with a bit flipped here and there,
        // so that the thread, not only the engine, sees a stream of near misses.
        const flowBatch = rnd() % 2 === 0;
        for (let i = 0; i < 64; i++) {
          let f: Buffer;
          if (flowBatch) {
            f = guestUdp(GW, port, Buffer.alloc(rnd() % 300, rnd() & 255), 1024);
            if (rnd() % 8 === 0) f[rnd() % f.length]! ^= 1 << (rnd() % 8);
          } else f = next();
          // The thread's parser on its own, at once: a frame it would send must pass the oracle.
          if (n.fastPathMatch(h, f, 0, f.length) >= 0) {
            matched++;
            assertForwardable(f, port);
            assert.equal(f.subarray(6, 12).toString('hex'), GUEST_MAC.toString('hex'), 'from the guest');
          }
          if (isForwardable(f)) {
            forwardable++;
            const ip = f.subarray(14);
            allowed.add(ip.subarray(28, ip.readUInt16BE(2)).toString('hex'));
          }
          batch.push(framed(f));
          frames++;
        }
        inChunks(Buffer.concat(batch), 4000, rnd, (chunk) => c.write(chunk));
        await new Promise((r) => setImmediate(r));
      }
      const end = Date.now() + 5000;
      while (e.stats.framesIn < frames && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      const s = e.stats;
      const fp = e.fastPathCounters()!;
      assert.equal(s.internalErrors, 0);
      assert.equal(s.framesIn, frames);
      assert.equal(s.forwarded + s.arpReplies + dhcpIn(s.dhcp) + droppedTotal(s), s.framesIn, 'every frame has one outcome');
      assert.ok(s.forwarded <= forwardable, `${s.forwarded} forwarded of ${forwardable} forwardable`);
      for (const m of sinkSeen) assert.ok(allowed.has(m.toString('hex')), 'the sink got only payloads of forwardable frames');
      assert.ok(received - before <= s.forwarded);
      assert.ok(fp.forwarded > 0 && matched > 0, 'the thread did forward');
      assert.equal(outFrames, s.framesOut);
      process.stderr.write(`fuzz (thread): ${frames} frames in ${Date.now() - start} ms; ${s.forwarded} forwarded (${fp.forwarded} by the thread, ${matched} matched offline), ${sinkSeen.length} received; punted ${fp.punted}\n`);
    } finally {
      sink.off('message', onMsg);
      e.close();
      c.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
