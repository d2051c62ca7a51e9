import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { FilteredNatEngine } from '../../src/filterednat/filtered-nat-engine.js';
import { native } from '../../src/sys/native.js';
import { cpuWhileWaiting } from './cpu-usage.js';
import {
  BCAST_MAC,
  GUEST,
  GUEST_MAC,
  GW,
  arpRequest,
  assertAddsUp,
  checkUdpToGuest,
  checksum,
  dhclientDiscover,
  dhclientRelease,
  dhclientRequest,
  dhcpOptions,
  eth,
  framed,
  guestUdp,
  ipv4,
  udhcpcDiscover,
  udhcpcRequest,
  unframe,
} from './filterednat-fixtures.js';

function engineWithOutput(allow = ['127.0.0.1:9/udp'], opts: { flowIdleMs?: number; maxFlows?: number; hostSockets?: 'native' | 'dgram' } = {}): { e: FilteredNatEngine; out: Buffer[] } {
  const e = new FilteredNatEngine({ allow, ...opts });
  const out: Buffer[] = [];
  e.attach({ write: (b) => out.push(Buffer.from(b)) });
  return { e, out };
}

/** The addon is built with the batched send the native host sockets use. */
const nativeFlows = (): boolean => typeof native()?.udpSendMany === 'function';

describe('FilteredNAT engine: ARP', () => {
  it('answers who-has for the gateway with the exact reply bytes', () => {
    const { e, out } = engineWithOutput();
    e.handleFrame(arpRequest(GW));
    assert.equal(out.length, 1);
    const want =
      '525400123456' + '02000a4d0001' + '0806' + // Ethernet: to the asker, from the gateway
      '0001' + '0800' + '06' + '04' + '0002' + // Ethernet/IPv4, reply
      '02000a4d0001' + '0a4d0001' + // the gateway is at its MAC
      '525400123456' + '0a4d0002'; // to the asker
    assert.equal(unframe(out[0]!).toString('hex'), want);
    assert.equal(e.stats.arpReplies, 1);
    assert.equal(e.stats.framesOut, 1);
    e.close();
  });

  it('ignores ARP for other addresses, replies, and refuses a lying sender', () => {
    const { e, out } = engineWithOutput();
    e.handleFrame(arpRequest('10.77.0.9'));
    e.handleFrame(arpRequest(GW, GUEST, 2));
    e.handleFrame(arpRequest(GW, '10.77.0.50'));
    e.handleFrame(arpRequest(GW, GUEST, 1, Buffer.from('020000000099', 'hex')));
    const spoof = arpRequest(GW);
    spoof[22] ^= 1; // the ARP sender MAC differs from the frame's source
    e.handleFrame(spoof);
    assert.equal(out.length, 0);
    assert.deepEqual([e.stats.dropped.arp_ignored, e.stats.dropped.bad_source, e.stats.dropped.not_for_us, e.stats.dropped.bad_frame], [2, 1, 1, 1]);
    assertAddsUp(e.stats);
    e.close();
  });
});

describe('FilteredNAT engine: DHCP', () => {
  for (const [client, discover, request] of [
    ['busybox udhcpc', udhcpcDiscover, udhcpcRequest],
    ['ISC dhclient', dhclientDiscover, dhclientRequest],
  ] as const) {
    it(`leases 10.77.0.2 to ${client}: unicast OFFER and ACK with options 53, 54, 51, 1, 3, 6`, () => {
      const { e, out } = engineWithOutput();
      const d = discover(0x11223344);
      const r = request(0x11223344);
      if (client === 'ISC dhclient') assert.equal(r.length, 345);
      else assert.equal(d.length, 342);
      e.handleFrame(d);
      e.handleFrame(r);
      assert.equal(out.length, 2);
      for (const [i, type] of [[0, 2], [1, 5]] as const) {
        const f = unframe(out[i]!);
        assert.equal(f.length, 342);
        const msg = checkUdpToGuest(f, { dstMac: GUEST_MAC, src: GW, dst: GUEST, srcPort: 67, dstPort: 68 });
        assert.equal(msg.length, 300);
        assert.equal(msg[0], 2);
        assert.equal(msg.readUInt32BE(4), 0x11223344);
        assert.equal(msg.subarray(16, 20).toString('hex'), '0a4d0002', 'yiaddr');
        assert.equal(msg.subarray(28, 34).toString('hex'), GUEST_MAC.toString('hex'), 'chaddr');
        assert.equal(msg.readUInt32BE(236), 0x63825363);
        const opts = dhcpOptions(msg);
        assert.deepEqual([...opts.keys()], [53, 54, 51, 1, 3, 6]);
        assert.equal(opts.get(53)![0], type);
        assert.equal(opts.get(54)!.toString('hex'), '0a4d0001');
        assert.equal(opts.get(51)!.readUInt32BE(0), 3600);
        assert.equal(opts.get(1)!.toString('hex'), 'ffffff00');
        assert.equal(opts.get(3)!.toString('hex'), '0a4d0001');
        assert.equal(opts.get(6)!.toString('hex'), '0a4d0001');
      }
      assert.deepEqual(e.stats.dhcp, { discover: 1, request: 1, release: 0, decline: 0, inform: 0, ignored: 0, offer: 1, ack: 1, nak: 0 });
      assertAddsUp(e.stats);
      e.close();
    });
  }

  it('NAKs a REQUEST for another address (broadcast), ignores one for another server, ignores RELEASE', () => {
    const { e, out } = engineWithOutput();
    e.handleFrame(dhclientRequest(7, '10.77.0.99', undefined));
    e.handleFrame(udhcpcRequest(8, GUEST, '10.77.0.200'));
    e.handleFrame(dhclientRelease(9));
    assert.equal(out.length, 1);
    const nak = unframe(out[0]!);
    const msg = checkUdpToGuest(nak, { dstMac: BCAST_MAC, src: GW, dst: '255.255.255.255', srcPort: 67, dstPort: 68 });
    assert.equal(dhcpOptions(msg).get(53)![0], 6);
    assert.equal(msg.subarray(16, 20).toString('hex'), '00000000');
    assert.deepEqual(e.stats.dhcp, { discover: 0, request: 2, release: 1, decline: 0, inform: 0, ignored: 1, offer: 0, ack: 0, nak: 1 });
    assertAddsUp(e.stats);
    e.close();
  });

  it('answers a renewal (ciaddr set, unicast to the server) to the client\'s address', () => {
    const { e, out } = engineWithOutput();
    const renew = dhclientRelease(3);
    // A RELEASE and a renewing REQUEST have the same shape but the type and option 54.
    const i = renew.indexOf(Buffer.from([53, 1, 7]), 42 + 240);
    renew[i + 2] = 3;
    // Fix the UDP checksum by rebuilding: zero means none.
    renew.writeUInt16BE(0, 40);
    e.handleFrame(renew);
    assert.equal(out.length, 1);
    const msg = checkUdpToGuest(unframe(out[0]!), { dstMac: GUEST_MAC, src: GW, dst: GUEST, srcPort: 67, dstPort: 68 });
    assert.equal(msg.subarray(12, 16).toString('hex'), '0a4d0002', 'ciaddr echoed');
    assert.equal(dhcpOptions(msg).get(53)![0], 5);
    e.close();
  });

  it('honours the broadcast flag', () => {
    const { e, out } = engineWithOutput();
    const d = udhcpcDiscover(5);
    d[42 + 10] = 0x80;
    d.writeUInt16BE(0, 40);
    e.handleFrame(d);
    checkUdpToGuest(unframe(out[0]!), { dstMac: BCAST_MAC, src: GW, dst: '255.255.255.255', srcPort: 67, dstPort: 68 });
    e.close();
  });

  it('drops DHCP whose chaddr is not the sender, and garbage to port 67', () => {
    const { e, out } = engineWithOutput();
    const d = udhcpcDiscover(5);
    d[42 + 28] ^= 2;
    d.writeUInt16BE(0, 40);
    e.handleFrame(d);
    e.handleFrame(eth(BCAST_MAC, GUEST_MAC, 0x0800, ipv4({ src: '0.0.0.0', dst: '255.255.255.255', proto: 17, payload: Buffer.concat([Buffer.from([0, 68, 0, 67, 0, 12, 0, 0]), Buffer.from('junk')]) })));
    assert.equal(out.length, 0);
    assert.equal(e.stats.dropped.bad_dhcp, 2);
    assertAddsUp(e.stats);
    e.close();
  });
});

for (const hostSockets of ['native', 'dgram'] as const) describe(`FilteredNAT engine: UDP forwarding (${hostSockets} host sockets)`, { skip: hostSockets === 'native' && !nativeFlows() ? 'the native addon is not built' : false }, () => {
  let echo: dgram.Socket;
  let port: number;
  const seen: Array<{ data: string; address: string; port: number }> = [];
  before(async () => {
    echo = dgram.createSocket('udp4');
    echo.on('message', (m, r) => {
      seen.push({ data: m.toString(), address: r.address, port: r.port });
      echo.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address);
    });
    echo.bind(0, '127.0.0.1');
    await once(echo, 'listening');
    port = echo.address().port;
  });
  after(() => echo.close());

  const nextOutput = async (out: Buffer[], n: number): Promise<void> => {
    for (let i = 0; i < 200 && out.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(out.length >= n, `waited for ${n} frames, have ${out.length}`);
  };

  it('forwards to an allowlisted loopback service offered at the gateway, and frames the reply', async () => {
    seen.length = 0;
    const { e, out } = engineWithOutput([`127.0.0.1:${port}/udp`], { hostSockets });
    e.receive(framed(guestUdp(GW, port, Buffer.from('ping-1'), 40000)));
    await nextOutput(out, 1);
    assert.equal(seen[0]!.data, 'ping-1');
    assert.equal(seen[0]!.address, '127.0.0.1', 'the peer sees the host');
    const ports = e.flowPorts();
    assert.deepEqual(ports.map((p) => [p.guestPort, p.hostPort]), [[40000, seen[0]!.port]]);
    const payload = checkUdpToGuest(unframe(out[0]!), { dstMac: GUEST_MAC, src: GW, dst: GUEST, srcPort: port, dstPort: 40000 });
    assert.equal(payload.toString(), 'echo:ping-1');
    // The same guest port reuses its socket; another gets one of its own.
    e.receive(framed(guestUdp(GW, port, Buffer.from('ping-2'), 40000)));
    e.receive(framed(guestUdp(GW, port, Buffer.from('ping-3'), 40001)));
    await nextOutput(out, 3);
    assert.equal(seen[1]!.port, seen[0]!.port);
    assert.notEqual(seen[2]!.port, seen[0]!.port);
    assert.deepEqual([e.stats.forwarded, e.stats.repliesIn, e.stats.flowsOpened, e.stats.flowsOpen], [3, 3, 2, 2]);
    assertAddsUp(e.stats);
    e.close();
  });

  it('forwards frames reassembled from split reads (copied, not a view of the reused buffer)', async () => {
    seen.length = 0;
    const { e, out } = engineWithOutput([`127.0.0.1:${port}/udp`], { hostSockets });
    const s = Buffer.concat([framed(guestUdp(GW, port, Buffer.from('split-A'), 40002)), framed(guestUdp(GW, port, Buffer.from('split-B'), 40002))]);
    for (let i = 0; i < s.length; i += 10) e.receive(s.subarray(i, i + 10));
    await nextOutput(out, 2);
    assert.deepEqual(seen.map((x) => x.data).sort(), ['split-A', 'split-B']);
    e.close();
  });

  it('drops what is not allowlisted, from the wrong source, or not to the gateway\'s MAC', () => {
    const { e } = engineWithOutput([`127.0.0.1:${port}/udp`], { hostSockets });
    e.handleFrame(guestUdp(GW, port + 1 === 65536 ? 1 : port + 1, Buffer.from('x')));
    e.handleFrame(guestUdp('192.0.2.1', port, Buffer.from('x')));
    e.handleFrame(guestUdp(GW, port, Buffer.from('x'), 40000, '10.77.0.3'));
    const other = guestUdp(GW, port, Buffer.from('x'));
    other[5] ^= 1;
    e.handleFrame(other);
    const bcast = guestUdp(GW, port, Buffer.from('x'));
    bcast.fill(0xff, 0, 6);
    e.handleFrame(bcast);
    assert.deepEqual([e.stats.dropped.udp_not_allowed, e.stats.dropped.bad_source, e.stats.dropped.not_for_us, e.stats.forwarded], [3, 1, 1, 0]);
    assert.equal(e.stats.flowsOpened, 0);
    assertAddsUp(e.stats);
    e.close();
  });

  it('expires idle flows and opens a fresh socket afterwards', async () => {
    seen.length = 0;
    const { e, out } = engineWithOutput([`127.0.0.1:${port}/udp`], { flowIdleMs: 60_000, hostSockets });
    e.receive(framed(guestUdp(GW, port, Buffer.from('a'), 41000)));
    await nextOutput(out, 1);
    assert.equal(e.expireIdleFlows(Date.now() + 30_000), 0);
    assert.equal(e.expireIdleFlows(Date.now() + 61_000), 1);
    assert.deepEqual([e.stats.flowsOpen, e.stats.flowsExpired], [0, 1]);
    e.receive(framed(guestUdp(GW, port, Buffer.from('b'), 41000)));
    await nextOutput(out, 2);
    assert.equal(e.stats.flowsOpened, 2);
    e.close();
  });

  it('caps the flows per VM', () => {
    const { e } = engineWithOutput([`127.0.0.1:${port}/udp`], { maxFlows: 2, hostSockets });
    for (let p = 1000; p < 1005; p++) e.handleFrame(guestUdp(GW, port, Buffer.from('x'), p));
    assert.deepEqual([e.stats.forwarded, e.stats.dropped.flow_limit], [2, 3]);
    e.close();
  });

  it('counts a reply it cannot deliver while no guest is attached', async () => {
    const e = new FilteredNatEngine({ allow: [`127.0.0.1:${port}/udp`], hostSockets });
    e.handleFrame(guestUdp(GW, port, Buffer.from('no-sink'), 42000));
    for (let i = 0; i < 200 && e.stats.repliesIn === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual([e.stats.repliesIn, e.stats.repliesDropped.no_guest], [1, 1]);
    e.close();
  });
  it('forwards out of a read buffer reused once receive returns, and nothing past the length given', async () => {
    seen.length = 0;
    const { e, out } = engineWithOutput([`127.0.0.1:${port}/udp`], { hostSockets });
    assert.equal(e.hostSockets, hostSockets);
    const buf = Buffer.alloc(4096, 0x55);
    const a = framed(guestUdp(GW, port, Buffer.from('reused-A'), 40020));
    const b = framed(guestUdp(GW, port, Buffer.from('reused-B'), 40020));
    a.copy(buf, 0);
    b.copy(buf, a.length);
    // A third frame lies past the length: bytes the socket did not deliver this time.
    framed(guestUdp(GW, port, Buffer.from('not-read'), 40020)).copy(buf, a.length + b.length);
    e.receive(buf, a.length + b.length, true);
    buf.fill(0);
    await nextOutput(out, 2);
    assert.deepEqual(seen.map((x) => x.data), ['reused-A', 'reused-B']);
    assert.equal(e.stats.framesIn, 2);
    e.close();
  });

  it('sends a chunk of frames to two flows interleaved, each in order', async () => {
    seen.length = 0;
    const { e, out } = engineWithOutput([`127.0.0.1:${port}/udp`], { hostSockets });
    const frames: Buffer[] = [];
    for (let i = 0; i < 100; i++) frames.push(framed(guestUdp(GW, port, Buffer.from(`m${i}`), 40030 + (i % 2))));
    e.receive(Buffer.concat(frames));
    await nextOutput(out, 100);
    const byFlow = new Map<number, string[]>();
    for (const x of seen) byFlow.set(x.port, [...(byFlow.get(x.port) ?? []), x.data]);
    assert.equal(byFlow.size, 2);
    const want = (k: number): string[] => Array.from({ length: 50 }, (_, i) => `m${2 * i + k}`);
    assert.deepEqual([...byFlow.values()].sort((x, y) => x[0]!.localeCompare(y[0]!)), [want(0), want(1)]);
    assert.deepEqual([e.stats.forwarded, e.stats.repliesIn, e.stats.sendErrors], [100, 100, 0]);
    e.close();
  });

  it('keeps hearing a peer after its port refused a datagram (ICMP unreachable on the connected socket)', async () => {
    const probe = dgram.createSocket('udp4');
    probe.bind(0, '127.0.0.1');
    await once(probe, 'listening');
    const closedPort = probe.address().port;
    probe.close();
    const { e, out } = engineWithOutput([`127.0.0.1:${closedPort}/udp`], { hostSockets });
    e.receive(framed(guestUdp(GW, closedPort, Buffer.from('nobody'), 40040)));
    for (let i = 0; i < 200 && e.stats.sendErrors === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(e.stats.sendErrors >= 1, 'the refusal is counted');
    const late = dgram.createSocket('udp4');
    late.on('message', (m, r) => late.send(Buffer.concat([Buffer.from('late:'), m]), r.port, r.address));
    late.bind(closedPort, '127.0.0.1');
    await once(late, 'listening');
    try {
      e.receive(framed(guestUdp(GW, closedPort, Buffer.from('again'), 40040)));
      await nextOutput(out, 1);
      assert.equal(checkUdpToGuest(unframe(out[0]!), { dstMac: GUEST_MAC, src: GW, dst: GUEST, srcPort: closedPort, dstPort: 40040 }).toString(), 'late:again');
      assert.equal(e.stats.flowsOpened, 1, 'the same flow, its socket still read');
    } finally {
      late.close();
      e.close();
    }
  });
});

describe('FilteredNAT engine: busy polling', { skip: typeof native()?.busyPoll === 'function' ? false : 'the native addon is not built' }, () => {
  it('after a frame, keeps the loop polling for its window, then costs nothing while no frame comes', async () => {
    const { e, out } = engineWithOutput(['127.0.0.1:9/udp'], {});
    const busy = new FilteredNatEngine({ allow: ['127.0.0.1:9/udp'], busyPollMs: 300 });
    busy.attach({ write: (b) => out.push(Buffer.from(b)) });
    try {
      assert.equal(busy.busyPolling, 300);
      assert.equal(e.busyPolling, 0);
      // The default engine sleeps between frames.
      e.receive(framed(arpRequest(GW)));
      assert.ok((await cpuWhileWaiting(200)) < 15, 'no busy polling by default');
      busy.receive(framed(arpRequest(GW)));
      assert.equal(out.length, 2);
      const spinning = await cpuWhileWaiting(250);
      assert.ok(spinning > 35, `${spinning.toFixed(0)}% of a core while polling`);
      await new Promise((r) => setTimeout(r, 100));
      const idle = await cpuWhileWaiting(300);
      assert.ok(idle < 15, `${idle.toFixed(0)}% of a core once the window passed`);
    } finally {
      busy.close();
      e.close();
    }
  });

  it('refuses a window out of range', () => {
    for (const ms of [-1, 60_001, NaN]) assert.throws(() => new FilteredNatEngine({ allow: ['127.0.0.1:9/udp'], busyPollMs: ms }), RangeError);
  });
});
