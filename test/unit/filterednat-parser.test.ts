import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FrameView, parseFrame } from '../../src/filterednat/frame-parser.js';
import { FrameStreamDecoder } from '../../src/filterednat/frame-stream-decoder.js';
import { DhcpView, parseDhcp } from '../../src/filterednat/dhcp-message.js';
import { parseAllowEntry, Allowlist } from '../../src/filterednat/allowlist.js';
import { parseVmSubnet } from '../../src/filterednat/vm-subnet.js';
import { parseIpv4 } from '../../src/filterednat/ipv4-address.js';
import { GUEST, GUEST_MAC, GW, arpRequest, bootp, eth, framed, gatewayMac, guestUdp, ipv4, udp, udhcpcDiscover } from './filterednat-fixtures.js';

const classify = (f: Buffer): string => parseFrame(f, 0, f.length, new FrameView());
const withPayload = (payload: Buffer, ipOpts: Partial<Parameters<typeof ipv4>[0]> = {}): Buffer =>
  eth(gatewayMac(), GUEST_MAC, 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload, ...ipOpts }));
const ok = (): Buffer => udp(GUEST, 40000, GW, 9, Buffer.from('hello'));

describe('FilteredNAT frame parser', () => {
  it('accepts a well-formed UDP frame and points at its payload', () => {
    const f = guestUdp(GW, 51820, Buffer.from('hello'));
    const v = new FrameView();
    assert.equal(parseFrame(f, 0, f.length, v), 'udp');
    assert.equal(v.srcPort, 40000);
    assert.equal(v.dstPort, 51820);
    assert.equal(v.src, parseIpv4(GUEST));
    assert.equal(v.dst, parseIpv4(GW));
    assert.equal(f.subarray(v.payload, v.payload + v.payloadLength).toString(), 'hello');
  });

  it('accepts a frame in the middle of a larger buffer', () => {
    const f = guestUdp(GW, 51820, Buffer.from('x'));
    const big = Buffer.concat([Buffer.alloc(7, 0xee), f, Buffer.alloc(9, 0xee)]);
    assert.equal(parseFrame(big, 7, f.length, new FrameView()), 'udp');
  });

  it('accepts ARP, also padded to 60 bytes', () => {
    assert.equal(classify(arpRequest(GW)), 'arp');
    assert.equal(classify(Buffer.concat([arpRequest(GW), Buffer.alloc(18)])), 'arp');
  });

  const cases: Array<[string, Buffer]> = [
    ['vlan', eth(gatewayMac(), GUEST_MAC, 0x8100, Buffer.alloc(46))],
    ['vlan', eth(gatewayMac(), GUEST_MAC, 0x88a8, Buffer.alloc(46))],
    ['ipv6', eth(Buffer.from('333300000016', 'hex'), GUEST_MAC, 0x86dd, Buffer.alloc(76))],
    ['ethertype', eth(gatewayMac(), GUEST_MAC, 0x88cc, Buffer.alloc(46))],
    ['ethertype', eth(gatewayMac(), GUEST_MAC, 0x0040, Buffer.alloc(46))],
    ['bad_frame', eth(gatewayMac(), Buffer.from('010203040506', 'hex'), 0x0800, ipv4({ src: GUEST, dst: GW, proto: 17, payload: ok() }))],
    ['oversize', guestUdp(GW, 9, Buffer.alloc(1600))],
    ['truncated', Buffer.alloc(13)],
    ['truncated', Buffer.alloc(0)],
    ['truncated', arpRequest(GW).subarray(0, 41)],
    ['bad_frame', Buffer.concat([arpRequest(GW), Buffer.alloc(40)])],
    ['truncated', guestUdp(GW, 9, Buffer.from('hello')).subarray(0, 30)],
    ['truncated', withPayload(ok(), { totalLengthDelta: 1 })],
    ['bad_frame', withPayload(ok(), { totalLengthDelta: -30 })],
    ['bad_frame', Buffer.concat([guestUdp(GW, 9, Buffer.alloc(100)), Buffer.alloc(4)])],
    ['bad_checksum', withPayload(ok(), { breakChecksum: true })],
    ['ip_options', withPayload(ok(), { options: Buffer.from([0x94, 4, 0, 0]) })],
    ['fragment', withPayload(ok(), { flagsFrag: 0x2000 })],
    ['fragment', withPayload(ok(), { flagsFrag: 0x0010 })],
    ['bad_frame', withPayload(ok(), { flagsFrag: 0x8000 })],
    ['tcp', withPayload(Buffer.alloc(20), { proto: 6 })],
    ['icmp', withPayload(Buffer.from('0800f7ff00000000', 'hex'), { proto: 1 })],
    ['ip_proto', withPayload(Buffer.alloc(8), { proto: 47 })],
    ['bad_checksum', withPayload(udp(GUEST, 40000, GW, 9, Buffer.from('hello'), { breakChecksum: true }))],
    ['truncated', withPayload(udp(GUEST, 40000, GW, 9, Buffer.from('hello'), { zeroChecksum: true, lengthDelta: 1 }))],
    ['bad_frame', withPayload(udp(GUEST, 40000, GW, 9, Buffer.from('hello'), { zeroChecksum: true, lengthDelta: -1 }))],
    ['bad_frame', withPayload(udp(GUEST, 40000, GW, 9, Buffer.from('hello'), { zeroChecksum: true, lengthDelta: -6 }))],
    ['bad_frame', withPayload(udp(GUEST, 40000, GW, 0, Buffer.from('hello')))],
    ['truncated', withPayload(Buffer.alloc(4))],
  ];
  for (const [want, frame] of cases) {
    it(`says ${want} for a ${frame.length}-byte frame (${frame.subarray(12, 16).toString('hex')}…)`, () => assert.equal(classify(frame), want));
  }

  it('takes a zero UDP checksum as "none"', () => {
    assert.equal(classify(withPayload(udp(GUEST, 40000, GW, 9, Buffer.from('hello'), { zeroChecksum: true }))), 'udp');
  });

  it('rejects a version other than 4 and an IHL under 5', () => {
    const f = guestUdp(GW, 9, Buffer.from('x'));
    f[14] = 0x65;
    assert.equal(classify(f), 'bad_frame');
    f[14] = 0x44;
    assert.equal(classify(f), 'bad_frame');
  });
});

describe('FilteredNAT stream decoder', () => {
  const collect = (): { frames: string[]; oversize: number[]; d: FrameStreamDecoder } => {
    const frames: string[] = [];
    const oversize: number[] = [];
    const d = new FrameStreamDecoder({ frame: (b, o, l) => frames.push(b.subarray(o, o + l).toString('hex')), oversize: (n) => oversize.push(n) });
    return { frames, oversize, d };
  };

  it('cuts frames out of any chunking, one byte at a time included', () => {
    const a = guestUdp(GW, 1, Buffer.from('a'));
    const b = arpRequest(GW);
    const stream = Buffer.concat([framed(a), framed(b), framed(a)]);
    for (const step of [1, 3, 4, 5, 47, stream.length]) {
      const { frames, d } = collect();
      for (let i = 0; i < stream.length; i += step) d.push(stream.subarray(i, i + step));
      assert.deepEqual(frames, [a, b, a].map((f) => f.toString('hex')), `chunks of ${step}`);
    }
  });

  it('skips an oversized frame byte-exactly and stays in step', () => {
    const big = Buffer.alloc(3000, 0xab);
    const a = arpRequest(GW);
    const stream = Buffer.concat([framed(big), framed(a)]);
    for (const step of [1, 100, stream.length]) {
      const { frames, oversize, d } = collect();
      for (let i = 0; i < stream.length; i += step) d.push(stream.subarray(i, i + step));
      assert.deepEqual(oversize, [3000]);
      assert.deepEqual(frames, [a.toString('hex')]);
    }
  });

  it('hands over a zero-length frame (the parser calls it truncated)', () => {
    const { frames, d } = collect();
    d.push(Buffer.from([0, 0, 0, 0]));
    assert.deepEqual(frames, ['']);
  });
});

describe('FilteredNAT DHCP reader', () => {
  it('reads udhcpc\'s DISCOVER', () => {
    const f = udhcpcDiscover(0xdeadbeef);
    assert.equal(f.length, 342);
    const v = new DhcpView();
    assert.equal(parseDhcp(f, 42, f.length - 42, v), true);
    assert.equal(v.type, 1);
    assert.equal(v.xid, 0xdeadbeef);
  });

  it('refuses options that run past the end, a missing END, a bad cookie, a relay', () => {
    const v = new DhcpView();
    const noEnd = bootp(1, [Buffer.from([53, 1, 1])]).subarray(0, 243);
    assert.equal(parseDhcp(noEnd, 0, noEnd.length, v), false);
    const over = Buffer.concat([bootp(1, []).subarray(0, 240), Buffer.from([53, 1, 1, 12, 200, 1, 2])]);
    assert.equal(parseDhcp(over, 0, over.length, v), false);
    const cookie = bootp(1, [Buffer.from([53, 1, 1])]);
    cookie[236] = 0;
    assert.equal(parseDhcp(cookie, 0, cookie.length, v), false);
    const relay = bootp(1, [Buffer.from([53, 1, 1])]);
    relay[24] = 10;
    assert.equal(parseDhcp(relay, 0, relay.length, v), false);
    const noType = bootp(1, [Buffer.from([12, 1, 65])]);
    assert.equal(parseDhcp(noType, 0, noType.length, v), false);
    const offer = bootp(1, [Buffer.from([53, 1, 2])]);
    assert.equal(parseDhcp(offer, 0, offer.length, v), false);
  });
});

describe('FilteredNAT configuration', () => {
  it('parses allow entries strictly', () => {
    assert.deepEqual(parseAllowEntry('127.0.0.1:51820/udp'), { ip: 0x7f000001, port: 51820 });
    for (const bad of ['127.0.0.1:51820', '127.0.0.1:51820/tcp', '127.0.0.1:0/udp', '127.0.0.1:65536/udp', '127.0.0.01:5/udp', 'host:5/udp', '1.2.3:5/udp', '224.0.0.1:5/udp', '0.0.0.0:5/udp', '255.255.255.255:5/udp', '1.2.3.4:5/udp/x', '']) {
      assert.throws(() => parseAllowEntry(bad), /invalid --allow/, bad);
    }
  });

  it('offers loopback destinations at the gateway and refuses clashes', () => {
    const s = parseVmSubnet('10.77.0.0/24');
    const a = new Allowlist(['127.0.0.1:51820/udp', '192.0.2.7:53/udp'], s);
    assert.equal(a.find(s.gateway, 51820), 0);
    assert.equal(a.find(parseIpv4('192.0.2.7')!, 53), 1);
    assert.equal(a.find(parseIpv4('127.0.0.1')!, 51820), -1);
    assert.throws(() => new Allowlist(['127.0.0.1:9/udp', '127.0.0.2:9/udp'], s), /same 10\.77\.0\.1:9/);
    assert.throws(() => new Allowlist(['10.77.0.9:9/udp'], s), /inside the VM's own subnet/);
    assert.throws(() => new Allowlist(['127.0.0.1:67/udp'], s), /DHCP/);
    assert.throws(() => new Allowlist([], s), /no --allow entries/);
  });

  it('parses subnets /8 to /30 with host bits clear', () => {
    const s = parseVmSubnet('10.77.0.0/24');
    assert.equal(s.gateway, parseIpv4('10.77.0.1'));
    assert.equal(s.guest, parseIpv4('10.77.0.2'));
    assert.equal(parseVmSubnet('192.168.7.4/30').guest, parseIpv4('192.168.7.6'));
    for (const bad of ['10.77.0.0/31', '10.0.0.0/7', '10.77.0.1/24', '127.0.0.0/8', '224.0.0.0/8', '10.77.0.0', 'fd00::/64', '10.77.0.0/024x']) {
      assert.throws(() => parseVmSubnet(bad), /invalid subnet/, bad);
    }
  });
});
