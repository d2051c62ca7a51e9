import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../../src/sys/native.js';
import { FrameStreamDecoder } from '../../src/filterednat/frame-stream-decoder.js';
import { GW, arpRequest, framed, guestUdp, udhcpcDiscover, udhcpcRequest } from './filterednat-fixtures.js';

/** `arca vm-net serve` as its own process, against a Node unix server standing in for QEMU's `server=on`. */
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function run(args: string[]): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [MAIN, 'vm-net', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, stderr: () => err, exit };
}

/** QEMU's listening side: the connections it accepts, and the frames it receives on the latest, cut by the same framing. */
class FakeQemu {
  readonly frames: Buffer[] = [];
  private readonly server: net.Server;
  private readonly conns = new Set<net.Socket>();
  conn: net.Socket | undefined;
  constructor(readonly path: string) {
    const decoder = new FrameStreamDecoder({ frame: (b, o, l) => this.frames.push(Buffer.from(b.subarray(o, o + l))), oversize: () => {} });
    this.server = net.createServer((c) => {
      this.conn = c;
      this.conns.add(c);
      c.on('close', () => this.conns.delete(c));
      c.on('data', (d) => decoder.push(d));
      c.on('error', () => {});
    });
  }
  async listen(): Promise<void> {
    this.server.listen(this.path);
    await once(this.server, 'listening');
  }
  /** The CLI's connection, once it has made it (it retries every 100 ms). */
  async connected(cli: { stderr: () => string }, ms = 5000): Promise<net.Socket> {
    try {
      await poll(`vm-net serve to connect to ${this.path}`, () => this.conn, ms);
    } catch (err) {
      throw new Error(`${(err as Error).message}; its stderr: ${JSON.stringify(cli.stderr())}`);
    }
    return this.conn!;
  }
  async waitFrames(n: number): Promise<void> {
    for (let i = 0; i < 500 && this.frames.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(this.frames.length >= n, `${this.frames.length} of ${n} frames`);
  }
  /**
   * As QEMU goes away: the listener closes (the path is removed), then every connection. In that
   * order: the CLI retries 100 ms after its connection ends, and with the connection closed first
   * a test process held up for longer than that (here, once in ~40 runs under load, 0.4 to 1 s
   * between the two) let it connect to the closing listener, a third connection where the test
   * counts two.
   */
  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const c of this.conns) c.destroy();
    await closed;
  }
}

/** `p`, or a rejection naming what it waited for (`what()`, asked then) after `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what()}`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The CPU time a process has used, ns (/proc/PID/schedstat). */
function cpuNs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
}

async function poll<T>(what: string, f: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    let v: T | undefined;
    try {
      v = f();
    } catch {
      v = undefined;
    }
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('arca vm-net serve', () => {
  let dir: string;
  let echo: dgram.Socket;
  let echoPort: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fnat-cli-'));
    echo = dgram.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
    echo.bind(0, '127.0.0.1');
    await once(echo, 'listening');
    echoPort = echo.address().port;
  });
  after(() => {
    echo.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const threadBuilt = typeof native()?.fastPathCreate === 'function';
  for (const fastPath of ['off', 'on'] as const) {
    const skip = fastPath === 'on' && !threadBuilt ? 'the native addon is not built with the forwarding thread' : false;
    it(`waits for the socket, serves ARP, DHCP and the allowlisted UDP, reconnects when QEMU listens again, keeps the stats file (--fast-path ${fastPath})`, { skip }, async () => {
      const sock = join(dir, `vm-${fastPath}.sock`);
      const statsPath = join(dir, `vm-${fastPath}.json`);
      // Busy polling is the TypeScript path's; with the thread the main loop sees only the odd frame.
      const extra = fastPath === 'on' ? ['--fast-path', 'on'] : ['--fast-path', 'off', '--busy-poll', '5'];
      const p = run(['serve', '--socket', sock, '--allow', `127.0.0.1:${echoPort}/udp`, '--stats-file', statsPath, ...extra]);
      // Whatever fails, nothing of this test may outlive it: a listener left open would keep the
      // file's process alive after its tests (until the runner's 10-minute timeout).
      const qemus: FakeQemu[] = [];
      const qemu = (): FakeQemu => {
        const q = new FakeQemu(sock);
        qemus.push(q);
        return q;
      };
      try {
        const stats = (): Record<string, any> => JSON.parse(readFileSync(statsPath, 'utf8'));
        await poll('the first stats file', () => (existsSync(statsPath) ? true : undefined));
        assert.equal(stats().connected, false);
        // QEMU starts listening only now: the CLI must have been retrying.
        await new Promise((r) => setTimeout(r, 300));
        const q1 = qemu();
        await q1.listen();
        const c1 = await q1.connected(p);
        c1.write(Buffer.concat([framed(arpRequest(GW)), framed(udhcpcDiscover(1)), framed(udhcpcRequest(1))]));
        c1.write(framed(guestUdp(GW, echoPort, Buffer.from('first'))));
        await q1.waitFrames(4);
        assert.equal(q1.frames[0]!.readUInt16BE(12), 0x0806);
        assert.equal(q1.frames[0]!.length, 42);
        const byPort = (f: Buffer): number => f.readUInt16BE(34);
        assert.deepEqual(q1.frames.slice(1).map(byPort).sort(), [67, 67, echoPort].sort());
        const reply = q1.frames.find((f) => byPort(f) === echoPort)!;
        assert.equal(reply.subarray(42).toString(), 'echo:first');
        // Noise that is dropped and counted.
        c1.write(framed(guestUdp(GW, echoPort === 65535 ? 1 : echoPort + 1, Buffer.from('nope'))));
        await poll('the drop in the stats file', () => (stats().dropped.udp_not_allowed === 1 ? true : undefined));
        await q1.close();
        await poll('the CLI to see QEMU go', () => (stats().connected === false ? true : undefined));

        const q2 = qemu();
        await q2.listen();
        const c2 = await q2.connected(p);
        c2.write(framed(guestUdp(GW, echoPort, Buffer.from('second'))));
        await q2.waitFrames(1);
        assert.equal(q2.frames[0]!.subarray(42).toString(), 'echo:second');
        const s = await poll('the final counters', () => {
          const v = stats();
          return v.repliesIn === 2 && v.connected ? v : undefined;
        });
        assert.equal(s.framesIn, 6);
        assert.equal(s.framesOut, 5);
        assert.equal(s.forwarded, 2);
        assert.equal(s.arpReplies, 1);
        assert.equal(s.connections, 2);
        assert.deepEqual([s.dhcp.discover, s.dhcp.offer, s.dhcp.request, s.dhcp.ack], [1, 1, 1, 1]);
        assert.equal(s.dropped.udp_not_allowed, 1);
        for (const r of ['ipv6', 'tcp', 'icmp', 'udp_not_allowed', 'bad_frame', 'fragment', 'ip_options', 'bad_checksum', 'vlan', 'oversize', 'truncated']) {
          assert.equal(typeof s.dropped[r], 'number', r);
        }
        // Busy polling ends with the traffic: an idle VM's engine costs next to no CPU.
        if (fastPath === 'off') {
          assert.equal(s.busyPollMs, typeof native()?.busyPoll === 'function' ? 5 : 0);
          assert.equal(s.fastPath, false);
        } else {
          // The first flow's frame was the engine's; the one after the reconnect, on the open flow, may be the thread's.
          assert.equal(typeof s.fastPath.forwarded, 'number');
          assert.equal(s.fastPath.repliesOut + (s.repliesIn - s.fastPath.repliesIn), 2);
        }
        await new Promise((r) => setTimeout(r, 100));
        const cpu0 = cpuNs(p.child.pid!);
        await new Promise((r) => setTimeout(r, 1000));
        const idlePct = (cpuNs(p.child.pid!) - cpu0) / 1e7;
        assert.ok(idlePct < 5, `${idlePct.toFixed(1)}% of a core while idle`);
        // Rewritten (every 500 ms) even when nothing happens; the window allows for a loaded machine.
        const t0 = s.updatedAt;
        await poll('a fresh write', () => (stats().updatedAt !== t0 ? true : undefined), 2500);
        p.child.kill('SIGTERM');
        assert.equal(await within(p.exit, 5000, () => `vm-net serve to exit on SIGTERM (its stderr: ${JSON.stringify(p.stderr())})`), 0);
      } catch (err) {
        // What the CLI logged (connections, retries) is what explains a failure here.
        if (err instanceof Error) err.message += `\n--- vm-net serve's stderr:\n${p.stderr()}`;
        throw err;
      } finally {
        p.child.kill('SIGKILL');
        await Promise.all(qemus.map((q) => q.close()));
      }
    });
  }

  const bad: Array<[string, string[], RegExp]> = [
    ['no --allow', ['--socket', 'S'], /no --allow entries/],
    ['an entry without /udp', ['--socket', 'S', '--allow', '127.0.0.1:9'], /IP:PORT\/udp/],
    ['a port out of range', ['--socket', 'S', '--allow', '127.0.0.1:70000/udp'], /not 1 to 65535/],
    ['a /31', ['--socket', 'S', '--allow', '127.0.0.1:9/udp', '--subnet', '10.77.0.0/31'], /invalid subnet/],
    ['an IPv6 subnet', ['--socket', 'S', '--allow', '127.0.0.1:9/udp', '--subnet', 'fd00::/64'], /invalid subnet/],
    ['a regular file as socket', ['--socket', 'FILE', '--allow', '127.0.0.1:9/udp'], /is not a socket/],
    ['no --socket', ['--allow', '127.0.0.1:9/udp'], /--socket PATH is required/],
    ['a busy-poll window that is not a number of ms', ['--socket', 'S', '--allow', '127.0.0.1:9/udp', '--busy-poll', '5ms'], /--busy-poll "5ms"/],
    ['a fast path that is neither on nor off', ['--socket', 'S', '--allow', '127.0.0.1:9/udp', '--fast-path', 'yes'], /--fast-path "yes"/],
  ];
  for (const [what, args, msg] of bad) {
    it(`exits 2 with a clear error for ${what}`, async () => {
      const file = join(dir, 'plain-file');
      writeFileSync(file, 'x');
      const p = run(['serve', ...args.map((a) => (a === 'S' ? join(dir, 'none.sock') : a === 'FILE' ? file : a))]);
      try {
        assert.equal(await within(p.exit, 10_000, () => `vm-net serve to refuse ${what} (its stderr: ${JSON.stringify(p.stderr())})`), 2);
      } finally {
        p.child.kill('SIGKILL');
      }
      assert.match(p.stderr(), msg);
    });
  }
});
