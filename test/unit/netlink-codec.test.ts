import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  attr,
  decodeAttrs,
  encodeAttrs,
  ifinfomsg,
  ipBytes,
  macBytes,
  message,
  NLM_F_ACK,
  NLM_F_REQUEST,
  parseError,
  parseLink,
  RTM_NEWLINK,
  splitReplies,
} from '../../src/sys/netlink.js';

describe('rtnetlink codec', () => {
  it('pads attributes to 4 bytes and keeps the unpadded length', () => {
    const b = encodeAttrs([attr.str(3, 'br0'), attr.u8(36, 1), attr.u32(4, 1500)]);
    // "br0\0" = 4 → 8; u8 → len 5, padded 8; u32 → 8.
    assert.equal(b.length, 24);
    assert.equal(b.readUInt16LE(0), 8);
    assert.equal(b.readUInt16LE(8), 5);
    const back = decodeAttrs(b);
    assert.equal(back.get(3)!.toString(), 'br0\0');
    assert.equal(back.get(36)![0], 1);
    assert.equal(back.get(4)!.readUInt32LE(0), 1500);
  });

  it('nests attributes behind an optional fixed header (veth peer)', () => {
    const peer = attr.nested(1, [attr.str(3, 'eth0')], ifinfomsg());
    assert.equal(peer.data.length, 16 + 12);
    const inner = decodeAttrs(peer.data, 16);
    assert.equal(inner.get(3)!.toString(), 'eth0\0');
  });

  it('frames a request with its length, type, flags and sequence', () => {
    const m = message(RTM_NEWLINK, NLM_F_ACK, 7, ifinfomsg({ index: 3, flags: 1, change: 1 }), [attr.str(3, 'x')]);
    assert.equal(m.readUInt32LE(0), m.length);
    assert.equal(m.readUInt16LE(4), RTM_NEWLINK);
    assert.equal(m.readUInt16LE(6), NLM_F_ACK | NLM_F_REQUEST);
    assert.equal(m.readUInt32LE(8), 7);
    assert.equal(m.readInt32LE(16 + 4), 3);
  });

  it('splits replies and reads errors with the kernel\'s extended message', () => {
    const req = message(RTM_NEWLINK, NLM_F_ACK, 9, ifinfomsg(), []);
    const err = Buffer.alloc(4);
    err.writeInt32LE(-17);
    const tlv = encodeAttrs([attr.str(1, 'File exists')]);
    const payload = Buffer.concat([err, req, tlv]);
    const hdr = Buffer.alloc(16);
    hdr.writeUInt32LE(16 + payload.length, 0);
    hdr.writeUInt16LE(2, 4);
    hdr.writeUInt32LE(9, 8);
    const ack = Buffer.alloc(16 + 4 + 16);
    ack.writeUInt32LE(ack.length, 0);
    ack.writeUInt16LE(2, 4);
    ack.writeUInt32LE(10, 8);
    const replies = splitReplies(Buffer.concat([hdr, payload, ack]));
    assert.equal(replies.length, 2);
    assert.deepEqual(parseError(replies[0]!.payload), { errno: -17, text: 'File exists' });
    assert.deepEqual(parseError(replies[1]!.payload), { errno: 0 });
  });

  it('reads a link: index, flags, name, kind, master', () => {
    const body = Buffer.concat([
      ifinfomsg({ index: 12, flags: 0x1003 }),
      encodeAttrs([attr.str(3, 'vx1'), attr.u32(10, 5), attr.u32(4, 1500), attr.nested(18, [attr.str(1, 'veth')])]),
    ]);
    assert.deepEqual(parseLink(body), { index: 12, flags: 0x1003, name: 'vx1', kind: 'veth', master: 5, mtu: 1500 });
  });

  it('encodes addresses in network order and refuses malformed ones', () => {
    assert.deepEqual([...ipBytes('172.18.0.1').bytes], [172, 18, 0, 1]);
    assert.equal(ipBytes('fd00::1').bytes.toString('hex'), 'fd000000000000000000000000000001');
    assert.equal(ipBytes('2001:db8:1::').bytes.toString('hex'), '20010db8000100000000000000000000');
    assert.equal(ipBytes('::ffff:1.2.3.4').bytes.toString('hex'), '00000000000000000000ffff01020304');
    assert.equal(ipBytes('::').bytes.toString('hex'), '0'.repeat(32));
    for (const bad of ['1.2.3', '1.2.3.256', '1::2::3', '12345::', '1:2:3:4:5:6:7']) assert.throws(() => ipBytes(bad), bad);
    assert.equal(macBytes('02:42:ac:11:00:02').toString('hex'), '0242ac110002');
    assert.throws(() => macBytes('02:42:ac:11:00'));
  });
});
