import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { FilteredNatEngine } from '../../src/filterednat/filtered-nat-engine.js';
import { FrameStreamDecoder } from '../../src/filterednat/frame-stream-decoder.js';
import { native } from '../../src/sys/native.js';
import { cpuWhileWaiting } from './cpu-usage.js';
import { GUEST, GUEST_MAC, GW, arpRequest, assertAddsUp, checkUdpToGuest, eth, framed, gatewayMac, guestUdp, ipv4, udp } from './filterednat-fixtures.js';

const skip = typeof native()?.fastPathCreate === 'function' ? false : 'the native addon is not built with the forwarding thread';

/** QEMU's side of the stream: a unix socket the engine connects to, and the frames it writes. */
class FakeQemu {
  readonly dir = mkdtempSync(join(os.tmpdir(), 'fnat-fp-'));
  readonly path = join(this.dir, 'net.sock');
  readonly server = net.createServer();
  conn: net.Socket | undefined;
  readonly frames: Buffer[] = [];
  private waiters: Array<() => void> = [];
  async listen(): Promise<void> {
    this.server.on('connection', (c) => {
      this.conn = c;
      const d = new FrameStreamDecoder({ frame: (b, o, l) => this.frames.push(Buffer.from(b.subarray(o, o + l))), oversize: () => assert.fail('oversized frame to the guest') });
      c.on('data', (b) => {
        d.push(b);
        this.poke();
      });
      c.on('error', () => {});
      this.poke();
    });
    this.server.listen(this.path);
    await once(this.server, 'listening');
  }
  private poke(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  async until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 5);
      });
    }
  }
  async connected(): Promise<net.Socket> {
    await this.until(() => this.conn !== undefined, 'the engine to connect');
    return this.conn!;
  }
  close(): void {
    this.conn?.destroy();
    this.server.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A reply the thread built: what the engine's would be, with DF set as the thread sets it. */
function checkReply(f: Buffer, srcPort: number, dstPort: number): Buffer {
  assert.equal(f.readUInt16BE(20), 0x4000, 'DF, no fragment offset');
  return checkUdpToGuest(f, { dstMac: GUEST_MAC, src: GW, dst: GUEST, srcPort, dstPort });
}

const seqFrame = (port: number, i: number, srcPort = 40000): Buffer => {
  const p = Buffer.alloc(32);
  p.writeUInt32BE(i, 0);
  return guestUdp(GW, port, p, srcPort);
};

const fdCount = (): number => readdirSync('/proc/self/fd').length;
/** The forwarding threads of this process (named by the addon); a thread gone since the listing is not one. */
const threadCount = (): number =>
  readdirSync('/proc/self/task').filter((t) => {
    try {
      return readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'arca-fnat';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ESRCH') return false;
      throw err;
    }
  }).length;
/**
 * The thread count once it settles at `want`: a joined thread's task can stay listed for a moment
 * (pthread_join returns once the thread has cleared its tid, a little before the kernel reaps it).
 */
async function threadsSettle(want: number): Promise<number> {
  const end = Date.now() + 2000;
  let n = threadCount();
  while (n !== want && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 10));
    n = threadCount();
  }
  return n;
}

describe('FilteredNAT forwarding thread', { skip }, () => {
  let sink: dgram.Socket;
  let port: number;
  const got: Buffer[] = [];
  let echo = true;
  let qemu: FakeQemu;
  let engine: FilteredNatEngine | undefined;
  before(async () => {
    sink = dgram.createSocket('udp4');
    sink.on('message', (m, r) => {
      got.push(m);
      if (echo) sink.send(Buffer.concat([Buffer.from('re:'), m]), r.port, r.address);
    });
    sink.bind(0, '127.0.0.1');
    await once(sink, 'listening');
    port = sink.address().port;
  });
  after(() => sink.close());
  afterEach(() => {
    engine?.close();
    engine = undefined;
    qemu?.close();
    got.length = 0;
    echo = true;
  });

  async function start(opts: { flowIdleMs?: number } = {}): Promise<{ e: FilteredNatEngine; q: FakeQemu; c: net.Socket; closed: string[] }> {
    qemu = new FakeQemu();
    await qemu.listen();
    const e = (engine = new FilteredNatEngine({ allow: [`127.0.0.1:${port}/udp`], fastPath: true, ...opts }));
    assert.equal(e.fastPath, true);
    const closed: string[] = [];
    e.connectFastPath(qemu.path, (code) => closed.push(code));
    const c = await qemu.connected();
    return { e, q: qemu, c, closed };
  }

  it('answers ARP through the engine, forwards a flow in order across the hand-over, and relays replies as frames', async () => {
    const { e, q, c } = await start();
    c.write(framed(arpRequest(GW)));
    await q.until(() => q.frames.length === 1, 'the ARP reply');
    assert.equal(q.frames[0]!.readUInt16BE(12), 0x0806);
    // One write: the first frame opens the flow in TypeScript, the thread takes the rest.
    c.write(Buffer.concat(Array.from({ length: 200 }, (_, i) => framed(seqFrame(port, i)))));
    await q.until(() => got.length === 200 && q.frames.length === 201, 'datagrams and replies', 5000);
    assert.deepEqual(got.map((m) => m.readUInt32BE(0)), Array.from({ length: 200 }, (_, i) => i), 'in order');
    for (const f of q.frames.slice(1)) assert.equal(checkReply(f, port, 40000).subarray(0, 3).toString(), 're:');
    const s = e.stats;
    const fp = e.fastPathCounters()!;
    assert.equal(s.forwarded, 200);
    assert.equal(s.repliesIn, 200);
    assert.equal(s.framesOut, 201);
    // Frames behind the first, while it was still with the engine, waited their turn behind it.
    assert.ok(fp.forwarded <= 199, `the thread forwarded ${fp.forwarded}`);
    // The first came before the engine knew the guest's MAC (and so may those read with it).
    assert.ok(fp.puntedGuestMac >= 1);
    assert.equal(fp.puntedGuestMac + fp.puntedNoFlow + fp.puntedOrder + fp.forwarded, 200);
    assert.equal(fp.punted, 1 + 200 - fp.forwarded);
    assert.equal(fp.puntedNotUdp, 1);
    assert.equal(fp.repliesOut, 200);
    assert.equal(s.flowsOpened, 1);
    assertAddsUp(s);
    // Now established: everything is the thread's.
    c.write(Buffer.concat(Array.from({ length: 50 }, (_, i) => framed(seqFrame(port, 200 + i)))));
    await q.until(() => got.length === 250, 'more datagrams');
    assert.equal(e.fastPathCounters()!.forwarded, fp.forwarded + 50);
    assertAddsUp(e.stats);
  });

  it('reassembles frames split across reads, skips an oversized one and stays in step', async () => {
    const { e, q, c } = await start();
    c.write(framed(seqFrame(port, 0)));
    await q.until(() => got.length === 1, 'the first datagram');
    const junk = Buffer.alloc(4 + 3000);
    junk.writeUInt32BE(3000, 0);
    const stream = Buffer.concat([...Array.from({ length: 20 }, (_, i) => framed(seqFrame(port, 1 + i))), junk, framed(seqFrame(port, 21))]);
    for (let i = 0; i < stream.length; i += 7) {
      c.write(stream.subarray(i, i + 7));
      if (i % 70 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await q.until(() => got.length === 22, 'all datagrams');
    assert.deepEqual(got.map((m) => m.readUInt32BE(0)), Array.from({ length: 22 }, (_, i) => i));
    assert.equal(e.stats.dropped.oversize, 1);
    assert.equal(e.fastPathCounters()!.oversize, 1);
    assertAddsUp(e.stats);
  });

  it('leaves anything not plainly an established flow to the engine, which drops it', async () => {
    const { e, q, c } = await start();
    c.write(framed(seqFrame(port, 0)));
    await q.until(() => got.length === 1, 'the flow');
    const p = Buffer.from('payload!');
    const bad: Array<[string, Buffer]> = [
      ['bad UDP checksum', eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 40000, GW, port, p, { breakChecksum: true }) }))],
      ['bad IP checksum', eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 40000, GW, port, p), breakChecksum: true }))],
      ['IP options', eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 40000, GW, port, p), options: Buffer.from([1, 1, 1, 0]) }))],
      ['a fragment', eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 40000, GW, port, p), flagsFrag: 0x2000 }))],
      ['the reserved bit', eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 40000, GW, port, p), flagsFrag: 0x8000 }))],
      ['another source address', guestUdp(GW, port, p, 40000, '10.77.0.9')],
      ['a UDP length too short', eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 40000, GW, port, p, { lengthDelta: -2 }) }))],
      ['an IP length too long', eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 40000, GW, port, p), totalLengthDelta: 4 }))],
      ['trailing bytes on a long frame', Buffer.concat([guestUdp(GW, port, Buffer.alloc(40)), Buffer.alloc(8)])],
      ['VLAN', eth(gatewayMac(), GUEST_MAC, 0x8100, Buffer.alloc(60))],
      ['to another MAC', eth(Buffer.from('020000000099', 'hex'), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: udp(GUEST, 40000, GW, port, p) }))],
      ['TCP', eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 6, payload: Buffer.alloc(20) }))],
      ['another port', guestUdp(GW, port + 1, p)],
    ];
    const n = native()!;
    const h = (e as unknown as { fp: Parameters<typeof n.fastPathMatch>[0] }).fp;
    assert.equal(n.fastPathMatch(h, seqFrame(port, 1), 0, seqFrame(port, 1).length), 0, 'an established flow matches');
    for (const [what, f] of bad) assert.equal(n.fastPathMatch(h, f, 0, f.length), -1, what);
    // From another MAC: the thread leaves it to the engine (which learns it), not forwarded blindly.
    const other = Buffer.from(seqFrame(port, 1));
    other[6] = 0x06;
    assert.equal(n.fastPathMatch(h, other, 0, other.length), -1, 'another source MAC');
    const before = e.fastPathCounters()!;
    c.write(Buffer.concat(bad.map(([, f]) => framed(f))));
    await q.until(() => e.stats.framesIn === 1 + bad.length, 'the engine to count them');
    const s = e.stats;
    assert.equal(s.forwarded, 1);
    assert.equal(e.fastPathCounters()!.forwarded, before.forwarded);
    assert.equal(got.length, 1);
    assert.deepEqual(
      [s.dropped.bad_checksum, s.dropped.ip_options, s.dropped.fragment, s.dropped.bad_frame, s.dropped.bad_source, s.dropped.truncated, s.dropped.vlan, s.dropped.not_for_us, s.dropped.tcp, s.dropped.udp_not_allowed],
      [2, 1, 1, 3, 1, 1, 1, 1, 1, 1],
    );
    // A short frame padded to 60 bytes: forwarded without the padding.
    const short = Buffer.concat([guestUdp(GW, port, Buffer.from([0, 0, 0, 99])), Buffer.alloc(14)]);
    assert.equal(short.length, 60);
    assert.equal(n.fastPathMatch(h, short, 0, short.length), 0);
    c.write(framed(short));
    await q.until(() => got.length === 2, 'the padded frame');
    assert.equal(got[1]!.length, 4);
    assertAddsUp(e.stats);
  });

  it('drops a reply too big for the guest, and one with no guest to go to', async () => {
    const { e, q, c } = await start();
    echo = false;
    c.write(framed(seqFrame(port, 0)));
    await q.until(() => got.length === 1, 'the flow');
    const hostPort = e.flowPorts()[0]!.hostPort;
    assert.ok(hostPort > 0);
    sink.send(Buffer.alloc(1473), hostPort, '127.0.0.1');
    sink.send(Buffer.alloc(1472), hostPort, '127.0.0.1');
    await q.until(() => e.stats.repliesIn === 2, 'the replies');
    assert.equal(e.stats.repliesDropped.too_big, 1);
    await q.until(() => q.frames.length === 1, 'the reply that fits');
    assert.equal(checkReply(q.frames[0]!, port, 40000).length, 1472);
  });

  it('gives a flow up when the engine expires it, and opens it again on the next frame', async () => {
    const { e, q, c } = await start({ flowIdleMs: 60_000 });
    c.write(Buffer.concat([0, 1, 2].map((i) => framed(seqFrame(port, i)))));
    await q.until(() => got.length === 3, 'the flow');
    assert.equal(e.expireIdleFlows(Date.now() + 1000), 0, 'recently used');
    assert.equal(e.expireIdleFlows(Date.now() + 120_000), 1);
    const fp = e.fastPathCounters()!;
    c.write(framed(seqFrame(port, 3)));
    await q.until(() => got.length === 4, 'the flow again');
    assert.equal(e.fastPathCounters()!.puntedNoFlow, fp.puntedNoFlow + 1);
    assert.equal(e.stats.flowsOpened, 2);
    assert.equal(e.stats.flowsExpired, 1);
  });

  it('hears the stream end, connects again, and leaves no thread or fd behind once closed', async () => {
    const fds0 = fdCount();
    // None left from the earlier tests' engines (each closed, its thread joined and being reaped).
    const threads0 = await threadsSettle(0);
    qemu = new FakeQemu();
    await qemu.listen();
    const e = (engine = new FilteredNatEngine({ allow: [`127.0.0.1:${port}/udp`], fastPath: true }));
    assert.equal(threadCount(), threads0 + 1);
    for (let round = 0; round < 10; round++) {
      const closed: string[] = [];
      qemu.conn = undefined;
      e.connectFastPath(qemu.path, (code) => closed.push(code));
      const c = await qemu.connected();
      c.write(framed(seqFrame(port, round, 41000 + (round % 3))));
      await qemu.until(() => got.length === round + 1, 'a datagram');
      c.destroy();
      await qemu.until(() => closed.length === 1, 'the end of the stream');
      // A reset when the echo's reply frame was still unread on QEMU's side as it closed.
      assert.equal(closed.length, 1);
      assert.match(closed[0]!, /^(EOF|ECONNRESET)$/);
    }
    assert.equal(e.stats.flowsOpen, 3);
    e.close();
    engine = undefined;
    assert.equal(await threadsSettle(threads0), threads0, 'the thread is joined');
    // The test's own listening socket is still open.
    assert.equal(fdCount(), fds0 + 1, 'the stream and flow sockets are closed');
  });

  it('with busyPollMs, the thread (not the main loop) polls for its window after input, then sleeps', async () => {
    qemu = new FakeQemu();
    await qemu.listen();
    const e = (engine = new FilteredNatEngine({ allow: [`127.0.0.1:${port}/udp`], fastPath: true, busyPollMs: 300 }));
    assert.equal(e.busyPolling, 300);
    e.connectFastPath(qemu.path, () => {});
    const c = await qemu.connected();
    await new Promise((r) => setTimeout(r, 400));
    assert.ok((await cpuWhileWaiting(200)) < 15, 'asleep before any input');
    c.write(framed(seqFrame(port, 0)));
    await qemu.until(() => got.length === 1, 'the datagram');
    const spinning = await cpuWhileWaiting(150);
    assert.ok(spinning > 35, `${spinning.toFixed(0)}% of a core while polling`);
    await new Promise((r) => setTimeout(r, 400));
    const idle = await cpuWhileWaiting(300);
    assert.ok(idle < 15, `${idle.toFixed(0)}% of a core once the window passed`);
  });

  it('refuses a missing socket with ENOENT, and falls back to TypeScript without the thread', async () => {
    const e = (engine = new FilteredNatEngine({ allow: [`127.0.0.1:${port}/udp`], fastPath: true }));
    assert.throws(() => e.connectFastPath('/nonexistent/fnat.sock', () => {}), { code: 'ENOENT' });
    const plain = new FilteredNatEngine({ allow: [`127.0.0.1:${port}/udp`], fastPath: false });
    assert.equal(plain.fastPath, false);
    assert.equal(plain.fastPathCounters(), undefined);
    plain.close();
  });
});
