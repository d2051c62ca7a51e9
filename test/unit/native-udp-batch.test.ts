import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { native } from '../../src/sys/native.js';
import { cpuWhileWaiting } from './cpu-usage.js';

const n = native();
const skip = typeof n?.udpSendMany === 'function' ? false : 'the native addon is not built';

describe('native: batched UDP on a connected socket', { skip }, () => {
  const peer = async (): Promise<{ s: dgram.Socket; port: number; got: Array<{ data: string; port: number }> }> => {
    const s = dgram.createSocket('udp4');
    const got: Array<{ data: string; port: number }> = [];
    s.on('message', (m, r) => got.push({ data: m.toString(), port: r.port }));
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    return { s, port: s.address().port, got };
  };
  const until = async (f: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  };

  it('sends each span of one buffer as a datagram, from the port udpLocalPort names', async () => {
    const p = await peer();
    const h = n!.udpWatch(n!.socketIn(null, 'udp-connect', '127.0.0.1', p.port), () => {});
    try {
      const buf = Buffer.from('xxAAyyBBBzzC');
      const spans = Int32Array.from([2, 2, 6, 3, 11, 1, 0, 0]);
      const status = new Int32Array(2);
      assert.equal(n!.udpSendMany(h, buf, spans, 4, status), 4);
      assert.deepEqual([...status], [0, 0]);
      await until(() => p.got.length === 4);
      assert.deepEqual(p.got.map((g) => g.data), ['AA', 'BBB', 'C', '']);
      assert.ok(p.got.every((g) => g.port === n!.udpLocalPort(h)));
      // More than one sendmmsg's worth (64 each), fewer than the peer's receive buffer holds.
      const many = Int32Array.from(Array.from({ length: 150 }, (_, i) => [i % 12, 1]).flat());
      assert.equal(n!.udpSendMany(h, buf, many, 150), 150);
      await until(() => p.got.length === 154);
      assert.equal(p.got.length, 154);
    } finally {
      n!.udpClose(h);
      p.s.close();
    }
  });

  it('refuses spans outside the buffer and bad arguments, and counts what a closed socket could not send', () => {
    const h = n!.udpWatch(n!.socketIn(null, 'udp-connect', '127.0.0.1', 9), () => {});
    const buf = Buffer.alloc(8);
    try {
      assert.throws(() => n!.udpSendMany(h, buf, Int32Array.from([4, 5]), 1), TypeError);
      assert.throws(() => n!.udpSendMany(h, buf, Int32Array.from([-1, 1]), 1), TypeError);
      assert.throws(() => n!.udpSendMany(h, buf, Int32Array.from([0, 1]), 2), TypeError, 'more spans than given');
      assert.throws(() => n!.udpSendMany(h, buf, new Uint32Array(2) as unknown as Int32Array, 1), TypeError);
      assert.throws(() => n!.udpSendMany(h, buf, Int32Array.from([0, 1]), 1, new Int32Array(1)), TypeError);
    } finally {
      // Even when a check fails: a watched socket left open keeps the file's process alive.
      n!.udpClose(h);
    }
    const status = new Int32Array(2);
    assert.equal(n!.udpSendMany(h, buf, Int32Array.from([0, 1, 1, 1]), 2, status), 0);
    assert.deepEqual([...status], [os.constants.errno.EBADF, 2]);
    assert.equal(n!.udpLocalPort(h), 0);
  });

  it('gives the kernel receive time on process.hrtime\'s clock when asked', async () => {
    const times: Array<bigint | undefined> = [];
    const h = n!.udpWatch(n!.socketIn(null, 'udp', '127.0.0.1', 0), (_m, _a, _p, rx) => times.push(rx), { timestamps: true });
    const s = dgram.createSocket('udp4');
    try {
      const before = process.hrtime.bigint();
      s.send('t', n!.udpLocalPort(h), '127.0.0.1');
      await until(() => times.length === 1);
      const after = process.hrtime.bigint();
      assert.equal(typeof times[0], 'bigint');
      assert.ok(times[0]! >= before - 1_000_000n && times[0]! <= after, `${before} <= ${times[0]} <= ${after}`);
    } finally {
      s.close();
      n!.udpClose(h);
    }
    assert.throws(() => n!.udpWatch(0, () => {}, { onError: 5 as unknown as () => void }), TypeError);
  });
});

describe('native: busy polling', { skip: typeof n?.busyPoll === 'function' ? false : 'the native addon is not built' }, () => {
  it('keeps the loop polling for the window (a core of CPU while waiting), then lets it sleep again', async () => {
    // Bounds that hold on a loaded, shared machine: a spinning loop gets well over a third of a
    // core even when it shares it; a sleeping one uses almost none.
    n!.busyPoll!(300);
    const spinning = await cpuWhileWaiting(250);
    assert.ok(spinning > 35, `${spinning.toFixed(0)}% of a core while busy polling`);
    await new Promise((r) => setTimeout(r, 100));
    const idle = await cpuWhileWaiting(300);
    assert.ok(idle < 15, `${idle.toFixed(0)}% of a core after the window`);
  });

  it('a later, shorter window does not cut a longer one short', async () => {
    n!.busyPoll!(400);
    n!.busyPoll!(1);
    await new Promise((r) => setTimeout(r, 50));
    const spinning = await cpuWhileWaiting(200);
    assert.ok(spinning > 35, `${spinning.toFixed(0)}% of a core`);
    await new Promise((r) => setTimeout(r, 250));
  });

  it('does not keep a process alive, and refuses bad windows', async () => {
    const addon = fileURLToPath(new URL('../../../build/arca_native.node', import.meta.url));
    const t0 = Date.now();
    const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(addon)}).busyPoll(60000)`], { stdio: 'ignore' });
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 10_000, 'the process exited while its window was still open');
    for (const bad of [-1, 60_001, NaN, '5'] as unknown[]) assert.throws(() => n!.busyPoll!(bad as number), TypeError, String(bad));
  });
});
