/**
 * What the egress and dns-peer tests talk to in the daemon's "outside" namespace: the TCP probe
 * server (test/kernel/net-probe.ts) on 198.18.50.1 ports 8080 and 8081, and fake upstream DNS
 * servers (fake-dns-upstream.ts) that answer every name with 198.18.50.2, which the outside's
 * loopback also holds. All of it runs as children of the test, killed by {@link OutsideServices.stop}.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestDaemon } from './harness.js';
import { run } from '../../src/sys/runner.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const PROBE = join(HERE, '..', 'kernel', 'net-probe.js');
const FAKE_DNS = join(HERE, 'fake-dns-upstream.js');

/** Where the probe server listens (and a DNS server may). */
export const SERVICE_ADDR = '198.18.50.1';
/** The address every name resolves to. */
export const NAME_ADDR = '198.18.50.2';

export class OutsideServices {
  private readonly children: ChildProcess[] = [];

  /** The addresses on the outside's loopback, the probe server, and one fake DNS on port 53 of each of `dnsOn`. */
  async start(d: TestDaemon, dnsOn: readonly string[]): Promise<void> {
    const o = d.outsideNs;
    if (!o) throw new Error('the daemon has no outside namespace (startDaemon({ outside: true }))');
    for (const a of [SERVICE_ADDR, NAME_ADDR]) spawnSync('ip', ['-n', o, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
    await Promise.all([
      this.startIn(o, [process.execPath, PROBE, 'serve', 'o', '8080,8081', '-']),
      ...dnsOn.map((addr) => this.startIn(o, [process.execPath, FAKE_DNS, addr, '53', NAME_ADDR])),
    ]);
  }

  /**
   * A fake DNS on `addr`:53 that gives each new name the next address of `block`, all of which
   * the outside's loopback takes (a local route), so the probe server answers on every one: each
   * lookup of a new name is a first contact with a new address.
   */
  async startFresh(d: TestDaemon, addr: string, block: string): Promise<void> {
    spawnSync('ip', ['-n', d.outsideNs!, 'route', 'add', 'local', block, 'dev', 'lo']);
    await this.startAnswering(d, addr, block);
  }

  /** A fake DNS on `addr`:53 answering every name with `answer` (an address, or a block as above). */
  async startAnswering(d: TestDaemon, addr: string, answer: string): Promise<void> {
    const o = d.outsideNs!;
    spawnSync('ip', ['-n', o, 'addr', 'add', `${addr}/32`, 'dev', 'lo']);
    await this.startIn(o, [process.execPath, FAKE_DNS, addr, '53', answer]);
  }

  stop(): void {
    for (const c of this.children) c.kill('SIGKILL');
  }

  /** Resolves once the child, started in `ns`, prints "ready". */
  private startIn(ns: string, argv: string[]): Promise<void> {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.children.push(child);
    return new Promise((res, rej) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('ready')) res();
      });
      child.once('exit', (code) => rej(new Error(`${argv.join(' ')} exited (${code})`)));
    });
  }
}

/** What the probe server at host:port says to `container` (`o <peer>`), or '' when nothing came back. */
export async function tcpFrom(d: TestDaemon, container: string, host: string, port: number): Promise<string> {
  const r = await d.docker(['exec', container, 'timeout', '3', 'nc', host, String(port)], { input: '' });
  return r.stdout.trim();
}

/**
 * Resolves each name through the container's nameserver and, the moment the answer is in, opens
 * a TCP connection to the address on `port`, from the container's namespace (the host's node,
 * hrtime). A SYN that is dropped is retried only after the kernel's initial RTO (1 s), so a
 * connection established within `withinMs` (under that) means its first packet passed.
 */
export async function resolveThenConnect(
  d: TestDaemon,
  container: string,
  names: readonly string[],
  port: number,
  withinMs = 800,
): Promise<Array<{ name: string; addr?: string; connectMs?: number; said?: string; error?: string }>> {
  const resolv = await d.dockerOk(['exec', container, 'cat', '/etc/resolv.conf']);
  const ns = /^nameserver\s+(\S+)/m.exec(resolv)?.[1];
  if (!ns) throw new Error(`no nameserver in ${container}'s resolv.conf: ${resolv}`);
  const sandbox = (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', container])).trim();
  const r = await run(['nsenter', `--net=${sandbox}`, '--', process.execPath, '-e', RESOLVE_THEN_CONNECT, ns, String(port), String(withinMs), ...names], {
    timeoutMs: names.length * 10_000,
  });
  return JSON.parse(r.stdout) as Array<{ name: string; addr?: string; connectMs?: number; said?: string; error?: string }>;
}

const RESOLVE_THEN_CONNECT = `
const dgram = require('node:dgram');
const net = require('node:net');
const [server, port, within, ...names] = process.argv.slice(1);
function query(id, name) {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const h = Buffer.alloc(12); h.writeUInt16BE(id, 0); h.writeUInt16BE(0x0100, 2); h.writeUInt16BE(1, 4);
  return Buffer.concat([h, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}
const s = dgram.createSocket('udp4');
function resolve(id, name) {
  return new Promise((res, rej) => {
    const t = setTimeout(() => { s.off('message', on); rej(new Error('no DNS answer')); }, 3000);
    const on = (m) => {
      if (m.readUInt16BE(0) !== id) return;
      clearTimeout(t); s.off('message', on);
      // One A record, last in the message.
      if (m.readUInt16BE(6) < 1) return rej(new Error('no address in the answer'));
      res([...m.subarray(m.length - 4)].join('.'));
    };
    s.on('message', on);
    s.send(query(id, name), 53, server);
  });
}
function connect(addr) {
  return new Promise((res) => {
    const t0 = process.hrtime.bigint();
    const c = net.connect({ host: addr, port: Number(port) });
    let said = '', connectMs;
    const done = (error) => { clearTimeout(t); c.destroy(); res({ connectMs, said: said.trim(), ...(error ? { error } : {}) }); };
    const t = setTimeout(() => done('not connected within ' + within + ' ms'), Number(within));
    c.on('connect', () => { connectMs = Number(process.hrtime.bigint() - t0) / 1e6; c.end(); });
    c.on('data', (b) => { said += b; });
    c.on('end', () => done());
    c.on('error', (e) => done(e.message));
  });
}
(async () => {
  const out = [];
  for (const [i, name] of names.entries()) {
    try {
      const addr = await resolve(i + 1, name);
      out.push({ name, addr, ...(await connect(addr)) });
    } catch (e) {
      out.push({ name, error: e.message });
    }
  }
  s.close();
  process.stdout.write(JSON.stringify(out));
})();
`;
