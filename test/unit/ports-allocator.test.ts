import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Conflict } from '../../src/errors.js';
import {
  DEFAULT_EPHEMERAL_RANGE,
  ephemeralPortRange,
  NullPortBinder,
  PortAllocator,
  PortAlreadyAllocated,
  PortInUse,
  SocketPortBinder,
} from '../../src/network/ports/port-allocator.js';
import { portRequests } from '../../src/network/ports/port-spec.js';

const bookkeeping = (range = { start: 40000, end: 40004 }): PortAllocator =>
  new PortAllocator({ binder: new NullPortBinder(), ephemeral: range });

async function rejectsWith(p: Promise<unknown>, message: string | RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof Conflict, String(err));
    if (typeof message === 'string') assert.equal((err as Error).message, message);
    else assert.match((err as Error).message, message);
    return true;
  });
}

function listen(host: string, port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host, port, exclusive: true }, () => resolve(s));
  });
}

async function freePort(): Promise<number> {
  const s = await listen('127.0.0.1');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('port allocator bookkeeping', () => {
  it('refuses a taken port with Docker\'s message and frees it on release', async () => {
    const a = bookkeeping();
    await a.reserve(['0.0.0.0'], 'tcp', 8080);
    await rejectsWith(a.reserve(['0.0.0.0'], 'tcp', 8080), 'Bind for 0.0.0.0:8080 failed: port is already allocated');
    await a.reserve(['0.0.0.0'], 'udp', 8080); // other protocol: no clash
    a.release(['0.0.0.0'], 'tcp', 8080);
    await a.reserve(['0.0.0.0'], 'tcp', 8080);
    a.release(['10.9.9.9'], 'tcp', 8080); // unknown: ignored
  });

  it('0.0.0.0 clashes with every IPv4 address, :: with every IPv6 one, but not with each other', async () => {
    const a = bookkeeping();
    await a.reserve(['127.0.0.1'], 'tcp', 80);
    await rejectsWith(a.reserve(['0.0.0.0'], 'tcp', 80), 'Bind for 0.0.0.0:80 failed: port is already allocated');
    await a.reserve(['127.0.0.2'], 'tcp', 80);
    await a.reserve(['::'], 'tcp', 80);
    await rejectsWith(a.reserve(['::1'], 'tcp', 80), 'Bind for ::1:80 failed: port is already allocated');
    await a.reserve(['0.0.0.0'], 'tcp', 81);
    await rejectsWith(a.reserve(['192.0.2.7'], 'tcp', 81), 'Bind for 192.0.2.7:81 failed: port is already allocated');
    assert.equal(a.isAllocated('10.0.0.1', 'tcp', 81), true);
    assert.equal(a.isAllocated('::1', 'tcp', 81), false);
    assert.equal(a.isAllocated('', 'tcp', 81), true);
  });

  it('reserves several addresses all or nothing', async () => {
    const a = bookkeeping();
    await a.reserve(['::'], 'tcp', 9000);
    await rejectsWith(a.reserve(['0.0.0.0', '::'], 'tcp', 9000), /port is already allocated/);
    assert.equal(a.isAllocated('0.0.0.0', 'tcp', 9000), false, 'the IPv4 half was rolled back');
    await rejectsWith(a.reserve(['0.0.0.0', '127.0.0.1'], 'tcp', 9001), /Bind for 127.0.0.1:9001/);
    assert.equal(a.isAllocated('0.0.0.0', 'tcp', 9001), false);
  });

  it('hands out ephemeral ports round-robin, the same number on every address', async () => {
    const a = bookkeeping();
    await a.reserve(['0.0.0.0'], 'tcp', 40001);
    assert.equal(await a.allocate(['0.0.0.0', '::'], 'tcp'), 40000);
    assert.equal(await a.allocate(['0.0.0.0', '::'], 'tcp'), 40002);
    a.release(['0.0.0.0', '::'], 'tcp', 40000);
    // Round-robin: a just-released port is not reused at once.
    assert.equal(await a.allocate(['0.0.0.0'], 'tcp'), 40003);
    assert.equal(await a.allocate(['0.0.0.0'], 'tcp'), 40004);
    assert.equal(await a.allocate(['0.0.0.0'], 'tcp'), 40000);
    await rejectsWith(a.allocate(['0.0.0.0'], 'tcp'), 'all ports are allocated');
    assert.equal(await a.allocate(['0.0.0.0'], 'udp'), 40000);
  });

  it('picks the first free port of an explicit range', async () => {
    const a = bookkeeping();
    await a.reserve(['0.0.0.0'], 'tcp', 8000);
    assert.equal(await a.allocate(['0.0.0.0'], 'tcp', { start: 8000, end: 8010 }), 8001);
    assert.equal(await a.allocate(['0.0.0.0'], 'tcp', { start: 8000, end: 8010 }), 8002);
    await rejectsWith(a.allocate(['0.0.0.0'], 'tcp', { start: 8000, end: 8000 }), 'Bind for 0.0.0.0:8000 failed: port is already allocated');
  });

  it('never gives one port twice to concurrent requests', async () => {
    const a = bookkeeping({ start: 41000, end: 41999 });
    const ports = await Promise.all(Array.from({ length: 50 }, () => a.allocate(['0.0.0.0'], 'tcp')));
    assert.equal(new Set(ports).size, 50);
    const fixed = await Promise.allSettled(Array.from({ length: 10 }, () => a.reserve(['0.0.0.0'], 'tcp', 7777)));
    assert.equal(fixed.filter((r) => r.status === 'fulfilled').length, 1);
  });

  it('allocates a container\'s requests all or nothing', async () => {
    const a = bookkeeping();
    const reqs = portRequests({
      PortBindings: { '80/tcp': [{ HostPort: '8080' }], '53/udp': [{ HostPort: '' }], '81/tcp': [{ HostPort: '8080' }] },
    });
    // 53/udp and 80/tcp succeed, then 81/tcp wants 8080/tcp again: everything is released.
    await rejectsWith(a.allocateAll(reqs), 'Bind for 0.0.0.0:8080 failed: port is already allocated');
    assert.equal(a.isAllocated('0.0.0.0', 'tcp', 8080), false);
    assert.equal(a.isAllocated('0.0.0.0', 'udp', 40000), false);

    // Round-robin goes on after the rolled-back 40000.
    const ok = await a.allocateAll(portRequests({ PortBindings: { '80/tcp': [{ HostPort: '8080' }], '53/udp': [{}] } }));
    assert.deepEqual(ok, [
      { proto: 'udp', containerPort: 53, hostIp: '0.0.0.0', hostPort: 40001 },
      { proto: 'udp', containerPort: 53, hostIp: '::', hostPort: 40001 },
      { proto: 'tcp', containerPort: 80, hostIp: '0.0.0.0', hostPort: 8080 },
      { proto: 'tcp', containerPort: 80, hostIp: '::', hostPort: 8080 },
    ]);
    // What a restarted daemon does with its stored bindings.
    const b = bookkeeping();
    await b.reserveAll(ok);
    await rejectsWith(b.reserve(['::'], 'tcp', 8080), /port is already allocated/);
    b.releaseAll(ok);
    assert.equal(b.isAllocated('::', 'tcp', 8080), false);
  });

  it('reads the ephemeral range from the kernel file, with Docker\'s fallback', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arca-ports-'));
    try {
      writeFileSync(join(dir, 'range'), '32768\t60999\n');
      assert.deepEqual(await ephemeralPortRange(join(dir, 'range')), { start: 32768, end: 60999 });
      writeFileSync(join(dir, 'bad'), 'nonsense');
      assert.deepEqual(await ephemeralPortRange(join(dir, 'bad')), DEFAULT_EPHEMERAL_RANGE);
      assert.deepEqual(await ephemeralPortRange(join(dir, 'missing')), DEFAULT_EPHEMERAL_RANGE);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('port allocator holding host ports (loopback only)', () => {
  it('refuses a port a host program listens on', async () => {
    const other = await listen('127.0.0.1');
    const port = (other.address() as { port: number }).port;
    try {
      const a = new PortAllocator({ binder: new SocketPortBinder() });
      await assert.rejects(a.reserve(['127.0.0.1'], 'tcp', port), (err: unknown) => {
        assert.ok(err instanceof PortInUse);
        assert.equal((err as Error).message, `failed to bind host port 127.0.0.1:${port}/tcp: address already in use`);
        return true;
      });
      assert.equal(a.isAllocated('127.0.0.1', 'tcp', port), false);
      // The ephemeral search steps over it.
      const got = await a.allocate(['127.0.0.1'], 'tcp', { start: port, end: port + 1 });
      assert.equal(got, port + 1);
      a.release(['127.0.0.1'], 'tcp', got);
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it('holds a reserved port against host programs until release (tcp and udp)', async () => {
    const port = await freePort();
    const a = new PortAllocator({ binder: new SocketPortBinder() });
    await a.reserve(['127.0.0.1'], 'tcp', port);
    await a.reserve(['127.0.0.1'], 'udp', port);
    await assert.rejects(listen('127.0.0.1', port), /EADDRINUSE/);
    a.release(['127.0.0.1'], 'tcp', port);
    a.release(['127.0.0.1'], 'udp', port);
    await new Promise((r) => setTimeout(r, 20));
    const s = await listen('127.0.0.1', port);
    await new Promise((r) => s.close(r));
  });

  it('is not fooled into PortAlreadyAllocated by its own held sockets across protocols', async () => {
    const port = await freePort();
    const a = new PortAllocator({ binder: new SocketPortBinder() });
    await a.reserve(['127.0.0.1'], 'udp', port);
    await a.reserve(['127.0.0.1'], 'tcp', port);
    await assert.rejects(a.reserve(['127.0.0.1'], 'tcp', port), PortAlreadyAllocated);
    a.release(['127.0.0.1'], 'tcp', port);
    a.release(['127.0.0.1'], 'udp', port);
  });
});
