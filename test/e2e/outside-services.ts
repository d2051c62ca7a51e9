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
